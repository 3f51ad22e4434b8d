"""The Celery application shared by every worker (`celery -A fatbuildr_site worker`)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fatbuildr_site.settings")

app = Celery("fatbuildr_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
