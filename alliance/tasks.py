"""The alliance's Celery jobs (see CELERY_BEAT_SCHEDULE): the daily drafts, and the daily
finalization that acts from ALLIANCE_FINALIZE_DAY on. Both are safe to run again: a finalized
scorecard is never recomputed, and finalizing is guarded by the scorecard's row lock, its unique
revision and billing's once-per-month release."""

import logging
from datetime import date

from celery import shared_task
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from alliance import selectors, services
from community.models import Community
from community.periods import Period
from config.api import Conflict

logger = logging.getLogger(__name__)


def _today(today: str | None) -> date:
    return date.fromisoformat(today) if today else timezone.localdate()


@shared_task
def refresh_drafts(today: str | None = None) -> int:
    """Daily: recompute this month's and last month's draft scorecards."""
    targets = selectors.draft_targets(today=_today(today))
    for community_id, period in targets:
        refresh_scorecard.delay(community_id, str(period))
    return len(targets)


@shared_task(acks_late=True)
def refresh_scorecard(community_id: int, period: str) -> int | None:
    community = Community.objects.filter(pk=community_id).first()
    if community is None:
        return None
    return services.scorecard_refresh(community=community, period=Period.parse(period)).pk


@shared_task
def finalize_due_scorecards(today: str | None = None) -> int:
    """Daily: from ALLIANCE_FINALIZE_DAY on, finalize the previous month (and any older month
    left a draft) and release its hold-back."""
    targets = selectors.finalize_targets(
        today=_today(today), finalize_day=settings.ALLIANCE_FINALIZE_DAY
    )
    for community_id, period in targets:
        finalize_scorecard.delay(community_id, str(period))
    return len(targets)


# acks_late: the finalization is guarded by the row lock and unique revision (a second run
# returns the finalized scorecard), and losing it to a worker crash would delay the money.
@shared_task(acks_late=True)
def finalize_scorecard(community_id: int, period: str) -> int | None:
    """Finalize one community's month. When it cannot be finalized yet (no payout, nothing to
    score) the centre's admins are told once and the next daily run tries again."""
    community = Community.objects.filter(pk=community_id).first()
    if community is None:
        return None
    month = Period.parse(period)
    try:
        card, _ = services.scorecard_finalize(community=community, period=month)
    except (Conflict, ValidationError) as exc:
        problem = str(exc.detail) if isinstance(exc, Conflict) else " ".join(exc.messages)
        logger.warning("scorecard %s %s not finalized: %s", community_id, period, problem)
        services.scorecard_blocked_notify(community=community, period=month, problem=problem)
        return None
    return card.pk
