"""Factories and helpers for billing tests: a community under an agreement, bills, and a payment
completed through the real sandbox notification path."""

from datetime import date
from decimal import Decimal

import factory

from billing import services
from billing import summary as billing_summary
from billing.gateways.sandbox import SandboxGateway, notification_body, sign
from billing.models import Bill, SandboxTrade
from community.tests.factories import AgreementFactory, CommunityFactory, HouseholdFactory


class BillFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Bill

    household = factory.SubFactory(HouseholdFactory)
    community = factory.LazyAttribute(lambda bill: bill.household.building.community)
    period = "2019-08"
    area = factory.LazyAttribute(lambda bill: bill.household.area)
    rate = Decimal("1.20")
    amount = factory.LazyAttribute(lambda bill: (bill.area * bill.rate).quantize(Decimal("0.01")))
    due_date = date(2019, 8, 15)

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        bill = super()._create(model_class, *args, **kwargs)
        # A bill made here stands for one the bill run issued: counted in the dashboards'
        # summary as the run counts its bills (billing.summary).
        billing_summary.bills_created([bill])
        return bill


def estate(households: int = 2, *, rate="1.20", holdback="0.10", **community_kwargs):
    """A community with an agreement in force since 2019-07 and `households` households."""
    community = CommunityFactory(**community_kwargs)
    AgreementFactory(
        community=community,
        effective_from=date(2019, 7, 1),
        fee_rate=Decimal(rate),
        holdback_share=Decimal(holdback),
    )
    homes = [
        HouseholdFactory(building__community=community, area=Decimal("100.00") + n)
        for n in range(households)
    ]
    return community, homes


def notify(payment, *, status="SUCCESS"):
    """Complete a payment exactly as the sandbox gateway does: confirm the trade on the
    gateway's side, then deliver its signed notification."""
    trade = SandboxTrade.objects.get(out_trade_no=payment.out_trade_no)
    if status == "SUCCESS":
        SandboxGateway.confirm(trade)
    else:
        SandboxGateway.cancel(trade)
    body = notification_body(trade)
    return services.payment_notification_receive(
        gateway="sandbox", body=body, headers={"X-Sandbox-Signature": sign(body)}
    )


def pay(user, bills, *, key=None):
    """Create and complete a payment for `bills` as `user`."""
    ids = [b.pk for b in bills]
    payment, _ = services.payment_create(
        payer=user,
        bill_ids=ids,
        gateway="sandbox",
        idempotency_key=key or f"k-{'-'.join(map(str, ids))}",
        fingerprint=services.request_fingerprint({"bill_ids": ids, "gateway": "sandbox"}),
    )
    return notify(payment)


def desk_pay(cashier, bills, *, method="cash", reference="", key=None):
    """Record a payment of `bills` (one household's) at the centre's desk as `cashier`."""
    from billing import desk  # imported here so that this helper stays appended at the end

    ids = sorted(b.pk for b in bills)
    payment, _ = desk.desk_payment_record(
        cashier=cashier,
        household_id=bills[0].household_id,
        bill_ids=ids,
        method=method,
        reference=reference,
        idempotency_key=key or f"desk-{'-'.join(map(str, ids))}",
        fingerprint=services.request_fingerprint(
            {"bill_ids": ids, "method": method, "reference": reference}
        ),
    )
    return payment
