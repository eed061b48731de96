"""The ledger's rules: balanced transactions, append-only postings, balances that match."""

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction

from billing import ledger
from billing.models import Account, Bill, LedgerTransaction, Posting
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
