"""Properties of the scorecard's arithmetic (alliance.scoring) over any month's data: every rate
lies in 0..1 with four places, the score is a weighted mean that leaves out what has no data,
and better service never lowers it."""

from decimal import Decimal

from hypothesis import assume, given
from hypothesis import strategies as st

from alliance import scoring
from alliance.models import DEFAULT_WEIGHTS

COMPONENTS = list(DEFAULT_WEIGHTS)
rates = st.decimals(min_value=0, max_value=1, places=4)
weights = st.decimals(min_value="0.01", max_value="10.00", places=2)


@st.composite
def checks(draw):
    """(staff on duty, staff rostered) of up to ten spot checks."""
    rostered = draw(st.lists(st.integers(1, 200), min_size=1, max_size=10))
    return [(draw(st.integers(0, n)), n) for n in rostered]


def is_rate(value: Decimal) -> bool:
    return value.as_tuple().exponent == -4 and Decimal(0) <= value <= Decimal(1)


@given(value=st.decimals(min_value=0, max_value=1, places=12))
def test_a_rate_is_rounded_half_up_to_four_places(value):
    rounded = scoring.rate(value)
    assert rounded.as_tuple().exponent == -4
    assert -Decimal("0.00005") < rounded - value <= Decimal("0.00005")


@given(checks=checks())
def test_attendance_is_the_mean_of_each_checks_share(checks):
    attendance = scoring.attendance_rate(checks)
    assert is_rate(attendance)
    shares = [Decimal(on) / Decimal(rostered) for on, rostered in checks]
    assert min(shares) - Decimal("0.00005") <= attendance <= max(shares) + Decimal("0.00005")
    if all(on == rostered for on, rostered in checks):
        assert attendance == 1


@given(marks=st.lists(st.integers(0, 100), min_size=1, max_size=20))
def test_cooperation_is_the_mean_mark_over_a_hundred(marks):
    cooperation = scoring.cooperation(marks)
    assert is_rate(cooperation)
    assert cooperation == scoring.rate(Decimal(sum(marks)) / len(marks) / 100)


@given(stars=st.lists(st.integers(1, 5), min_size=1, max_size=250), extra=st.integers(1, 4))
def test_satisfaction_maps_one_to_five_stars_onto_zero_to_one(stars, extra):
    satisfaction = scoring.satisfaction(star_total=sum(stars), answers=len(stars))
    assert is_rate(satisfaction)
    assert (satisfaction == 0) == all(s == 1 for s in stars)
    assert (satisfaction == 1) == all(s == 5 for s in stars)
    # One more star given anywhere (within 5) never lowers it.
    better = [min(5, stars[0] + extra), *stars[1:]]
    assert scoring.satisfaction(star_total=sum(better), answers=len(better)) >= satisfaction


@st.composite
def figures(draw):
    return {name: draw(st.none() | rates) for name in COMPONENTS}


@given(figures=figures(), weights=st.fixed_dictionaries({n: weights for n in COMPONENTS}))
def test_the_score_is_a_weighted_mean_of_the_components_with_data(figures, weights):
    score = scoring.combine(figures, weights)
    present = {name: value for name, value in figures.items() if value is not None}
    if not present:
        assert score is None
        return
    assert is_rate(score)
    low, high = min(present.values()), max(present.values())
    assert low <= score <= high  # rounding cannot leave the range: its ends have four places
    # A component without data is the same as one that does not exist: the weights renormalise.
    assert scoring.combine(present, weights) == score
    # Only the weights' proportions matter.
    assert scoring.combine(figures, {n: w * 3 for n, w in weights.items()}) == score


@given(figures=figures(), name=st.sampled_from(COMPONENTS), rate=rates, data=st.data())
def test_better_service_in_one_component_never_lowers_the_score(figures, name, rate, data):
    better = data.draw(st.decimals(min_value=rate, max_value=1, places=4))
    worse_card = {**figures, name: rate}
    better_card = {**figures, name: better}
    assert scoring.combine(better_card, DEFAULT_WEIGHTS) >= scoring.combine(
        worse_card, DEFAULT_WEIGHTS
    )


@given(figures=figures())
def test_only_zero_weights_give_no_score(figures):
    assume(any(value is not None for value in figures.values()))
    assert scoring.combine(figures, dict.fromkeys(COMPONENTS, Decimal(0))) is None
    assert scoring.combine(figures, DEFAULT_WEIGHTS) is not None
