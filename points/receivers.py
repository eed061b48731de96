"""Receivers for the events that earn points, connected in PointsConfig.ready().

A receiver only schedules a task for after the current transaction commits (at once when there
is none: the apps announce their events after their own commit). It never raises into the
announcing app: a payload it cannot read is logged, and the event is not lost silently.
"""

import functools
import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from points import tasks

logger = logging.getLogger(__name__)


def _iso(value) -> str:
    """Times travel to the worker as ISO 8601 text (the task serializer is JSON)."""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _later(task, **kwargs) -> None:
    def enqueue() -> None:
        if task.app.conf.task_always_eager:
            # Run in-process (no broker). Not .delay(): in eager mode it sets and restores a
            # process-wide Celery flag, and two threads committing at once (a web server's
            # threads, the race tests) can leave it stuck, after which every eager result's
            # .get() in the process raises "Never call result.get() within a task".
            task.apply(kwargs=kwargs)
        else:
            # Nobody waits for an award's result. Without ignore_result, every publish with
            # the Redis result backend also SUBSCRIBEs this web process to the task's result
            # channel (a round trip per payment, and a subscription kept until the AsyncResult
            # is collected): measured on the payment cycle in bench/profile_payment_cycle.py.
            # The reprs shown in logs and monitors are given: Celery's saferepr of the kwargs,
            # written to bound any argument's size, was a fifth of the publish's CPU, and these
            # are a few numbers and a timestamp.
            task.apply_async(
                kwargs=kwargs, ignore_result=True, argsrepr="()", kwargsrepr=repr(kwargs)
            )

    # robust: a broker that is down, or a failing award, must not break the announcing app's
    # request; the error is logged with the task.
    transaction.on_commit(enqueue, robust=True)


def _never_raises(receiver):
    @functools.wraps(receiver)
    def wrapper(sender, **payload):
        try:
            receiver(sender, **payload)
        except Exception:
            logger.exception("points: could not schedule %s for %r", receiver.__name__, payload)

    return wrapper


@_never_raises
def on_payment_succeeded(sender, **payload) -> None:
    _later(
        tasks.award_payment,
        payment_id=int(payload["payment_id"]),
        payer_id=int(payload["payer_id"]),
        paid_at=_iso(payload["paid_at"]),
        on_time=bool(payload["on_time"]),
        months_prepaid=int(payload.get("months_prepaid") or 0),
    )


@_never_raises
def on_payment_refunded(sender, **payload) -> None:
    _later(
        tasks.clawback_payment,
        payment_id=int(payload["payment_id"]),
        payer_id=int(payload["payer_id"]),
    )


@_never_raises
def on_ticket_resolved(sender, **payload) -> None:
    _later(
        tasks.award_ticket_resolved,
        ticket_id=int(payload["ticket_id"]),
        community_id=int(payload["community_id"]),
        resolved_at=_iso(payload["resolved_at"]),
        within_sla=bool(payload["within_sla"]),
        first_resolution=bool(payload["first_resolution"]),
    )


@_never_raises
def on_ticket_rated(sender, **payload) -> None:
    _later(
        tasks.award_ticket_rated,
        ticket_id=int(payload["ticket_id"]),
        community_id=int(payload["community_id"]),
        rated_by_id=int(payload["rated_by_id"]),
        stars=int(payload["stars"]),
        rated_at=_iso(payload["rated_at"]),
    )


@_never_raises
def on_service_rated(sender, **payload) -> None:
    # The documented payload has no time; the rating was just committed, so "now" is when it
    # happened (a rated_at, should alliance add one, is used instead).
    _later(
        tasks.award_service_rating,
        rating_id=int(payload["rating_id"]),
        user_id=int(payload["user_id"]),
        period=str(payload["period"]),
        rated_at=_iso(payload.get("rated_at") or timezone.now()),
    )


@_never_raises
def on_activity_checked_in(sender, **payload) -> None:
    _later(
        tasks.award_checkin,
        checkin_id=int(payload["checkin_id"]),
        user_id=int(payload["user_id"]),
        kind=str(payload["kind"]),
        hours=str(payload.get("hours") or "0"),
        checked_in_at=_iso(payload["checked_in_at"]),
    )


@_never_raises
def on_scorecard_finalized(sender, **payload) -> None:
    _later(
        tasks.award_scorecard,
        community_id=int(payload["community_id"]),
        company_id=int(payload["company_id"]),
        period=str(payload["period"]),
        score=str(payload["score"]),
        revision=int(payload.get("revision") or 1),
        finalized_at=_iso(payload.get("finalized_at") or timezone.now()),
    )


def connect() -> None:
    from alliance import events as alliance_events
    from billing import events as billing_events
    from community import events as community_events
    from repairs import events as repairs_events

    pairs = [
        (billing_events.payment_succeeded, on_payment_succeeded),
        (billing_events.payment_refunded, on_payment_refunded),
        (repairs_events.ticket_resolved, on_ticket_resolved),
        (repairs_events.ticket_rated, on_ticket_rated),
        (alliance_events.service_rated, on_service_rated),
        (alliance_events.scorecard_finalized, on_scorecard_finalized),
        (community_events.activity_checked_in, on_activity_checked_in),
    ]
    for signal, receiver in pairs:
        signal.connect(receiver, dispatch_uid=f"points.{receiver.__name__}")
