"""What a bill counts for in the dashboards' per-estate, per-month summary
(community.summaries): owed unless waived or void, paid when its status is paid. Every service
that creates a bill or changes its status reports the change here, in its own transaction, as
one statement (alliance.kpis reads the result)."""

from collections.abc import Iterable

from billing.models import Bill
from community import summaries

_NOT_OWED = (Bill.Status.WAIVED, Bill.Status.VOID)


def figures(status: str) -> dict[str, int]:
    return {
        "bills_due": int(status not in _NOT_OWED),
        "bills_paid": int(status == Bill.Status.PAID),
    }


def bills_created(bills: Iterable[Bill]) -> int:
    """New bills, as they were inserted."""
    deltas = summaries.Deltas()
    for bill in bills:
        deltas.add((bill.community_id, bill.period), figures(bill.status))
    return summaries.add(deltas)


def unpaid_bills_created(*, community_id: int, period: str, count: int) -> int:
    """`count` new unpaid bills of one estate and month (the bill run's, inserted in SQL)."""
    return summaries.add([((community_id, period), {"bills_due": count})])


def bills_moved(moves: Iterable[tuple[Bill, str]]) -> int:
    """(bill, its status before) for bills whose status may have changed; the bill holds the
    status after."""
    deltas = summaries.Deltas()
    for bill, before in moves:
        if bill.status != before:
            deltas.move((bill.community_id, bill.period), figures(before), figures(bill.status))
    return summaries.add(deltas)
