"""Row locks for money, always taken in primary-key order so two transactions can never lock
the same rows in opposite orders and deadlock.

The locks a payment's create and its gateway notification take are written out in SQL (raw
querysets, so the models' converters still apply): every payment of the due-day rush runs them,
and the ORM spent more CPU building and compiling those few statements than anything else the
two requests do (bench/profile_payment_cycle.py). The others stay ORM querysets."""

from collections.abc import Iterable

from django.db import connection
from django.db.models import QuerySet

from billing.models import Account, Bill, Payment, PaymentItem
from community import selectors as community_selectors


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _for_update(alias: str) -> str:
    """FOR UPDATE of one table's rows where the database has row locks. SQLite has none (a
    write transaction locks the whole database), as Django's select_for_update knows."""
    return f" FOR UPDATE OF {alias}" if connection.features.has_select_for_update else ""


def accounts_for_update(ids: Iterable[int]) -> dict[int, Account]:
    rows = Account.objects.filter(pk__in=set(ids)).order_by("pk").select_for_update(of=("self",))
    return {row.pk: row for row in rows}


def bills_for_update(ids: Iterable[int], *, households: QuerySet | None = None) -> list[Bill]:
    """The bills, locked in primary-key order. With `households` (a scoping queryset), only
    those of these households: a bill outside the caller's scope is neither returned nor
    locked, in the same statement (a payment's create once counted the scope separately)."""
    bills = Bill.objects.filter(pk__in=set(ids))
    if households is not None:
        bills = bills.filter(household__in=households.values("pk"))
    return list(
        bills.select_related("household__building", "community")
        .order_by("pk")
        .select_for_update(of=("self",))
    )


def payer_bills_for_update(ids: Iterable[int], *, payer) -> list[Bill]:
    """bills_for_update(ids, households=household_list(user=payer, roles=[RESIDENT])) for a
    payment's create: the payer's own bills among `ids`, locked in primary-key order; a bill
    of another household is neither returned nor locked. No household or building is joined:
    a payment's create reads the bills alone."""
    scope = community_selectors.resident_households_sql(user=payer)
    if scope is None:  # a superuser (every household) or an inactive user (none)
        visible = community_selectors.household_list(
            user=payer, roles=[community_selectors.RESIDENT]
        )
        return bills_for_update(ids, households=visible)
    scope_sql, scope_params = scope
    ids = sorted(set(ids))
    if not ids:
        return []
    placeholders = ", ".join(["%s"] * len(ids))
    sql = (
        f'SELECT b.* FROM {_table(Bill)} b WHERE b."id" IN ({placeholders}) '
        f'AND b."household_id" IN ({scope_sql}) ORDER BY b."id"{_for_update("b")}'
    )
    return list(Bill.objects.raw(sql, [*ids, *scope_params]))


def payment_items_with_bills_for_update(payment_id: int) -> list[PaymentItem]:
    """A payment's items in bill order, each with its bill, the bills locked in primary-key
    order as bills_for_update does. Two short statements: the bills through the payment's
    items, locked, then the items."""
    bills = {
        bill.pk: bill
        for bill in Bill.objects.raw(
            f'SELECT b.* FROM {_table(Bill)} b WHERE b."id" IN '
            f'(SELECT "bill_id" FROM {_table(PaymentItem)} WHERE "payment_id" = %s) '
            f'ORDER BY b."id"{_for_update("b")}',
            [payment_id],
        )
    }
    items = list(
        PaymentItem.objects.raw(
            f'SELECT * FROM {_table(PaymentItem)} WHERE "payment_id" = %s ORDER BY "bill_id", "id"',
            [payment_id],
        )
    )
    for item in items:
        item.bill = bills[item.bill_id]
    return items


def payment_for_update(payment_id: int) -> Payment:
    return Payment.objects.select_for_update(of=("self",)).get(pk=payment_id)


def payment_by_trade_for_update(gateway: str, out_trade_no: str) -> Payment | None:
    """The payment a gateway's notification names, locked; None if there is none."""
    rows = Payment.objects.raw(
        f'SELECT p.* FROM {_table(Payment)} p WHERE p."gateway" = %s AND p."out_trade_no" = %s'
        f"{_for_update('p')}",
        [gateway, out_trade_no],
    )
    return next(iter(rows), None)
