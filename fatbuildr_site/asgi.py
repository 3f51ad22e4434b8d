"""ASGI entry point of the production server (scripts/serve): request bodies are streamed
to the views, not read before them (fatbuildr_site/bodies.py)."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fatbuildr_site.settings")
django.setup(set_prefix=False)

from fatbuildr_site.bodies import StreamingBodyASGIHandler  # noqa: E402

application = StreamingBodyASGIHandler()
