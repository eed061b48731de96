"""Recounting the dashboards' per-estate, per-month summary (community.summary_models) from the
bills and tickets themselves, by the rules billing.summary and repairs.summary keep it by.

- summary_recount(): what every row should hold, in two grouped queries;
- summary_rebuild(): replace the rows by the recount (manage.py summary_rebuild; the data
  migration that created the table; bench/datagen.py after it writes bills and tickets in SQL);
- summary_problems(): every row that differs from its recount (manage.py summary_rebuild
  --check, and the tests' after-every-test check).

The functions take the models as arguments so the migration can pass its historical ones.
"""

from collections import defaultdict

from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncMonth
from django.utils import timezone

from community.summaries import COLUMNS

# Literals rather than the models' choices: the migration's historical models have none.
_NOT_OWED = ("waived", "void")
_HANDLED = ("resolved", "closed")


def _models():
    from billing.models import Bill
    from community.summary_models import EstateMonth
    from repairs.models import Ticket

    return Bill, Ticket, EstateMonth


def summary_recount(bill_model=None, ticket_model=None) -> dict[tuple[int, str], dict[str, int]]:
    """{(community_id, period): {column: count}} for every estate and month with a bill or a
    ticket."""
    if bill_model is None:
        bill_model, ticket_model, _ = _models()
    rows = defaultdict(lambda: dict.fromkeys(COLUMNS, 0))
    for community_id, period, due, paid in (
        bill_model.objects.order_by()
        .values("community_id", "period")
        .annotate(
            due=Count("pk", filter=~Q(status__in=_NOT_OWED)),
            paid=Count("pk", filter=Q(status="paid")),
        )
        .values_list("community_id", "period", "due", "paid")
    ):
        rows[(community_id, period)].update(bills_due=due, bills_paid=paid)
    handled = Q(status__in=_HANDLED)
    for row in (
        ticket_model.objects.exclude(status="cancelled")
        .order_by()
        .annotate(month=TruncMonth("created_at", tzinfo=timezone.get_default_timezone()))
        .values("community_id", "month")
        .annotate(
            total=Count("pk"),
            handled=Count("pk", filter=handled),
            within=Count("pk", filter=handled & Q(sla_breached=False)),
            rated=Count("rating"),
            satisfied=Count("rating", filter=Q(rating__stars__gte=4)),
            stars=Sum("rating__stars"),
        )
    ):
        month = row["month"]
        rows[(row["community_id"], f"{month.year:04d}-{month.month:02d}")].update(
            tickets_total=row["total"],
            tickets_handled=row["handled"],
            tickets_handled_within_sla=row["within"],
            tickets_rated=row["rated"],
            tickets_satisfied=row["satisfied"],
            tickets_stars=row["stars"] or 0,
        )
    return dict(rows)


def summary_rebuild(bill_model=None, ticket_model=None, summary_model=None) -> int:
    """Replace every summary row by its recount. On PostgreSQL the table is locked first
    (EXCLUSIVE: reads go on, the services' upserts wait), so a write that commits meanwhile is
    either in the recount or added after it, never lost or counted twice. Returns the rows."""
    if bill_model is None:
        bill_model, ticket_model, summary_model = _models()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            table = connection.ops.quote_name(summary_model._meta.db_table)
            with connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
        counts = summary_recount(bill_model, ticket_model)
        summary_model.objects.all().delete()
        summary_model.objects.bulk_create(
            [
                summary_model(community_id=community_id, period=period, **figures)
                for (community_id, period), figures in sorted(counts.items())
            ],
            batch_size=2000,
        )
    return len(counts)


def summary_problems() -> list[str]:
    """Each summary row that differs from its recount (a missing row counts as zeros)."""
    _, _, summary_model = _models()
    counts = summary_recount()
    stored = {
        (row["community_id"], row["period"]): {c: row[c] for c in COLUMNS}
        for row in summary_model.objects.values("community_id", "period", *COLUMNS)
    }
    zero = dict.fromkeys(COLUMNS, 0)
    problems = []
    for key in sorted(set(counts) | set(stored)):
        want, have = counts.get(key, zero), stored.get(key, zero)
        if want != have:
            diff = {c: (have[c], want[c]) for c in COLUMNS if have[c] != want[c]}
            problems.append(f"summary of community {key[0]} {key[1]}: (stored, recount) {diff}")
    return problems
