"""Domain events the alliance app announces, sent with transaction.on_commit as Django signals.
points/ listens; alliance imports no listener.

service_rated(rating_id: int, household_id: int, community_id: int, user_id: int, period: str
    ("YYYY-MM"), stars: dict[str, int] ({"cleaning", "greening", "security", "reporting",
    "repair"}: 1..5))
    Sent once per household and period (the rating is unique); rating_id is the idempotency
    reference for awarding the rater.

scorecard_finalized(scorecard_id: int, community_id: int, company_id: int, period: str,
    score: str (Decimal 0..1 with 4 places, e.g. "0.9125"), revision: int)
    Sent once per finalized scorecard revision; scorecard_id is the idempotency reference for
    awarding the company.
"""

from django.dispatch import Signal

service_rated = Signal()
scorecard_finalized = Signal()
