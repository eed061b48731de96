"""The key figures (KPIs) of an estate for a month, and the same figures for many estates and
months at once for the dashboards. Every figure is counted from the records as they are now.

Definitions (also in the README):
- households: the community's households (all of them, occupied or not);
- bills_due: the community's bills of the month, except waived ones (a waived bill is owed by
  nobody);
- bills_paid: of those, the ones paid in full (status paid; partly paid ones are not counted);
- collection_rate (缴费率): bills_paid ÷ bills_due;
- tickets_total: incident reports and repair requests filed in the month, except those the filer
  cancelled (repairs.selectors.handling_figures);
- tickets_handled: of those, resolved or closed;
- handling_rate (处理率): tickets_handled ÷ tickets_total. Not the scorecard's handling component,
  which counts only tickets handled within their SLA;
- satisfaction_rate (满意率): of the month's tickets that were rated, the share rated 4 or 5 stars.

Rates are Decimals with 4 places (0–1). A rate without a denominator (nothing due, no tickets,
nothing rated) is 0.0000: a defined value, never a division by zero; the counts beside it show
why.

The single-estate figures (`community_kpis`) use repairs.selectors.handling_figures directly.
The dashboards need every estate of a centre for twelve months, so `kpi_grid` asks the database
for all of them grouped by estate and month in a fixed number of queries; it builds the same
HandlingFigures from the grouped counts, and a test checks that both agree.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Avg, Count, Q, Sum
from django.db.models.functions import TruncMonth
from django.utils import timezone

from alliance.models import Scorecard
from billing.models import Account, Bill, LedgerTransaction, PaymentItem, Posting
from billing.money import ZERO, fen
from community.models import Community, Household
from community.periods import Period
from repairs import selectors as repairs_selectors
from repairs.models import HANDLED_STATUSES, OPEN_STATUSES, Status, Ticket

FOUR_PLACES = Decimal("0.0001")


def rate(part: int, whole: int) -> Decimal:
    """part ÷ whole to 4 places, half up; 0.0000 when whole is 0."""
    if not whole:
        return Decimal("0.0000")
    return (Decimal(part) / Decimal(whole)).quantize(FOUR_PLACES, ROUND_HALF_UP)


@dataclass(frozen=True)
class Kpis:
    community_id: int
    period: Period
    households: int
    bills_due: int
    bills_paid: int
    tickets: repairs_selectors.HandlingFigures

    @property
    def collection_rate(self) -> Decimal:
        return rate(self.bills_paid, self.bills_due)

    @property
    def tickets_total(self) -> int:
        return self.tickets.total

    @property
    def tickets_handled(self) -> int:
        return self.tickets.handled

    @property
    def handling_rate(self) -> Decimal:
        return rate(self.tickets.handled, self.tickets.total)

    @property
    def satisfaction_rate(self) -> Decimal:
        return rate(self.tickets.satisfied, self.tickets.rated)

    def as_dict(self) -> dict:
        """The API contract's shape: counts as numbers, rates as strings with 4 decimals."""
        return {
            "households": self.households,
            "bills_due": self.bills_due,
            "bills_paid": self.bills_paid,
            "collection_rate": str(self.collection_rate),
            "tickets_total": self.tickets_total,
            "tickets_handled": self.tickets_handled,
            "handling_rate": str(self.handling_rate),
            "satisfaction_rate": str(self.satisfaction_rate),
        }


# Bills: billing.selectors has reads per user and per household but no count per estate and
# month, so the two counts are made here, on the bill's own `community` and `period` columns.
# A void bill (a prepaid month whose payment failed) was never owed: the month's own bill is.
_DUE = ~Q(status__in=[Bill.Status.WAIVED, Bill.Status.VOID])
_PAID = Q(status=Bill.Status.PAID)


def community_kpis(*, community: Community, period: Period) -> Kpis:
    """One estate's figures for one month: three aggregate queries."""
    bills = Bill.objects.filter(community=community, period=str(period)).aggregate(
        due=Count("pk", filter=_DUE), paid=Count("pk", filter=_PAID)
    )
    return Kpis(
        community_id=community.pk,
        period=period,
        households=Household.objects.filter(building__community=community).count(),
        bills_due=bills["due"],
        bills_paid=bills["paid"],
        tickets=repairs_selectors.handling_figures(community=community, period=period),
    )


def _periods(until: Period, months: int) -> list[Period]:
    return [until.plus(-n) for n in range(months - 1, -1, -1)]


def _average(value) -> Decimal | None:
    if value is None:
        return None
    return Decimal(str(value)).quantize(Decimal("0.01"), ROUND_HALF_UP)


def kpi_grid(*, community_ids: list[int], until: Period, months: int = 12) -> dict:
    """{(community_id, period): Kpis} for every estate and each of the `months` months up to
    `until`: three grouped queries, whatever the number of estates and months."""
    periods = _periods(until, months)
    names = [str(p) for p in periods]
    households = dict(
        Household.objects.filter(building__community_id__in=community_ids)
        .order_by()
        .values("building__community_id")
        .annotate(n=Count("pk"))
        .values_list("building__community_id", "n")
    )
    # Grouped by status too: the (community, period, status) index answers it on its own.
    # order_by(): Bill's Meta.ordering (by household) would otherwise join the household,
    # building and community tables into the aggregate (the same in the queries below).
    bills = defaultdict(lambda: {"due": 0, "paid": 0})
    for community_id, period, status, count in (
        Bill.objects.filter(community_id__in=community_ids, period__in=names)
        .order_by()
        .values("community_id", "period", "status")
        .annotate(n=Count("*"))
        .values_list("community_id", "period", "status", "n")
    ):
        if status not in (Bill.Status.WAIVED, Bill.Status.VOID):
            bills[(community_id, period)]["due"] += count
        if status == Bill.Status.PAID:
            bills[(community_id, period)]["paid"] += count
    # The same rules as repairs.selectors.handling_figures, grouped by estate and month.
    start, _ = repairs_selectors.period_bounds(periods[0])
    _, end = repairs_selectors.period_bounds(periods[-1])
    handled = Q(status__in=HANDLED_STATUSES)
    tickets = {}
    for row in (
        Ticket.objects.filter(
            community_id__in=community_ids, created_at__gte=start, created_at__lt=end
        )
        .exclude(status=Status.CANCELLED)
        .order_by()
        .annotate(month=TruncMonth("created_at", tzinfo=timezone.get_default_timezone()))
        .values("community_id", "month")
        .annotate(
            total=Count("pk"),
            handled=Count("pk", filter=handled),
            handled_within_sla=Count("pk", filter=handled & Q(sla_breached=False)),
            rated=Count("rating"),
            satisfied=Count("rating", filter=Q(rating__stars__gte=4)),
            average_stars=Avg("rating__stars"),
        )
    ):
        month = row["month"]
        key = (row["community_id"], str(Period(month.year, month.month)))
        tickets[key] = row
    grid = {}
    for community_id in community_ids:
        for period in periods:
            key = (community_id, str(period))
            bill = bills.get(key, {"due": 0, "paid": 0})
            ticket = tickets.get(key, {})
            grid[(community_id, period)] = Kpis(
                community_id=community_id,
                period=period,
                households=households.get(community_id, 0),
                bills_due=bill["due"],
                bills_paid=bill["paid"],
                tickets=repairs_selectors.HandlingFigures(
                    community_id=community_id,
                    period=period,
                    total=ticket.get("total", 0),
                    handled=ticket.get("handled", 0),
                    handled_within_sla=ticket.get("handled_within_sla", 0),
                    rated=ticket.get("rated", 0),
                    satisfied=ticket.get("satisfied", 0),
                    average_stars=_average(ticket.get("average_stars")),
                ),
            )
    return grid


def escrow_grid(*, community_ids: list[int]) -> dict[int, dict[str, Decimal]]:
    """billing.selectors.escrow_summary for many estates in three grouped queries (the same
    sums; a test checks both agree)."""
    balances = defaultdict(dict)
    for community_id, kind, balance in Account.objects.filter(
        community_id__in=community_ids
    ).values_list("community_id", "kind", "balance"):
        balances[community_id][kind] = balance
    refunded = dict(
        Posting.objects.filter(
            transaction__kind=LedgerTransaction.Kind.REFUND,
            account__community_id__in=community_ids,
        )
        .order_by()
        .values("account__community_id")
        .annotate(total=Sum("amount"))
        .values_list("account__community_id", "total")
    )
    withheld = dict(
        PaymentItem.objects.filter(bill__community_id__in=community_ids)
        .order_by()
        .values("bill__community_id")
        .annotate(total=Sum("held_back"))
        .values_list("bill__community_id", "total")
    )
    return {
        community_id: {
            "held": fen(-balances[community_id].get(Account.Kind.ESCROW, ZERO)),
            "released": fen(-balances[community_id].get(Account.Kind.COMPANY_PAYABLE, ZERO)),
            "withheld": fen(withheld.get(community_id) or ZERO),
            "forfeited_to_fund": fen(-balances[community_id].get(Account.Kind.PUBLIC_FUND, ZERO)),
            "refunded": fen(refunded.get(community_id) or ZERO),
        }
        for community_id in community_ids
    }


def open_tickets_grid(*, community_ids: list[int], now: datetime | None = None) -> dict:
    """{community_id: (open, overdue)}: tickets still waiting for the company's work now, and of
    those the ones past their current deadline. One grouped query."""
    now = now or timezone.now()
    rows = (
        Ticket.objects.filter(community_id__in=community_ids, status__in=OPEN_STATUSES)
        .order_by()
        .values("community_id")
        .annotate(open=Count("pk"), overdue=Count("pk", filter=Q(next_due__lt=now)))
        .values_list("community_id", "open", "overdue")
    )
    found = {community_id: (open_, overdue) for community_id, open_, overdue in rows}
    return {community_id: found.get(community_id, (0, 0)) for community_id in community_ids}


def open_tickets_by_age(*, community_ids: list[int], now: datetime | None = None) -> dict:
    """{community_id: {bucket: count}} of open tickets by days since filing (0–1, 2–3, 4–7,
    over 7). One grouped query."""
    now = now or timezone.now()
    buckets = {
        "0-1": Q(created_at__gt=now - timedelta(days=2)),
        "2-3": Q(created_at__lte=now - timedelta(days=2), created_at__gt=now - timedelta(days=4)),
        "4-7": Q(created_at__lte=now - timedelta(days=4), created_at__gt=now - timedelta(days=8)),
        "8+": Q(created_at__lte=now - timedelta(days=8)),
    }
    rows = (
        Ticket.objects.filter(community_id__in=community_ids, status__in=OPEN_STATUSES)
        .order_by()
        .values("community_id")
        .annotate(**{f"b{n}": Count("pk", filter=q) for n, q in enumerate(buckets.values())})
    )
    found = {
        row["community_id"]: {name: row[f"b{n}"] for n, name in enumerate(buckets)} for row in rows
    }
    empty = dict.fromkeys(buckets, 0)
    return {community_id: found.get(community_id, empty) for community_id in community_ids}


def score_grid(*, community_ids: list[int], until: Period, months: int = 12) -> dict:
    """{(community_id, period): score or None} of the published scorecards. One query."""
    periods = _periods(until, months)
    rows = Scorecard.objects.filter(
        community_id__in=community_ids,
        is_current=True,
        period__gte=str(periods[0]),
        period__lte=str(periods[-1]),
    ).values_list("community_id", "period", "score")
    return {(community_id, Period.parse(p)): score for community_id, p, score in rows}
