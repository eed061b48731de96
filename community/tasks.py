"""Periodic housekeeping for the community app, and a probe task for checking the worker."""

import os
import socket

from celery import shared_task
from django.core.management import call_command


@shared_task
def clear_expired_sessions() -> None:
    """Daily: drop expired browser sessions so the session table does not grow without end."""
    call_command("clearsessions")


@shared_task
def worker_probe(token: str) -> dict:
    """Answer with where it ran: lets a health check (and a test) prove a real worker round trip."""
    return {"token": token, "pid": os.getpid(), "host": socket.gethostname()}
