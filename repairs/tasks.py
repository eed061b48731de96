"""Periodic work of the repairs app: the SLA check (see CELERY_BEAT_SCHEDULE)."""

from celery import shared_task

from repairs import services


# acks_late: running the check twice is harmless (each deadline is escalated once, guarded by
# the ticket's escalated_at mark and the notices' dedupe key), losing it to a worker crash is not.
@shared_task(acks_late=True)
def escalate_overdue_tickets() -> int:
    """Every few minutes: mark overdue tickets and escalate each missed deadline once."""
    return services.ticket_escalate_overdue()
