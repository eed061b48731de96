"""Domain events the community app announces, sent with transaction.on_commit as Django signals.
points/ listens; community imports no listener.

activity_checked_in(checkin_id: int, activity_id: int, community_id: int, user_id: int,
    kind: "event" | "volunteering", hours: str (Decimal hours volunteered, "0" for an event,
    e.g. "2.5"), checked_in_at: str (ISO 8601))
    Sent once per person and activity (the check-in is unique); checkin_id is the idempotency
    reference for anyone awarding points for it.
"""

from django.dispatch import Signal

activity_checked_in = Signal()
