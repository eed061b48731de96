"""The ledger's rules: balanced transactions, append-only postings, balances that match."""

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction

from billing import chain, ledger
from billing.models import Account, Bill, LedgerChainLink, LedgerTransaction, Posting
from billing.selectors import ledger_problems
from billing.tests.factories import BillFactory, estate, pay
from community.tests.factories import resident

pytestmark = pytest.mark.django_db


def test_an_unbalanced_transaction_is_refused_and_nothing_is_written():
    community, _ = estate(0)
    with pytest.raises(ledger.UnbalancedTransaction), transaction.atomic():
        ledger.post(
            kind="payment",
            idempotency_key="x",
            legs=[
                ledger.Leg(ledger.clearing_account("sandbox"), Decimal("10.00")),
                ledger.Leg(ledger.escrow_account(community), Decimal("-9.99")),
            ],
        )
    assert LedgerTransaction.objects.count() == 0
    assert Posting.objects.count() == 0


def test_floats_are_refused_by_the_ledger():
    community, _ = estate(0)
    with pytest.raises(TypeError), transaction.atomic():
        ledger.post(
            kind="payment",
            idempotency_key="x",
            legs=[
                ledger.Leg(ledger.clearing_account("sandbox"), 0.1),
                ledger.Leg(ledger.escrow_account(community), -0.1),
            ],
        )


def test_the_same_event_cannot_be_posted_twice():
    community, _ = estate(0)
    legs = [
        ledger.Leg(ledger.clearing_account("sandbox"), Decimal("5.00")),
        ledger.Leg(ledger.escrow_account(community), Decimal("-5.00")),
    ]
    with transaction.atomic():
        ledger.post(kind="payment", idempotency_key="payment:1", legs=legs)
    with pytest.raises(ledger.AlreadyPosted), transaction.atomic():
        ledger.post(kind="payment", idempotency_key="payment:1", legs=legs)
    assert Account.objects.get(kind="escrow").balance == Decimal("-5.00")


def test_escrow_cannot_be_overdrawn():
    community, _ = estate(0)
    with pytest.raises(IntegrityError), transaction.atomic():
        ledger.post(
            kind="payout",
            idempotency_key="payout:x",
            legs=[
                ledger.Leg(ledger.escrow_account(community), Decimal("1.00")),
                ledger.Leg(ledger.company_payable_account(community), Decimal("-1.00")),
            ],
        )
    assert Posting.objects.count() == 0


def test_check_ledger_is_clean_and_catches_a_tampered_balance():
    _, (home,) = estate(1)
    pay(resident(home), [BillFactory(household=home)])
    call_command("check_ledger", stdout=None)
    Account.objects.filter(kind="escrow").update(balance=Decimal("-1.00"))
    with pytest.raises(CommandError):
        call_command("check_ledger", stdout=None, stderr=None)
    assert any("escrow" in problem for problem in ledger_problems())
    # Put it right again so the autouse ledger check passes for this test.
    Account.objects.filter(kind="escrow").update(balance=-Bill.objects.get().amount)


@pytest.mark.postgres
def test_postgres_refuses_an_unbalanced_transaction_at_commit():
    assert connection.vendor == "postgresql"
    community, _ = estate(0)
    account = ledger.escrow_account(community)
    with pytest.raises(IntegrityError), transaction.atomic():
        entry = LedgerTransaction.objects.create(kind="payment", idempotency_key="raw")
        # Past the service: a single, unbalanced leg written directly.
        Posting.objects.create(transaction=entry, account=account, amount=Decimal("-3.00"))
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # what COMMIT would do
    assert Posting.objects.count() == 0


@pytest.mark.postgres
def test_postgres_refuses_to_update_or_delete_a_posting():
    _, (home,) = estate(1)
    pay(resident(home), [BillFactory(household=home)])
    with pytest.raises(IntegrityError), transaction.atomic():
        Posting.objects.filter(amount__lt=0).update(amount=Decimal("-1.00"))
    with pytest.raises(IntegrityError), transaction.atomic():
        Posting.objects.all().delete()
    assert Posting.objects.count() == 2


def _funded(community, amount="50.00"):
    """The sandbox's clearing account and the community's escrow, `amount` moved into escrow."""
    clearing, escrow = ledger.clearing_account("sandbox"), ledger.escrow_account(community)
    with transaction.atomic():
        ledger.post(
            kind="payment",
            idempotency_key="fund",
            legs=[ledger.Leg(clearing, Decimal(amount)), ledger.Leg(escrow, -Decimal(amount))],
        )
    return clearing, escrow


def test_a_replayed_key_raises_already_posted_and_leaves_the_transaction_usable():
    community, _ = estate(0)
    clearing, escrow = _funded(community)
    legs = [ledger.Leg(escrow, Decimal("5.00")), ledger.Leg(clearing, Decimal("-5.00"))]
    with transaction.atomic():
        first = ledger.post(kind="payment", idempotency_key="back:1", legs=legs)
        with pytest.raises(ledger.AlreadyPosted) as replay:
            ledger.post(kind="payment", idempotency_key="back:1", legs=legs)
        assert replay.value.existing.pk == first.pk
        # Nothing failed in the database: the same transaction goes on and posts another key.
        ledger.post(kind="payment", idempotency_key="back:2", legs=legs)
    assert LedgerTransaction.objects.filter(idempotency_key__startswith="back:").count() == 2
    assert Posting.objects.filter(transaction=first).count() == 2
    assert Account.objects.get(pk=escrow.pk).balance == Decimal("-40.00")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # the funding's own transaction, committed and ended
def test_a_replayed_key_takes_no_lock():
    community, _ = estate(0)
    clearing, escrow = _funded(community)
    legs = [ledger.Leg(escrow, Decimal("5.00")), ledger.Leg(clearing, Decimal("-5.00"))]
    with transaction.atomic():
        with pytest.raises(ledger.AlreadyPosted):
            ledger.post(kind="payment", idempotency_key="fund", legs=legs)
        with connection.cursor() as cursor:
            # The chain's lock is the write's last step, and is not taken for a replay.
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid()"
            )
            assert cursor.fetchone() == (0,)
        ledger.post(kind="payment", idempotency_key="back", legs=legs)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid() AND objid = %s",
                [chain.ADVISORY_LOCK_KEY & 0xFFFFFFFF],
            )
            assert cursor.fetchone() == (1,)


def test_a_leg_driving_a_liability_past_zero_refuses_every_leg():
    community, _ = estate(0)
    clearing, escrow = _funded(community)
    payable = ledger.company_payable_account(community)
    with pytest.raises(IntegrityError), transaction.atomic():
        ledger.post(
            kind="payout",
            idempotency_key="payout:too-much",
            legs=[
                ledger.Leg(clearing, Decimal("-10.00")),
                ledger.Leg(escrow, Decimal("50.01")),  # escrow holds 50.00
                ledger.Leg(payable, Decimal("-40.01")),
            ],
        )
    assert dict(Account.objects.values_list("pk", "balance")) == {
        clearing.pk: Decimal("50.00"),
        escrow.pk: Decimal("-50.00"),
        payable.pk: Decimal("0.00"),
    }
    assert not LedgerTransaction.objects.filter(idempotency_key="payout:too-much").exists()


def test_legs_on_the_same_account_move_its_balance_by_their_sum():
    community, _ = estate(0)
    clearing, escrow = _funded(community)
    with transaction.atomic():
        entry = ledger.post(
            kind="payment",
            idempotency_key="two-legs",
            legs=[
                ledger.Leg(clearing, Decimal("3.00")),
                ledger.Leg(escrow, Decimal("-1.00")),
                ledger.Leg(escrow, Decimal("-2.00")),
            ],
        )
    assert list(entry.postings.values_list("account_id", "amount")) == [
        (clearing.pk, Decimal("3.00")),
        (escrow.pk, Decimal("-1.00")),
        (escrow.pk, Decimal("-2.00")),
    ]
    assert Account.objects.get(pk=escrow.pk).balance == Decimal("-53.00")


@pytest.mark.postgres
def test_postgres_posts_in_two_statements_whatever_the_number_of_legs(
    django_assert_num_queries,
):
    community, _ = estate(0)
    _, escrow = _funded(community)
    payable, fund = ledger.company_payable_account(community), ledger.public_fund_account(community)
    # The transaction (ON CONFLICT DO NOTHING) + the locks + balances + postings + the chain's
    # lock, then the new link (made from the last one in the same statement).
    with transaction.atomic(), django_assert_num_queries(2):
        ledger.post(
            kind="holdback_release",
            idempotency_key="release",
            legs=[
                ledger.Leg(escrow, Decimal("10.00")),
                ledger.Leg(payable, Decimal("-9.00")),
                ledger.Leg(fund, Decimal("-1.00")),
            ],
        )


def test_estate_accounts_are_the_ones_the_lookups_of_one_account_make():
    community, _ = estate(0)
    escrow = ledger.escrow_account(community)
    kinds = (Account.Kind.ESCROW, Account.Kind.COMPANY_PAYABLE)
    accounts = ledger.estate_accounts(community, *kinds)
    # Only the kinds asked for: the escrow found, the company's payable made.
    assert sorted(Account.objects.filter(community=community).values_list("kind", flat=True)) == [
        "company_payable",
        "escrow",
    ]
    accounts |= ledger.estate_accounts(community, Account.Kind.PUBLIC_FUND)
    assert accounts == {
        Account.Kind.ESCROW: escrow,
        Account.Kind.COMPANY_PAYABLE: ledger.company_payable_account(community),
        Account.Kind.PUBLIC_FUND: ledger.public_fund_account(community),
    }
    payable = accounts[Account.Kind.COMPANY_PAYABLE]
    assert (payable.community_id, payable.company_id) == (community.pk, community.company_id)
    assert Account.objects.filter(community=community).count() == 3


@pytest.mark.postgres
def test_a_link_postgres_hashes_otherwise_than_link_hash_is_refused(monkeypatch):
    community, _ = estate(0)
    clearing, escrow = _funded(community)
    with monkeypatch.context() as patched, pytest.raises(chain.ChainMismatch):
        patched.setattr(chain, "link_hash", lambda previous, text: "0" * 64)
        with transaction.atomic():
            ledger.post(
                kind="payment",
                idempotency_key="odd",
                legs=[ledger.Leg(clearing, Decimal("1.00")), ledger.Leg(escrow, Decimal("-1.00"))],
            )
    assert not LedgerTransaction.objects.filter(idempotency_key="odd").exists()
    assert LedgerChainLink.objects.count() == 1
