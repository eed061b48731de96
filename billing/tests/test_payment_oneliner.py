"""The payment page's one line per bill: what the resident's money did ("¥120.00: ¥108.00 paid
to the company, ¥12.00 held back, ¥10.44 released at score 0.87")."""

from decimal import Decimal

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import translation

from billing import selectors, services
from billing.tests.factories import BillFactory, estate, pay
from community.models import Role
from community.periods import Period
from community.tests.factories import member, resident

pytestmark = pytest.mark.django_db

AUGUST = Period(2019, 8)


@pytest.fixture
def paid():
    """August (120.00) and September (121.20) paid in one payment, under a 10% hold-back."""
    community, (home, _) = estate(2)
    user = resident(home)
    bills = [
        BillFactory(household=home, period="2019-08", amount=Decimal("120.00")),
        BillFactory(household=home, period="2019-09", amount=Decimal("121.20")),
    ]
    payment = pay(user, bills)
    admin = member(Role.CENTRE_ADMIN, centre=community.centre)
    return {"community": community, "payment": payment, "user": user, "admin": admin}


def lines(payment):
    with translation.override("en"):
        return {line.period: line.text() for line in selectors.payment_one_lines(payment=payment)}


def figures(payment, period):
    line = next(x for x in selectors.payment_one_lines(payment=payment) if x.period == period)
    return (line.paid_to_company, line.held_back, line.released, line.forfeited, line.refunded)


def refund(paid, amount, key="r1"):
    body = {"amount": amount, "reason": "moving"}
    return services.payment_refund(
        payment=paid["payment"],
        amount=Decimal(amount),
        reason="moving",
        by=paid["admin"],
        idempotency_key=key,
        fingerprint=services.request_fingerprint(body),
    )


def test_before_the_payout_the_money_is_held_until_the_company_is_paid(paid):
    assert lines(paid["payment"]) == {
        "2019-08": "¥120.00: held in escrow until the company is paid for 2019-08",
        "2019-09": "¥121.20: held in escrow until the company is paid for 2019-09",
    }


def test_after_the_payout_part_is_paid_and_part_held_back(paid):
    services.payout_run(community=paid["community"], period=AUGUST)
    assert figures(paid["payment"], "2019-08") == (
        Decimal("108.00"),
        Decimal("12.00"),
        None,
        Decimal("0.00"),
        Decimal("0.00"),
    )
    assert lines(paid["payment"])["2019-08"] == (
        "¥120.00: ¥108.00 paid to the company, ¥12.00 held back until the scorecard for 2019-08 "
        "is final"
    )
    assert lines(paid["payment"])["2019-09"].startswith("¥121.20: held in escrow")


def test_released_at_a_score(paid):
    services.payout_run(community=paid["community"], period=AUGUST)
    services.release_holdback(community=paid["community"], period=AUGUST, score=Decimal("0.8700"))
    # 12.00 × 0.87 = 10.44 to the company, 1.56 to the public fund.
    assert figures(paid["payment"], "2019-08") == (
        Decimal("108.00"),
        Decimal("12.00"),
        Decimal("10.44"),
        Decimal("1.56"),
        Decimal("0.00"),
    )
    assert lines(paid["payment"])["2019-08"] == (
        "¥120.00: ¥108.00 paid to the company, ¥12.00 held back, ¥10.44 released at score 0.87, "
        "¥1.56 to the estate's public fund"
    )


def test_released_in_full_at_score_one(paid):
    services.payout_run(community=paid["community"], period=AUGUST)
    services.release_holdback(community=paid["community"], period=AUGUST, score=Decimal("1"))
    assert lines(paid["payment"])["2019-08"] == (
        "¥120.00: ¥108.00 paid to the company, ¥12.00 held back, ¥12.00 released at score 1.00"
    )


def test_a_part_refunded_before_and_after_the_payout(paid):
    # Before any payout a refund comes from escrow, latest month first: 21.20 of September.
    refund(paid, "21.20")
    assert lines(paid["payment"])["2019-09"] == (
        "¥121.20: ¥100.00 held in escrow until the company is paid for 2019-09; "
        "¥21.20 refunded to you"
    )
    # August is paid out, then 110.00 more refunded: September's 100.00, then 10.00 of August
    # (9.00 from the company, 1.00 from the hold-back), then the release at 0.85.
    services.payout_run(community=paid["community"], period=AUGUST)
    refund(paid, "110.00", key="r2")
    services.release_holdback(community=paid["community"], period=AUGUST, score=Decimal("0.85"))
    assert figures(paid["payment"], "2019-08") == (
        Decimal("108.00"),
        Decimal("11.00"),
        Decimal("9.35"),
        Decimal("1.65"),
        Decimal("10.00"),
    )
    assert lines(paid["payment"]) == {
        "2019-08": "¥120.00: ¥108.00 paid to the company, ¥11.00 held back, ¥9.35 released at "
        "score 0.85, ¥1.65 to the estate's public fund; ¥10.00 refunded to you",
        "2019-09": "¥121.20: refunded to you",
    }


def test_a_pending_payment_has_no_line():
    _, (home,) = estate(1)
    user = resident(home)
    bill = BillFactory(household=home, period="2019-08")
    payment, _ = services.payment_create(
        payer=user,
        bill_ids=[bill.pk],
        gateway="sandbox",
        idempotency_key="p1",
        fingerprint=services.request_fingerprint({"bill_ids": [bill.pk], "gateway": "sandbox"}),
    )
    assert selectors.payment_one_lines(payment=payment) == []


def test_the_payment_page_shows_the_line_in_the_readers_language(paid, client):
    services.payout_run(community=paid["community"], period=AUGUST)
    services.release_holdback(community=paid["community"], period=AUGUST, score=Decimal("0.87"))
    client.force_login(paid["user"])
    url = reverse("payment-detail-page", args=[paid["payment"].pk])
    page = client.get(url).content.decode()
    with translation.override(settings.LANGUAGE_CODE):
        expected = [line.text() for line in selectors.payment_one_lines(payment=paid["payment"])]
    assert "data-money-did" in page
    for text in expected:
        assert text.replace("'", "&#x27;") in page
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    page = client.get(url).content.decode()
    assert "¥10.44 released at score 0.87" in page
