"""Row locks for money, always taken in primary-key order so two transactions can never lock
the same rows in opposite orders and deadlock."""

from collections.abc import Iterable

from billing.models import Account, Bill, Payment


def accounts_for_update(ids: Iterable[int]) -> dict[int, Account]:
    rows = Account.objects.filter(pk__in=set(ids)).order_by("pk").select_for_update(of=("self",))
    return {row.pk: row for row in rows}


def bills_for_update(ids: Iterable[int]) -> list[Bill]:
    return list(
        Bill.objects.filter(pk__in=set(ids))
        .select_related("household__building", "community")
        .order_by("pk")
        .select_for_update(of=("self",))
    )


def payment_for_update(payment_id: int) -> Payment:
    return Payment.objects.select_for_update(of=("self",)).get(pk=payment_id)
