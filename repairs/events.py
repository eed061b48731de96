"""Domain events the repairs app announces. Apps later in the dependency order (alliance/,
points/) connect receivers to them in their own AppConfig.ready(); repairs never imports them.

Events are sent after the transaction that caused them commits (never for a rolled-back change),
with `sender=Ticket` and keyword arguments only. A receiver that raises is logged and does not
disturb the other receivers or the request; a receiver with slow or fallible work should hand it
to a Celery task.

ticket_resolved — a ticket was resolved (counts as handled). Sent on every resolution: a ticket
that is reopened and resolved again announces again, with first_resolution=False.
    ticket_id: int
    community_id: int
    kind: "report" | "repair"
    category_id: int
    household_id: int | None      (None for a common-area ticket)
    filed_by_id: int              the resident who filed it
    assignee_id: int | None       who did the work
    resolved_by_id: int           who marked it resolved
    resolved_at: datetime         aware
    within_sla: bool              no deadline of this ticket was missed so far
    first_resolution: bool

ticket_rated — the filer rated a resolved ticket (once per ticket).
    ticket_id: int
    community_id: int
    kind: "report" | "repair"
    household_id: int | None
    rated_by_id: int              the resident who filed it
    stars: int                    1..5
    rated_at: datetime            aware
"""

import logging

from django.db import transaction
from django.dispatch import Signal

from repairs.models import Ticket

logger = logging.getLogger(__name__)

ticket_resolved = Signal()
ticket_rated = Signal()


def announce(signal: Signal, **payload) -> None:
    """Send `signal` once the current transaction commits (at once outside a transaction)."""

    def send() -> None:
        for receiver, result in signal.send_robust(sender=Ticket, **payload):
            if isinstance(result, Exception):
                logger.error(
                    "receiver %r of a repairs event failed",
                    receiver,
                    exc_info=(type(result), result, result.__traceback__),
                )

    transaction.on_commit(send)
