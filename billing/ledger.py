"""The only code that writes the ledger. Callers open the transaction; `post` checks the legs
balance, locks the accounts, writes the postings and moves the cached balances, or raises."""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, connection, transaction

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
    gateway: str | None, community_ids: Iterable[int]
) -> tuple[Account | None, dict[int, Account]]:
    """The gateway's clearing account (None for gateway=None: a desk payment brings its own)
    and each community's escrow account (by community id), as clearing_account /
    escrow_account make them, read in one statement, written out in SQL: every payment needs
    them all, and building the same ORM query on each cost more CPU than running it."""
    community_ids = sorted(set(community_ids))
    wanted = {}
    if gateway is not None:
        wanted[f"clearing:{gateway}"] = (Account.Kind.GATEWAY_CLEARING, {"gateway": gateway})
    for community_id in community_ids:
        wanted[f"escrow:{community_id}"] = (Account.Kind.ESCROW, {"community_id": community_id})
    table = connection.ops.quote_name(Account._meta.db_table)
    placeholders = ", ".join(["%s"] * len(wanted))
    rows = Account.objects.raw(
        f'SELECT * FROM {table} WHERE "key" IN ({placeholders})', list(wanted)
    )
    found = {account.key: account for account in rows}
    for key, (kind, owner) in wanted.items():
        if key not in found:  # the first payment of a gateway or a community
            found[key] = _account(kind, key, **owner)
    escrows = {pk: found[f"escrow:{pk}"] for pk in community_ids}
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


def estate_accounts(community: Community, *kinds: str) -> dict[str, Account]:
    """The community's accounts of these kinds (escrow, company payable, public fund), by kind,
    as escrow_account, company_payable_account and public_fund_account make them, read in one
    query (a payout needs two and a release three, one lookup each otherwise); those missing
    (the community's first payout or release) made in one INSERT ... ON CONFLICT DO NOTHING and
    read back, rather than one get_or_create (four statements) each."""
    keys = {kind: f"{kind}:{community.pk}" for kind in kinds}
    found = {account.kind: account for account in Account.objects.filter(key__in=keys.values())}
    missing = [kind for kind in kinds if kind not in found]
    if missing:
        owners = {Account.Kind.COMPANY_PAYABLE: {"company_id": community.company_id}}
        Account.objects.bulk_create(
            [
                Account(kind=kind, key=keys[kind], community=community, **owners.get(kind, {}))
                for kind in missing
            ],
            ignore_conflicts=True,  # made meanwhile by another transaction: read below
        )
        made = Account.objects.filter(key__in=[keys[kind] for kind in missing])
        found.update({account.kind: account for account in made})
    return found


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

    totals: dict[int, Decimal] = defaultdict(Decimal)
    for leg in legs:
        totals[leg.account.pk] += leg.amount
    entry = LedgerTransaction(kind=kind, idempotency_key=idempotency_key, memo=memo[:200], **links)
    if transaction.get_connection().vendor == "postgresql":
        _write_postgresql(entry, legs, totals)
    else:
        _write(entry, legs, totals)
    chain.append(entry, legs)  # last: the chain's lock is held from the write to the commit
    return entry


def _write(entry: LedgerTransaction, legs: list[Leg], totals: dict[int, Decimal]) -> None:
    """`entry`, its postings and the balances through the ORM (SQLite; 4 + one UPDATE per
    account statements): the insert in a savepoint to catch the idempotency key's
    IntegrityError, then the accounts locked, the postings written, each balance moved."""
    try:
        with transaction.atomic():
            entry.save(force_insert=True)
    except IntegrityError as exc:
        raise AlreadyPosted(_existing(entry.idempotency_key)) from exc
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
            # SQLite's single writer nobody changes it meanwhile.
            Account.objects.filter(pk=account_id).update(balance=locked[account_id].balance + delta)


def _existing(idempotency_key: str) -> LedgerTransaction:
    return LedgerTransaction.objects.get(idempotency_key=idempotency_key)


def _sql(text: str, **fragments: str) -> str:
    """`text` with the ledger's table names filled in, quoted, and these fragments."""
    quote = transaction.get_connection().ops.quote_name
    return text.format(
        transaction=quote(LedgerTransaction._meta.db_table),
        account=quote(Account._meta.db_table),
        posting=quote(Posting._meta.db_table),
        **fragments,
    )


# The whole write in one statement: the transaction inserted (ON CONFLICT (idempotency_key) DO
# NOTHING: no savepoint needed to survive a replayed key; faced with a concurrent, uncommitted
# insert of the same key it waits for that transaction's end, as the unique index does); then,
# only if it was, the accounts locked in primary-key order (the order billing.locks keeps
# everywhere: PostgreSQL sorts before it locks the rows of a SELECT ... ORDER BY ... FOR UPDATE),
# each balance moved by its total in numeric (exact) from the locked row, the postings written in
# leg order, and last the chain's advisory lock (billing.chain), which the CASE takes only once
# every account lock is held (its condition needs the count of the moved rows): the lock order is
# always accounts, then chain. A liability driven past zero fails the account's CHECK constraint
# and the whole statement with it (IntegrityError). A replayed key returns no row and has locked
# nothing. The next link is read by chain.append in the next statement, whose snapshot is taken
# after the chain's lock was granted; it could not be in this one.
_WRITE_SQL = """
WITH entry AS (
    INSERT INTO {transaction} ({columns}) VALUES ({values})
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
), locked AS MATERIALIZED (
    SELECT id FROM {account}
     WHERE id = ANY(%(ids)s::bigint[]) AND EXISTS (SELECT FROM entry)
     ORDER BY id FOR UPDATE
), moved AS (
    UPDATE {account} AS a SET balance = a.balance + d.delta
      FROM locked JOIN unnest(%(ids)s::bigint[], %(deltas)s::numeric[]) AS d(id, delta)
           ON d.id = locked.id
     WHERE a.id = locked.id AND d.delta <> 0
    RETURNING a.id
), posted AS (
    INSERT INTO {posting} (transaction_id, account_id, amount, bill_id, created_at)
    SELECT entry.id, leg.account_id, leg.amount, leg.bill_id, %(created_at)s
      FROM entry CROSS JOIN unnest(%(accounts)s::bigint[], %(amounts)s::numeric[],
                                   %(bills)s::bigint[]) WITH ORDINALITY AS leg(account_id, amount,
                                                                             bill_id, n)
     ORDER BY leg.n
    RETURNING id
), counted AS MATERIALIZED (
    SELECT (SELECT count(*) FROM locked) AS locked, (SELECT count(*) FROM moved) AS moved,
           (SELECT count(*) FROM posted) AS posted
)
SELECT entry.id, counted.locked,
       CASE WHEN counted.moved >= 0 THEN pg_advisory_xact_lock(%(chain_lock)s) END
  FROM entry CROSS JOIN counted
"""


def _write_postgresql(
    entry: LedgerTransaction, legs: list[Leg], totals: dict[int, Decimal]
) -> None:
    """`entry`, its postings and the balances in one statement whatever the number of legs
    (_WRITE_SQL), which also takes the chain's lock for chain.append. Raises AlreadyPosted
    (having written and locked nothing) when the key is taken."""
    connection = transaction.get_connection()
    fields = [f for f in LedgerTransaction._meta.concrete_fields if not f.primary_key]
    values = {
        f"field_{n}": f.get_db_prep_save(f.pre_save(entry, add=True), connection)
        for n, f in enumerate(fields)
    }
    ids = sorted(totals)
    with connection.cursor() as cursor:
        cursor.execute(
            _sql(
                _WRITE_SQL,
                columns=", ".join(connection.ops.quote_name(f.column) for f in fields),
                values=", ".join(f"%({name})s" for name in values),
            ),
            {
                **values,
                "ids": ids,
                "deltas": [totals[pk] for pk in ids],
                "created_at": entry.created_at,
                "accounts": [leg.account.pk for leg in legs],
                "amounts": [leg.amount for leg in legs],
                "bills": [leg.bill.pk if leg.bill is not None else None for leg in legs],
                "chain_lock": chain.ADVISORY_LOCK_KEY,
            },
        )
        row = cursor.fetchone()
    if row is None:
        raise AlreadyPosted(_existing(entry.idempotency_key))
    entry.pk, locked, _ = row
    entry._state.adding, entry._state.db = False, connection.alias
    if locked != len(ids):  # a leg's account is not in the database (its FK is checked at commit)
        raise Account.DoesNotExist(f"ledger accounts {ids}: {locked} found")
