"""WSGI entry point (gunicorn with threaded workers in production)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fatbuildr_site.settings")

application = get_wsgi_application()
