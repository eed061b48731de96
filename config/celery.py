"""The Celery app. Configuration comes from Django settings (CELERY_* names); tasks are
discovered in each installed app's tasks.py; the beat timetable is CELERY_BEAT_SCHEDULE."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

app = Celery("linli")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
