"""Django settings for the Fatbuildr build farm server.

Every deployment knob is an environment variable parsed here, and only here,
with a default that works on a developer machine. Production (DJANGO_DEBUG
unset or false) refuses to start without DJANGO_SECRET_KEY.
"""

import os
import platform
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    """Read a boolean environment variable ("1", "true", "yes", "on" are true)."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    """Read a comma-separated environment variable."""
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", False)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
# Or from a file (Docker secrets, or var/secret_key written by scripts/setup).
SECRET_KEY_FILE = Path(os.environ.get("DJANGO_SECRET_KEY_FILE", BASE_DIR / "var" / "secret_key"))
if not SECRET_KEY and SECRET_KEY_FILE.is_file():
    SECRET_KEY = SECRET_KEY_FILE.read_text().strip()
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it (or DJANGO_DEBUG=true for a local "
            "development server) before starting Fatbuildr."
        )
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "instances",
    "accounts",
    "registry",
    "tasks",
    "builds",
    "web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # NUL and other characters PostgreSQL refuses, in URL arguments and query values.
    "fatbuildr_site.middleware.UnstorableInputMiddleware",
    # Serves the admin's static files from gunicorn, no extra web server needed.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "fatbuildr_site.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Site templates (upstream `[web] templates`) are searched before the project's.
        "DIRS": env_list("FATBUILDR_TEMPLATES_DIRS", []),
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "fatbuildr_site.wsgi.application"
ASGI_APPLICATION = "fatbuildr_site.asgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/fatbuildr"),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_URL must point to PostgreSQL (postgres://...).")
# The ASGI web server runs each request in a thread of its own: connections are
# pooled per process rather than kept per thread (scripts/serve turns this on).
if env_bool("FATBUILDR_DATABASE_POOL", False):
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 2,
        "max_size": int(os.environ.get("FATBUILDR_DATABASE_POOL_SIZE", "20")),
        "timeout": 10,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT", BASE_DIR / "var" / "static"))

# Behind a TLS-terminating proxy in production.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# apt and dnf fetch signed repositories over plain HTTP: no forced HTTPS redirect
# and no HSTS from the application; TLS policy belongs to the proxy in front.
SECURE_SSL_REDIRECT = False
SILENCED_SYSTEM_CHECKS = ["security.W004", "security.W008"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"without_traceback": {"()": "fatbuildr_site.logfilters.WithoutTraceback"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        # A bad Host header is a client's mistake (answered 400): one line, no traceback.
        "django.security.DisallowedHost": {"filters": ["without_traceback"]},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("FATBUILDR_LOG_LEVEL", "INFO")},
}

# --- Django REST framework -------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.InstanceTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.PolicyPermission"],
    "DEFAULT_RENDERER_CLASSES": ["fatbuildr_site.renderers.CompactJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.JSONParser",
    ],
    "EXCEPTION_HANDLER": "fatbuildr_site.exceptions.error_object_handler",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "fatbuildr_site.negotiation.FirstRendererNegotiation",
    "UNAUTHENTICATED_USER": "accounts.identity.anonymous_identity",
    # `?format=` and `format` are Fatbuildr parameters, not renderer selectors.
    "URL_FORMAT_OVERRIDE": None,
    "FORMAT_SUFFIX_KWARG": "renderer_format",
    # OPTIONS answers without the view docstrings, which describe the server's internals.
    "DEFAULT_METADATA_CLASS": "fatbuildr_site.metadata.NoDescriptionMetadata",
}

# --- Fatbuildr -------------------------------------------------------------

# Version reported by /version; clients compare against upstream 2.1.0.
FATBUILDR_VERSION = "2.1.0"

# Root of everything on disk: registries, keyrings, workspaces, build roots, cache.
FATBUILDR_DATA_DIR = Path(os.environ.get("FATBUILDR_DATA_DIR", BASE_DIR / "var" / "data"))

# Set: mono-instance mode, the API is served without the /{instance} prefix.
FATBUILDR_INSTANCE = os.environ.get("FATBUILDR_INSTANCE", "") or None

# Access policy in the upstream ACL format; defaults to the upstream vendor policy.
FATBUILDR_POLICY = Path(os.environ.get("FATBUILDR_POLICY", BASE_DIR / "accounts" / "policy.acl"))

# Architecture of the build hosts, always first in pipelines/architectures.json.
FATBUILDR_HOST_ARCHITECTURE = os.environ.get("FATBUILDR_HOST_ARCHITECTURE", platform.machine())

# API tokens, as upstream [tokens]: HS256 JWT, audience "fatbuildr", 30 days.
FATBUILDR_TOKEN_ALGORITHM = os.environ.get("FATBUILDR_TOKEN_ALGORITHM", "HS256")
FATBUILDR_TOKEN_AUDIENCE = os.environ.get("FATBUILDR_TOKEN_AUDIENCE", "fatbuildr")
FATBUILDR_TOKEN_DURATION_DAYS = int(os.environ.get("FATBUILDR_TOKEN_DURATION_DAYS", "30"))
if FATBUILDR_TOKEN_ALGORITHM not in {"HS256", "HS384", "HS512"}:
    raise ImproperlyConfigured("FATBUILDR_TOKEN_ALGORITHM must be HS256, HS384 or HS512.")

# --- Celery ----------------------------------------------------------------

CELERY_BROKER_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Longer than the longest build, so Redis never redelivers a message still in work.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(os.environ.get("FATBUILDR_TASK_VISIBILITY_TIMEOUT", "43200"))
}
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Periodic jobs go to their own queue, served by a worker that never runs builds,
# so that recovery still happens while every build worker is busy.
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("FATBUILDR_TASK_QUEUE", "fatbuildr")
FATBUILDR_MAINTENANCE_QUEUE = os.environ.get(
    "FATBUILDR_MAINTENANCE_QUEUE", f"{CELERY_TASK_DEFAULT_QUEUE}-maintenance"
)
CELERY_TASK_ROUTES = {
    "fatbuildr.maintain_tasks": {"queue": FATBUILDR_MAINTENANCE_QUEUE},
    "fatbuildr.purge_histories": {"queue": FATBUILDR_MAINTENANCE_QUEUE},
}

# --- Task engine -----------------------------------------------------------

# Running tasks write a heartbeat this often; the reaper fails a running task
# whose heartbeat is older than the timeout ("worker lost").
FATBUILDR_TASK_HEARTBEAT_INTERVAL = float(os.environ.get("FATBUILDR_TASK_HEARTBEAT_INTERVAL", "5"))
FATBUILDR_TASK_HEARTBEAT_TIMEOUT = float(os.environ.get("FATBUILDR_TASK_HEARTBEAT_TIMEOUT", "60"))
# How often beat runs the reaper and the reconciler, and how long a pending
# task waits for its message before the reconciler sends it again.
FATBUILDR_TASK_REAPER_INTERVAL = float(os.environ.get("FATBUILDR_TASK_REAPER_INTERVAL", "30"))
FATBUILDR_TASK_REDISPATCH_AFTER = float(os.environ.get("FATBUILDR_TASK_REDISPATCH_AFTER", "60"))
# Default limit of one command run by a task (seconds).
FATBUILDR_TASK_COMMAND_TIMEOUT = float(os.environ.get("FATBUILDR_TASK_COMMAND_TIMEOUT", "10800"))
# History purge policy (compat §6.4): older:<n><h|d|m|y>, last:<n>, each:<n>, size:<n><MB|GB|..>.
FATBUILDR_TASKS_PURGE = os.environ.get("FATBUILDR_TASKS_PURGE", "last:100")
# Hour (UTC) of the daily purge run by beat.
FATBUILDR_TASKS_PURGE_HOUR = int(os.environ.get("FATBUILDR_TASKS_PURGE_HOUR", "3"))

# --- Keyrings (compat §9) --------------------------------------------------

FATBUILDR_KEYRING_KEY_TYPE = os.environ.get("FATBUILDR_KEYRING_KEY_TYPE", "rsa")
FATBUILDR_KEYRING_KEY_SIZE = int(os.environ.get("FATBUILDR_KEYRING_KEY_SIZE", "4096"))
# Expiry of new keys: "no" (never) or <n>[d|w|m|y].
FATBUILDR_KEYRING_EXPIRES = os.environ.get("FATBUILDR_KEYRING_EXPIRES", "no")

CELERY_BEAT_SCHEDULE = {
    "maintain-tasks": {
        "task": "fatbuildr.maintain_tasks",
        "schedule": FATBUILDR_TASK_REAPER_INTERVAL,
        # A backlog of these is useless: the next run does the same work.
        "options": {"expires": FATBUILDR_TASK_REAPER_INTERVAL},
    },
    "purge-histories": {
        "task": "fatbuildr.purge_histories",
        "schedule": crontab(minute=0, hour=FATBUILDR_TASKS_PURGE_HOUR),
    },
}

# --- Registry files served to apt and dnf (compat §1.7) ---------------------
# Added with registry/api/downloads.py; see its docstring for the nginx location.

# HTML listings of registry folders; false answers 403 "Access forbidden".
FATBUILDR_REGISTRY_LISTING = env_bool("FATBUILDR_REGISTRY_LISTING", True)
# Non-empty (e.g. "/_registry/"): downloads are handed to nginx with
# X-Accel-Redirect: <prefix><instance>/<path>, once the view has checked the path.
FATBUILDR_ACCEL_REDIRECT_PREFIX = os.environ.get("FATBUILDR_ACCEL_REDIRECT_PREFIX", "").strip()
if FATBUILDR_ACCEL_REDIRECT_PREFIX:
    if not FATBUILDR_ACCEL_REDIRECT_PREFIX.startswith("/"):
        raise ImproperlyConfigured("FATBUILDR_ACCEL_REDIRECT_PREFIX must start with /.")
    FATBUILDR_ACCEL_REDIRECT_PREFIX = FATBUILDR_ACCEL_REDIRECT_PREFIX.rstrip("/") + "/"


# --- Builds (issue 5; builds/) ----------------------------------------------

# Build roots, one per (instance, format, environment, architecture).
FATBUILDR_ENVS_DIR = Path(os.environ.get("FATBUILDR_ENVS_DIR", FATBUILDR_DATA_DIR / "envs"))
# Downloaded artifact sources, per instance and artifact (compat §7.4).
FATBUILDR_CACHE_DIR = Path(os.environ.get("FATBUILDR_CACHE_DIR", FATBUILDR_DATA_DIR / "cache"))
# Debian mirror of the build roots; empty: the first one of this machine's apt sources.
FATBUILDR_MIRROR = os.environ.get("FATBUILDR_MIRROR", "").strip()
# Debian suite of the rpm build roots (no EL roots are reachable: rpm builds use
# Debian's rpm toolchain); empty: this machine's suite.
FATBUILDR_RPM_SUITE = os.environ.get("FATBUILDR_RPM_SUITE", "").strip()
# Unprivileged uid and gid the builds run as inside their sandbox.
FATBUILDR_BUILD_UID = int(os.environ.get("FATBUILDR_BUILD_UID", "64400"))
# Limits on each uploaded or downloaded archive (tarball of the definition, sources).
FATBUILDR_BUILD_ARCHIVE_MAX_SIZE = int(
    os.environ.get("FATBUILDR_BUILD_ARCHIVE_MAX_SIZE", str(2 * 1024**3))
)
FATBUILDR_BUILD_ARCHIVE_MAX_MEMBERS = int(
    os.environ.get("FATBUILDR_BUILD_ARCHIVE_MAX_MEMBERS", "100000")
)
# Largest build submission request body, uploads included.
FATBUILDR_BUILD_UPLOAD_MAX_SIZE = int(
    os.environ.get("FATBUILDR_BUILD_UPLOAD_MAX_SIZE", str(1024**3))
)
# The largest request body of any route (the build submission): a longer declared body is
# refused from its headers (fatbuildr_site/bodies.py).
FATBUILDR_REQUEST_MAX_SIZE = FATBUILDR_BUILD_UPLOAD_MAX_SIZE
# Seconds a request body may stall between two chunks before it is cut (408).
FATBUILDR_REQUEST_BODY_TIMEOUT = float(os.environ.get("FATBUILDR_REQUEST_BODY_TIMEOUT", "30"))
# Downloads of declared sources from loopback and private addresses (a private mirror);
# refused by default: definitions are untrusted.
FATBUILDR_SOURCE_ALLOW_PRIVATE = env_bool("FATBUILDR_SOURCE_ALLOW_PRIVATE", False)
# Downloads of declared sources: seconds without data before giving up.
FATBUILDR_SOURCE_DOWNLOAD_TIMEOUT = float(os.environ.get("FATBUILDR_SOURCE_DOWNLOAD_TIMEOUT", "60"))
