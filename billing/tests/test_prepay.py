"""Prepayment: the future bills and the payment that pays them are made together, at most 36
months beyond this one in all, idempotent per request; unpaid future bills go with their
payment, and a month nobody paid for is billed at the rate then in force."""

from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.utils import timezone

from billing import services
from billing.models import Bill, Payment
from billing.money import fee
from billing.tests.factories import BillFactory, estate, notify
from billing.tests.test_races import run_together
from community.models import Agreement, Role
from community.periods import Period
from community.tests.factories import member, resident
from config.api import Conflict

pytestmark = pytest.mark.django_db

THIS_MONTH = Period.current


def prepay(client, household, months, *, key="p1", **extra):
    return client.post(
        "/api/v1/bills/prepay/",
        {"household": household.pk, "months": months, **extra},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


@pytest.fixture
def home():
    """A household under an agreement since 2019, billed for this month already."""
    _, (household,) = estate(1)
    BillFactory(household=household, period=str(THIS_MONTH()))
    return household


def test_prepay_creates_the_bills_together_with_their_payment(home, as_user):
    response = prepay(as_user(resident(home)), home, 24)

    assert response.status_code == 201
    body = response.json()
    assert [b["period"] for b in body] == [str(THIS_MONTH().plus(n)) for n in range(1, 25)]
    monthly = fee(area=home.area, rate=Decimal("1.20"))
    assert {b["amount"] for b in body} == {f"{monthly:.2f}"}
    assert {b["status"] for b in body} == {"unpaid"}
    payment = Payment.objects.get()
    assert {b["payment"] for b in body} == {payment.pk}
    assert {b["pay_url"] for b in body} == {payment.pay_url}
    assert response["Location"] == f"/api/v1/payments/{payment.pk}/"
    assert (payment.status, payment.amount) == ("pending", monthly * 24)
    assert sorted(payment.items.values_list("bill_id", flat=True)) == sorted(b["id"] for b in body)


def test_a_paid_prepayment_settles_its_bills(home, as_user):
    prepay(as_user(resident(home)), home, 12)

    notify(Payment.objects.get())

    assert Bill.objects.filter(household=home, is_prepaid=True, status="paid").count() == 12


def test_the_same_key_returns_the_same_prepayment(home, as_user):
    client = as_user(resident(home))
    first = prepay(client, home, 24, key="same")
    again = prepay(client, home, 24, key="same")
    other_body = prepay(client, home, 12, key="same")

    assert (first.status_code, again.status_code, other_body.status_code) == (201, 201, 409)
    assert first.json() == again.json()
    assert Payment.objects.count() == 1
    assert Bill.objects.filter(is_prepaid=True).count() == 24


def test_prepaying_stops_36_months_beyond_this_one_in_all(home, as_user):
    client = as_user(resident(home))
    assert prepay(client, home, 24, key="a").status_code == 201
    refused = prepay(client, home, 24, key="b")
    assert refused.status_code == 409
    assert "12" in refused.json()["detail"]  # how many months are left
    assert prepay(client, home, 12, key="c").status_code == 201
    assert prepay(client, home, 1, key="d").status_code == 409

    latest = Bill.objects.filter(household=home).order_by("-period").first()
    assert latest.period == str(THIS_MONTH().plus(36))
    assert Bill.objects.filter(is_prepaid=True).count() == 36
    assert Payment.objects.count() == 2


def test_a_resident_cannot_pile_up_unpaid_bills(home, as_user):
    client = as_user(resident(home))
    answers = [prepay(client, home, 36, key=f"k{n}").status_code for n in range(20)]

    assert answers == [201] + [409] * 19
    assert Bill.objects.filter(household=home).count() == 1 + 36


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"months": 0}, 400),
        ({"months": 37}, 400),
        ({"months": "twelve"}, 400),
        ({"months": None}, 400),
        ({"months": 12, "gateway": "nowhere"}, 400),
    ],
)
def test_prepay_rejects_bad_input_and_writes_nothing(home, as_user, body, status):
    response = prepay(as_user(resident(home)), home, **body)
    assert response.status_code == status
    assert not Bill.objects.filter(is_prepaid=True).exists()
    assert not Payment.objects.exists()


def test_prepay_without_an_idempotency_key_keeps_to_the_contract_and_the_horizon(home, as_user):
    """shared/API.md's prepay takes only {household, months}: a client that sends no key gets
    each request as a prepayment of its own, and still never more than 36 months in all."""
    client = as_user(resident(home))
    body = {"household": home.pk, "months": 24}
    first = client.post("/api/v1/bills/prepay/", body, format="json")
    assert first.status_code == 201 and len(first.json()) == 24
    second = client.post("/api/v1/bills/prepay/", body, format="json")
    assert second.status_code == 409
    third = client.post("/api/v1/bills/prepay/", {**body, "months": 12}, format="json")
    assert third.status_code == 201
    assert Bill.objects.filter(is_prepaid=True).count() == 36
    assert Payment.objects.count() == 2
    oversized = client.post(
        "/api/v1/bills/prepay/",
        {**body, "months": 1},
        format="json",
        HTTP_IDEMPOTENCY_KEY="x" * 101,
    )
    assert oversized.status_code == 400
    assert "Idempotency-Key" in oversized.json()


def test_prepay_for_someone_elses_household_is_404(as_user):
    _, (mine, theirs) = estate(2)
    response = prepay(as_user(resident(mine)), theirs, 12)
    assert response.status_code == 404
    assert not Bill.objects.exists()
    assert not Payment.objects.exists()


def test_staff_cannot_prepay_for_a_household(home, as_user):
    admin = member(Role.CENTRE_ADMIN, centre=home.building.community.centre)
    assert prepay(as_user(admin), home, 12).status_code == 404
    assert not Payment.objects.exists()


def test_prepay_past_the_calendar_is_400_not_500(as_user):
    _, (household,) = estate(1)
    with mock.patch.object(Period, "current", return_value=Period(9999, 6)):
        response = prepay(as_user(resident(household)), household, 12)
    assert response.status_code == 400
    assert not Bill.objects.exists()


def test_each_prepaid_month_takes_the_rate_in_force_then(as_user):
    community, (household,) = estate(1, rate="1.20")
    agreement = Agreement.objects.get(community=community)
    change = THIS_MONTH().plus(3)
    agreement.effective_to = change.previous().last_day
    agreement.save(update_fields=["effective_to"])
    Agreement.objects.create(
        community=community,
        effective_from=change.first_day,
        fee_rate=Decimal("1.50"),
        holdback_share=agreement.holdback_share,
        payout_day=agreement.payout_day,
        bill_due_day=agreement.bill_due_day,
    )

    response = prepay(as_user(resident(household)), household, 6)

    rates = {b["period"]: b["amount"] for b in response.json()}
    old, new = (
        fee(area=household.area, rate=Decimal("1.20")),
        fee(area=household.area, rate=Decimal("1.50")),
    )
    assert rates == {
        str(THIS_MONTH().plus(n)): f"{old if THIS_MONTH().plus(n) < change else new:.2f}"
        for n in range(6)
    }


def test_prepaying_beyond_the_agreement_is_409(as_user):
    community, (household,) = estate(1)
    agreement = Agreement.objects.get(community=community)
    agreement.effective_to = THIS_MONTH().plus(2).last_day
    agreement.save(update_fields=["effective_to"])

    assert prepay(as_user(resident(household)), household, 12).status_code == 409
    assert not Bill.objects.exists()
    assert not Payment.objects.exists()


def test_an_expired_prepayment_takes_its_future_bills_with_it(home, as_user):
    client = as_user(resident(home))
    prepay(client, home, 12, key="gone")
    payment = Payment.objects.get()

    expired = services.payment_expire_stale(now=timezone.now() + timedelta(hours=2))

    assert expired == 1
    payment.refresh_from_db()
    assert payment.status == "failed"
    assert Bill.objects.filter(is_prepaid=True, status="void").count() == 12
    listed = client.get("/api/v1/bills/", {"household": home.pk}).json()
    assert [b["period"] for b in listed["results"]] == [str(THIS_MONTH())]
    # The key of an expired prepayment does not bring it back; a new one starts afresh.
    assert prepay(client, home, 12, key="gone").status_code == 409
    assert prepay(client, home, 12, key="again").status_code == 201
    assert Bill.objects.filter(household=home).exclude(status="void").count() == 13


def test_a_cancelled_prepayment_leaves_nothing_owed(home, as_user):
    client = as_user(resident(home))
    prepay(client, home, 3)
    payment = Payment.objects.get()

    response = client.post(f"/api/v1/payments/{payment.pk}/cancel/")

    assert response.status_code == 200
    owed = Bill.objects.filter(household=home, status__in=["unpaid", "partially_paid"])
    assert list(owed.values_list("period", flat=True)) == [str(THIS_MONTH())]


def test_a_void_month_is_billed_again_by_the_bill_run_at_the_new_rate(home, as_user):
    prepay(as_user(resident(home)), home, 3)
    services.payment_cancel(payment=Payment.objects.get())
    next_month = THIS_MONTH().next()
    Agreement.objects.filter(community=home.building.community).update(fee_rate=Decimal("2.00"))

    created = services.bill_generate_for_period(period=next_month)

    assert created == 1
    bill = Bill.objects.get(household=home, period=str(next_month), status="unpaid")
    assert bill.amount == fee(area=home.area, rate=Decimal("2.00"))
    assert not bill.is_prepaid


def test_a_void_bill_cannot_be_paid(home, as_user):
    client = as_user(resident(home))
    bill_ids = [b["id"] for b in prepay(client, home, 2).json()]
    services.payment_cancel(payment=Payment.objects.get())

    response = client.post(
        "/api/v1/payments/",
        {"bill_ids": bill_ids, "gateway": "sandbox"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="late",
    )

    assert response.status_code == 409
    assert Payment.objects.count() == 1


def test_refunding_a_prepaid_month_in_full_voids_it(home, as_user):
    prepay(as_user(resident(home)), home, 2)
    payment = Payment.objects.get()
    notify(payment)
    admin = member(Role.CENTRE_ADMIN, centre=home.building.community.centre)
    last = Bill.objects.filter(is_prepaid=True).order_by("-period").first()

    response = as_user(admin).post(
        f"/api/v1/payments/{payment.pk}/refund/",
        {"amount": f"{last.amount:.2f}", "reason": "moving out"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="r",
    )

    assert response.status_code == 201
    last.refresh_from_db()
    assert (last.status, last.paid_amount) == ("void", 0)
    assert services.bill_generate_for_period(period=Period.parse(last.period)) == 1


def test_the_prepay_page_goes_straight_to_the_gateway(home, client):
    user = resident(home)
    client.force_login(user)

    response = client.post(
        "/bills/prepay/", {"household": home.pk, "months": 6, "idempotency_key": "form-1"}
    )
    again = client.post(
        "/bills/prepay/", {"household": home.pk, "months": 6, "idempotency_key": "form-1"}
    )

    payment = Payment.objects.get()
    assert response.status_code == 302
    assert response["Location"] == payment.pay_url
    assert again["Location"] == payment.pay_url
    assert payment.items.count() == 6


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_prepayments_at_once_never_pass_the_horizon():
    _, (household,) = estate(1)
    BillFactory(household=household, period=str(THIS_MONTH()))
    user = resident(household)

    def attempt(i):
        payment, _ = services.bill_prepay(
            user=user,
            household_id=household.pk,
            months=24,
            gateway="sandbox",
            idempotency_key=f"race-{i}",
            fingerprint=f"f{i}",
        )
        return payment

    outcomes = run_together(2, attempt)

    assert sorted(type(o).__name__ for o in outcomes) == ["Conflict", "Payment"], outcomes
    assert Bill.objects.filter(is_prepaid=True).count() == 24


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_prepayment_sent_five_times_at_once_is_made_once():
    _, (household,) = estate(1)
    BillFactory(household=household, period=str(THIS_MONTH()))
    user = resident(household)

    outcomes = run_together(
        5,
        lambda i: services.bill_prepay(
            user=user,
            household_id=household.pk,
            months=24,
            gateway="sandbox",
            idempotency_key="one",
            fingerprint="same",
        ),
    )

    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    assert {payment.pk for payment, _ in outcomes} == {Payment.objects.get().pk}
    assert [created for _, created in outcomes].count(True) == 1
    assert Bill.objects.filter(is_prepaid=True).count() == 24
    assert not isinstance(outcomes[0], Conflict)
