"""The key figures of an estate (alliance.kpis) and GET /api/v1/communities/{id}/kpis/."""

from datetime import datetime

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from alliance import kpis
from alliance.tests.factories import AUGUST, Estate, august
from billing import selectors as billing_selectors
from billing import services as billing_services
from billing.tests.factories import BillFactory
from community.demo import default_demo_period
from community.models import Community, Household, User
from community.tests.factories import HouseholdFactory
from repairs import selectors as repairs_selectors
from repairs import services as repairs_services
from repairs.models import Ticket
from repairs.tests.factories import TicketCategoryFactory

pytestmark = pytest.mark.django_db

SEPTEMBER = AUGUST.next()


def url(community_id, period=None):
    path = reverse("api-community-kpis", args=[community_id])
    return path if period is None else f"{path}?period={period}"


def worked_example() -> Estate:
    """Four households: two paid August, one has not, one's bill was waived; four reports filed
    in August, three handled and one open; two of the handled ones rated 5 and 3 stars."""
    estate = Estate(households=3)
    waived_home = HouseholdFactory(building=estate.households[0].building)
    billing_services.bill_waive(bill=BillFactory(household=waived_home, period=str(AUGUST)))
    estate.tickets(handled=3, open_=1)
    handled = Ticket.objects.filter(community=estate.community, status="resolved").order_by("pk")
    for ticket, stars in zip(handled[:2], (5, 3), strict=True):
        repairs_services.ticket_rate(
            ticket=ticket, user=estate.residents[0], stars=stars, at=august(25)
        )
    return estate


def test_the_worked_example():
    estate = worked_example()

    figures = kpis.community_kpis(community=estate.community, period=AUGUST)

    assert figures.as_dict() == {
        "households": 4,
        "bills_due": 3,  # the waived bill is owed by nobody
        "bills_paid": 2,
        "collection_rate": "0.6667",
        "tickets_total": 4,
        "tickets_handled": 3,
        "handling_rate": "0.7500",
        "satisfaction_rate": "0.5000",  # one of two ratings is 4–5 stars
    }


def test_a_month_with_nothing_due_and_no_tickets_has_defined_rates():
    estate = Estate(households=2)

    figures = kpis.community_kpis(community=estate.community, period=SEPTEMBER)

    assert figures.as_dict() == {
        "households": 2,
        "bills_due": 0,
        "bills_paid": 0,
        "collection_rate": "0.0000",
        "tickets_total": 0,
        "tickets_handled": 0,
        "handling_rate": "0.0000",
        "satisfaction_rate": "0.0000",
    }


def test_the_grid_agrees_with_the_one_estate_figures_and_the_escrow_summary():
    estate = worked_example()
    estate.pay_out()
    other = Estate(households=2)
    ids = [estate.community.pk, other.community.pk, other.other_community.pk]

    grid = kpis.kpi_grid(community_ids=ids, until=SEPTEMBER, months=3)
    escrow = kpis.escrow_grid(community_ids=ids)

    for community in Community.objects.filter(pk__in=ids):
        for period in (AUGUST.previous(), AUGUST, SEPTEMBER):
            one = kpis.community_kpis(community=community, period=period)
            assert grid[(community.pk, period)] == one
            assert grid[(community.pk, period)].tickets == repairs_selectors.handling_figures(
                community=community, period=period
            )
        assert escrow[community.pk] == billing_selectors.escrow_summary(community=community)
    assert escrow[estate.community.pk]["released"] > 0  # the payout is in it


# --- the endpoint -----------------------------------------------------------------------------


def test_the_committee_reads_its_estate(as_user):
    estate = worked_example()

    response = as_user(estate.committee).get(url(estate.community.pk, AUGUST))

    assert response.status_code == 200
    assert response.json()["collection_rate"] == "0.6667"
    assert response.json()["handling_rate"] == "0.7500"


@pytest.mark.parametrize("who", ["staff", "centre_admin", "resident"])
def test_staff_admins_and_the_estates_residents_read_it(as_user, who):
    estate = Estate(households=2)
    user = estate.residents[0] if who == "resident" else getattr(estate, who)

    response = as_user(user).get(url(estate.community.pk, AUGUST))

    assert response.status_code == 200
    assert response.json()["bills_paid"] == 2


def test_a_resident_of_another_community_gets_404(as_user):
    estate = Estate(households=2)

    response = as_user(estate.outsider).get(url(estate.community.pk, AUGUST))

    assert response.status_code == 404


def test_an_unknown_or_huge_community_is_404(as_user):
    estate = Estate(households=1)

    assert as_user(estate.centre_admin).get(url(999_999, AUGUST)).status_code == 404
    assert as_user(estate.centre_admin).get(url(2**64, AUGUST)).status_code == 404


def test_an_inspector_sees_the_estate_but_not_its_figures(as_user):
    estate = Estate(households=1)

    response = as_user(estate.inspector).get(url(estate.community.pk, AUGUST))

    assert response.status_code == 403


@pytest.mark.parametrize("period", ["2019-13", "2019-8", "august", ""])
def test_a_bad_period_is_400(as_user, period):
    estate = Estate(households=1)

    response = as_user(estate.committee).get(url(estate.community.pk) + f"?period={period}")

    assert response.status_code == (200 if period == "" else 400)


def test_anonymous_callers_are_refused(api_client):
    estate = Estate(households=1)

    response = api_client.get(url(estate.community.pk, AUGUST))

    assert response.status_code in (401, 403)


def test_the_demo_reproduces_the_article(as_user):
    call_command("seed_demo", stdout=None)
    community = Community.objects.get(name="翰林苑")
    committee = User.objects.get(username="committee")

    response = as_user(committee).get(url(community.pk, default_demo_period()))

    assert response.status_code == 200
    assert response.json() == {
        "households": 56,
        "bills_due": 56,
        "bills_paid": 46,
        "collection_rate": "0.8214",
        "tickets_total": 28,
        "tickets_handled": 28,
        "handling_rate": "1.0000",
        "satisfaction_rate": "1.0000",
    }
    assert Household.objects.filter(building__community=community).count() == 56


def test_the_grid_puts_a_ticket_in_its_local_month():
    """Filed at 00:30 on 1 September in the project's time zone (16:30 UTC on 31 August)."""
    estate = Estate(households=1)
    category = TicketCategoryFactory(kind="report", response_hours=2, resolve_hours=24)
    repairs_services.ticket_create(
        filed_by=estate.residents[0],
        kind="report",
        category=category,
        title="井盖松动",
        location="北门",
        community=estate.community,
        at=timezone.make_aware(datetime(2019, 9, 1, 0, 30)),
    )

    grid = kpis.kpi_grid(community_ids=[estate.community.pk], until=SEPTEMBER, months=2)

    assert grid[(estate.community.pk, AUGUST)].tickets_total == 0
    assert grid[(estate.community.pk, SEPTEMBER)].tickets_total == 1
    assert kpis.community_kpis(community=estate.community, period=SEPTEMBER).tickets_total == 1
