"""Settings for the test suite: the real ones, with a throwaway secret and data root."""

import os
import tempfile

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-secret-key-not-for-production")
os.environ.setdefault("FATBUILDR_DATA_DIR", tempfile.mkdtemp(prefix="fatbuildr-tests-"))

from fatbuildr_site.settings import *  # noqa: F403

# WhiteNoise wants the static root to exist; the tests need no collected files.
STATIC_ROOT = tempfile.mkdtemp(prefix="fatbuildr-static-")
