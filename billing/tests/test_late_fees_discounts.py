"""Late fees and prepayment discounts as rules held as data: each a bill line of its own,
exactly once per bill, named on the bill; waiving a late fee is an audited admin action."""

from datetime import date
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse

from billing import charges, services
from billing.models import Bill, BillLine, LateFeeRule, Payment, PrepayDiscountRule
from billing.tests.factories import estate, pay
from community.models import AuditEntry, Role
from community.periods import Period
from community.permissions import CENTRE_ADMIN_GROUP
from community.tests.factories import CentreFactory, member, resident
from config.api import Conflict

pytestmark = pytest.mark.django_db

AUGUST = Period(2019, 8)  # due 2019-08-15


@pytest.fixture
def overdue():
    """A 100 m² household's August bill of 120.00, and the estate's late-fee rule: 10 days'
    grace, then 0.05% a day of what is owed, at most 10% of it."""
    community, (home,) = estate(1)
    services.bill_generate_for_period(period=AUGUST)
    rule = LateFeeRule.objects.create(
        community=community,
        name="Late fee 0.05%/day",
        grace_days=10,
        daily_rate=Decimal("0.0005"),
        cap_rate=Decimal("0.1"),
    )
    return Bill.objects.get(household=home), rule


def staff_admin(centre):
    """A centre admin who signs in to Django admin, in the centre admins' permission group."""
    user = member(Role.CENTRE_ADMIN, centre=centre)
    user.is_staff = True
    user.save()
    user.groups.add(Group.objects.get(name=CENTRE_ADMIN_GROUP))
    return user


def late_fee(bill):
    return bill.lines.filter(kind="late_fee").values_list("amount", "quantity").first()


def test_no_late_fee_within_the_grace_period(overdue):
    bill, _ = overdue
    assert charges.late_fees_assess(today=date(2019, 8, 25)) == 0
    assert late_fee(bill) is None


def test_the_late_fee_accrues_per_day_in_one_line_up_to_its_cap(overdue):
    bill, rule = overdue

    assert charges.late_fees_assess(today=date(2019, 8, 30)) == 1  # 5 days: 120 × 0.0005 × 5
    assert late_fee(bill) == (Decimal("0.30"), Decimal("5.00"))
    assert charges.late_fees_assess(today=date(2019, 8, 30)) == 0  # the same day again
    assert charges.late_fees_assess(today=date(2019, 9, 24)) == 1  # 30 days
    assert late_fee(bill) == (Decimal("1.80"), Decimal("30.00"))
    charges.late_fees_assess(today=date(2021, 1, 1))

    bill.refresh_from_db()
    assert late_fee(bill)[0] == Decimal("12.00")  # the cap, 10% of 120.00
    assert bill.amount == Decimal("132.00")
    line = bill.lines.get(kind="late_fee")
    assert (line.name, line.late_fee_rule, line.settlement) == (rule.name, rule, "escrow")
    assert bill.lines.filter(kind="late_fee").count() == 1


def test_a_rule_applies_to_a_bill_once_even_if_asked_twice(overdue):
    bill, rule = overdue
    charges.late_fees_assess(today=date(2019, 8, 30))
    with pytest.raises(IntegrityError), transaction.atomic():
        BillLine.objects.create(
            bill=bill, kind="late_fee", late_fee_rule=rule, name="again", amount=Decimal("1")
        )


def test_the_rule_for_every_estate_applies_where_an_estate_has_none(overdue):
    bill, rule = overdue
    rule.is_active = False
    rule.save()
    LateFeeRule.objects.create(
        name="Default", grace_days=0, daily_rate=Decimal("0.001"), cap_rate=Decimal("1")
    )
    charges.late_fees_assess(today=date(2019, 8, 25))  # 10 days × 0.12
    assert late_fee(bill) == (Decimal("1.20"), Decimal("10.00"))


def test_a_bill_inside_a_pending_payment_keeps_its_amount(overdue):
    bill, _ = overdue
    user = resident(bill.household)
    services.payment_create(
        payer=user,
        bill_ids=[bill.pk],
        gateway="sandbox",
        idempotency_key="k",
        fingerprint="f",
    )
    assert charges.late_fees_assess(today=date(2019, 9, 24)) == 0
    bill.refresh_from_db()
    assert (bill.amount, late_fee(bill)) == (Decimal("120.00"), None)


def test_paying_the_bill_with_its_late_fee_settles_it(overdue):
    bill, _ = overdue
    charges.late_fees_assess(today=date(2019, 9, 24))
    bill.refresh_from_db()
    payment = pay(resident(bill.household), [bill])
    bill.refresh_from_db()
    assert (payment.amount, bill.status) == (Decimal("121.80"), "paid")
    assert charges.late_fees_assess(today=date(2019, 12, 1)) == 0


def test_a_centre_admin_waives_a_late_fee_with_a_reason_and_it_is_audited(overdue, client):
    bill, _ = overdue
    charges.late_fees_assess(today=date(2019, 9, 24))
    line = bill.lines.get(kind="late_fee")
    admin = staff_admin(bill.community.centre)
    client.force_login(admin)
    url = reverse("admin:billing_billline_waive", args=[line.pk])

    assert client.post(url, {"reason": ""}).status_code == 200  # the form again, with its error
    line.refresh_from_db()
    assert line.waived_at is None
    response = client.post(url, {"reason": "in hospital in August"})

    assert response.status_code == 302
    line.refresh_from_db()
    bill.refresh_from_db()
    assert (line.waived_by, line.waive_reason, line.amount) == (
        admin,
        "in hospital in August",
        Decimal("1.80"),
    )
    assert (bill.amount, bill.status) == (Decimal("120.00"), "unpaid")
    entry = AuditEntry.objects.get(action="late_fee_waived")
    assert (entry.actor, entry.details["late_fee"], entry.details["reason"]) == (
        admin,
        "1.80",
        "in hospital in August",
    )
    # Waived for good: the daily run does not bring it back, a second waiver is refused.
    assert charges.late_fees_assess(today=date(2019, 12, 1)) == 0
    with pytest.raises(Conflict):
        charges.late_fee_waive(line=line, by=admin, reason="again")


def test_another_centres_admin_cannot_waive(overdue, client):
    bill, _ = overdue
    charges.late_fees_assess(today=date(2019, 9, 24))
    line = bill.lines.get(kind="late_fee")
    stranger = staff_admin(CentreFactory())
    client.force_login(stranger)

    response = client.post(
        reverse("admin:billing_billline_waive", args=[line.pk]), {"reason": "why not"}
    )

    assert response.status_code == 302
    line.refresh_from_db()
    assert line.waived_at is None
    assert not AuditEntry.objects.filter(action="late_fee_waived").exists()


def test_a_paid_late_fee_is_refunded_not_waived(overdue):
    bill, _ = overdue
    charges.late_fees_assess(today=date(2019, 9, 24))
    bill.refresh_from_db()
    pay(resident(bill.household), [bill])
    line = bill.lines.get(kind="late_fee")
    with pytest.raises(Conflict):
        charges.late_fee_waive(line=line, by=resident(bill.household), reason="late")
    with pytest.raises(ValidationError):
        charges.late_fee_waive(line=bill.lines.get(kind="charge"), by=None, reason="x")
    line.refresh_from_db()
    assert line.waived_at is None


# --- prepayment discounts ----------------------------------------------------------------------


@pytest.fixture
def home():
    community, (household,) = estate(1)  # 100 m² at 1.20: 120.00 a month
    services.bill_generate_for_period(period=Period.current())
    PrepayDiscountRule.objects.create(
        community=community, name="Prepay 12, one free", months_paid=12, months_free=1
    )
    return household


def prepay(client, household, months, key):
    return client.post(
        "/api/v1/bills/prepay/",
        {"household": household.pk, "months": months},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


def test_prepaying_twelve_months_takes_one_months_fee_off_spread_over_them(home, as_user):
    response = prepay(as_user(resident(home)), home, 12, "p12")

    assert response.status_code == 201
    payment = Payment.objects.get()
    assert payment.amount == Decimal("1320.00")  # 11 × 120.00
    bills = Bill.objects.filter(is_prepaid=True).order_by("period")
    discounts = [b.lines.get(kind="discount") for b in bills]
    assert sum(d.amount for d in discounts) == Decimal("-120.00")
    assert {d.amount for d in discounts} == {Decimal("-10.00")}
    assert {d.name for d in discounts} == {"Prepay 12, one free"}
    assert {b.amount for b in bills} == {Decimal("110.00")}
    assert response.json()[0]["lines"][-1]["kind"] == "discount"


def test_the_discount_is_exact_to_the_fen_when_the_month_does_not_divide(as_user):
    community, (household,) = estate(1, rate="1.37")  # 137.00 a month
    services.bill_generate_for_period(period=Period.current())
    PrepayDiscountRule.objects.create(community=community, name="7+2", months_paid=7, months_free=2)
    response = prepay(as_user(resident(household)), household, 7, "p7")
    assert response.status_code == 201
    bills = Bill.objects.filter(is_prepaid=True)
    assert sum(b.amount for b in bills) == Decimal("685.00")  # 5 × 137.00
    assert sorted({-b.lines.get(kind="discount").amount for b in bills}) == [
        Decimal("39.14"),
        Decimal("39.15"),
    ]


def test_fewer_months_than_the_rule_asks_get_no_discount(home, as_user):
    assert prepay(as_user(resident(home)), home, 11, "p11").status_code == 201
    assert Payment.objects.get().amount == Decimal("1320.00")
    assert not BillLine.objects.filter(kind="discount").exists()


def test_two_blocks_get_two_months_free(home, as_user):
    assert prepay(as_user(resident(home)), home, 24, "p24").status_code == 201
    assert Payment.objects.get().amount == Decimal("2640.00")  # 22 × 120.00
