"""Test settings: the base settings (DATABASE_URL and CELERY_BROKER_URL still honoured, so CI
runs on PostgreSQL and Redis) made fast and hermetic."""

import os

os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-" + "x" * 40)
os.environ.setdefault("SANDBOX_GATEWAY_SECRET", "test-sandbox-secret")

from config.settings.base import *  # noqa: F403
from config.settings.base import REST_FRAMEWORK

ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
SECURE_SSL_REDIRECT = False
# Serve static files from the source folders; tests never run collectstatic.
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True
# In-process tests run tasks inline; the worker round-trip test switches this off explicitly.
CELERY_TASK_ALWAYS_EAGER = True
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {**REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "auth": "1000/min"},
}
# The locmem cache outlives each test's rolled-back database, and SQLite hands the next test's
# users the same ids: per-user counts would carry over between tests. The throttling tests
# (tests/test_hardening.py) set low rates themselves.
PAYMENT_THROTTLE_RATE = "10000/min"
TICKET_THROTTLE_RATE = "10000/min"
RECEIPT_CHECK_THROTTLE_RATE = "10000/min"
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":  # noqa: F405
    # Flushing between transactional tests may TRUNCATE the ledger (tests/flushable_postgresql).
    DATABASES["default"]["ENGINE"] = "tests.flushable_postgresql"  # noqa: F405
