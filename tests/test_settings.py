"""Settings behave as the README promises. Each case starts a fresh Python process, because
settings are read once per process."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

ROOT = Path(__file__).resolve().parent.parent

# What a production deployment sets (README, docker-compose.yml).
PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "k8#Vn2!qL0x@R7zT4m$W9pE1sY6uB3cH5jA*dF8gK2nP0vQ7rS4tU1wX9yZ3bM6",
    "ALLOWED_HOSTS": "linli.example.org",
    "DATABASE_URL": "sqlite:///:memory:",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
    "CACHE_URL": "rediscache://127.0.0.1:6379/1",
    "EMAIL_URL": "smtp+tls://linli:secret@smtp.example.org:587",
    "SANDBOX_GATEWAY_SECRET": "sandbox-production-secret-for-the-check",
}


def run_django(code_or_args: list[str], env: dict) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in PRODUCTION_ENV and k != "DEBUG"}
    clean["SANDBOX_GATEWAY_SECRET"] = "sandbox-secret"
    clean["DJANGO_SETTINGS_MODULE"] = "config.settings.base"
    return subprocess.run(
        [sys.executable, *code_or_args],
        cwd=ROOT,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_settings_refuse_to_start_without_secret_key_when_debug_is_off():
    result = run_django(["-c", "import django; django.setup()"], {"DEBUG": "false"})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY is required" in result.stderr


def test_settings_start_without_secret_key_in_debug():
    result = run_django(
        [
            "-c",
            "import django; django.setup(); from django.conf import settings;"
            "print(settings.DATABASES['default']['ENGINE'], settings.CELERY_TASK_ALWAYS_EAGER)",
        ],
        {"DEBUG": "true"},
    )
    assert result.returncode == 0, result.stderr
    # The embedded default: SQLite, and tasks run in-process.
    assert result.stdout.split() == ["django.db.backends.sqlite3", "True"]


def test_check_deploy_is_clean_with_production_settings():
    result = run_django(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], PRODUCTION_ENV
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_flags_missing_mail_configuration():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "EMAIL_URL"}
    result = run_django(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert result.returncode != 0
    assert "MAILERS" in result.stdout + result.stderr


@pytest.mark.django_db
def test_models_and_migrations_agree():
    # Raises SystemExit(1) when a model change has no migration.
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
