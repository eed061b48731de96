"""Keeping the per-estate, per-month summary (community.summary_models.EstateMonth).

`add` is the one write: a caller that changed bills or tickets passes the difference it made
to each (community, period) and `add` applies all of them in one statement, in the caller's
transaction. The apps that own the records say what a record counts for (billing.summary,
repairs.summary); this module knows only the columns.
"""

from collections import defaultdict
from collections.abc import Iterable

from django.db import connection

from community.summary_models import EstateMonth

COLUMNS = (
    "bills_due",
    "bills_paid",
    "tickets_total",
    "tickets_handled",
    "tickets_handled_within_sla",
    "tickets_rated",
    "tickets_satisfied",
    "tickets_stars",
)

Key = tuple[int, str]  # (community_id, period "YYYY-MM")


class Deltas:
    """Differences to add, collected per (community, period) and column."""

    def __init__(self):
        self.rows: dict[Key, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COLUMNS, 0))

    def add(self, key: Key, figures: dict[str, int], sign: int = 1) -> None:
        row = self.rows[key]
        for column, value in figures.items():
            row[column] += sign * value

    def move(self, key: Key, before: dict[str, int], after: dict[str, int]) -> None:
        """A record that counted for `before` now counts for `after`."""
        self.add(key, after)
        self.add(key, before, -1)

    def changed(self) -> list[tuple[Key, dict[str, int]]]:
        return sorted((key, row) for key, row in self.rows.items() if any(row.values()))


def add(deltas: Deltas | Iterable[tuple[Key, dict[str, int]]]) -> int:
    """Add each row's differences to its summary row, creating the row at 0 first: one
    INSERT ... ON CONFLICT DO UPDATE for all of them (nothing when nothing changed). The rows go
    in (community, period) order, so two writers lock shared rows in the same order; callers
    add after they have locked (and changed) the bills, tickets and ledger accounts concerned,
    so a summary row is always the last lock a transaction takes and holds it briefly. Integers
    only, so the arithmetic is exact on SQLite too. Returns how many rows were written."""
    rows = deltas.changed() if isinstance(deltas, Deltas) else sorted(deltas)
    rows = [(key, values) for key, values in rows if any(values.values())]
    if not rows:
        return 0
    table = connection.ops.quote_name(EstateMonth._meta.db_table)
    columns = ", ".join(COLUMNS)
    updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in COLUMNS)
    placeholders = ", ".join(["(" + ", ".join(["%s"] * (len(COLUMNS) + 2)) + ")"] * len(rows))
    params = []
    for (community_id, period), values in rows:
        params += [community_id, period, *(values.get(c, 0) for c in COLUMNS)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (community_id, period, {columns}) VALUES {placeholders} "
            f"ON CONFLICT (community_id, period) DO UPDATE SET {updates}",
            params,
        )
    return len(rows)
