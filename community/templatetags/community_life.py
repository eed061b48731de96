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
    """In the reader's formats: "2026年10月10日 08:30–11:30" / "Oct. 10, 2026, 8:30 a.m.–11:30
    a.m.", with the end's date as well when it ends on another day."""
    start, end = (timezone.localtime(moment) for moment in (starts_at, ends_at))
    start_text = formats.date_format(start, "DATETIME_FORMAT")
    if start.date() == end.date():
        return f"{start_text}–{formats.time_format(end)}"
    return f"{start_text} – {formats.date_format(end, 'DATETIME_FORMAT')}"
