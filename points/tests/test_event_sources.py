"""The real event sources, end to end: a payment through billing's sandbox path, its refund, and
a ticket worked and rated through repairs, each award arriving through the event after commit."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing import services as billing_services
from billing.tests.factories import BillFactory, pay
from billing.tests.factories import estate as billing_estate
from community.models import Role
from community.tests.factories import member, resident
from points.models import Entry, Holder
from points.tests.factories import reputation
from repairs import services as repairs_services
from repairs.tests.factories import Estate as RepairsEstate

pytestmark = pytest.mark.django_db


def test_paying_on_time_earns_reputation_and_a_refund_takes_it_back(
    django_capture_on_commit_callbacks,
):
    community, (home,) = billing_estate(1)
    user = resident(home)
    bills = [
        BillFactory(household=home, period=period, due_date=timezone.localdate() + timedelta(3))
        for period in ("2019-08", "2019-09")
    ]
    with django_capture_on_commit_callbacks(execute=True):
        payment = pay(user, bills)
    assert reputation(user) == 10
    award = Entry.objects.get()
    assert (award.source, award.reference) == ("payment_on_time", str(payment.pk))

    admin = member(Role.CENTRE_ADMIN, centre=community.centre)
    with django_capture_on_commit_callbacks(execute=True):
        billing_services.payment_refund(
            payment=payment,
            amount=Decimal("10.00"),
            reason="重复缴费",
            by=admin,
            idempotency_key="refund-1",
            fingerprint="f1",
        )
    assert reputation(user) == 0
    assert list(Entry.objects.order_by("pk").values_list("kind", "amount")) == [
        ("award", 10),
        ("clawback", -10),
    ]


def test_a_payment_refunded_before_its_award_arrives_earns_nothing(
    django_capture_on_commit_callbacks,
):
    # Out of order: the award's task is still waiting (say, retrying) when the refund's task
    # runs and finds nothing to take back; the award, arriving last, must not stand.
    community, (home,) = billing_estate(1)
    user = resident(home)
    bill = BillFactory(household=home, due_date=timezone.localdate() + timedelta(days=3))
    with django_capture_on_commit_callbacks(execute=False) as delayed:
        payment = pay(user, [bill])
    admin = member(Role.CENTRE_ADMIN, centre=community.centre)
    with django_capture_on_commit_callbacks(execute=True):
        billing_services.payment_refund(
            payment=payment,
            amount=Decimal("5.00"),
            reason="多缴",
            by=admin,
            idempotency_key="refund-1",
            fingerprint="f1",
        )
    assert len(delayed) == 1  # payment_succeeded, not delivered yet

    with django_capture_on_commit_callbacks(execute=True) as scheduled:
        delayed[0]()

    assert len(scheduled) == 1  # the award's task did run
    assert Entry.objects.count() == 0
    assert reputation(user) == 0


def test_a_payment_after_the_due_date_earns_nothing(django_capture_on_commit_callbacks):
    _, (home,) = billing_estate(1)
    user = resident(home)
    bill = BillFactory(household=home, due_date=timezone.localdate() - timedelta(days=1))
    with django_capture_on_commit_callbacks(execute=True):
        pay(user, [bill])
    assert Entry.objects.count() == 0


def test_a_ticket_worked_and_rated_earns_the_company_and_the_filer(
    django_capture_on_commit_callbacks,
):
    estate = RepairsEstate()
    ticket = estate.repair()
    with django_capture_on_commit_callbacks(execute=True):
        for action in ("accept", "resolve"):
            repairs_services.ticket_transition(ticket=ticket, actor=estate.staff, action=action)
        repairs_services.ticket_rate(ticket=ticket, user=estate.filer, stars=5)

    company = Holder.objects.get(company=estate.community.company)
    assert sorted(company.entries.values_list("source", "amount")) == [
        ("ticket_five_stars", 3),
        ("ticket_within_sla", 2),
    ]
    assert company.balances.get().amount == 5
    assert reputation(estate.filer) == 2
