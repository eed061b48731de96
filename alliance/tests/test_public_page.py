"""The estate's public page and poster (alliance/public.py, alliance/public_views.py): its
figures equal sums made independently from the ledger's postings, it shows nobody, it is cached
and its queries do not grow with the months or the estate, and a bad token is 404."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone

from alliance import public
from alliance.models import Scorecard
from alliance.public_views import public_url
from billing import services as billing_services
from billing.models import Bill, Payout, Posting
from billing.public_fund import public_fund_spend_propose
from billing.tests.factories import BillFactory, estate, pay
from community.models import Role
from community.periods import Period
from community.tests.factories import member, resident
from repairs import selectors as repairs_selectors
from repairs import services as repairs_services
from repairs.models import Ticket
from repairs.tests.factories import TicketCategoryFactory

pytestmark = pytest.mark.django_db

THIS_MONTH = Period.current()
LAST_MONTH = THIS_MONTH.previous()
TWO_AGO = THIS_MONTH.plus(-2)


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


def _ledger_sum(community, *, kind, account, bill_period=None, payout_period=None):
    """Σ of the postings on one of the estate's accounts, by transaction kind and month,
    straight from the Posting rows (not through alliance.public)."""
    rows = Posting.objects.filter(
        account__community=community, account__kind=account, transaction__kind=kind
    )
    if bill_period is not None:
        rows = rows.filter(bill__period=str(bill_period))
    if payout_period is not None:
        rows = rows.filter(transaction__payout__period=str(payout_period))
    return sum((p.amount for p in rows), Decimal("0.00"))


@pytest.fixture
def busy():
    """Two months of an estate of three households (10% hold-back): two months ago both bills
    of the first two households paid, paid out, released at 0.80 and partly refunded; last month
    two of three paid and paid out; this month one paid."""
    community, homes = estate(3)
    users = [resident(home) for home in homes]
    admin = member(Role.CENTRE_ADMIN, centre=community.centre)
    bills = {
        period: [
            BillFactory(household=home, period=str(period), amount=Decimal("120.00") + n)
            for n, home in enumerate(homes)
        ]
        for period in (TWO_AGO, LAST_MONTH, THIS_MONTH)
    }
    payments = [pay(users[n], [bills[TWO_AGO][n]]) for n in range(3)]
    pay(users[0], [bills[LAST_MONTH][0]])
    pay(users[1], [bills[LAST_MONTH][1]])
    pay(users[2], [bills[THIS_MONTH][2]])
    billing_services.payout_run(community=community, period=TWO_AGO)
    billing_services.release_holdback(community=community, period=TWO_AGO, score=Decimal("0.8"))
    billing_services.payout_run(community=community, period=LAST_MONTH)
    billing_services.payment_refund(
        payment=payments[1],
        amount=Decimal("50.00"),
        reason="overcharged",
        by=admin,
        idempotency_key="r1",
        fingerprint="r1",
    )
    return {"community": community, "homes": homes, "users": users, "bills": bills}


def test_the_months_money_equals_the_ledgers_postings(busy):
    community = busy["community"]

    figures = public.compute_estate_figures(community=community, until=THIS_MONTH)

    months = {str(m.period): m for m in figures.months}
    assert list(months) == [str(THIS_MONTH.plus(-n)) for n in range(12)]
    for period in (TWO_AGO, LAST_MONTH, THIS_MONTH):
        month = months[str(period)]
        assert month.collected == -_ledger_sum(
            community, kind="payment", account="escrow", bill_period=period
        )
        assert month.refunded == sum(
            (
                _ledger_sum(community, kind="refund", account=account, bill_period=period)
                for account in ("escrow", "company_payable", "public_fund")
            ),
            Decimal("0.00"),
        )
        assert month.paid_to_company == -_ledger_sum(
            community, kind="payout", account="company_payable", payout_period=period
        )
        assert month.released == -_ledger_sum(
            community, kind="holdback_release", account="company_payable", payout_period=period
        )
        assert month.forfeited == -_ledger_sum(
            community, kind="holdback_release", account="public_fund", payout_period=period
        )
    # And the numbers themselves, worked by hand: 120 + 121 + 122 two months ago.
    two_ago = months[str(TWO_AGO)]
    assert (
        two_ago.collected,
        two_ago.paid_to_company,
        two_ago.held_back,
        two_ago.released,
        two_ago.forfeited,
        two_ago.refunded,
    ) == (
        Decimal("363.00"),
        Decimal("326.70"),
        Decimal("36.30"),
        Decimal("29.04"),
        Decimal("7.26"),
        Decimal("50.00"),
    )
    last = months[str(LAST_MONTH)]
    assert (last.collected, last.paid_to_company, last.held_back, last.released) == (
        Decimal("241.00"),
        Decimal("216.90"),
        Decimal("24.10"),
        Decimal("0.00"),
    )
    assert months[str(THIS_MONTH)].collected == Decimal("122.00")
    # Held back = released + forfeited once released, as the payout recorded it.
    assert (
        two_ago.held_back
        == Payout.objects.get(community=community, period=str(TWO_AGO), kind="regular").held_back
    )


def test_escrow_at_each_months_end_and_now_equal_the_escrow_postings(busy):
    community = busy["community"]
    figures = public.compute_estate_figures(community=community, until=THIS_MONTH)
    escrow = Posting.objects.filter(account__community=community, account__kind="escrow")
    total = -sum((p.amount for p in escrow), Decimal("0.00"))
    # Every posting of the test is made now, in this month: earlier months ended with nothing.
    assert figures.in_escrow_now == total
    assert [m.in_escrow for m in figures.months] == [total] + [Decimal("0.00")] * 11
    fund = Posting.objects.filter(account__community=community, account__kind="public_fund")
    assert figures.public_fund_now == -fund.aggregate(t=Sum("amount"))["t"]


def test_bills_and_tickets_of_the_month(busy):
    community = busy["community"]
    category = TicketCategoryFactory(kind="report", response_hours=1, resolve_hours=8)
    staff = member(Role.PROPERTY_STAFF, company=community.company)
    month_start, _ = repairs_selectors.period_bounds(THIS_MONTH)
    filed = max(timezone.now() - timedelta(hours=3), month_start)
    for n in range(3):
        ticket = repairs_services.ticket_create(
            filed_by=busy["users"][0],
            kind="report",
            category=category,
            title=f"路灯不亮 {n}",
            location="3幢东侧",
            community=community,
            at=filed,
        )
        if n == 0:
            for action in ("accept", "resolve"):
                repairs_services.ticket_transition(
                    ticket=ticket, actor=staff, action=action, at=filed + timedelta(minutes=10)
                )
    Ticket.objects.filter(community=community, status="submitted").update(sla_breached=True)

    figures = public.compute_estate_figures(community=community, until=THIS_MONTH)

    month = figures.months[0]
    assert (month.bills_due, month.bills_paid, month.collection_rate) == (3, 1, Decimal("0.3333"))
    assert (month.tickets_filed, month.tickets_handled, month.sla_missed) == (3, 1, 2)
    last = figures.months[1]
    assert (last.bills_due, last.bills_paid) == (3, 2)


def test_the_page_shows_the_figures_and_the_scorecard(busy, client):
    community = busy["community"]
    Scorecard.objects.create(
        community=community,
        period=str(TWO_AGO),
        attendance_rate=Decimal("0.9000"),
        resident_satisfaction=Decimal("0.7500"),
        score=Decimal("0.8000"),
        weights={"attendance_rate": "0.2000", "resident_satisfaction": "0.3000"},
        finalized_at=timezone.now(),
    )

    response = client.get(reverse("public-estate", args=[community.public_token]))

    assert response.status_code == 200
    page = response.content.decode()
    assert community.name in page
    for amount in ("¥363.00", "¥326.70", "¥36.30", "¥29.04", "¥7.26", "¥50.00", "¥241.00"):
        assert amount in page
    assert "80.00%" in page  # the score
    assert "40.00%" in page and "60.00%" in page  # the shares 0.2/0.5 and 0.3/0.5
    assert response.context["scorecard"]["score"] == Decimal("0.8000")


def test_the_page_shows_no_personal_data(busy, client):
    community = busy["community"]
    homes, users = busy["homes"], busy["users"]
    for n, (home, user) in enumerate(zip(homes, users, strict=True)):
        user.display_name = f"张{n}明华"
        user.phone = f"1391234567{n}"
        user.save(update_fields=["display_name", "phone"])
        home.unit = f"7{n}08"
        home.save(update_fields=["unit"])
    secrets = (
        [u.display_name for u in users]
        + [u.username for u in users]
        + [u.phone for u in users]
        + [h.unit for h in homes]
        + [h.building.name for h in homes]
    )

    for path in (
        reverse("public-estate", args=[community.public_token]),
        reverse("public-estate-poster", args=[community.public_token]),
    ):
        page = client.get(path).content.decode()
        assert [s for s in secrets if s in page] == []


def test_the_page_is_public_and_a_bad_token_is_404(busy, client):
    community = busy["community"]
    assert client.get(reverse("public-estate", args=[community.public_token])).status_code == 200
    for token in ("nope", str(community.pk), community.public_token + "x", "%00"):
        assert client.get(reverse("public-estate", args=[token])).status_code == 404
        assert client.get(reverse("public-estate-poster", args=[token])).status_code == 404
    assert client.get(f"/estates/{community.pk}/").status_code == 404


def test_every_estate_has_its_own_unguessable_token():
    first, _ = estate(1)
    second, _ = estate(1)
    assert len(first.public_token) == 16
    assert first.public_token != second.public_token


def test_the_figures_are_cached_for_five_minutes(busy, client, django_assert_num_queries):
    community = busy["community"]
    path = reverse("public-estate", args=[community.public_token])
    client.get(path)
    # Cached: the estate's lookup by its token and nothing else (sessions are not touched).
    with django_assert_num_queries(1):
        assert client.get(path).status_code == 200
    assert public.CACHE_SECONDS == 300


def test_a_cold_page_makes_a_bounded_number_of_queries(client, django_assert_max_num_queries):
    """The same number of queries for an estate with one quiet month as for a busy one with
    bills, payments, a payout and tickets in many months."""
    quiet, _ = estate(1)
    with django_assert_max_num_queries(14) as quiet_queries:
        client.get(reverse("public-estate", args=[quiet.public_token]))
    community, homes = estate(4)
    users = [resident(home) for home in homes[:2]]
    for n in range(1, 10):
        period = THIS_MONTH.plus(-n)
        bills = [BillFactory(household=home, period=str(period)) for home in homes]
        for user, bill in zip(users, bills, strict=False):
            pay(user, [bill])
        billing_services.payout_run(community=community, period=period)
    assert Bill.objects.filter(community=community).count() == 36
    with django_assert_max_num_queries(len(quiet_queries)):
        response = client.get(reverse("public-estate", args=[community.public_token]))
    assert response.status_code == 200


def test_the_poster_carries_the_qr_code_of_the_absolute_address(busy, client, settings):
    settings.SITE_URL = "https://linli.example.cn"
    community = busy["community"]

    response = client.get(reverse("public-estate-poster", args=[community.public_token]))

    assert response.status_code == 200
    page = response.content.decode()
    url = f"https://linli.example.cn/estates/{community.public_token}/"
    assert public_url(community) == url
    assert url in page
    assert "<svg" in page and "<path" in page
    assert "css/public-estate" in page
    assert "<style" not in page and "<script" not in page


def test_every_spending_of_the_public_fund_shows_on_the_page(busy, client):
    community = busy["community"]
    committee = member(Role.COMMITTEE_MEMBER, community=community)
    now = timezone.now()
    public_fund_spend_propose(
        creator=committee,
        community=community,
        amount=Decimal("5.00"),
        payee_name="绿化公司",
        payee_account="工商银行 6222 0000",
        purpose="补种草坪",
        opens_at=now,
        closes_at=now + timedelta(days=7),
    )

    page = client.get(reverse("public-estate", args=[community.public_token])).content.decode()

    assert "补种草坪" in page and "绿化公司" in page and "¥5.00" in page
    assert "6222" not in page  # the payee's account stays with the centre


def test_the_estates_dashboard_links_to_its_public_page_and_poster(busy, client):
    community = busy["community"]
    client.force_login(member(Role.COMMITTEE_MEMBER, community=community))

    page = client.get(reverse("dashboard-community", args=[community.pk])).content.decode()

    assert f'href="/estates/{community.public_token}/"' in page
    assert f'href="/estates/{community.public_token}/poster/"' in page


def test_the_public_page_shows_how_far_to_trust_the_score_and_the_appeals(client, monkeypatch):
    """Coverage and the flag count of the newest scorecard, and the company's appeal with the
    mediator's decision, as the scorecard page shows them; never a flagged building."""
    from alliance import appeals
    from alliance.tests.factories import AUGUST
    from alliance.tests.test_appeals import GROUNDS, Appealable

    world = Appealable()  # August 2019: the page shows the year up to the month after it
    monkeypatch.setattr(Period, "current", classmethod(lambda cls: AUGUST.next()))
    appeal = appeals.appeal_file(user=world.manager, scorecard_id=world.card.pk, grounds=GROUNDS)
    appeals.appeal_decide(
        user=world.mediator,
        scorecard_id=world.card.pk,
        appeal_id=appeal.pk,
        upheld=False,
        decision="The check stands.",
    )
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"

    response = client.get(reverse("public-estate", args=[world.community.public_token]))

    assert response.status_code == 200
    page = response.content.decode()
    coverage = response.context["scorecard"]["trust"].coverage
    assert (coverage.rated, coverage.paid) == (2, 2)
    assert 'data-flag-count="0"' in page
    assert GROUNDS in page
    assert "The check stands." in page
    assert f'data-appeal="{appeal.pk}"' in page
