"""The scorecard's arithmetic on a worked example, written out by hand (alliance.scoring)."""

from decimal import Decimal

from alliance import scoring
from alliance.models import DEFAULT_WEIGHTS

# Two spot checks: 11 of 12 staff on duty, then 9 of 10; grid 95 and 80; major matters 90, 70.
CHECKS = [(11, 12, 95, 90), (9, 10, 80, 70)]
# Two ratings: 5+5+4+4+5 = 23 and 3+4+5+4+4 = 20 stars, 43 stars in 10 answers.
STARS = [(5, 5, 4, 4, 5), (3, 4, 5, 4, 4)]


def test_each_component_of_the_worked_example():
    # (11/12 + 9/10) / 2 = (0.916666… + 0.9) / 2 = 0.908333… -> 0.9083
    assert scoring.attendance_rate((c[0], c[1]) for c in CHECKS) == Decimal("0.9083")
    # (95 + 80) / 2 / 100 = 0.875
    assert scoring.cooperation(c[2] for c in CHECKS) == Decimal("0.8750")
    # (90 + 70) / 2 / 100 = 0.8
    assert scoring.cooperation(c[3] for c in CHECKS) == Decimal("0.8000")
    # mean 43 / 10 = 4.3 stars; (4.3 - 1) / 4 = 0.825
    total = sum(sum(row) for row in STARS)
    assert scoring.satisfaction(star_total=total, answers=10) == Decimal("0.8250")


def test_the_score_is_the_weighted_mean_of_the_worked_example():
    rates = {
        "attendance_rate": Decimal("0.9083"),
        "handling_rate": Decimal("0.7500"),  # 3 of 4 tickets handled within their deadlines
        "grid_cooperation": Decimal("0.8750"),
        "major_matter_cooperation": Decimal("0.8000"),
        "resident_satisfaction": Decimal("0.8250"),
    }
    # 0.20 × 0.9083 + 0.20 × 0.75 + 0.15 × 0.875 + 0.15 × 0.80 + 0.30 × 0.825
    # = 0.18166 + 0.15 + 0.13125 + 0.12 + 0.2475 = 0.83041 (weights sum to 1) -> 0.8304
    assert scoring.combine(rates, DEFAULT_WEIGHTS) == Decimal("0.8304")


def test_a_component_without_data_is_left_out_and_the_weights_renormalised():
    rates = {
        "attendance_rate": Decimal("0.9083"),
        "handling_rate": Decimal("0.7500"),
        "grid_cooperation": Decimal("0.8750"),
        "major_matter_cooperation": Decimal("0.8000"),
        "resident_satisfaction": None,  # no rating this month
    }
    # (0.18166 + 0.15 + 0.13125 + 0.12) / 0.70 = 0.58291 / 0.70 = 0.832728… -> 0.8327
    assert scoring.combine(rates, DEFAULT_WEIGHTS) == Decimal("0.8327")
    no_inspection = {
        "attendance_rate": None,
        "handling_rate": Decimal("0.7500"),
        "grid_cooperation": None,
        "major_matter_cooperation": None,
        "resident_satisfaction": Decimal("0.8250"),
    }
    # (0.20 × 0.75 + 0.30 × 0.825) / 0.50 = 0.3975 / 0.5 = 0.795
    assert scoring.combine(no_inspection, DEFAULT_WEIGHTS) == Decimal("0.7950")


def test_nothing_to_score_gives_no_score_and_empty_inputs_give_no_rate():
    assert scoring.combine(dict.fromkeys(DEFAULT_WEIGHTS), DEFAULT_WEIGHTS) is None
    # Only a component whose weight is 0: still nothing to weigh.
    weights = {**DEFAULT_WEIGHTS, "handling_rate": Decimal(0)}
    only_handling = {**dict.fromkeys(DEFAULT_WEIGHTS), "handling_rate": Decimal("1.0000")}
    assert scoring.combine(only_handling, weights) is None
    assert scoring.attendance_rate([]) is None
    assert scoring.cooperation([]) is None
    assert scoring.satisfaction(star_total=0, answers=0) is None


def test_extremes_and_half_up_rounding():
    assert scoring.satisfaction(star_total=5, answers=5) == Decimal("0.0000")  # all 1 star
    assert scoring.satisfaction(star_total=25, answers=5) == Decimal("1.0000")  # all 5 stars
    assert scoring.attendance_rate([(0, 3)]) == Decimal("0.0000")
    # 2/3 = 0.66666… -> 0.6667; a last digit of exactly 5 rounds up, not to even
    assert scoring.attendance_rate([(2, 3)]) == Decimal("0.6667")
    assert scoring.rate(Decimal("0.91665")) == Decimal("0.9167")
