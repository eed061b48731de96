"""The database connection dropped in the middle of a request: the request fails cleanly (503
with a JSON error and Retry-After, no stack trace) and nothing is half-written. Then the same
request, sent again, does its work once.

The fault is real: inside the request, just before the ledger posting (after the service has
already updated bills, the payment or the payout rows in its transaction), another connection
terminates the request's PostgreSQL backend with pg_terminate_backend. PostgreSQL rolls the
open transaction back; the service's next statement fails with OperationalError.
"""

import json
from decimal import Decimal
from unittest import mock

import psycopg2
import pytest
from django.db import connection

from billing import ledger
from billing.gateways.sandbox import SandboxGateway, notification_body, sign
from billing.models import LedgerTransaction, Payment, Payout, Posting, Refund, SandboxTrade
from billing.tests.factories import BillFactory, estate, pay
from community.models import Role
from community.tests.factories import member, resident

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

post_through = ledger.post


def _terminate_this_connection():
    """From a second connection, end the backend serving this thread's connection."""
    pid = connection.connection.get_backend_pid()
    db = connection.settings_dict
    killer = psycopg2.connect(
        dbname=db["NAME"],
        user=db["USER"],
        password=db["PASSWORD"] or None,
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
    )
    killer.autocommit = True
    with killer.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])  # waits until gone
        assert cursor.fetchone() == (True,)
    killer.close()


def _dropped_at_the_ledger(*args, **kwargs):
    _terminate_this_connection()
    return post_through(*args, **kwargs)


def _snapshot():
    return (
        LedgerTransaction.objects.count(),
        Posting.objects.count(),
        list(Payment.objects.order_by("pk").values_list("status", "refunded_amount")),
        list(Payout.objects.values_list("pk", flat=True)),
        list(Refund.objects.values_list("pk", flat=True)),
    )


def _assert_clean_503(response):
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response["Retry-After"] == "5"
    assert set(response.json()) == {"detail"}
    assert "Traceback" not in response.content.decode()


def test_a_notification_whose_connection_drops_records_nothing_and_the_retry_pays_once(
    api_client,
):
    _, (home,) = estate(1)
    bill = BillFactory(household=home)
    payer = resident(home)
    api_client.force_authenticate(payer)
    created = api_client.post(
        "/api/v1/payments/",
        {"bill_ids": [bill.pk], "gateway": "sandbox"},
        HTTP_IDEMPOTENCY_KEY="drop-1",
    )
    assert created.status_code == 201, created.content
    payment = Payment.objects.get(pk=created.json()["id"])
    trade = SandboxTrade.objects.get(out_trade_no=payment.out_trade_no)
    SandboxGateway.confirm(trade)
    body = notification_body(trade)
    api_client.force_authenticate(None)
    before = _snapshot()

    def notify():
        return api_client.post(
            "/api/v1/payments/notify/sandbox/",
            data=body,
            content_type="application/json",
            HTTP_X_SANDBOX_SIGNATURE=sign(body),
        )

    with mock.patch("billing.ledger.post", _dropped_at_the_ledger):
        response = notify()

    _assert_clean_503(response)  # not "success": the gateway sends it again
    assert _snapshot() == before  # bills, payment and ledger untouched
    bill.refresh_from_db()
    assert (bill.status, bill.paid_amount) == (bill.Status.UNPAID, Decimal("0.00"))

    retry = notify()
    assert (retry.status_code, retry.content) == (200, b"success")
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.transactions.count() == 1
    assert sum(p.amount for p in Posting.objects.filter(transaction__payment=payment)) == 0


def test_a_payout_whose_connection_drops_leaves_no_payout_and_the_retry_pays_once(api_client):
    community, (home,) = estate(1)
    pay(resident(home), [BillFactory(household=home)])
    admin = member(Role.CENTRE_ADMIN, centre=community.centre)
    api_client.force_authenticate(admin)
    before = _snapshot()

    def run():
        return api_client.post(
            "/api/v1/payouts/run/", {"community": community.pk, "period": "2019-08"}
        )

    with mock.patch("billing.ledger.post", _dropped_at_the_ledger):
        response = run()

    _assert_clean_503(response)
    assert _snapshot() == before  # no payout row without its ledger transaction
    retry = run()
    assert retry.status_code == 201
    assert Payout.objects.count() == 1
    assert LedgerTransaction.objects.filter(kind=LedgerTransaction.Kind.PAYOUT).count() == 1


def test_a_refund_whose_connection_drops_refunds_nothing_and_the_retry_refunds_once(api_client):
    community, (home,) = estate(1)
    payment = pay(resident(home), [BillFactory(household=home)])
    admin = member(Role.CENTRE_ADMIN, centre=community.centre)
    api_client.force_authenticate(admin)
    before = _snapshot()

    def refund():
        return api_client.post(
            f"/api/v1/payments/{payment.pk}/refund/",
            {"amount": "10.00", "reason": "moved out"},
            HTTP_IDEMPOTENCY_KEY="refund-drop-1",
        )

    with mock.patch("billing.ledger.post", _dropped_at_the_ledger):
        response = refund()

    _assert_clean_503(response)
    assert _snapshot() == before  # no refund row, payment and bill as they were
    retry = refund()
    assert retry.status_code == 201, retry.content
    payment.refresh_from_db()
    assert payment.refunded_amount == Decimal("10.00")
    assert Refund.objects.count() == 1
    assert LedgerTransaction.objects.filter(kind=LedgerTransaction.Kind.REFUND).count() == 1
    assert json.loads(retry.content)["amount"] == "10.00"
