"""Celery tasks that turn other apps' events into points. Each takes plain values (ids, ISO
times), calls one award service and returns quietly when there is nothing to award. Every award
is idempotent through its entry's unique source key, so a task delivered twice, retried after a
lost connection, or racing a copy of itself awards once: hence acks_late, and retries for the
errors a retry can fix (a deadlock victim, a dropped database connection)."""

import functools
import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from billing import selectors as billing_selectors
from points import services

logger = logging.getLogger(__name__)


def _quiet_when_gone(task):
    """A resident or company that no longer exists earns nothing: log it, do not retry."""

    @functools.wraps(task)
    def wrapper(*args, **kwargs):
        try:
            return task(*args, **kwargs)
        except ObjectDoesNotExist as exc:
            logger.warning("points: %s(%s, %s) skipped: %s", task.__name__, args, kwargs, exc)
            return 0

    return wrapper


RETRY = {
    "acks_late": True,
    # Redeliver, rather than acknowledge, an award whose pool process was killed mid-task (see
    # billing.tasks.run_payout): otherwise that award is lost for good.
    "reject_on_worker_lost": True,
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 5,
    "retry_jitter": True,
    "max_retries": 8,
}


@shared_task(**RETRY)
@_quiet_when_gone
def award_payment(
    payment_id: int, payer_id: int, paid_at: str, on_time: bool, months_prepaid: int
) -> int:
    entries = services.award_for_payment(
        payment_id=payment_id,
        payer_id=payer_id,
        paid_at=paid_at,
        on_time=on_time,
        months_prepaid=months_prepaid,
    )
    return len(entries)


@shared_task(**RETRY)
def award_payments_batch(events: list[dict]) -> int:
    """Many payment_succeeded events in one task (bulk senders: a due day's payments), each a
    dict of award_payment's arguments. One transaction: killed midway, the whole batch comes
    back (acks_late, reject_on_worker_lost) and awards what it had not, once. An unknown payer
    is skipped by the service, not the batch."""
    return len(services.award_for_payments(events))


@shared_task(**RETRY)
@_quiet_when_gone
def clawback_payment(payment_id: int, payer_id: int) -> int:
    return len(services.clawback_for_refund(payment_id=payment_id, payer_id=payer_id))


@shared_task(**RETRY)
@_quiet_when_gone
def award_ticket_resolved(
    ticket_id: int, community_id: int, resolved_at: str, within_sla: bool, first_resolution: bool
) -> int:
    entry = services.award_for_ticket_resolved(
        ticket_id=ticket_id,
        community_id=community_id,
        resolved_at=resolved_at,
        within_sla=within_sla,
        first_resolution=first_resolution,
    )
    return int(entry is not None)


@shared_task(**RETRY)
@_quiet_when_gone
def award_ticket_rated(
    ticket_id: int, community_id: int, rated_by_id: int, stars: int, rated_at: str
) -> int:
    entries = services.award_for_ticket_rated(
        ticket_id=ticket_id,
        community_id=community_id,
        rated_by_id=rated_by_id,
        stars=stars,
        rated_at=rated_at,
    )
    return len(entries)


@shared_task(**RETRY)
@_quiet_when_gone
def award_service_rating(rating_id: int, user_id: int, period: str, rated_at: str) -> int:
    entry = services.award_for_service_rating(
        rating_id=rating_id, user_id=user_id, period=period, rated_at=rated_at
    )
    return int(entry is not None)


@shared_task(**RETRY)
@_quiet_when_gone
def award_checkin(checkin_id: int, user_id: int, kind: str, hours: str, checked_in_at: str) -> int:
    entry = services.award_for_checkin(
        checkin_id=checkin_id,
        user_id=user_id,
        kind=kind,
        hours=hours,
        checked_in_at=checked_in_at,
    )
    return int(entry is not None)


@shared_task(**RETRY)
@_quiet_when_gone
def award_scorecard(
    community_id: int,
    company_id: int,
    period: str,
    score: str,
    revision: int,
    finalized_at: str | None = None,
) -> int:
    entry = services.award_for_scorecard(
        community_id=community_id,
        company_id=company_id,
        period=period,
        score=score,
        revision=revision,
        finalized_at=finalized_at or timezone.now().isoformat(),
    )
    return int(entry is not None)


# A payment is paid or expired once it can no longer be pending (PAYMENT_PENDING_MINUTES): the
# sweep looks only at payments older than that and a quarter of an hour more, so the award of
# one it finds has had its chance to arrive through its own task.
SWEEP_GRACE = timedelta(minutes=15)
# How far back (by creation) every sweep looks again: sweeps missed for up to two days (beat
# down) are made good by the next one, and so is the award of an expired payment that a late
# notification still paid within two days (its bills were open: billing's _book_capture).
SWEEP_LOOKBACK = timedelta(days=2)


@shared_task(**RETRY)
def award_missed_payments() -> int:
    """Beat, every quarter of an hour: award the payments of the last two days whose
    payment_succeeded award never arrived (services.award_missed_payments says how one is
    lost). Each award is once per payment, so overlapping sweeps and late awards are safe."""
    settled_before = (
        timezone.now() - timedelta(minutes=settings.PAYMENT_PENDING_MINUTES) - SWEEP_GRACE
    )
    return services.award_missed_payments(
        after_id=billing_selectors.last_payment_id_created_before(settled_before - SWEEP_LOOKBACK),
        up_to_id=billing_selectors.last_payment_id_created_before(settled_before),
    )


@shared_task(**RETRY)
def clawback_missed_refunds() -> int:
    """Beat, every quarter of an hour: take back the awards of the payments refunded in the
    last two days whose payment_refunded clawback never arrived. A refund is decided when it
    is made, so the grace is the quarter of an hour alone."""
    settled_before = timezone.now() - SWEEP_GRACE
    return services.clawback_missed_refunds(
        after_id=billing_selectors.last_refund_id_created_before(settled_before - SWEEP_LOOKBACK),
        up_to_id=billing_selectors.last_refund_id_created_before(settled_before),
    )
