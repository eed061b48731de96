"""billing.ledger.post under concurrency on PostgreSQL, with real connections: the accounts are
locked in primary-key order whatever the order of the legs, and an idempotency key taken by a
transaction still open is waited for."""

import threading
import time
from decimal import Decimal

import pytest
from django.db import connection, transaction

from billing import chain, ledger
from billing.models import Account, LedgerTransaction
from billing.selectors import ledger_problems
from billing.tests.factories import estate

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _raw():
    """A connection of its own to the test database, outside Django's (autocommit off)."""
    return connection.get_new_connection(connection.get_connection_params())


def _in_thread(work):
    """Run work() in a thread; returns (thread, outcome list) — its result or its exception."""
    outcome = []

    def runner():
        try:
            outcome.append(work())
        except Exception as exc:  # the outcome under test
            outcome.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=runner)
    thread.start()
    return thread, outcome


def _wait_until_blocked(probe, *, seconds=20):
    """Until a backend of the test database waits for a lock (the thread's post)."""
    deadline = time.monotonic() + seconds
    with probe.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.05)
    raise AssertionError("the post never waited for the lock")


def _accounts():
    community, _ = estate(0)
    clearing, escrow = ledger.clearing_account("sandbox"), ledger.escrow_account(community)
    with transaction.atomic():
        ledger.post(
            kind="payment",
            idempotency_key="fund",
            legs=[ledger.Leg(clearing, Decimal("50.00")), ledger.Leg(escrow, Decimal("-50.00"))],
        )
    assert clearing.pk < escrow.pk  # made first: the lower key
    return clearing, escrow


def _move(key, legs):
    def work():
        with transaction.atomic():
            return ledger.post(kind="payment", idempotency_key=key, legs=legs)

    return work


def test_post_locks_the_accounts_in_key_order_whatever_the_order_of_the_legs():
    clearing, escrow = _accounts()
    blocker, probe = _raw(), _raw()
    probe.autocommit = True
    try:
        with blocker.cursor() as cursor:
            cursor.execute("SELECT 1 FROM billing_account WHERE id = %s FOR UPDATE", [escrow.pk])
        # The legs name the higher key (escrow) first; the post must still lock the lower one
        # (clearing) first, and so hold it while it waits for the escrow.
        legs = [ledger.Leg(escrow, Decimal("-1.00")), ledger.Leg(clearing, Decimal("1.00"))]
        thread, outcome = _in_thread(_move("ordered", legs))
        _wait_until_blocked(probe)
        with probe.cursor() as cursor:
            # Waiting for an account, the post does not hold the chain's lock yet: that one
            # comes after every account lock, in the same statement.
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [chain.ADVISORY_LOCK_KEY])
            assert cursor.fetchone() == (True,)
            cursor.execute("SET lock_timeout = '200ms'")
            with pytest.raises(Exception, match="lock"):
                cursor.execute(
                    "SELECT 1 FROM billing_account WHERE id = %s FOR UPDATE", [clearing.pk]
                )
        blocker.commit()
        thread.join(timeout=30)
    finally:
        blocker.close()
        probe.close()
    assert isinstance(outcome[0], LedgerTransaction), outcome
    assert ledger_problems() == []


def test_a_key_taken_by_an_open_transaction_is_waited_for_and_written_if_it_rolls_back():
    clearing, escrow = _accounts()
    other = _raw()
    try:
        with other.cursor() as cursor:
            cursor.execute(
                "INSERT INTO billing_ledgertransaction (kind, idempotency_key, memo, created_at) "
                "VALUES ('payment', 'contested', '', now())"
            )
        legs = [ledger.Leg(clearing, Decimal("2.00")), ledger.Leg(escrow, Decimal("-2.00"))]
        thread, outcome = _in_thread(_move("contested", legs))
        probe = _raw()
        probe.autocommit = True
        try:
            _wait_until_blocked(probe)
        finally:
            probe.close()
        other.rollback()
        thread.join(timeout=30)
    finally:
        other.close()
    assert isinstance(outcome[0], LedgerTransaction), outcome
    assert LedgerTransaction.objects.get(idempotency_key="contested").postings.count() == 2
    assert ledger_problems() == []


def test_the_same_key_posted_twice_at_once_is_written_once():
    clearing, escrow = _accounts()
    legs = [ledger.Leg(clearing, Decimal("3.00")), ledger.Leg(escrow, Decimal("-3.00"))]
    barrier = threading.Barrier(2)

    def work():
        barrier.wait()
        return _move("twice", legs)()

    runs = [_in_thread(work) for _ in range(2)]
    for thread, _ in runs:
        thread.join(timeout=30)
    outcomes = [outcome[0] for _, outcome in runs]
    written = [o for o in outcomes if isinstance(o, LedgerTransaction)]
    replays = [o for o in outcomes if isinstance(o, ledger.AlreadyPosted)]
    assert (len(written), len(replays)) == (1, 1), outcomes
    assert replays[0].existing.pk == written[0].pk
    assert Account.objects.get(pk=escrow.pk).balance == Decimal("-53.00")
    assert ledger_problems() == []


def test_posts_on_the_same_accounts_in_opposite_leg_orders_all_commit():
    clearing, escrow = _accounts()
    rounds = 10
    barrier = threading.Barrier(2)

    def work(name, legs):
        def run():
            for n in range(rounds):
                barrier.wait(timeout=30)
                _move(f"{name}:{n}", legs)()
            return "done"

        return run

    into_escrow = [ledger.Leg(clearing, Decimal("1.00")), ledger.Leg(escrow, Decimal("-1.00"))]
    out_of_escrow = [ledger.Leg(escrow, Decimal("1.00")), ledger.Leg(clearing, Decimal("-1.00"))]
    runs = [_in_thread(work("in", into_escrow)), _in_thread(work("out", out_of_escrow))]
    for thread, _ in runs:
        thread.join(timeout=60)
    assert [outcome for _, outcome in runs] == [["done"], ["done"]]
    assert LedgerTransaction.objects.count() == 1 + 2 * rounds
    assert ledger_problems() == []


def test_a_post_waiting_for_the_chain_links_after_the_transaction_it_waited_for():
    clearing, escrow = _accounts()
    posted, go_on = threading.Event(), threading.Event()
    legs = [ledger.Leg(clearing, Decimal("1.00")), ledger.Leg(escrow, Decimal("-1.00"))]

    def first():
        with transaction.atomic():
            entry = ledger.post(kind="payment", idempotency_key="first", legs=legs)
            posted.set()  # its link written, the chain's lock held until the commit
            go_on.wait(timeout=30)
        return entry

    holder, held = _in_thread(first)
    assert posted.wait(timeout=30)
    other_accounts = _accounts_of_another_estate()
    waiter, waited = _in_thread(_move("second", other_accounts))
    probe = _raw()
    probe.autocommit = True
    try:
        _wait_until_blocked(probe)  # on the chain's advisory lock
    finally:
        probe.close()
    go_on.set()
    holder.join(timeout=30)
    waiter.join(timeout=30)
    assert isinstance(held[0], LedgerTransaction), held
    assert isinstance(waited[0], LedgerTransaction), waited
    # The waiting post read the last link only once the lock was granted: it follows "first"
    # (the chain's recomputation in ledger_problems checks the hashes too).
    links = dict(
        LedgerTransaction.objects.filter(idempotency_key__in=["first", "second"]).values_list(
            "idempotency_key", "chain_link__seq"
        )
    )
    assert links["second"] == links["first"] + 1
    assert ledger_problems() == []


def _accounts_of_another_estate():
    """Legs on accounts no other post of the test locks: the post waits for the chain only."""
    community, _ = estate(0)
    clearing = ledger.clearing_account("alipay")
    return [
        ledger.Leg(clearing, Decimal("4.00")),
        ledger.Leg(ledger.escrow_account(community), Decimal("-4.00")),
    ]
