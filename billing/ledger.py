"""The only code that writes the ledger. Callers open the transaction; `post` checks the legs
balance, locks the accounts, writes the postings and moves the cached balances, or raises."""

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction

from billing import chain
from billing.locks import accounts_for_update
from billing.models import Account, Bill, LedgerTransaction, Posting
from community.models import Centre, Community


class UnbalancedTransaction(ValueError):
    pass


class AlreadyPosted(Exception):
    """A transaction with this idempotency key exists: the event was posted before."""

    def __init__(self, existing: LedgerTransaction):
        super().__init__(existing.idempotency_key)
        self.existing = existing


@dataclass(frozen=True)
class Leg:
    account: Account
    amount: Decimal  # debit positive, credit negative
    bill: Bill | None = None


def _account(kind: str, key: str, **owner) -> Account:
    account, _ = Account.objects.get_or_create(key=key, defaults={"kind": kind, **owner})
    return account


def clearing_account(gateway: str) -> Account:
    return _account(Account.Kind.GATEWAY_CLEARING, f"clearing:{gateway}", gateway=gateway)


def escrow_account(community: Community) -> Account:
    return _account(Account.Kind.ESCROW, f"escrow:{community.pk}", community=community)


def payment_accounts(
    gateway: str | None, communities: list[Community]
) -> tuple[Account | None, dict[int, Account]]:
    """The gateway's clearing account (None for gateway=None: a desk payment brings its own)
    and each community's escrow account (by community id), as clearing_account /
    escrow_account make them, read in one query: a payment needs them all, and every payment of
    the rush otherwise paid one lookup per leg."""
    wanted = {}
    if gateway is not None:
        wanted[f"clearing:{gateway}"] = (Account.Kind.GATEWAY_CLEARING, {"gateway": gateway})
    for community in communities:
        wanted[f"escrow:{community.pk}"] = (Account.Kind.ESCROW, {"community": community})
    found = {account.key: account for account in Account.objects.filter(key__in=wanted)}
    for key, (kind, owner) in wanted.items():
        if key not in found:  # the first payment of a gateway or a community
            found[key] = _account(kind, key, **owner)
    escrows = {community.pk: found[f"escrow:{community.pk}"] for community in communities}
    return found.get(f"clearing:{gateway}"), escrows


def company_payable_account(community: Community) -> Account:
    return _account(
        Account.Kind.COMPANY_PAYABLE,
        f"company_payable:{community.pk}",
        community=community,
        company_id=community.company_id,
    )


def public_fund_account(community: Community) -> Account:
    return _account(Account.Kind.PUBLIC_FUND, f"public_fund:{community.pk}", community=community)


def suspense_account(gateway: str) -> Account:
    """Money a gateway captured that no bill could take (paid after its bills were settled
    otherwise): on the books, owed back to the payer, until refunded."""
    return _account(Account.Kind.GATEWAY_SUSPENSE, f"suspense:{gateway}", gateway=gateway)


def desk_account(centre: Centre, method: str) -> Account:
    """What the centre's desk took by one method: the cash drawers (cash), the centre's bank
    account (transfer), the card acquirer (card)."""
    return _account(
        Account.Kind.DESK_CLEARING, f"desk:{centre.pk}:{method}", centre=centre, method=method
    )


def post(
    *, kind: str, idempotency_key: str, legs: list[Leg], memo: str = "", **links
) -> LedgerTransaction:
    """Write one balanced transaction. Precondition: the caller is inside transaction.atomic().

    Raises UnbalancedTransaction if the legs do not sum to zero (nothing is written), and
    AlreadyPosted if a transaction with this key exists (nothing is written again). A liability
    account driven past zero makes the database refuse the whole transaction (IntegrityError).
    """
    assert transaction.get_connection().in_atomic_block, "post() needs an open transaction"
    legs = [leg for leg in legs if leg.amount != 0]
    if not legs:
        raise UnbalancedTransaction("a transaction needs at least one non-zero leg")
    if any(not isinstance(leg.amount, Decimal) for leg in legs):
        raise TypeError("ledger amounts must be Decimal")
    if sum(leg.amount for leg in legs) != 0:
        raise UnbalancedTransaction(f"legs sum to {sum(leg.amount for leg in legs)}, not 0")

    try:
        with transaction.atomic():
            entry = LedgerTransaction.objects.create(
                kind=kind, idempotency_key=idempotency_key, memo=memo[:200], **links
            )
    except IntegrityError as exc:
        existing = LedgerTransaction.objects.get(idempotency_key=idempotency_key)
        raise AlreadyPosted(existing) from exc

    totals: dict[int, Decimal] = defaultdict(Decimal)
    for leg in legs:
        totals[leg.account.pk] += leg.amount
    locked = accounts_for_update(totals)  # in pk order, before touching balances
    Posting.objects.bulk_create(
        [
            Posting(transaction=entry, account=leg.account, amount=leg.amount, bill=leg.bill)
            for leg in legs
        ]
    )
    for account_id, delta in totals.items():
        if delta:
            # The new balance is computed from the locked row in Decimal rather than with F():
            # on SQLite, F("balance") + delta would be floating-point arithmetic in SQL. Under
            # the row lock (PostgreSQL) or SQLite's single writer, nobody changes it meanwhile.
            Account.objects.filter(pk=account_id).update(balance=locked[account_id].balance + delta)
    chain.append(entry, legs)  # last: the chain's lock is held from here to the commit
    return entry
