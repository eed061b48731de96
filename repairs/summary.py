"""What a ticket counts for in the dashboards' per-estate, per-month summary
(community.summaries), by the rules of repairs.selectors.handling_figures: the month it was
filed in (the project's time zone); counted unless cancelled; handled when resolved or closed,
within the SLA when no deadline was missed; rated and satisfied (4 or 5 stars) by its rating.
Filing, every transition, the escalation job and the rating report their change here, in their
own transaction, as one statement."""

from django.utils import timezone

from community import summaries
from community.periods import Period
from repairs.models import HANDLED_STATUSES, Status, Ticket


def period_of(ticket: Ticket) -> str:
    filed = timezone.localtime(ticket.created_at, timezone.get_default_timezone())
    return str(Period(filed.year, filed.month))


def figures(*, status: str, sla_breached: bool, stars: int | None) -> dict[str, int]:
    if status == Status.CANCELLED:
        return {}
    handled = status in HANDLED_STATUSES
    rated = stars is not None
    return {
        "tickets_total": 1,
        "tickets_handled": int(handled),
        "tickets_handled_within_sla": int(handled and not sla_breached),
        "tickets_rated": int(rated),
        "tickets_satisfied": int(rated and stars >= 4),
        "tickets_stars": stars or 0,
    }


def ticket_moved(ticket: Ticket, *, before: dict, after: dict) -> int:
    """`before` and `after`: figures() of the ticket before and after the change."""
    deltas = summaries.Deltas()
    deltas.move((ticket.community_id, period_of(ticket)), before, after)
    return summaries.add(deltas)
