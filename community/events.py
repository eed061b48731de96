"""Domain events the community app announces, sent with transaction.on_commit as Django signals.
points/ listens; community imports no listener.

activity_checked_in(checkin_id: int, activity_id: int, community_id: int, user_id: int,
    kind: "event" | "volunteering", hours: str (Decimal hours volunteered, "0" for an event,
    e.g. "2.5"), checked_in_at: str (ISO 8601))
    Sent once per person and activity (the check-in is unique); checkin_id is the idempotency
    reference for anyone awarding points for it. sender: community.models.ActivityCheckin.
"""

import logging

from django.db import transaction
from django.dispatch import Signal

logger = logging.getLogger(__name__)

activity_checked_in = Signal()


def announce(signal: Signal, *, sender, **payload) -> None:
    """Send `signal` once the current transaction commits (never for a rolled-back change). A
    receiver that raises is logged and disturbs neither the other receivers nor the request."""

    def send() -> None:
        for receiver, result in signal.send_robust(sender=sender, **payload):
            if isinstance(result, Exception):
                logger.error(
                    "receiver %r of a community event failed",
                    receiver,
                    exc_info=(type(result), result, result.__traceback__),
                )

    transaction.on_commit(send)
