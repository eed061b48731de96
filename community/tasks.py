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


# --- notifications (community/notifications.py) ------------------------------------------------


@shared_task(acks_late=True)
def send_delivery(delivery_id: int) -> str | None:
    """Send one notification through its outside channel (after the commit that created it).
    acks_late is safe: the claim in delivery_send lets only one run send. A failure the provider
    calls temporary is rescheduled on the row (not_before) and retried by send_due_deliveries,
    so retries work the same with eager tasks and never raise into the request that notified."""
    from community import notifications

    return notifications.delivery_send(delivery_id=delivery_id)


@shared_task
def send_due_deliveries() -> int:
    """Every few minutes: messages held for the quiet hours, waiting for a retry, or whose
    after-commit task was lost."""
    from community import notifications

    due = notifications.deliveries_due()
    for delivery_id in due:
        send_delivery.delay(delivery_id)
    return len(due)
