"""A gateway notification that arrives too early, or ten times at once, over HTTP with real
PostgreSQL connections (one per thread): money is taken once and nothing is lost.

- Too early: the payment exists only in the creating transaction, not yet committed, of
  another connection. The notify endpoint cannot see it and answers 400 "unknown trade", never
  "success"; a gateway sends again whatever is not acknowledged with its success answer (Alipay
  until it reads "success", WeChat Pay until a 2xx, the sandbox's delivery task on each
  rejection: API.md), so the notification is applied once the payment is committed.
- Ten at once: the payment row lock serialises them; one records the money, nine see a
  duplicate, all ten are acknowledged.
"""

import threading
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test import Client

from billing import ledger, services
from billing.gateways.sandbox import SandboxGateway, notification_body, sign
from billing.models import Bill, LedgerTransaction, Payment, SandboxTrade
from billing.tests.factories import BillFactory, estate
from community.tests.factories import resident

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

NOTIFY = "/api/v1/payments/notify/sandbox/"


def _notify(body: bytes, client: Client | None = None):
    return (client or Client()).post(
        NOTIFY, data=body, content_type="application/json", HTTP_X_SANDBOX_SIGNATURE=sign(body)
    )


def test_a_notification_before_the_payment_is_committed_is_applied_once_on_the_retry():
    community, (home,) = estate(1)
    bill = BillFactory(household=home)
    payer = resident(home)
    created, commit, done = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def create_and_hold_the_transaction_open():
        try:
            with transaction.atomic():
                payment, _ = services.payment_create(
                    payer=payer,
                    bill_ids=[bill.pk],
                    gateway="sandbox",
                    idempotency_key="early",
                    fingerprint="f",
                )
                trade = SandboxTrade.objects.get(out_trade_no=payment.out_trade_no)
                SandboxGateway.confirm(trade)  # paid at the gateway, which notifies at once
                seen["body"] = notification_body(trade)
                created.set()
                commit.wait(timeout=30)
        finally:
            connection.close()
            done.set()

    creator = threading.Thread(target=create_and_hold_the_transaction_open)
    creator.start()
    assert created.wait(timeout=30)

    early = _notify(seen["body"])
    assert early.status_code == 400  # not acknowledged: the gateway will send it again
    assert b"unknown trade" in early.content
    assert not Payment.objects.exists()  # invisible here until it commits
    assert not LedgerTransaction.objects.exists()

    commit.set()
    creator.join(timeout=30)
    assert done.is_set()
    retry = _notify(seen["body"])
    assert (retry.status_code, retry.content) == (200, b"success")
    payment = Payment.objects.get()
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.transactions.count() == 1
    bill.refresh_from_db()
    assert (bill.status, bill.paid_amount) == (Bill.Status.PAID, bill.amount)
    assert ledger.escrow_account(community).balance == -payment.amount


def test_ten_copies_of_a_notification_at_once_over_http_take_the_money_once():
    community, (home,) = estate(1)
    bill = BillFactory(household=home)
    payment, _ = services.payment_create(
        payer=resident(home),
        bill_ids=[bill.pk],
        gateway="sandbox",
        idempotency_key="k",
        fingerprint="f",
    )
    trade = SandboxTrade.objects.get(out_trade_no=payment.out_trade_no)
    SandboxGateway.confirm(trade)
    body = notification_body(trade)
    copies = 10
    barrier = threading.Barrier(copies)
    answers = [None] * copies

    def deliver(i):
        try:
            client = Client()
            barrier.wait(timeout=30)
            response = _notify(body, client)
            answers[i] = (response.status_code, response.content)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert answers == [(200, b"success")] * copies
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert LedgerTransaction.objects.filter(payment=payment).count() == 1
    assert LedgerTransaction.objects.count() == 1
    bill.refresh_from_db()
    assert bill.paid_amount == bill.amount
    # Money taken once: the escrow holds exactly one payment's worth (credits are negative).
    assert ledger.escrow_account(community).balance == -payment.amount
    assert payment.amount > Decimal("0")
