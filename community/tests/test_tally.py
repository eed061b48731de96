"""The dual majority (民法典 第278条) on a worked example, by hand, and its edges."""

from decimal import Decimal
from fractions import Fraction

import pytest

from community import tally
from community.tally import ORDINARY, SPECIAL, Count, Rule, Threshold

# The worked example. An estate of 9 households, 800.00 m² in all:
#
#   flat   area     vote (first)   vote (after H changes)
#   A      100.00   agree          agree
#   B       80.50   disagree       disagree
#   C      120.25   agree          agree
#   D       95.00   disagree       disagree
#   E       60.00   -              -
#   F      110.75   agree          agree
#   G       70.00   -              -
#   H       88.00   abstain        agree
#   I       75.50   -              -
#
# Participation: 6 of 9 households = 2/3 exactly, which is "at least two thirds" (以上 includes
# the share itself); area 100 + 80.50 + 120.25 + 95 + 110.75 + 88 = 594.50 of 800.00 = 0.743125.
# Both met.
#
# First count: agree = A, C, F: 3 of 6 households = exactly one half, which is NOT "more than
# half" (过半数) -> not passed, although by area agree has 331.00 of 594.50 = 0.556770... > 1/2.
#
# After H changes to agree: 4 of 6 = 2/3 > 1/2, and area 419.00 of 594.50 = 0.704793... > 1/2
# -> passed. Shares shown rounded half up to 4 places: 331/800 = 0.41375 -> "0.4138",
# 419/800 = 0.52375 -> "0.5238".

TOTAL = Count(heads=9, area=Decimal("800.00"))


def first_count():
    return [
        ("agree", Count(3, Decimal("100.00") + Decimal("120.25") + Decimal("110.75"))),
        ("disagree", Count(2, Decimal("80.50") + Decimal("95.00"))),
        ("abstain", Count(1, Decimal("88.00"))),
    ]


def test_exactly_half_by_head_is_not_more_than_half():
    result = tally.tally(votes=first_count(), total=TOTAL, rule=ORDINARY, approving="agree")

    assert result.participating == Count(6, Decimal("594.50"))
    assert result.turnout_heads == Fraction(2, 3)
    assert result.turnout_area == Fraction(594_50, 800_00)
    assert (result.participation_met_by_heads, result.participation_met_by_area) == (True, True)
    agree = result.options[0]
    assert agree.share_of_participating_heads == Fraction(1, 2)
    assert agree.share_of_participating_area == Fraction(331_00, 594_50)
    assert (agree.approved_by_heads, agree.approved_by_area) == (False, True)
    assert result.passed is False
    assert result.adopted is None
    assert tally.shown(agree.share_of_total_area) == Decimal("0.4138")
    assert tally.shown(result.turnout_heads) == Decimal("0.6667")
    assert tally.shown(result.turnout_area) == Decimal("0.7431")


def test_after_one_household_changes_its_vote_both_majorities_are_reached():
    votes = [
        ("agree", Count(4, Decimal("419.00"))),
        ("disagree", Count(2, Decimal("175.50"))),
        ("abstain", Count(0, Decimal("0"))),
    ]
    result = tally.tally(votes=votes, total=TOTAL, rule=ORDINARY, approving="agree")

    agree = result.options[0]
    assert agree.share_of_participating_heads == Fraction(2, 3)
    assert agree.share_of_participating_area == Fraction(419_00, 594_50)
    assert agree.approved
    assert result.passed is True
    assert result.adopted == "agree"
    assert tally.shown(agree.share_of_participating_area) == Decimal("0.7048")
    assert tally.shown(agree.share_of_total_area) == Decimal("0.5238")
    assert tally.shown(result.options[2].share_of_participating_heads) == Decimal("0.0000")


def test_participation_below_two_thirds_fails_even_when_everyone_agrees():
    # 5 of 9 took part (5/9 < 2/3), with 500 of 800 m² (0.625 < 2/3).
    votes = [("agree", Count(5, Decimal("500.00"))), ("disagree", Count(0, Decimal("0")))]
    result = tally.tally(votes=votes, total=TOTAL, rule=ORDINARY, approving="agree")
    assert result.options[0].approved
    assert (result.participation_met_by_heads, result.participation_met_by_area) == (False, False)
    assert result.passed is False


def test_participation_met_by_head_but_not_by_area_fails():
    # 6 of 9 households (2/3) but only the small flats: 500.00 of 800.00 m² = 0.625.
    votes = [("agree", Count(6, Decimal("500.00")))]
    result = tally.tally(votes=votes, total=TOTAL, rule=ORDINARY, approving="agree")
    assert (result.participation_met_by_heads, result.participation_met_by_area) == (True, False)
    assert result.passed is False


def test_the_area_majority_is_needed_as_well_as_the_head_majority():
    # 4 of 6 households agree, but they hold only 290.00 of 600.00 m² (< 1/2).
    votes = [("agree", Count(4, Decimal("290.00"))), ("disagree", Count(2, Decimal("310.00")))]
    result = tally.tally(votes=votes, total=TOTAL, rule=ORDINARY, approving="agree")
    assert (result.options[0].approved_by_heads, result.options[0].approved_by_area) == (
        True,
        False,
    )
    assert result.passed is False


def test_two_thirds_of_the_area_is_exact_not_a_rounded_float():
    # 533.33 m² is just short of two thirds of 800.00 (533.333...), 533.34 just over.
    rule = ORDINARY.participation
    assert rule.met(Decimal("533.33"), Decimal("800.00")) is False
    assert rule.met(Decimal("533.34"), Decimal("800.00")) is True
    assert rule.met(Decimal("200.00"), Decimal("300.00")) is True  # exactly 2/3


def test_special_matters_need_at_least_three_quarters_of_the_voters():
    votes = [("agree", Count(6, Decimal("450.00"))), ("disagree", Count(2, Decimal("150.00")))]
    result = tally.tally(
        votes=votes, total=Count(9, Decimal("700.00")), rule=SPECIAL, approving="agree"
    )
    # 6 of 8 = 3/4 exactly and 450 of 600 = 3/4 exactly: "at least three quarters" is met.
    assert result.options[0].approved
    assert result.passed is True
    votes[0] = ("agree", Count(6, Decimal("449.99")))
    result = tally.tally(
        votes=votes, total=Count(9, Decimal("699.99")), rule=SPECIAL, approving="agree"
    )
    assert result.passed is False


def test_without_an_approving_option_the_option_that_reaches_the_rule_is_adopted():
    votes = [("east gate", Count(5, Decimal("450.00"))), ("west gate", Count(2, Decimal("100")))]
    result = tally.tally(votes=votes, total=TOTAL, rule=ORDINARY)
    assert (result.passed, result.adopted) == (True, "east gate")


def test_a_rejection_is_not_a_pass():
    votes = [("agree", Count(1, Decimal("80.00"))), ("disagree", Count(6, Decimal("600.00")))]
    result = tally.tally(votes=votes, total=TOTAL, rule=ORDINARY, approving="agree")
    assert result.options[1].approved  # the owners clearly said no
    assert (result.passed, result.adopted) == (False, None)


def test_nobody_voting_gives_no_shares_and_no_pass():
    result = tally.tally(
        votes=[("agree", Count(0, Decimal("0"))), ("disagree", Count(0, Decimal("0")))],
        total=TOTAL,
        rule=ORDINARY,
        approving="agree",
    )
    assert result.options[0].share_of_participating_heads is None
    assert result.turnout_heads == 0
    assert tally.shown(result.options[0].share_of_participating_area) is None
    assert result.passed is False


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Fraction(1, 20000), "0.0001"),  # half up, not half even
        (Fraction(3, 20000), "0.0002"),
        (Fraction(5, 6), "0.8333"),
        (Fraction(46, 56), "0.8214"),
        (Fraction(1), "1.0000"),
    ],
)
def test_shown_rounds_half_up_to_four_places(value, text):
    assert str(tally.shown(value)) == text


def test_a_rule_is_data():
    rule = Rule(
        approval=Threshold(Fraction(2, 3), inclusive=True),
        participation=Threshold(Fraction(1, 2), inclusive=False),
    )
    votes = [("agree", Count(2, Decimal("2"))), ("disagree", Count(1, Decimal("1")))]
    result = tally.tally(votes=votes, total=Count(5, Decimal("5")), rule=rule, approving="agree")
    # 3 of 5 took part (> 1/2); 2 of 3 agree (at least 2/3).
    assert result.passed is True
