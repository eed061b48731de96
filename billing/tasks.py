"""Billing's Celery jobs. Each takes ids or periods, calls one service, and is safe to run again:
the services' unique constraints make a retry or a duplicate delivery a no-op."""

import logging
from datetime import date, timedelta

from celery import shared_task
from django.utils import timezone

from billing import reconciliation, services
from billing.gateways import enabled_gateways
from billing.gateways.base import NotificationRejected
from billing.gateways.sandbox import notification_body, sign
from billing.models import Reconciliation, SandboxTrade
from community.models import Agreement, Community
from community.periods import Period

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def generate_bills(period: str | None = None) -> int:
    """Monthly (1st, early morning): this month's bills for every household under an agreement.
    A second run creates nothing (unique household + period)."""
    return services.bill_generate_for_period(
        period=Period.parse(period) if period else Period.current()
    )


@shared_task
def mark_overdue_bills() -> int:
    """Daily: mark bills past due and remind their residents (once per bill)."""
    return services.bill_mark_overdue()


@shared_task
def send_bill_reminders() -> int:
    """Daily: the reminders the schedule (billing.ReminderStep) has for today. A second run
    sends nothing (one delivery per person, channel and reminder key)."""
    from billing import reminders

    return reminders.bill_reminders_send()


@shared_task
def assess_late_fees() -> int:
    """Daily, before the reminders: each overdue bill's late fee brought up to today under its
    estate's rule (one line per bill, raised in place; a rerun the same day changes nothing)."""
    from billing import charges

    return charges.late_fees_assess()


@shared_task
def expire_stale_payments() -> int:
    """Every few minutes: ask the gateway about payments nobody completed in time, then complete
    or expire them (freeing their bills)."""
    return services.payment_expire_stale()


# acks_late alone redelivers the message of a whole worker killed mid-task (it never acked);
# reject_on_worker_lost also puts it back when only the pool process running it dies (the OOM
# killer picks the biggest process), which Celery otherwise acknowledges, losing the payout for
# the month. A message that kills its process every time would loop; a payout does not.
@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(Exception,),
    retry_backoff=30,
    max_retries=5,
)
def run_payout(community_id: int, period: str) -> int | None:
    """Pay one community's finished month. One database transaction, guarded by a unique
    constraint: a worker killed midway leaves nothing half-done, and the retry pays once."""
    community = Community.objects.filter(pk=community_id).first()
    if community is None:
        return None
    payout, _ = services.payout_run(community=community, period=Period.parse(period))
    return payout.pk


@shared_task(acks_late=True, reject_on_worker_lost=True)
def run_due_payouts() -> int:
    """Daily: on each agreement's payout day, pay out the previous month of its community.
    acks_late: a worker killed halfway through the fan-out runs it again, and the communities
    already sent are paid once all the same (run_payout is idempotent)."""
    today = timezone.localdate()
    previous = Period.containing(today).previous()
    due = Agreement.objects.filter(payout_day=today.day, effective_from__lte=previous.last_day)
    count = 0
    for community_id in due.values_list("community_id", flat=True).distinct():
        run_payout.delay(community_id, str(previous))
        count += 1
    return count


# How far back the daily run looks for a day whose statement it could not fetch (the gateway
# was down, or published late): such a day is tried again each day until it is in.
RECONCILE_CATCH_UP_DAYS = 7


@shared_task(acks_late=True)
def reconcile_settlements(day: str | None = None) -> dict[str, int]:
    """Daily, after the gateways publish yesterday's statement (Alipay after about 09:00,
    WeChat Pay after 10:00, Beijing time): match yesterday's statement of every enabled gateway
    with the ledger, and again any of the RECONCILE_CATCH_UP_DAYS days before whose statement
    was not available or never fetched. With `day`, that day only. Returns the differences
    found per gateway-day. Running it again for a day replaces that day's lines."""
    yesterday = timezone.localdate() - timedelta(days=1)
    days = [date.fromisoformat(day)] if day else [yesterday]
    found = {}
    for gateway in enabled_gateways():
        todo = list(days)
        if day is None:
            earliest = yesterday - timedelta(days=RECONCILE_CATCH_UP_DAYS)
            done = set(
                Reconciliation.objects.filter(gateway=gateway, day__gte=earliest, day__lt=yesterday)
                .exclude(status=Reconciliation.Status.FAILED)
                .values_list("day", flat=True)
            )
            todo += [
                earliest + timedelta(days=n)
                for n in range(RECONCILE_CATCH_UP_DAYS)
                if earliest + timedelta(days=n) not in done
            ]
        for when in sorted(todo):
            result = reconciliation.reconciliation_run(gateway=gateway, day=when)
            found[f"{gateway}:{when.isoformat()}"] = result.differences
    return found


@shared_task(bind=True, max_retries=10, default_retry_delay=5)
def sandbox_deliver_notification(self, out_trade_no: str) -> str:
    """The sandbox gateway's server-to-server notification. The sandbox lives inside the
    portal, so instead of an HTTP request to itself it hands the signed body to the same handler
    the notify endpoint uses; the signature is verified exactly as for an outside gateway. Like a
    real gateway it retries when the portal does not acknowledge (e.g. not committed yet)."""
    trade = SandboxTrade.objects.filter(out_trade_no=out_trade_no).first()
    if trade is None or trade.status == "WAIT_BUYER_PAY":
        return "nothing to send"
    body = notification_body(trade)
    try:
        services.payment_notification_receive(
            gateway="sandbox", body=body, headers={"X-Sandbox-Signature": sign(body)}
        )
    except NotificationRejected as exc:
        logger.warning("sandbox notification for %s rejected: %s", out_trade_no, exc)
        raise self.retry(exc=exc) from exc
    return "delivered"
