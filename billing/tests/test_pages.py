"""The resident's pages: pick bills, pay on the sandbox page, see them paid, the receipt and where
the money is; the admin's payout and refund forms."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from billing.models import Bill, Payment, Payout, Refund
from billing.tests.factories import BillFactory, estate, pay
from community.models import Role
from community.periods import Period
from community.permissions import CENTRE_ADMIN_GROUP
from community.tests.factories import member, resident

pytestmark = pytest.mark.django_db


@pytest.fixture
def home_with_bills():
    _, (home, neighbour) = estate(2)
    user = resident(home)
    bills = [BillFactory(household=home, period=p) for p in ("2019-08", "2019-09", "2019-10")]
    BillFactory(household=neighbour, period="2019-08")
    return user, bills, neighbour


def test_resident_pays_two_bills_through_the_sandbox_page(
    client, home_with_bills, django_capture_on_commit_callbacks
):
    user, bills, _ = home_with_bills
    client.force_login(user)
    page = client.get(reverse("bill-list")).content.decode()
    assert all(f'value="{b.pk}"' in page for b in bills)
    key = page.split('name="idempotency_key" value="')[1].split('"')[0]

    to_pay = bills[:2]
    response = client.post(
        reverse("bill-pay"), {"bill": [b.pk for b in to_pay], "idempotency_key": key}
    )
    assert response.status_code == 302
    pay_page = response["Location"].split("8000", 1)[-1]
    assert client.get(pay_page).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        confirmed = client.post(pay_page, {"action": "confirm"}, follow=True)

    payment = Payment.objects.get()
    assert payment.status == "succeeded"
    assert confirmed.redirect_chain[-1][0] == reverse("payment-detail-page", args=[payment.pk])
    assert [
        b.status for b in Bill.objects.filter(pk__in=[b.pk for b in bills]).order_by("period")
    ] == ["paid", "paid", "unpaid"]
    receipt = client.get(reverse("payment-receipt", args=[payment.pk])).content.decode()
    assert payment.receipt_number in receipt
    assert f"¥{payment.amount}" in receipt
    money = client.get(reverse("money-whereabouts")).content.decode()
    assert f"¥{payment.amount}" in money


def test_submitting_the_same_form_twice_makes_one_payment(client, home_with_bills):
    user, bills, _ = home_with_bills
    client.force_login(user)
    form = {"bill": [bills[0].pk], "idempotency_key": "form-1"}
    first = client.post(reverse("bill-pay"), form)
    second = client.post(reverse("bill-pay"), form)
    assert first["Location"] == second["Location"]
    assert Payment.objects.count() == 1


def test_paying_nothing_or_a_neighbours_bill(client, home_with_bills):
    user, _, neighbour = home_with_bills
    client.force_login(user)
    assert client.post(reverse("bill-pay"), {}).status_code == 302
    theirs = Bill.objects.get(household=neighbour)
    assert client.post(reverse("bill-pay"), {"bill": [theirs.pk]}).status_code == 404
    assert Payment.objects.count() == 0


def test_someone_elses_payment_pages_are_404(client, home_with_bills):
    user, bills, neighbour = home_with_bills
    payment = pay(user, bills[:1])
    client.force_login(resident(neighbour))
    for name in ("payment-detail-page", "payment-receipt"):
        assert client.get(reverse(name, args=[payment.pk])).status_code == 404


def test_prepay_page_creates_bills(client):
    _, (home,) = estate(1)
    client.force_login(resident(home))
    response = client.post(
        reverse("bill-prepay"), {"household": home.pk, "months": 24}, follow=True
    )
    assert response.status_code == 200
    assert Bill.objects.filter(household=home, is_prepaid=True).count() == 24


@pytest.fixture
def centre_admin(client):
    community, (home,) = estate(1)
    admin = member(Role.CENTRE_ADMIN, centre=community.centre)
    admin.is_staff = True
    admin.save()
    admin.groups.add(Group.objects.get(name=CENTRE_ADMIN_GROUP))
    client.force_login(admin)
    payment = pay(resident(home), [BillFactory(household=home, amount=Decimal("100.00"))])
    return client, community, payment


def test_centre_admin_runs_the_payout_from_admin(centre_admin):
    client, community, _ = centre_admin
    url = reverse("admin:billing_payout_run")
    assert client.get(url).status_code == 200
    for _ in range(2):
        response = client.post(url, {"community": community.pk, "period": "2019-08"})
        assert response.status_code == 302
    payout = Payout.objects.get()
    assert (payout.to_company, payout.held_back) == (Decimal("90.00"), Decimal("10.00"))
    changelist = client.get(reverse("admin:billing_payout_changelist")).content.decode()
    assert "90.00" in changelist


def test_centre_admin_refunds_from_admin(centre_admin):
    client, _, payment = centre_admin
    url = reverse("admin:billing_payment_refund", args=[payment.pk])
    page = client.get(url).content.decode()
    key = page.split('name="idempotency_key" value="')[1].split('"')[0]
    too_much = client.post(url, {"amount": "100.01", "reason": "x", "idempotency_key": key})
    assert too_much.status_code == 200
    assert Refund.objects.count() == 0
    done = client.post(url, {"amount": "30.00", "reason": "退租", "idempotency_key": key})
    assert done.status_code == 302
    assert Refund.objects.get().amount == Decimal("30.00")


def test_admin_money_rows_are_read_only(centre_admin):
    client, _, payment = centre_admin
    response = client.post(
        reverse("admin:billing_payment_change", args=[payment.pk]), {"amount": "1.00"}
    )
    assert response.status_code == 403
    payment.refresh_from_db()
    assert payment.amount == Decimal("100.00")


def test_payout_needs_a_finished_month(centre_admin):
    client, community, _ = centre_admin
    response = client.post(
        reverse("admin:billing_payout_run"),
        {"community": community.pk, "period": str(Period.current())},
    )
    assert response.status_code == 200
    assert Payout.objects.count() == 0
