"""Row locks for money, always taken in primary-key order so two transactions can never lock
the same rows in opposite orders and deadlock."""

from collections.abc import Iterable

from django.db.models import QuerySet

from billing.models import Account, Bill, Payment, PaymentItem


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


def payment_items_with_bills_for_update(payment_id: int) -> list[PaymentItem]:
    """A payment's items, each with its bill (and the bill's community), the bills locked in
    primary-key order as bills_for_update does: one query where reading the items and then
    locking their bills took two, on every notification."""
    return list(
        PaymentItem.objects.filter(payment_id=payment_id)
        .select_related("bill__community")
        .order_by("bill_id")
        .select_for_update(of=("bill",))
    )


def payment_for_update(payment_id: int) -> Payment:
    return Payment.objects.select_for_update(of=("self",)).get(pk=payment_id)
