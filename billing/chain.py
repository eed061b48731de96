"""A hash chain over the ledger, and the receipts' check codes (Transparency, part 5).

Each ledger transaction gets a link: hash = SHA-256(the previous link's hash, a newline, the
transaction's canonical text: its idempotency key, its created_at in UTC to the microsecond,
and each posting's account key and amount, sorted). The first link's previous hash is 64 zeros.
Changing, adding or removing any posting after the fact (which the database's triggers already
refuse, unless someone switches them off) breaks the recomputation from there on:
`billing.selectors.ledger_problems` (`manage.py check_ledger`) recomputes the whole chain.

A receipt's check code is the first 10 base32 characters of its payment's link hash (50 bits,
shown as XXXXX-XXXXX). /check/ (billing/check_views.py) says whether a code is a payment in the
ledger, and for it only the amount, the estate and the months: no name, no household.

Appending (`append`, called by billing.ledger.post as its last step) is serialised: on
PostgreSQL by a transaction-level advisory lock, which ledger.post's write takes in the
statement that locks the accounts, after them, and which is held until commit; so every posting
transaction of the site queues on it from its ledger.post to its commit (the payment path
writes nothing after ledger.post but its own commit). SQLite has one writer at a time anyway.
No chain-head row is updated: the last link is read by its unique seq, on PostgreSQL inside the
INSERT of the next link, which PostgreSQL hashes (`_APPEND_SQL`, checked against link_hash
before the transaction goes on).
"""

import base64
import hashlib
from collections import defaultdict
from datetime import UTC
from decimal import Decimal

from django.db import connection

GENESIS = "0" * 64
CODE_LENGTH = 10
# pg_advisory_xact_lock key of the chain ("linli" + "chain" in ASCII, in 63 bits).
ADVISORY_LOCK_KEY = 0x6C696E6C69636861


def canonical(*, idempotency_key: str, created_at, postings) -> str:
    """The text a link hashes. `postings`: (account key, amount) pairs, in any order."""
    legs = sorted((key, f"{Decimal(amount):.2f}") for key, amount in postings)
    stamp = created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return "\n".join([idempotency_key, stamp, *(f"{key} {amount}" for key, amount in legs)])


def link_hash(previous: str, text: str) -> str:
    return hashlib.sha256(f"{previous}\n{text}".encode()).hexdigest()


def check_code_of(hash_hex: str) -> str:
    return base64.b32encode(bytes.fromhex(hash_hex)).decode()[:CODE_LENGTH]


def code_display(code: str) -> str:
    """A check code as a receipt prints it: XXXXX-XXXXX."""
    return f"{code[:5]}-{code[5:]}" if code else ""


# What people mistype for base32's letters (its alphabet is A-Z and 2-7).
_LOOKALIKES = str.maketrans({"0": "O", "1": "I", "8": "B"})


def normalise(code: str) -> str:
    """A typed code as stored: upper case, no dashes or spaces, look-alike digits read as the
    letters they resemble. "" when it cannot be a code."""
    cleaned = "".join((code or "").split()).replace("-", "").upper().translate(_LOOKALIKES)
    if len(cleaned) != CODE_LENGTH or any(
        c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567" for c in cleaned
    ):
        return ""
    return cleaned


def _last(links) -> tuple[int, str]:
    last = links.objects.order_by("-seq").values_list("seq", "hash").first()
    return last if last else (0, GENESIS)


class ChainMismatch(RuntimeError):
    """PostgreSQL's link differs from link_hash / check_code_of: nothing is chained."""


# The next link made by PostgreSQL from the last one in the INSERT itself: its hash with
# sha256() over the same bytes link_hash hashes, its check code as check_code_of takes it (the
# first 50 bits of the hash, 5 at a time, in base32's alphabet). The statement's snapshot is taken
# after the advisory lock was granted (the statement before), so it sees the link of every
# transaction that held the lock before: one statement where reading the last link and inserting
# took two. It returns the previous hash, and append() checks the result against link_hash.
_APPEND_SQL = r"""
WITH previous AS (
    SELECT seq, hash FROM {link} ORDER BY seq DESC LIMIT 1
), next AS (
    SELECT coalesce((SELECT seq FROM previous), 0) + 1 AS seq,
           coalesce((SELECT hash FROM previous), %(genesis)s) AS previous
), hashed AS (
    SELECT seq, previous,
           encode(sha256(convert_to(previous || E'
' || %(text)s, 'UTF8')), 'hex') AS hash
      FROM next
)
INSERT INTO {link} (transaction_id, seq, hash, check_code)
SELECT %(entry)s, seq, hash,
       (SELECT string_agg(substr('ABCDEFGHIJKLMNOPQRSTUVWXYZ234567', (
                   (('x' || substr(hash, 1, 14))::bit(56)::bigint >> (51 - 5 * n)) & 31
               )::int + 1, 1), '' ORDER BY n)
          FROM generate_series(0, 9) AS n)  -- CODE_LENGTH characters from the first 56 bits
  FROM hashed
RETURNING hash, check_code, (SELECT previous FROM hashed)
"""


def append(entry, legs) -> None:
    """Chain a transaction ledger.post has just written with these legs. Precondition: inside
    the posting's transaction, which on PostgreSQL holds the chain's lock: ledger.post's write
    took it in its own statement, after the account locks (so the lock order is always
    accounts, then chain)."""
    from billing.models import LedgerChainLink

    text = canonical(
        idempotency_key=entry.idempotency_key,
        created_at=entry.created_at,
        postings=[(leg.account.key, leg.amount) for leg in legs],
    )
    if connection.vendor != "postgresql":  # SQLite: one writer at a time
        seq, previous = _last(LedgerChainLink)
        digest = link_hash(previous, text)
        LedgerChainLink.objects.create(
            transaction=entry, seq=seq + 1, hash=digest, check_code=check_code_of(digest)
        )
        return
    with connection.cursor() as cursor:
        cursor.execute(
            _APPEND_SQL.format(link=connection.ops.quote_name(LedgerChainLink._meta.db_table)),
            {"genesis": GENESIS, "text": text, "entry": entry.pk},
        )
        digest, code, previous = cursor.fetchone()
    if digest != link_hash(previous, text) or code != check_code_of(digest):
        raise ChainMismatch(f"{entry.idempotency_key}: {digest} {code} after {previous}")


def _postings_by_transaction(posting_model, transaction_ids=None) -> dict:
    rows = posting_model.objects.values_list("transaction_id", "account__key", "amount")
    if transaction_ids is not None:
        rows = rows.filter(transaction_id__in=transaction_ids)
    grouped = defaultdict(list)
    for transaction_id, key, amount in rows.iterator(chunk_size=5000):
        grouped[transaction_id].append((key, amount))
    return grouped


def chain_unchained(*, transaction_model=None, posting_model=None, link_model=None) -> int:
    """Chain, in primary-key order after the last link, every ledger transaction without a link
    (rows written before the chain existed, or by bulk SQL such as bench/datagen.py). The
    models may be a migration's historical ones. Returns how many were chained."""
    if transaction_model is None:
        from billing.models import LedgerChainLink, LedgerTransaction, Posting

        transaction_model, posting_model, link_model = LedgerTransaction, Posting, LedgerChainLink
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY])
    seq, previous = _last(link_model)
    todo = list(
        transaction_model.objects.filter(chain_link__isnull=True)
        .order_by("pk")
        .values_list("pk", "idempotency_key", "created_at")
    )
    links = []
    for start in range(0, len(todo), 5000):
        batch = todo[start : start + 5000]
        postings = _postings_by_transaction(posting_model, [pk for pk, _, _ in batch])
        for pk, key, created_at in batch:
            seq += 1
            previous = link_hash(
                previous,
                canonical(idempotency_key=key, created_at=created_at, postings=postings[pk]),
            )
            links.append(
                link_model(
                    transaction_id=pk, seq=seq, hash=previous, check_code=check_code_of(previous)
                )
            )
    link_model.objects.bulk_create(links, batch_size=5000)
    return len(links)


def chain_problems() -> list[str]:
    """Recompute the chain from the postings: a link whose hash or check code does not match, a
    gap in the sequence, a transaction without a link. Empty when the chain holds."""
    from billing.models import LedgerChainLink, LedgerTransaction, Posting

    problems = []
    postings = _postings_by_transaction(Posting)
    links = LedgerChainLink.objects.order_by("seq").values_list(
        "seq",
        "hash",
        "check_code",
        "transaction_id",
        "transaction__idempotency_key",
        "transaction__created_at",
    )
    previous, expected_seq = GENESIS, 1
    for seq, stored, code, transaction_id, key, created_at in links.iterator(chunk_size=5000):
        if seq != expected_seq:
            problems.append(f"chain: links {expected_seq} to {seq - 1} are missing")
        expected_seq = seq + 1
        # Go on from the recomputed hash, so one changed row is reported once, and a row changed
        # together with its stored hash still breaks at the next link.
        previous = link_hash(
            previous,
            canonical(
                idempotency_key=key, created_at=created_at, postings=postings[transaction_id]
            ),
        )
        if stored != previous:
            problems.append(f"chain: transaction {key} (link {seq}) does not match its hash")
        elif code != check_code_of(stored):
            problems.append(f"chain: transaction {key} (link {seq}) has a wrong check code")
    unchained = LedgerTransaction.objects.filter(chain_link__isnull=True).values_list(
        "idempotency_key", flat=True
    )
    problems += [f"chain: transaction {key} is not on the chain" for key in unchained]
    return problems


def payment_check_code(payment) -> str:
    """The check code of a payment's receipt (XXXXX-XXXXX), "" before its money is booked."""
    from billing.models import LedgerChainLink

    code = (
        LedgerChainLink.objects.filter(transaction__payment=payment, transaction__kind="payment")
        .values_list("check_code", flat=True)
        .first()
    )
    return code_display(code or "")


def receipt_check(code: str) -> dict | None:
    """What a check code proves: that a payment of `amount` for `estate`, for `periods`, is in
    the ledger. None for a code that is no receipt's. Nothing about who paid or for which flat."""
    from billing.models import LedgerChainLink

    code = normalise(code)
    if not code:
        return None
    link = (
        LedgerChainLink.objects.filter(check_code=code, transaction__kind="payment")
        .select_related("transaction__payment")
        .first()
    )
    if link is None or link.transaction.payment is None:
        return None
    payment = link.transaction.payment
    items = list(payment.items.select_related("bill__community").order_by("bill__period"))
    return {
        "code": code_display(code),
        "amount": payment.amount,
        "estate": ", ".join(sorted({item.bill.community.name for item in items})),
        "periods": sorted({item.bill.period for item in items}),
    }
