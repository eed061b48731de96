"""The resident's payment history (/payments/) and paying every open bill of a household in one
tap (/bills/pay-all/, billing/history_views.py).

The estate: a household of 100 m² at 1.20 yuan/m²/month (120.00 a month) and its neighbour."""

from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import translation

from billing import services
from billing.models import Bill, Payment, PaymentItem
from billing.tests.factories import BillFactory, estate, notify, pay
from community.models import Role
from community.tests.factories import member, resident

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    community, (home, neighbour_home) = estate(2, name="翰林苑")
    owner = resident(home, user__username="owner")
    neighbour = resident(neighbour_home, user__username="neighbour")
    return {
        "community": community,
        "home": home,
        "owner": owner,
        "neighbour_home": neighbour_home,
        "neighbour": neighbour,
    }


def chinese(msgid: str) -> str:
    """What a message reads on these pages (zh-hans, the default language)."""
    with translation.override("zh-hans"):
        return translation.gettext(msgid)


def start(user, bills, key):
    ids = [b.pk for b in bills]
    payment, _created = services.payment_create(
        payer=user,
        bill_ids=ids,
        gateway="sandbox",
        idempotency_key=key,
        fingerprint=services.request_fingerprint({"bill_ids": ids}),
    )
    return payment


def form_of(page: str, marker: str) -> dict:
    """The hidden fields of the form that carries `marker` (data-pay-all="<household>")."""
    form = page.split(marker, 1)[1].split("</form>", 1)[0]
    return {
        "household": form.split('name="household" value="', 1)[1].split('"', 1)[0],
        "idempotency_key": form.split('name="idempotency_key" value="', 1)[1].split('"', 1)[0],
    }


# --- payment history ---------------------------------------------------------------------------


def test_history_lists_own_payments_newest_first_with_bills_status_and_links(client, world):
    home = world["home"]
    august, september, october = (
        BillFactory(household=home, period=p) for p in ("2019-08", "2019-09", "2019-10")
    )
    paid = pay(world["owner"], [august, september])
    pending = start(world["owner"], [october], "pending")
    theirs = pay(world["neighbour"], [BillFactory(household=world["neighbour_home"])])
    client.force_login(world["owner"])

    page = client.get(reverse("payment-history")).content.decode()

    detail, pdf = reverse("payment-detail-page", args=[paid.pk]), "receipt.pdf"
    assert page.index(reverse("payment-detail-page", args=[pending.pk])) < page.index(detail)
    assert f'href="{reverse("payment-receipt-pdf", args=[paid.pk])}"' in page
    assert reverse("payment-receipt-pdf", args=[pending.pk]) not in page
    assert page.count(pdf) == 1
    assert "¥240.00" in page and "¥120.00" in page
    assert f"{home} · 2019-08" in page and f"{home} · 2019-09" in page
    assert f"{home} · 2019-10" in page
    assert 'class="badge pay-status-succeeded"' in page
    assert 'class="badge pay-status-pending"' in page
    assert reverse("payment-detail-page", args=[theirs.pk]) not in page


def test_history_is_paginated_by_twenty(client, world):
    bills = [
        BillFactory(household=world["home"], period=f"20{20 + n // 12}-{n % 12 + 1:02d}")
        for n in range(23)
    ]
    payments = [start(world["owner"], [bill], f"k{n}") for n, bill in enumerate(bills)]
    client.force_login(world["owner"])

    first = client.get(reverse("payment-history")).content.decode()
    second = client.get(reverse("payment-history"), {"page": 2}).content.decode()

    def shown(page):
        return [p.pk for p in payments if f"/payments/{p.pk}/" in page]

    assert shown(first) == [p.pk for p in payments[3:]]
    assert shown(second) == [p.pk for p in payments[:3]]
    assert "?page=2" in first


def test_history_reads_in_a_bounded_number_of_queries(client, world, django_assert_max_num_queries):
    for n in range(20):
        bills = [
            BillFactory(household=world["home"], period=f"20{20 + n}-{month:02d}")
            for month in (1, 2)
        ]
        start(world["owner"], bills, f"k{n}")
    client.force_login(world["owner"])

    # Five today: session, user, the count, the page of payments, their items with bills and
    # homes (one query for all twenty); one more for whatever the header may come to need.
    with django_assert_max_num_queries(6):
        response = client.get(reverse("payment-history"))
    assert response.content.decode().count('class="badge pay-status-pending"') == 20


def test_history_is_empty_for_someone_who_never_paid_and_for_a_centre_admin(client, world):
    paid = pay(world["owner"], [BillFactory(household=world["home"])])
    admin = member(Role.CENTRE_ADMIN, centre=world["community"].centre)

    for user in (world["neighbour"], admin):
        client.force_login(user)
        page = client.get(reverse("payment-history")).content.decode()
        assert reverse("payment-detail-page", args=[paid.pk]) not in page
        assert "data-payment-history" in page


def test_the_bills_page_and_home_link_to_the_history(client, world):
    client.force_login(world["owner"])

    history = f'href="{reverse("payment-history")}"'
    assert history in client.get(reverse("bill-list")).content.decode()
    assert history in client.get(reverse("resident-home")).content.decode()


# --- pay all in one tap ------------------------------------------------------------------------


@pytest.fixture
def open_bills(world):
    """August unpaid, September partly paid (20.00 of 120.00), October in a payment in progress,
    July paid."""
    home = world["home"]
    july = BillFactory(household=home, period="2019-07")
    pay(world["owner"], [july])
    august = BillFactory(household=home, period="2019-08")
    september = BillFactory(
        household=home,
        period="2019-09",
        paid_amount=Decimal("20.00"),
        status=Bill.Status.PARTIALLY_PAID,
    )
    october = BillFactory(household=home, period="2019-10")
    in_progress = start(world["owner"], [october], "october")
    return {"august": august, "september": september, "october": october, "pending": in_progress}


def test_pay_all_pays_the_unpaid_and_partly_paid_bills_not_already_in_a_payment(
    client, world, open_bills
):
    client.force_login(world["owner"])
    page = client.get(reverse("bill-list")).content.decode()
    assert "¥220.00" in page  # 120.00 + the 100.00 September still owes
    fields = form_of(page, f'data-pay-all="{world["home"].pk}"')

    response = client.post(reverse("bill-pay-all"), fields)

    payment = Payment.objects.exclude(pk=open_bills["pending"].pk).get(
        status=Payment.Status.PENDING
    )
    assert response.status_code == 302
    assert response["Location"] == payment.pay_url
    assert payment.payer == world["owner"]
    assert payment.amount == Decimal("220.00")
    assert sorted(PaymentItem.objects.filter(payment=payment).values_list("bill_id", "amount")) == [
        (open_bills["august"].pk, Decimal("120.00")),
        (open_bills["september"].pk, Decimal("100.00")),
    ]


def test_a_double_tap_makes_one_payment(client, world, open_bills):
    client.force_login(world["owner"])
    fields = form_of(
        client.get(reverse("bill-list")).content.decode(), f'data-pay-all="{world["home"].pk}"'
    )

    first = client.post(reverse("bill-pay-all"), fields)
    second = client.post(reverse("bill-pay-all"), fields)

    assert first["Location"] == second["Location"]
    assert Payment.objects.count() == 3  # July's, October's and this one
    assert PaymentItem.objects.filter(is_open=True).count() == 3


def test_when_nothing_is_left_the_button_is_gone_and_a_stale_form_changes_nothing(
    client, world, open_bills
):
    client.force_login(world["owner"])
    stale = form_of(
        client.get(reverse("bill-list")).content.decode(), f'data-pay-all="{world["home"].pk}"'
    )
    start(world["owner"], [open_bills["august"], open_bills["september"]], "elsewhere")
    before = sorted(Payment.objects.values_list("pk", "status", "amount"))

    page = client.get(reverse("bill-list")).content.decode()
    response = client.post(reverse("bill-pay-all"), stale, follow=True)

    assert "data-pay-all" not in page
    assert reverse("bill-pay-all") not in page
    assert response.redirect_chain == [(reverse("bill-list"), 302)]
    messages = [str(m) for m in response.context["messages"]]
    assert messages == [
        chinese(
            "Nothing is left to pay for this household: every bill is paid or already in a "
            "payment in progress."
        )
    ]
    assert sorted(Payment.objects.values_list("pk", "status", "amount")) == before


def test_a_form_replayed_after_its_payment_succeeded_shows_that_payment(client, world):
    august = BillFactory(household=world["home"], period="2019-08")
    client.force_login(world["owner"])
    fields = form_of(
        client.get(reverse("bill-list")).content.decode(), f'data-pay-all="{world["home"].pk}"'
    )
    client.post(reverse("bill-pay-all"), fields)
    payment = notify(Payment.objects.get())

    response = client.post(reverse("bill-pay-all"), fields)

    assert response["Location"] == reverse("payment-detail-page", args=[payment.pk])
    assert Payment.objects.count() == 1
    assert Bill.objects.get(pk=august.pk).status == Bill.Status.PAID


def test_pay_all_for_someone_elses_household_is_404_and_changes_nothing(client, world, open_bills):
    BillFactory(household=world["neighbour_home"], period="2019-08")
    before = Payment.objects.count()

    client.force_login(world["owner"])
    theirs = client.post(
        reverse("bill-pay-all"), {"household": world["neighbour_home"].pk, "idempotency_key": "x"}
    )
    client.force_login(member(Role.CENTRE_ADMIN, centre=world["community"].centre))
    admin = client.post(
        reverse("bill-pay-all"), {"household": world["home"].pk, "idempotency_key": "y"}
    )

    assert (theirs.status_code, admin.status_code) == (404, 404)
    assert Payment.objects.count() == before


def test_pay_all_refuses_get_and_a_missing_household(client, world, open_bills):
    client.force_login(world["owner"])
    before = Payment.objects.count()

    assert client.get(reverse("bill-pay-all")).status_code == 405
    response = client.post(reverse("bill-pay-all"), {"idempotency_key": "z"}, follow=True)

    assert [str(m) for m in response.context["messages"]] == [chinese("Choose a household.")]
    assert Payment.objects.count() == before


def test_the_pay_all_button_is_one_full_width_button_with_the_total(client, world, open_bills):
    client.force_login(world["owner"])
    page = client.get(reverse("bill-list")).content.decode()
    form = page.split(f'data-pay-all="{world["home"].pk}"', 1)[1].split("</form>", 1)[0]

    # .button is 44 px high at least, .pay-all .button 56 px (static/css/billing-history.css).
    assert form.count("<button") == 1
    assert '<button type="submit" class="button primary block">' in form
    assert chinese("Pay all in one tap: %(amount)s") % {"amount": "¥220.00"} in form
    assert "css/billing-history" in page
