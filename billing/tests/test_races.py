"""Races on PostgreSQL with real threads: money is taken once whatever arrives at once."""

import threading

import pytest
from django.db import connection

from billing import services
from billing.gateways.sandbox import SandboxGateway, notification_body, sign
from billing.models import LedgerTransaction, Payment, Posting, SandboxTrade
from billing.tests.factories import BillFactory, estate
from community.tests.factories import resident
from config.api import Conflict

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_together(count, work):
    """Start `count` threads that each call work(i) at the same moment; collect the outcomes."""
    barrier = threading.Barrier(count)
    outcomes = [None] * count

    def runner(i):
        try:
            barrier.wait()
            outcomes[i] = work(i)
        except Exception as exc:  # the outcome under test
            outcomes[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_two_payments_of_the_same_bill_at_once_exactly_one_wins():
    _, (home,) = estate(1)
    user = resident(home)
    bill = BillFactory(household=home)

    def attempt(i):
        payment, _ = services.payment_create(
            payer=user,
            bill_ids=[bill.pk],
            gateway="sandbox",
            idempotency_key=f"race-{i}",
            fingerprint=f"f{i}",
        )
        return payment

    outcomes = run_together(2, attempt)

    created = [o for o in outcomes if isinstance(o, Payment)]
    refused = [o for o in outcomes if isinstance(o, Conflict)]
    assert (len(created), len(refused)) == (1, 1), outcomes
    assert Payment.objects.count() == 1


def test_ten_copies_of_a_notification_at_once_record_one_payment():
    _, (home,) = estate(1)
    user = resident(home)
    bill = BillFactory(household=home)
    payment, _ = services.payment_create(
        payer=user, bill_ids=[bill.pk], gateway="sandbox", idempotency_key="k", fingerprint="f"
    )
    trade = SandboxTrade.objects.get(out_trade_no=payment.out_trade_no)
    SandboxGateway.confirm(trade)
    body = notification_body(trade)

    outcomes = run_together(
        10,
        lambda i: services.payment_notification_receive(
            gateway="sandbox", body=body, headers={"X-Sandbox-Signature": sign(body)}
        ),
    )

    assert all(isinstance(o, Payment) for o in outcomes), outcomes
    assert LedgerTransaction.objects.filter(payment=payment).count() == 1
    assert Posting.objects.count() == 2
    bill.refresh_from_db()
    assert (bill.status, bill.paid_amount) == ("paid", bill.amount)
