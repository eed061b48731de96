"""The scorecard's arithmetic on plain numbers, with no database, so a person can redo it by hand.

Each component is a rate from 0 to 1, rounded half-up to 4 decimals:
- attendance_rate (到岗率): the mean, over the month's inspections, of staff on duty / staff
  rostered (several checks in a month are averaged, each counting once);
- handling_rate (事件处理率): tickets handled within their deadlines / tickets filed in the month
  (repairs' handled_within_sla / total);
- grid_cooperation, major_matter_cooperation (网格配合度, 重大事项配合度): the mean of the
  inspections' 0–100 marks, divided by 100;
- resident_satisfaction (居民满意度): the mean of every star given that month (all five
  dimensions of every rating), mapped linearly onto 0–1: (mean − 1) / 4, so 1★ → 0, 3★ → 0.5,
  5★ → 1.

A component without data that month is None: no inspection leaves out the three inspection
components, no rating leaves out satisfaction, no ticket leaves out the handling rate (nothing was
there to handle, which is neither good nor bad service).

score = Σ weight × rate / Σ weight over the components that are not None, using the rounded rates
shown on the card (so anyone can check it from the card), rounded half-up to 4 decimals. Leaving
a component out therefore renormalises the remaining weights. With no component at all (or only
components whose weight is 0) the score is None, and such a month cannot be finalized.
"""

from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal

FOUR_PLACES = Decimal("0.0001")


def rate(value: Decimal) -> Decimal:
    """Round a rate half-up to 4 decimals (0.91665 -> 0.9167)."""
    return Decimal(value).quantize(FOUR_PLACES, rounding=ROUND_HALF_UP)


def attendance_rate(checks: Iterable[tuple[int, int]]) -> Decimal | None:
    """Mean of staff_on_duty / staff_rostered over the (on_duty, rostered) pairs."""
    ratios = [Decimal(on_duty) / Decimal(rostered) for on_duty, rostered in checks]
    return rate(sum(ratios) / len(ratios)) if ratios else None


def cooperation(marks: Iterable[int]) -> Decimal | None:
    """Mean of 0–100 marks, as a rate 0–1."""
    marks = list(marks)
    return rate(Decimal(sum(marks)) / (100 * len(marks))) if marks else None


def satisfaction(*, star_total: int, answers: int) -> Decimal | None:
    """(mean stars − 1) / 4 over `answers` star answers summing to `star_total`."""
    if not answers:
        return None
    return rate((Decimal(star_total) / answers - 1) / 4)


def combine(
    figures: Mapping[str, Decimal | None], weights: Mapping[str, Decimal]
) -> Decimal | None:
    """The weighted mean of the components that have data (see the module docstring)."""
    present = {name: value for name, value in figures.items() if value is not None}
    total_weight = sum((Decimal(weights.get(name, 0)) for name in present), Decimal(0))
    if not total_weight:
        return None
    weighted = sum(
        (Decimal(weights.get(name, 0)) * value for name, value in present.items()), Decimal(0)
    )
    return rate(weighted / total_weight)
