"""Template filters for the alliance pages."""

from decimal import ROUND_HALF_UP, Decimal

from django import template
from django.utils import formats

register = template.Library()


@register.filter
def percent(value) -> str:
    """A 0–1 rate as a percentage with two decimals ("0.9167" -> "91.67%"); "—" without data."""
    if value is None or value == "":
        return "—"
    rounded = (Decimal(value) * 100).quantize(Decimal("0.01"), ROUND_HALF_UP)
    return f"{formats.number_format(rounded, 2)}%"  # the reader's decimal separator
