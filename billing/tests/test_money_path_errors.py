"""The money path answers bad input with 400/409, never 500, and changes nothing: notifications
with non-numbers for amounts or another payment's trade number, a refund's Idempotency-Key
sent many times at once, over-refunds of any size."""

import json
import logging
import threading
from decimal import Decimal

import pytest
from django.db import connection

from billing import services
from billing.gateways.sandbox import SandboxGateway, notification_body, sign
from billing.models import Bill, LedgerTransaction, Posting, Refund, SandboxTrade
from billing.tests.factories import BillFactory, estate, pay
from billing.tests.test_races import run_together
from community.models import Role
from community.tests.factories import member, resident

pytestmark = pytest.mark.django_db

NOTIFY = "/api/v1/payments/notify/sandbox/"


@pytest.fixture
def pending(as_user):
    _, (home,) = estate(1)
    user = resident(home)
    bill = BillFactory(household=home)
    payment, _ = services.payment_create(
        payer=user, bill_ids=[bill.pk], gateway="sandbox", idempotency_key="k", fingerprint="f"
    )
    SandboxGateway.confirm(SandboxTrade.objects.get(out_trade_no=payment.out_trade_no))
    return payment


def _notify(client, payment, **overrides):
    trade = SandboxTrade.objects.get(out_trade_no=payment.out_trade_no)
    data = json.loads(notification_body(trade)) | overrides
    body = json.dumps(data).encode()
    return client.post(
        NOTIFY, body, content_type="application/json", HTTP_X_SANDBOX_SIGNATURE=sign(body)
    )


@pytest.mark.parametrize(
    "amount", ["NaN", "Infinity", "-Infinity", "sNaN", "-0.01", "0", "1e3", "12.345", 1.5, None]
)
def test_a_signed_notification_with_a_non_amount_is_400(client, pending, amount):
    response = _notify(client, pending, amount=amount)

    assert response.status_code == 400
    pending.refresh_from_db()
    assert pending.status == "pending"
    assert not Posting.objects.exists()


def test_a_success_with_another_payments_trade_number_is_400_and_logged(client, pending, caplog):
    other_home = estate(1)[1][0]
    earlier = pay(resident(other_home), [BillFactory(household=other_home)])
    postings = Posting.objects.count()

    with caplog.at_level(logging.WARNING, logger="billing.services"):
        response = _notify(client, pending, trade_no=earlier.trade_no)

    assert response.status_code == 400
    assert "trade number" in response.content.decode()
    assert any(earlier.trade_no in record.getMessage() for record in caplog.records)
    pending.refresh_from_db()
    assert (pending.status, pending.trade_no, pending.paid_at) == ("pending", "", None)
    assert Posting.objects.count() == postings
    assert Bill.objects.filter(payment_items__payment=pending, status="paid").count() == 0
    # The true notification still goes through afterwards.
    assert _notify(client, pending).status_code == 200
    pending.refresh_from_db()
    assert pending.status == "succeeded"


@pytest.fixture
def paid():
    community, (home,) = estate(1)
    bills = [BillFactory(household=home, period=p) for p in ("2019-08", "2019-09")]
    payment = pay(resident(home), bills)
    return payment, member(Role.CENTRE_ADMIN, centre=community.centre)


def _refund(client, payment, amount, key="r"):
    return client.post(
        f"/api/v1/payments/{payment.pk}/refund/",
        {"amount": amount, "reason": "moving out"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


@pytest.mark.parametrize("amount", ["241.21", "99999999999.99", "1000000000000", "1e15"])
def test_an_over_refund_of_any_size_is_409(paid, as_user, amount):
    payment, admin = paid
    response = _refund(as_user(admin), payment, amount)
    assert response.status_code == 409
    assert not Refund.objects.exists()
    payment.refresh_from_db()
    assert payment.refunded_amount == 0


@pytest.mark.parametrize("amount", ["1e30", "NaN", "Infinity", "0.001"])
def test_refund_amounts_that_are_not_money_are_400(paid, as_user, amount):
    payment, admin = paid
    assert _refund(as_user(admin), payment, amount).status_code == 400
    assert not Refund.objects.exists()


def test_a_pending_payment_cannot_be_refunded(pending, as_user):
    admin = member(Role.CENTRE_ADMIN, centre=pending.items.get().bill.community.centre)
    assert _refund(as_user(admin), pending, "1.00").status_code == 409
    assert not Refund.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_refund_key_ten_times_at_once_replays_the_first_refund(live_server):
    """Over HTTP, ten requests at once: each answers 201 with the same refund."""
    import httpx

    community, (home,) = estate(1)
    payment = pay(resident(home), [BillFactory(household=home)])
    admin = member(Role.CENTRE_ADMIN, centre=community.centre)
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=admin).key

    def attempt(i):
        answer = httpx.post(
            f"{live_server.url}/api/v1/payments/{payment.pk}/refund/",
            json={"amount": "10.00", "reason": "moving out"},
            headers={"Authorization": f"Token {token}", "Idempotency-Key": "once"},
            timeout=30,
        )
        return answer.status_code, answer.json()

    outcomes = run_together(10, attempt)

    assert {status for status, _ in outcomes} == {201}, outcomes
    assert len({body["id"] for _, body in outcomes}) == 1
    assert Refund.objects.count() == 1
    assert LedgerTransaction.objects.filter(kind="refund").count() == 1
    assert SandboxTrade.objects.get(out_trade_no=payment.out_trade_no).refunded == Decimal("10.00")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_one_refund_key_for_two_payments_at_once_refunds_one_of_them():
    community, (home, other) = estate(2)
    first = pay(resident(home), [BillFactory(household=home)])
    second = pay(resident(other), [BillFactory(household=other)])
    admin = member(Role.CENTRE_ADMIN, centre=community.centre)
    barrier = threading.Barrier(2)
    outcomes = []

    def attempt(payment):
        try:
            barrier.wait()
            outcomes.append(
                services.payment_refund(
                    payment=payment,
                    amount=Decimal("5.00"),
                    reason="moving out",
                    by=admin,
                    idempotency_key="shared",
                    fingerprint=services.request_fingerprint({"payment": payment.pk}),
                )
            )
        except Exception as exc:
            outcomes.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(p,)) for p in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(type(o).__name__ for o in outcomes) == ["Conflict", "tuple"], outcomes
    assert Refund.objects.count() == 1
    refunded = SandboxTrade.objects.filter(refunded__gt=0)
    assert refunded.count() == 1  # the gateway refunded only the one the ledger booked
