"""Dashboard pages and exports over alliance.kpis (thin views; the figures are counted there).

- dashboard-community: one estate's month and its twelve-month trend, for its residents, its
  owners' committee, its property staff and the centre's admins (the centre's drill-down too);
- dashboard-centre: every estate of the centre admin's centres side by side for a month, sortable,
  with the centre's trend per figure; a fixed number of queries whatever the number of estates;
- dashboard-company: property staff's estates: the open queue by age, ratings by dimension, the
  scorecard trend;
- exports: each dashboard table as CSV or XLSX (Chinese column headers unless ?headers=en), and
  the bills and payments of a month for the centre's accountants, with totals.

Charts are drawn by the vendored Chart.js (static/vendor/chartjs/) from data in a json_script;
the same numbers are always in a table beside them.
"""

import csv
import io
from decimal import ROUND_HALF_UP, Decimal

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext, pgettext_lazy

from alliance import kpis, selectors
from alliance.kpi_api import may_read_kpis
from billing import reconciliation
from billing import selectors as billing_selectors
from billing.models import Bill, Payment, PaymentItem
from billing.money import ZERO
from community import selectors as community_selectors
from community.models import Community, Role
from community.periods import Period

TREND_MONTHS = 12
HUNDRED = Decimal(100)

# Column key -> header. Exports are read by the centre's staff in Excel, hence Chinese headers
# (and statuses) by default whatever the page's language; ?headers=en gives the English ones.
# Their own context: an accountant's column names, shorter than the page's.
CENTRE_COLUMNS = {
    "community": pgettext_lazy("export column", "Community"),
    "households": pgettext_lazy("export column", "Households"),
    "bills_due": pgettext_lazy("export column", "Bills due"),
    "bills_paid": pgettext_lazy("export column", "Bills paid"),
    "collection_rate": pgettext_lazy("export column", "Collection rate"),
    "held": pgettext_lazy("export column", "Escrow balance"),
    "withheld": pgettext_lazy("export column", "Of which withheld"),
    "released": pgettext_lazy("export column", "Released to company"),
    "open": pgettext_lazy("export column", "Open tickets"),
    "overdue": pgettext_lazy("export column", "Overdue tickets"),
    "tickets_total": pgettext_lazy("export column", "Tickets"),
    "handling_rate": pgettext_lazy("export column", "Handling rate"),
    "satisfaction_rate": pgettext_lazy("export column", "Satisfaction rate"),
    "score": pgettext_lazy("export column", "Score"),
}
SORTABLE = set(CENTRE_COLUMNS)
# The page's column headers, in the reader's language.
PAGE_COLUMNS = {
    "community": gettext_lazy("Community"),
    "households": gettext_lazy("Households"),
    "bills_due": gettext_lazy("Bills due"),
    "bills_paid": gettext_lazy("Bills paid"),
    "collection_rate": gettext_lazy("Collection rate"),
    "held": gettext_lazy("Held in escrow"),
    "withheld": gettext_lazy("Of which withheld"),
    "released": gettext_lazy("Released to company"),
    "open": gettext_lazy("Open tickets"),
    "overdue": gettext_lazy("Overdue tickets"),
    "tickets_total": gettext_lazy("Reports and repairs"),
    "handling_rate": gettext_lazy("Handling rate"),
    "satisfaction_rate": gettext_lazy("Satisfaction rate"),
    "score": gettext_lazy("Scorecard score"),
}
BILL_COLUMNS = {
    "community": pgettext_lazy("export column", "Community"),
    "household": pgettext_lazy("export column", "Household"),
    "period": pgettext_lazy("export column", "Period"),
    "amount": pgettext_lazy("export column", "Amount due"),
    "status": pgettext_lazy("export column", "Status"),
    "collected": pgettext_lazy("export column", "Collected"),
    "held_in_escrow": pgettext_lazy("export column", "Held in escrow"),
    "held_back": pgettext_lazy("export column", "Of which withheld"),
    "paid_to_company": pgettext_lazy("export column", "Paid to company"),
    "forfeited_to_fund": pgettext_lazy("export column", "Forfeited to public fund"),
    "refunded": pgettext_lazy("export column", "Refunded"),
    "payments": pgettext_lazy("export column", "Payments"),
}
MONEY_COLUMNS = (
    "amount",
    "collected",
    "held_in_escrow",
    "held_back",
    "paid_to_company",
    "forfeited_to_fund",
    "refunded",
)


class BadPeriod(Exception):
    pass


def _period(request) -> Period:
    text = request.GET.get("period")
    if not text:
        return Period.current()
    try:
        return Period.parse(text)
    except ValueError:
        raise BadPeriod from None


def _percent(value: Decimal | None) -> str:
    if value is None:
        return "—"
    return f"{(value * HUNDRED).quantize(Decimal('1'), ROUND_HALF_UP)}%"


def _trend_series(grid, scores, community_ids, periods) -> dict:
    """Per figure, one value per month over `community_ids` together (counts summed, rates from
    the sums; the score averaged over the estates that have one). Floats are for drawing only."""
    series = {"labels": [str(p) for p in periods], "figures": []}
    rows = []
    for period in periods:
        cells = [grid[(c, period)] for c in community_ids]
        due = sum(k.bills_due for k in cells)
        paid = sum(k.bills_paid for k in cells)
        total = sum(k.tickets_total for k in cells)
        handled = sum(k.tickets_handled for k in cells)
        rated = sum(k.tickets.rated for k in cells)
        satisfied = sum(k.tickets.satisfied for k in cells)
        known = [scores[(c, period)] for c in community_ids if scores.get((c, period)) is not None]
        score = (sum(known, Decimal(0)) / len(known)).quantize(Decimal("0.0001")) if known else None
        rows.append(
            {
                "period": period,
                "bills_due": due,
                "bills_paid": paid,
                # In the trend a month with nothing to count is a gap, not a 0% (the KPI
                # endpoint's contract wants a string there, hence 0.0000 only in the API).
                "collection_rate": kpis.rate(paid, due) if due else None,
                "tickets_total": total,
                "tickets_handled": handled,
                "handling_rate": kpis.rate(handled, total) if total else None,
                "satisfaction_rate": kpis.rate(satisfied, rated) if rated else None,
                "score": score,
            }
        )
    for key, label in (
        ("collection_rate", _("Collection rate")),
        ("handling_rate", _("Handling rate")),
        ("satisfaction_rate", _("Satisfaction rate")),
        ("score", _("Scorecard score")),
        ("tickets_total", _("Reports and repairs")),
    ):
        series["figures"].append(
            {
                "key": key,
                "label": label,
                "percent": key != "tickets_total",
                "values": [
                    None
                    if row[key] is None
                    else (float(row[key] * HUNDRED) if key != "tickets_total" else row[key])
                    for row in rows
                ],
            }
        )
    return {"chart": series, "rows": rows}


# --- centre -----------------------------------------------------------------------------------


def _centre_communities(user) -> list[Community]:
    communities = list(
        community_selectors.community_list(user=user, roles=[Role.CENTRE_ADMIN]).order_by(
            "name", "pk"
        )
    )
    if not communities and not user.is_superuser:
        raise PermissionDenied(_("Only the centre's admins see the centre dashboard."))
    return communities


def centre_table(*, communities: list[Community], period: Period) -> dict:
    """The centre dashboard's figures: a row per estate for `period`, and the centre's trend over
    twelve months. A fixed number of queries (see alliance.kpis)."""
    ids = [c.pk for c in communities]
    periods = [period.plus(-n) for n in range(TREND_MONTHS - 1, -1, -1)]
    grid = kpis.kpi_grid(community_ids=ids, until=period, months=TREND_MONTHS)
    scores = kpis.score_grid(community_ids=ids, until=period, months=TREND_MONTHS)
    escrow = kpis.escrow_grid(community_ids=ids)
    tickets_open = kpis.open_tickets_grid(community_ids=ids)
    rows = []
    for community in communities:
        figures = grid[(community.pk, period)]
        open_, overdue = tickets_open[community.pk]
        rows.append(
            {
                "community": community.name,
                "community_id": community.pk,
                "households": figures.households,
                "bills_due": figures.bills_due,
                "bills_paid": figures.bills_paid,
                "collection_rate": figures.collection_rate,
                "held": escrow[community.pk]["held"],
                "withheld": escrow[community.pk]["withheld"],
                "released": escrow[community.pk]["released"],
                "open": open_,
                "overdue": overdue,
                "tickets_total": figures.tickets_total,
                "handling_rate": figures.handling_rate,
                "satisfaction_rate": figures.satisfaction_rate,
                "score": scores.get((community.pk, period)),
            }
        )
    return {"rows": rows, "trend": _trend_series(grid, scores, ids, periods)}


def _sorted(rows: list[dict], sort: str, descending: bool) -> list[dict]:
    if sort not in SORTABLE:
        return rows
    present = [r for r in rows if r[sort] is not None]
    missing = [r for r in rows if r[sort] is None]  # a month without a score: always last
    return sorted(present, key=lambda r: r[sort], reverse=descending) + missing


@login_required
def centre(request):
    try:
        period = _period(request)
    except BadPeriod:
        return HttpResponseBadRequest(_("Use the form YYYY-MM."))
    communities = _centre_communities(request.user)
    table = centre_table(communities=communities, period=period)
    sort = request.GET.get("sort", "community")
    descending = request.GET.get("dir") == "desc"
    context = {
        "period": period,
        "periods": [Period.current().plus(-n) for n in range(TREND_MONTHS + 1)],
        "rows": _sorted(table["rows"], sort, descending),
        "trend": table["trend"],
        "columns": list(PAGE_COLUMNS.items()),
        "sort": sort,
        "descending": descending,
        # The money checks a centre admin acts on: the gateways' statements that disagree with
        # the ledger, and money captured that only a refund can settle.
        "statement_differences": reconciliation.reconciliation_difference_summary(
            user=request.user
        ),
        "in_suspense": billing_selectors.payments_in_suspense(
            community_ids=[c.pk for c in communities]
        ),
    }
    return render(request, "alliance/dashboard_centre.html", context)


# --- one estate -------------------------------------------------------------------------------


@login_required
def community(request, community_id: int):
    try:
        period = _period(request)
    except BadPeriod:
        return HttpResponseBadRequest(_("Use the form YYYY-MM."))
    try:
        estate = community_selectors.community_get(user=request.user, community_id=community_id)
    except (Community.DoesNotExist, ValueError, OverflowError):
        raise Http404 from None
    if not may_read_kpis(user=request.user, community=estate):
        raise PermissionDenied(_("You may not read this estate's figures."))
    figures = kpis.community_kpis(community=estate, period=period)
    periods = [period.plus(-n) for n in range(TREND_MONTHS - 1, -1, -1)]
    grid = kpis.kpi_grid(community_ids=[estate.pk], until=period, months=TREND_MONTHS)
    scores = kpis.score_grid(community_ids=[estate.pk], until=period, months=TREND_MONTHS)
    context = {
        "community": estate,
        "period": period,
        "previous_period": period.previous(),
        "next_period": period.next() if period < Period.current() else None,
        "figures": figures,
        "headline": {
            "paid": _percent(figures.collection_rate),
            "tickets": figures.tickets_total,
            "handled": _percent(figures.handling_rate),
            "satisfied": _percent(figures.satisfaction_rate),
        },
        "escrow": billing_selectors.escrow_summary(community=estate),
        "trend": _trend_series(grid, scores, [estate.pk], periods),
    }
    return render(request, "alliance/dashboard_community.html", context)


# --- company ----------------------------------------------------------------------------------


@login_required
def company(request):
    communities = list(
        community_selectors.community_list(user=request.user, roles=[Role.PROPERTY_STAFF]).order_by(
            "name", "pk"
        )
    )
    if not communities:
        raise PermissionDenied(_("Only property staff see the company view."))
    try:
        period = _period(request)
    except BadPeriod:
        return HttpResponseBadRequest(_("Use the form YYYY-MM."))
    ids = [c.pk for c in communities]
    ages = kpis.open_tickets_by_age(community_ids=ids)
    scores = kpis.score_grid(community_ids=ids, until=period, months=TREND_MONTHS)
    periods = [period.plus(-n) for n in range(TREND_MONTHS - 1, -1, -1)]
    estates = []
    for estate in communities:
        estates.append(
            {
                "community": estate,
                "ages": ages[estate.pk],
                "open": sum(ages[estate.pk].values()),
                # One aggregate query per estate: a company runs a handful of estates.
                "ratings": selectors.rating_summary(community=estate, period=period),
                "scores": [(p, scores.get((estate.pk, p))) for p in periods],
            }
        )
    chart = {
        "labels": [str(p) for p in periods],
        "figures": [
            {
                "key": f"score-{row['community'].pk}",
                "label": row["community"].name,
                "percent": True,
                "values": [None if s is None else float(s * HUNDRED) for _p, s in row["scores"]],
            }
            for row in estates
        ],
    }
    context = {
        "period": period,
        "periods": [Period.current().plus(-n) for n in range(TREND_MONTHS + 1)],
        "estates": estates,
        "age_buckets": ["0-1", "2-3", "4-7", "8+"],
        "chart": chart,
    }
    return render(request, "alliance/dashboard_company.html", context)


# --- exports ----------------------------------------------------------------------------------


def _export_language(request) -> str:
    return "en" if request.GET.get("headers") == "en" else "zh-hans"


def _headers(columns: dict) -> list[str]:
    return [str(label) for label in columns.values()]


EXPORT_FORMATS = ("csv", "xlsx")


def _download(request, *, fmt: str, name: str, headers: list[str], rows: list[list]):
    if fmt == "csv":
        buffer = io.StringIO()
        buffer.write("\ufeff")  # a BOM: Excel then opens the UTF-8 file with Chinese intact
        writer = csv.writer(buffer)
        writer.writerow(headers)
        writer.writerows([["" if v is None else str(v) for v in row] for row in rows])
        response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    else:
        from openpyxl import Workbook

        book = Workbook()
        sheet = book.active
        sheet.title = name[:31]
        sheet.append(headers)
        for row in rows:
            # openpyxl writes a Decimal as a numeric cell from its exact text (no float on our
            # side), so Excel can sum it.
            sheet.append(list(row))
        out = io.BytesIO()
        book.save(out)
        response = HttpResponse(
            out.getvalue(),
            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
    response["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    return response


@login_required
def centre_export(request, fmt: str):
    if fmt not in EXPORT_FORMATS:
        raise Http404
    try:
        period = _period(request)
    except BadPeriod:
        return HttpResponseBadRequest(_("Use the form YYYY-MM."))
    communities = _centre_communities(request.user)
    table = centre_table(communities=communities, period=period)
    rows = [[row[key] for key in CENTRE_COLUMNS] for row in table["rows"]]
    with translation.override(_export_language(request)):
        headers = _headers(CENTRE_COLUMNS)
    return _download(request, fmt=fmt, name=f"centre-{period}", headers=headers, rows=rows)


def bill_rows(*, communities: list[Community], period: Period) -> list[dict]:
    """Every bill of `period` of these estates, with where the money collected for it is now
    (billing.selectors.whereabouts of each item of a completed payment). Two queries."""
    completed = PaymentItem.objects.filter(
        payment__status__in=[Payment.Status.SUCCEEDED, Payment.Status.REFUNDED]
    ).select_related("payment")
    bills = (
        Bill.objects.filter(community__in=communities, period=str(period))
        .exclude(status=Bill.Status.VOID)
        .select_related("community", "household__building")
        .prefetch_related(Prefetch("payment_items", queryset=completed, to_attr="completed"))
        .order_by("community__name", "community_id", "household_id")
    )
    rows = []
    for bill in bills:
        row = {
            "community": bill.community.name,
            "household": str(bill.household),
            "period": bill.period,
            "amount": bill.amount,
            "status": bill.get_status_display(),
            "collected": ZERO,
            "held_in_escrow": ZERO,
            "held_back": ZERO,
            "paid_to_company": ZERO,
            "forfeited_to_fund": ZERO,
            "refunded": ZERO,
            "payments": " ".join(item.payment.out_trade_no for item in bill.completed),
        }
        for item in bill.completed:
            where = billing_selectors.whereabouts(item)
            row["collected"] += where.amount
            row["held_in_escrow"] += where.held_in_escrow
            row["held_back"] += where.held_back
            row["paid_to_company"] += where.paid_to_company
            row["forfeited_to_fund"] += where.forfeited_to_fund
            row["refunded"] += where.refunded
        rows.append(row)
    return rows


@login_required
def bills_export(request, fmt: str):
    """For the accountants: the month's bills and what was collected for them, with a totals
    row. collected = held in escrow + paid to company + forfeited + refunded on every row."""
    if fmt not in EXPORT_FORMATS:
        raise Http404
    try:
        period = _period(request)
    except BadPeriod:
        return HttpResponseBadRequest(_("Use the form YYYY-MM."))
    communities = _centre_communities(request.user)
    with translation.override(_export_language(request)):  # the statuses too
        rows = bill_rows(communities=communities, period=period)
        headers = _headers(BILL_COLUMNS)
        totals = [pgettext("export column", "Total")] + [""] * (len(BILL_COLUMNS) - 1)
    table = [[row[key] for key in BILL_COLUMNS] for row in rows]
    keys = list(BILL_COLUMNS)
    for key in MONEY_COLUMNS:
        totals[keys.index(key)] = sum((row[key] for row in rows), ZERO)
    table.append(totals)
    return _download(
        request,
        fmt=fmt,
        name=f"bills-{period}",
        headers=headers,
        rows=table,
    )
