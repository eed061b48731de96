"""Properties of the dual majority (community.tally) over any electorate and any votes: exact
thresholds, at most one option decided, monotone in agreement, and shares that add up."""

from decimal import Decimal
from fractions import Fraction

from hypothesis import assume, given
from hypothesis import strategies as st

from community import tally
from community.tally import ORDINARY, SPECIAL, Count, Rule, Threshold

areas = st.decimals(min_value="20.00", max_value="400.00", places=2)
rules = st.sampled_from([ORDINARY, SPECIAL])
OPTIONS = ["agree", "disagree", "abstain"]


@st.composite
def electorates(draw):
    """Households (their areas) and, for each, the option it voted for or None (did not vote)."""
    homes = draw(st.lists(areas, min_size=1, max_size=30))
    choices = draw(
        st.lists(st.sampled_from([*OPTIONS, None]), min_size=len(homes), max_size=len(homes))
    )
    return homes, choices


def count(homes, choices):
    votes = {option: Count(0, Decimal("0")) for option in OPTIONS}
    for area, choice in zip(homes, choices, strict=True):
        if choice is not None:
            before = votes[choice]
            votes[choice] = Count(before.heads + 1, before.area + area)
    total = Count(len(homes), sum(homes, Decimal("0")))
    return list(votes.items()), total


@given(whole=st.integers(1, 10**6), share=st.fractions(min_value=0, max_value=1), data=st.data())
def test_a_threshold_is_exact_and_inclusive_only_at_the_share_itself(whole, share, data):
    part = data.draw(st.integers(0, whole))
    at_least = Threshold(share, inclusive=True).met(part, whole)
    more_than = Threshold(share, inclusive=False).met(part, whole)
    assert at_least == (Fraction(part, whole) >= share)
    assert more_than == (Fraction(part, whole) > share)
    assert (at_least != more_than) == (Fraction(part, whole) == share)


@given(electorate=electorates(), rule=rules, approving=st.sampled_from(["agree", None]))
def test_a_decision_needs_both_majorities_and_at_most_one_option_wins(electorate, rule, approving):
    votes, total = count(*electorate)
    result = tally.tally(votes=votes, total=total, rule=rule, approving=approving)

    approved = [option.key for option in result.options if option.approved]
    assert len(approved) <= 1  # approval is more than a half (or at least three quarters)
    if result.passed:
        assert result.participation_met_by_heads and result.participation_met_by_area
        assert result.adopted in approved
        adopted = next(o for o in result.options if o.key == result.adopted)
        assert rule.approval.met(adopted.votes.heads, result.participating.heads)
        assert rule.approval.met(adopted.votes.area, result.participating.area)
    else:
        assert result.adopted is None
    if approving is not None and result.passed:
        assert result.adopted == approving


@given(electorate=electorates())
def test_shares_add_up_and_turnout_is_what_took_part(electorate):
    votes, total = count(*electorate)
    result = tally.tally(votes=votes, total=total, rule=ORDINARY, approving="agree")

    assert result.participating.heads == sum(c.heads for _, c in votes)
    assert result.turnout_heads == Fraction(result.participating.heads, total.heads)
    assert result.turnout_area == Fraction(result.participating.area) / Fraction(total.area)
    if result.participating.heads:
        assert sum(o.share_of_participating_heads for o in result.options) == 1
        assert sum(o.share_of_participating_area for o in result.options) == 1
    else:
        assert all(o.share_of_participating_heads is None for o in result.options)
        assert not result.passed


@given(electorate=electorates(), rule=rules, data=st.data())
def test_one_more_household_agreeing_never_undoes_a_pass(electorate, rule, data):
    """A household that did not vote, or voted otherwise, switching to agree can only help."""
    homes, choices = electorate
    others = [n for n, choice in enumerate(choices) if choice != "agree"]
    assume(others)
    voter = data.draw(st.sampled_from(others))
    before = tally.tally(
        **dict(zip(("votes", "total"), count(homes, choices), strict=True)),
        rule=rule,
        approving="agree",
    )
    switched = [*choices[:voter], "agree", *choices[voter + 1 :]]
    after = tally.tally(
        **dict(zip(("votes", "total"), count(homes, switched), strict=True)),
        rule=rule,
        approving="agree",
    )
    assert after.passed or not before.passed
    assert after.turnout_heads >= before.turnout_heads


@given(electorate=electorates(), rule=rules)
def test_the_order_options_are_listed_in_changes_nothing(electorate, rule):
    votes, total = count(*electorate)
    forwards = tally.tally(votes=votes, total=total, rule=rule)
    backwards = tally.tally(votes=votes[::-1], total=total, rule=rule)
    assert (forwards.passed, forwards.adopted) == (backwards.passed, backwards.adopted)


@given(value=st.fractions(min_value=0, max_value=1))
def test_shown_rounds_half_up_to_four_places(value):
    shown = tally.shown(value)
    assert shown.as_tuple().exponent == -4
    error = Fraction(shown) - value
    # Within half a unit of the last place, and exactly half only when rounded up.
    assert -Fraction(1, 20000) < error <= Fraction(1, 20000)


@given(
    approval=st.fractions(min_value=Fraction(1, 2), max_value=1),
    inclusive=st.booleans(),
    electorate=electorates(),
)
def test_a_stricter_approval_rule_never_passes_what_a_looser_one_fails(
    approval, inclusive, electorate
):
    votes, total = count(*electorate)
    assume(approval > Fraction(1, 2) or not inclusive)
    strict = Rule(Threshold(approval, inclusive), ORDINARY.participation)
    loose = ORDINARY
    assert not tally.tally(votes=votes, total=total, rule=strict, approving="agree").passed or (
        tally.tally(votes=votes, total=total, rule=loose, approving="agree").passed
    )
