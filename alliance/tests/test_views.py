"""The browser pages: residents rate from the phone, staff read the ratings live, inspectors
record spot checks, and everyone in the estate reads its scorecard and trend."""

import re

import pytest
from django.urls import reverse

from alliance import selectors, services
from alliance.models import Inspection, ServiceRating
from alliance.tests.factories import AUGUST, FIVES, Estate
from community.periods import Period
from community.tests.factories import CommunityFactory

pytestmark = pytest.mark.django_db


def html(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def test_pages_need_a_login(client):
    for url in [
        reverse("alliance-rate"),
        reverse("alliance-rate-form", args=[1, "2019-08"]),
        reverse("alliance-ratings"),
        reverse("alliance-inspections"),
        reverse("alliance-scorecards"),
        reverse("alliance-scorecard", args=[1]),
    ]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_a_resident_rates_a_paid_month_from_the_phone(client):
    estate = Estate()
    client.force_login(estate.residents[0])
    url = reverse("alliance-rate-form", args=[estate.households[0].pk, "2019-08"])
    form = html(client.get(url))
    assert form.count('type="radio"') == 25  # five dimensions × five stars
    response = client.post(
        url, {"cleaning": 5, "greening": 4, "security": 5, "reporting": 5, "repair": 3}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("alliance-rate")
    rating = ServiceRating.objects.get()
    assert (rating.greening, rating.repair, rating.comment) == (4, 3, "")
    # The form for the same month now says it is done.
    assert "already rated" in html(client.get(url))


def test_an_unpaid_household_sees_why_instead_of_the_form(client):
    estate = Estate()
    client.force_login(estate.residents[2])
    url = reverse("alliance-rate-form", args=[estate.households[2].pk, "2019-08"])
    page = html(client.get(url))
    assert 'type="radio"' not in page
    assert reverse("bill-list") in page
    response = client.post(url, dict(FIVES))
    assert response.status_code == 302
    assert not ServiceRating.objects.exists()


def test_another_households_form_is_404(client):
    estate = Estate()
    client.force_login(estate.outsider)
    url = reverse("alliance-rate-form", args=[estate.households[0].pk, "2019-08"])
    assert client.get(url).status_code == 404
    assert client.post(url, dict(FIVES)).status_code == 404
    bad = reverse("alliance-rate-form", args=[estate.households[0].pk, "2019-13"])
    client.force_login(estate.residents[0])
    assert client.get(bad).status_code == 404
    assert not ServiceRating.objects.exists()


def test_the_rating_list_shows_this_and_last_month(client):
    estate = Estate()
    client.force_login(estate.residents[0])
    page = html(client.get(reverse("alliance-rate")))
    current = Period.current()
    assert str(current) in page and str(current.previous()) in page


def test_staff_read_the_ratings_with_comments_live(client, django_assert_max_num_queries):
    estate = Estate()
    estate.rate(0, comment="保洁很用心")
    estate.rate(1, stars={**FIVES, "greening": 2}, comment="草坪该修了")
    client.force_login(estate.staff)
    url = reverse("alliance-ratings") + f"?community={estate.community.pk}&period=2019-08"
    page = html(client.get(url))
    assert "保洁很用心" in page and "草坪该修了" in page
    assert "data-live-url" in page
    assert estate.households[0].unit not in page  # who rated is not shown
    with django_assert_max_num_queries(8):
        fragment = html(client.get(url + "&fragment=1"))
    assert "<html" not in fragment and "草坪该修了" in fragment
    assert "3.50" in fragment  # greening: (5 + 2) / 2


def test_the_ratings_page_is_for_staff_only(client):
    estate = Estate()
    for user in (estate.residents[0], estate.committee, estate.inspector):
        client.force_login(user)
        assert client.get(reverse("alliance-ratings")).status_code == 403


def test_an_inspector_records_a_spot_check(client):
    estate = Estate()
    client.force_login(estate.inspector)
    page = html(client.get(reverse("alliance-inspections")))
    assert estate.community.name in page
    assert estate.other_community.name in page  # same centre: may inspect it too
    response = client.post(
        reverse("alliance-inspections"),
        {
            "community": estate.community.pk,
            "period": "2019-08",
            "staff_on_duty": 11,
            "staff_rostered": 12,
            "grid_cooperation": 95,
            "major_matter_cooperation": 90,
            "note": "",
        },
    )
    assert response.status_code == 302
    inspection = Inspection.objects.get()
    assert (inspection.staff_on_duty, inspection.staff_rostered) == (11, 12)


def test_a_bad_spot_check_keeps_the_form_and_records_nothing(client):
    estate = Estate()
    client.force_login(estate.inspector)
    page = html(
        client.post(
            reverse("alliance-inspections"),
            {
                "community": estate.community.pk,
                "period": "2019-08",
                "staff_on_duty": 13,
                "staff_rostered": 12,
                "grid_cooperation": 101,
                "major_matter_cooperation": 90,
            },
        )
    )
    assert "form-error" in page
    assert not Inspection.objects.exists()


def test_the_spot_check_page_is_for_inspectors_of_the_centre(client):
    estate = Estate()
    client.force_login(estate.staff)
    assert client.get(reverse("alliance-inspections")).status_code == 403
    client.force_login(estate.outside_inspector)
    # Their centre serves no estate yet: nothing to inspect.
    assert client.get(reverse("alliance-inspections")).status_code == 403
    # Once it does, the form offers that estate and none of this centre's.
    centre = estate.outside_inspector.memberships.get().organisation.centre
    theirs = CommunityFactory(centre=centre)
    page = html(client.get(reverse("alliance-inspections")))
    assert theirs.name in page
    assert estate.community.name not in page


def finalized_estate() -> Estate:
    estate = Estate()
    estate.rate(0)
    estate.rate(1, stars={**FIVES, "security": 3})
    estate.inspect()
    estate.pay_out()
    services.scorecard_refresh(community=estate.community, period=Period(2019, 7))
    services.scorecard_finalize(community=estate.community, period=AUGUST)
    return estate


def test_residents_and_the_committee_see_the_scorecard_with_its_trend(
    client, django_assert_max_num_queries
):
    estate = finalized_estate()
    url = reverse("alliance-scorecard", args=[estate.community.pk]) + "?period=2019-08"
    card = selectors.scorecard_current(community=estate.community, period=AUGUST)
    for user in (estate.residents[2], estate.committee):
        client.force_login(user)
        with django_assert_max_num_queries(12):
            page = html(client.get(url))
        svg = re.search(r"<svg.*?</svg>", page, re.S).group(0)
        assert 'role="img"' in svg and "<title" in svg and "<desc" in svg
        assert svg.count("<circle") == 1  # August has a score; July a draft without one
        assert "<polyline" in svg
        # The same numbers in the table below the chart.
        assert card.finalized and str(card.score) in page
        assert "2019-07" in page and "2019-08" in page
        assert "91.67%" in page  # attendance 11/12


def test_without_a_period_the_latest_final_scorecard_is_shown(client):
    estate = finalized_estate()
    client.force_login(estate.residents[0])
    page = html(client.get(reverse("alliance-scorecard", args=[estate.community.pk])))
    assert "2019-08" in page
    assert reverse("alliance-ratings") not in page  # residents do not read the ratings page


def test_a_scorecard_of_another_estate_is_404(client):
    estate = finalized_estate()
    client.force_login(estate.outsider)
    assert client.get(reverse("alliance-scorecard", args=[estate.community.pk])).status_code == 404


def test_a_resident_of_one_estate_goes_straight_to_its_scorecard(client):
    estate = finalized_estate()
    client.force_login(estate.residents[0])
    response = client.get(reverse("alliance-scorecards"))
    assert response.status_code == 302
    assert response["Location"] == reverse("alliance-scorecard", args=[estate.community.pk])


def test_the_centre_sees_its_estates_ranked(client):
    estate = finalized_estate()
    services.scorecard_refresh(community=estate.other_community, period=AUGUST)
    client.force_login(estate.centre_admin)
    page = html(client.get(reverse("alliance-scorecards") + "?period=2019-08"))
    ranking = page[page.index("ranking-title") :]
    assert ranking.index(estate.community.name) < ranking.index(estate.other_community.name)


def test_the_list_pages_keep_a_fixed_number_of_queries(client, django_assert_max_num_queries):
    estate = finalized_estate()
    for community in (estate.other_community, *(Estate().community for _ in range(3))):
        services.scorecard_refresh(community=community, period=AUGUST)
    client.force_login(estate.centre_admin)
    with django_assert_max_num_queries(10):
        html(client.get(reverse("alliance-scorecards") + "?period=2019-08"))
    client.force_login(estate.residents[0])
    with django_assert_max_num_queries(10):
        html(client.get(reverse("alliance-rate")))
