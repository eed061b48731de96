"""Template filters for the community-life pages."""

from decimal import Decimal

from django import template
from django.utils import formats, timezone

register = template.Library()


@register.filter
def percent(share: Decimal | None) -> str:
    """A share of 1 with 4 places ("0.7857") as a percentage with 2 ("78.57%"); "–" for none."""
    if share is None or share == "":
        return "–"
    return f"{formats.number_format(Decimal(share) * 100, 2)}%"


@register.simple_tag
def time_span(starts_at, ends_at) -> str:
    """ "2026-10-10 08:30–11:30", with the end's date as well when it ends on another day."""
    start, end = (
        formats.date_format(timezone.localtime(moment), "Y-m-d H:i")
        for moment in (starts_at, ends_at)
    )
    return f"{start}–{end[11:]}" if start[:10] == end[:10] else f"{start} – {end}"
