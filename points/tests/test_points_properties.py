"""Properties of the points rules with arithmetic, over any sequence of events: volunteering
hours round half-up, monthly caps are never exceeded, an event counted once however often it
arrives, and balances that are the sum of their entries."""

from collections import Counter
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from points import services
from points.models import Entry, Event, Rule
from points.tests.factories import Estate, at, contribution

pytestmark = pytest.mark.django_db

CHECKIN_POINTS, CHECKIN_CAP, POINTS_PER_HOUR = 5, 3, 10  # the default rules (migration 0003)
hours = st.decimals(min_value=0, max_value=24, places=1)


@pytest.fixture
def estate():
    return Estate()


@given(hours=hours, amount=st.integers(1, 100))
def test_per_hour_points_round_half_up_and_never_go_negative(hours, amount):
    rule = Rule(event=Event.VOLUNTEER_HOUR, amount=amount, per_hour=True)
    points = services.points_for(rule, hours)
    exact = amount * hours
    assert points == int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    assert abs(points - exact) <= Decimal("0.5") and points >= 0
    assert services.points_for(Rule(event=Event.ACTIVITY_CHECKIN, amount=amount), hours) == amount


# A check-in: who (0 alice, 1 bob), kind, month (8 or 9), day and hours volunteered. Its id is
# its place in the list; deliveries name ids, repeating some (an event delivered again).
checkins = st.lists(
    st.tuples(
        st.integers(0, 1),
        st.sampled_from(["event", "volunteering"]),
        st.sampled_from([8, 9]),
        st.integers(1, 28),
        hours,
    ),
    min_size=1,
    max_size=10,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(checkins=checkins, data=st.data())
def test_check_ins_respect_the_monthly_cap_and_count_once(estate, checkins, data):
    people = [estate.alice, estate.bob]
    deliveries = data.draw(
        st.lists(st.integers(0, len(checkins) - 1), min_size=len(checkins), max_size=14)
    )
    expected = Counter()
    with transaction.atomic():
        for checkin_id in deliveries:
            who, kind, month, day, volunteered = checkins[checkin_id]
            services.award_for_checkin(
                checkin_id=checkin_id,
                user_id=people[who].pk,
                kind=kind,
                hours=str(volunteered),
                checked_in_at=at(day=day, month=month),
            )
        # What the rules say, in the order check-ins first arrived; copies count for nothing.
        for checkin_id in dict.fromkeys(deliveries):
            who, kind, month, day, volunteered = checkins[checkin_id]
            if kind == "volunteering":
                exact = POINTS_PER_HOUR * volunteered
                expected[who, "points"] += int(exact.quantize(1, rounding=ROUND_HALF_UP))
            elif expected[who, month] < CHECKIN_CAP:
                expected[who, month] += 1
                expected[who, "points"] += CHECKIN_POINTS

        for who, person in enumerate(people):
            assert contribution(person) == expected[who, "points"]
            for month in (8, 9):
                awarded = Entry.objects.filter(
                    holder__user=person,
                    source=Event.ACTIVITY_CHECKIN,
                    kind=Entry.Kind.AWARD,
                    period=f"2019-{month:02d}",
                )
                assert awarded.count() == expected[who, month] <= CHECKIN_CAP
        transaction.set_rollback(True)  # the next example starts from the same estate
