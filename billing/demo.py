"""The story's month in money: every household billed, 46 of 56 paid on time (82%), three of
them prepaying two years, and the month paid out to the company with its 10% held back.
Payments go through the real sandbox path (payment, signed notification) with their paid-at
time set inside the story's month. Running it again changes nothing."""

from datetime import datetime, time

from django.utils import timezone

from billing import services
from billing.gateways.sandbox import notification_body, sign
from billing.models import Bill, SandboxTrade
from community.demo import DemoWorld

# Residents whose household did not pay in the story's month (10 of 56: 82% paid).
UNPAID = {5, 11, 17, 23, 29, 35, 41, 47, 52, 56}
# Residents who prepaid two years on top of the month.
PREPAID_TWO_YEARS = {1, 2, 3}


def _paid_at(world: DemoWorld, number: int) -> datetime:
    """A time inside the month, before the due date (the 15th): on time."""
    day = world.period.day(1 + number % 14)
    return timezone.make_aware(datetime.combine(day, time(9 + number % 10, 7 * number % 60)))


def _complete(payment, paid_at: datetime) -> None:
    """Confirm the trade on the sandbox's side at `paid_at` and deliver its signed notification."""
    trade = SandboxTrade.objects.get(out_trade_no=payment.out_trade_no)
    if trade.status == "WAIT_BUYER_PAY":
        trade.status, trade.paid_at = "TRADE_SUCCESS", paid_at
        trade.save(update_fields=["status", "paid_at"])
    body = notification_body(trade)
    services.payment_notification_receive(
        gateway="sandbox", body=body, headers={"X-Sandbox-Signature": sign(body)}
    )


def seed(world: DemoWorld) -> DemoWorld:
    period = world.period
    services.bill_generate_for_period(period=period)
    for number, (user, household) in enumerate(
        zip(world.residents, world.households, strict=True), start=1
    ):
        if number in UNPAID:
            continue
        ids = sorted(
            Bill.objects.filter(household=household, period=str(period)).values_list(
                "pk", flat=True
            )
        )
        payment, _ = services.payment_create(
            payer=user,
            bill_ids=ids,
            gateway="sandbox",
            idempotency_key=f"demo:{period}:{number:02d}",
            fingerprint=services.request_fingerprint({"bill_ids": ids, "gateway": "sandbox"}),
        )
        _complete(payment, _paid_at(world, number))
        if number in PREPAID_TWO_YEARS:
            # Two more years on top of the month, bills and payment made together.
            body = {"household": household.pk, "months": 24, "gateway": "sandbox"}
            prepayment, _ = services.bill_prepay(
                user=user,
                household_id=household.pk,
                months=24,
                gateway="sandbox",
                idempotency_key=f"demo:{period}:{number:02d}:prepay",
                fingerprint=services.request_fingerprint(body),
            )
            _complete(prepayment, _paid_at(world, number))
    services.payout_run(community=world.community, period=period)
    return world
