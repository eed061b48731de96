"""The key figures (KPIs) of an estate for a month, and the same figures for many estates and
months at once for the dashboards.

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

The single-estate figures (`community_kpis`) are counted from the bills and tickets (and
repairs.selectors.handling_figures). The dashboards need every estate of a centre for twelve
months, so `kpi_grid` reads them from the per-estate, per-month summary rows
(community.summary_models.EstateMonth) that the bill run, payments, refunds, waivers and the
ticket services keep in the same transactions as their writes; it builds the same
HandlingFigures from them, and tests check that both agree and that the summary equals a
recount after any sequence of those writes (alliance.summary).
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Count, Q, Sum
from django.utils import timezone

from alliance.models import Scorecard
from billing.models import Account, Bill, LedgerTransaction, PaymentItem, Posting
from billing.money import ZERO, fen
from community.models import Community, EstateMonth, Household
from community.periods import Period
from repairs import selectors as repairs_selectors
from repairs.models import OPEN_STATUSES, Ticket

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


def _mean(total: int, count: int) -> Decimal | None:
    """total ÷ count to 2 places, half up (as handling_figures rounds its Avg); None for none."""
    if not count:
        return None
    return (Decimal(total) / Decimal(count)).quantize(Decimal("0.01"), ROUND_HALF_UP)


def kpi_grid(*, community_ids: list[int], until: Period, months: int = 12) -> dict:
    """{(community_id, period): Kpis} for every estate and each of the `months` months up to
    `until`: two queries (households by estate, the summary rows), whatever the number of
    estates and months."""
    periods = _periods(until, months)
    names = [str(p) for p in periods]
    households = dict(
        Household.objects.filter(building__community_id__in=community_ids)
        .order_by()
        .values("building__community_id")
        .annotate(n=Count("pk"))
        .values_list("building__community_id", "n")
    )
    # The bills and tickets of each estate and month, as the services keep them counted in the
    # summary rows (community.summaries; alliance.summary recounts them): one row per estate and
    # month read, none of the millions of bills and tickets counted.
    summary = {
        (row.community_id, row.period): row
        for row in EstateMonth.objects.filter(community_id__in=community_ids, period__in=names)
    }
    grid = {}
    for community_id in community_ids:
        for period in periods:
            row = summary.get((community_id, str(period))) or EstateMonth()
            grid[(community_id, period)] = Kpis(
                community_id=community_id,
                period=period,
                households=households.get(community_id, 0),
                bills_due=row.bills_due,
                bills_paid=row.bills_paid,
                tickets=repairs_selectors.HandlingFigures(
                    community_id=community_id,
                    period=period,
                    total=row.tickets_total,
                    handled=row.tickets_handled,
                    handled_within_sla=row.tickets_handled_within_sla,
                    rated=row.tickets_rated,
                    satisfied=row.tickets_satisfied,
                    average_stars=_mean(row.tickets_stars, row.tickets_rated),
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
