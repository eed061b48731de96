"""Fee arithmetic: area × rate rounded half-up to the fen, exact, never a float."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.money import fee, fen, split

areas = st.decimals(min_value="1.00", max_value="99999.99", places=2)
rates = st.decimals(min_value="0.0001", max_value="99.9999", places=4)


def half_up_in_fen(area: Decimal, rate: Decimal, months: int) -> int:
    """The same rounding in plain integers: area in fen-of-m² (×100), rate in ten-thousandths."""
    exact = int(area * 100) * int(rate * 10000) * months  # = value × 10^6
    quotient, remainder = divmod(exact, 10_000)  # to fen
    return quotient + (1 if remainder >= 5_000 else 0)


@given(area=areas, rate=rates, months=st.integers(min_value=1, max_value=36))
def test_fee_rounds_half_up_to_the_fen_exactly(area, rate, months):
    amount = fee(area=area, rate=rate, months=months)
    assert isinstance(amount, Decimal)
    assert amount.as_tuple().exponent == -2
    assert int(amount * 100) == half_up_in_fen(area, rate, months)


@pytest.mark.parametrize(
    ("area", "rate", "expected"),
    [
        ("89.50", "1.20", "107.40"),
        ("100.04", "1.25", "125.05"),  # 125.05 exactly
        ("70.01", "1.2345", "86.43"),  # 86.427345 -> 86.43
        ("1.01", "0.005", "0.01"),  # 0.00505 rounds up, not to even
        ("0.50", "0.01", "0.01"),  # 0.005 is half: up
    ],
)
def test_worked_examples(area, rate, expected):
    assert fee(area=Decimal(area), rate=Decimal(rate)) == Decimal(expected)


def test_floats_are_refused():
    with pytest.raises(TypeError):
        fen(1.1)


@given(
    total=st.decimals(min_value="0.00", max_value="9999999.99", places=2),
    share=st.decimals(min_value="0", max_value="1", places=4),
)
def test_split_parts_always_add_up(total, share):
    part, rest = split(total, share)
    assert part + rest == total
    assert part == fen(total * share)
    assert part >= 0 and rest >= 0
