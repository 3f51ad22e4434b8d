"""Settings for the test suite: the real ones, with a throwaway secret and data root.

The variables set here are inherited by the Celery workers the tests start,
so that they see the same data root and consume this run's own queues.
"""

import os
import tempfile
import uuid
from pathlib import Path

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-secret-key-not-for-production")
os.environ.setdefault("FATBUILDR_DATA_DIR", tempfile.mkdtemp(prefix="fatbuildr-tests-"))
# Build roots take a minute each to make: kept between runs, shared by every test.
os.environ.setdefault(
    "FATBUILDR_ENVS_DIR",
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "var", "test-envs"),
)
os.environ.setdefault("FATBUILDR_TASK_QUEUE", f"fatbuildr-tests-{uuid.uuid4().hex[:12]}")
# Fast recovery, so that the fault tests take seconds.
os.environ.setdefault("FATBUILDR_TASK_HEARTBEAT_INTERVAL", "0.5")
os.environ.setdefault("FATBUILDR_TASK_HEARTBEAT_TIMEOUT", "3")
os.environ.setdefault("FATBUILDR_TASK_REAPER_INTERVAL", "1")
os.environ.setdefault("FATBUILDR_TASK_REDISPATCH_AFTER", "2")

from fatbuildr_site.settings import *  # noqa: F403

# WhiteNoise wants the static root to exist; the tests need no collected files.
STATIC_ROOT = Path(tempfile.mkdtemp(prefix="fatbuildr-static-"))

# Handlers of the test-only task names, in the workers the tests start.
CELERY_IMPORTS = ["tests.task_handlers"]
