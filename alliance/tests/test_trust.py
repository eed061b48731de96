"""Trust in the score: rating coverage, the spread between inspecting organisations, and the
flags for bursts of all-5★ or all-1★ ratings from one building (alliance/trust.py)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import override_settings
from django.urls import reverse

from alliance import services, trust
from alliance.tests.factories import AUGUST, FIVES, Estate, august
from billing.tests.factories import BillFactory, pay
from community.models import AllianceOrganisation, Role
from community.tests.factories import (
    AllianceOrganisationFactory,
    BuildingFactory,
    HouseholdFactory,
    member,
    resident,
)

pytestmark = pytest.mark.django_db

ONES = dict.fromkeys(FIVES, 1)
MIXED = {**FIVES, "repair": 4}


def _paying_homes(estate: Estate, count: int, building=None):
    """`count` more households in one building of the estate, each paid for August."""
    building = building or BuildingFactory(community=estate.community, name="3")
    homes = []
    for _ in range(count):
        home = HouseholdFactory(building=building)
        user = resident(home)
        pay(user, [BillFactory(household=home, period=str(AUGUST))])
        homes.append((home, user))
    return building, homes


def _rate(home, user, stars, at):
    return services.rating_create(
        user=user, household_id=home.pk, period=AUGUST, stars=stars, at=at
    )


def _card(estate: Estate):
    return services.scorecard_refresh(community=estate.community, period=AUGUST)


def test_coverage_counts_rated_households_among_those_that_paid():
    estate = Estate(households=3)  # two paid, one did not
    _, homes = _paying_homes(estate, 2)  # four paid
    estate.rate(0)
    _rate(*homes[0], MIXED, august(20))
    result = trust.scorecard_trust(scorecard=_card(estate))
    assert result.coverage == trust.Coverage(rated=2, paid=4, rate=Decimal("0.5000"))


def test_coverage_rounds_to_four_places_and_is_empty_without_payers():
    estate = Estate(households=3)
    _paying_homes(estate, 1)  # three paid
    estate.rate(0)
    assert trust.rating_coverage(community=estate.community, period=AUGUST).rate == Decimal(
        "0.3333"
    )
    september = AUGUST.next()
    empty = trust.rating_coverage(community=estate.community, period=september)
    assert empty == trust.Coverage(rated=0, paid=0, rate=None)


def test_spread_needs_two_organisations():
    estate = Estate()
    estate.inspect(on_duty=9, rostered=10, grid=80, major=70)
    estate.inspect(on_duty=10, rostered=10, grid=90, major=90)
    spread = trust.scorecard_trust(scorecard=_card(estate)).spread
    assert not spread.shown
    assert spread.components == {}
    assert [(o.inspections, o.attendance_rate) for o in spread.organisations] == [
        (2, Decimal("0.9500"))
    ]


def test_spread_is_highest_minus_lowest_organisation_per_component():
    estate = Estate()
    estate.inspect(on_duty=9, rostered=10, grid=80, major=70)  # the estate's organisation
    estate.inspect(on_duty=10, rostered=10, grid=90, major=90)
    other_org = AllianceOrganisationFactory(centre=estate.community.centre, name="ZZ Bank")
    other = member(Role.ALLIANCE_INSPECTOR, organisation=other_org)
    services.inspection_create(
        user=other,
        community_id=estate.community.pk,
        period=AUGUST,
        staff_on_duty=6,
        staff_rostered=8,
        grid_cooperation=60,
        major_matter_cooperation=95,
        at=august(22),
    )
    spread = trust.inspection_spread(community=estate.community, period=AUGUST)
    assert spread.shown
    # Organisation 1: attendance (0.9 + 1) / 2 = 0.95, grid 0.85, major 0.80.
    # Organisation 2: attendance 0.75, grid 0.60, major 0.95.
    assert spread.components == {
        "attendance_rate": Decimal("0.2000"),
        "grid_cooperation": Decimal("0.2500"),
        "major_matter_cooperation": Decimal("0.1500"),
    }
    assert "ZZ Bank" in [o.name for o in spread.organisations]


@override_settings(ALLIANCE_RATING_BURST_SIZE=5)
def test_five_all_five_star_ratings_from_one_building_within_an_hour_are_one_flag():
    estate = Estate()
    building, homes = _paying_homes(estate, 7)
    start = august(20, 21, 0)
    # Six within 21:00–21:50 (overlapping windows: one flag), one at 22:30 (outside the hour
    # from 21:40, the sixth's window holds four only).
    minutes = [0, 10, 20, 30, 40, 50, 90]
    for (home, user), minute in zip(homes, minutes, strict=True):
        _rate(home, user, FIVES, start + timedelta(minutes=minute))
    flags = trust.rating_bursts(community=estate.community, period=AUGUST)
    assert flags == [
        trust.BurstFlag(
            building_id=building.pk,
            building="3",
            stars=5,
            count=6,
            first_at=start,
            last_at=start + timedelta(minutes=50),
        )
    ]


@override_settings(ALLIANCE_RATING_BURST_SIZE=5)
def test_no_flag_for_four_or_for_five_spread_over_an_hour_or_mixed_stars():
    estate = Estate()
    _, homes = _paying_homes(estate, 5)
    start = august(20, 21, 0)
    # Five all-5★, but the fifth exactly 60 minutes after the first: not within the hour.
    for (home, user), minute in zip(homes, [0, 15, 30, 45, 60], strict=True):
        _rate(home, user, FIVES, start + timedelta(minutes=minute))
    _, more = _paying_homes(estate, 5, building=BuildingFactory(community=estate.community))
    # Four all-5★ and one 4★ on one dimension: not all extreme.
    for index, (home, user) in enumerate(more):
        _rate(home, user, MIXED if index == 2 else FIVES, start + timedelta(minutes=index))
    assert trust.rating_bursts(community=estate.community, period=AUGUST) == []


@override_settings(ALLIANCE_RATING_BURST_SIZE=3)
def test_ones_and_fives_and_buildings_are_counted_apart():
    estate = Estate()
    first, homes = _paying_homes(estate, 6)
    _, others = _paying_homes(estate, 2, building=BuildingFactory(community=estate.community))
    start = august(20, 8, 0)
    for index, (home, user) in enumerate(homes):
        # 5★ 1★ 5★ 1★ 5★ 1★ at one-minute steps: three of each.
        _rate(home, user, FIVES if index % 2 == 0 else ONES, start + timedelta(minutes=index))
    for index, (home, user) in enumerate(others):
        _rate(home, user, ONES, start + timedelta(minutes=index))
    flags = trust.rating_bursts(community=estate.community, period=AUGUST)
    assert [(f.building_id, f.stars, f.count) for f in flags] == [
        (first.pk, 5, 3),
        (first.pk, 1, 3),
    ]
    assert trust.scorecard_trust(scorecard=_card(estate)).flag_count == 2


def test_scorecard_trust_queries_do_not_grow_with_the_estate(django_assert_max_num_queries):
    estate = Estate()
    _, homes = _paying_homes(estate, 6)
    for index, (home, user) in enumerate(homes):
        _rate(home, user, FIVES, august(20, 9, index))
    estate.inspect()
    card = _card(estate)
    # Paid households, ratings, inspections, bursts, and the card's community.
    with django_assert_max_num_queries(5):
        trust.scorecard_trust(scorecard=card)


# --- on the scorecard page --------------------------------------------------------------------


@override_settings(ALLIANCE_RATING_BURST_SIZE=5)
def test_the_page_shows_coverage_and_flags_with_details_for_staff_only(client):
    estate = Estate()
    _, homes = _paying_homes(estate, 5)
    for index, (home, user) in enumerate(homes):
        _rate(home, user, FIVES, august(20, 21, index))
    _card(estate)
    url = reverse("alliance-scorecard", args=[estate.community.pk]) + "?period=2019-08"
    mediator_org = AllianceOrganisationFactory(
        centre=estate.community.centre, kind=AllianceOrganisation.Kind.MEDIATOR
    )
    mediator = member(Role.ALLIANCE_INSPECTOR, organisation=mediator_org)
    for user, details in [
        (estate.staff, True),
        (estate.centre_admin, True),
        (mediator, True),
        (estate.residents[0], False),
        (estate.committee, False),
        (estate.inspector, False),
    ]:
        client.force_login(user)
        page = client.get(url).content.decode()
        # 5 of 7 paying households rated.
        assert "71.43%" in page
        assert "5 of 7 paying households rated" in page
        assert 'data-flag-count="1"' in page
        assert ("data-burst-details" in page) is details, user
        assert ("from building 3," in page) is details
