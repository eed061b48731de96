"""Fee arithmetic: area × rate rounded half-up to the fen, exact, never a float."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.money import allocate, fee, fen, split

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


fens = st.decimals(min_value="0.00", max_value="99999.99", places=2)


@given(weights=st.lists(fens, min_size=1, max_size=40), data=st.data())
def test_allocate_gives_every_fen_to_someone_and_nobody_more_than_their_weight(weights, data):
    whole = sum(weights, Decimal("0.00"))
    if whole == 0:
        assert allocate(Decimal("0.00"), weights) == [Decimal("0.00")] * len(weights)
        return
    total = data.draw(st.decimals(min_value="0.00", max_value=whole, places=2))

    parts = allocate(total, weights)

    assert sum(parts) == total
    for part, weight in zip(parts, weights, strict=True):
        assert part.as_tuple().exponent == -2
        assert Decimal(0) <= part <= weight
        # Within a fen of the exact proportional share.
        assert abs(part - total * weight / whole) < Decimal("0.01")


@given(
    nets=st.lists(st.decimals(min_value="0.01", max_value="9999.99", places=2), max_size=60),
    share=st.decimals(min_value="0", max_value="1", places=4),
)
def test_an_estates_split_never_drifts_from_collected_times_share(nets, share):
    """What payout_run does with a month's items: the company gets round(collected × share)
    in all, exactly, however many items; rounding each item (split) drifts by up to half a fen
    per item."""
    collected = sum(nets, Decimal("0.00"))
    parts = allocate(fen(collected * share), nets) if nets else []
    assert sum(parts, Decimal("0.00")) == fen(collected * share)
    assert all(Decimal(0) <= part <= net for part, net in zip(parts, nets, strict=True))


def test_per_item_rounding_drifts_where_allocate_does_not():
    nets = [Decimal("0.05")] * 10  # each 0.05 × 0.9 = 0.045 → 0.05 when rounded on its own
    share = Decimal("0.9")
    assert sum(split(net, share)[0] for net in nets) == Decimal("0.50")
    assert sum(allocate(fen(sum(nets) * share), nets)) == Decimal("0.45")


@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [
        ("10.00", ["3.33", "3.33", "3.34"], ["3.33", "3.33", "3.34"]),
        ("0.01", ["1.00", "1.00"], ["0.01", "0.00"]),  # a tie goes to the earlier weight
        ("0.02", ["1.00", "1.00", "1.00"], ["0.01", "0.01", "0.00"]),
        ("5.00", ["5.00", "0.00"], ["5.00", "0.00"]),
        ("10.00", ["108.00", "12.00", "0.00"], ["9.00", "1.00", "0.00"]),
    ],
)
def test_allocate_worked_examples(total, weights, expected):
    assert allocate(Decimal(total), [Decimal(w) for w in weights]) == [Decimal(e) for e in expected]


def test_allocate_refuses_floats_and_fractions_of_a_fen():
    with pytest.raises(TypeError):
        allocate(1.0, [Decimal("1.00")])
    with pytest.raises(ValueError):
        allocate(Decimal("1.005"), [Decimal("1.00")])
    with pytest.raises(ValueError):
        allocate(Decimal("1.00"), [Decimal("0.00")])
