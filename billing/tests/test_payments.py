"""Paying bills through the sandbox gateway: creation, idempotency, notifications, expiry."""

import json
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing import events, services
from billing.gateways.sandbox import notification_body, sign
from billing.models import Bill, LedgerTransaction, Payment, Posting, SandboxTrade
from billing.tests.factories import BillFactory, estate, notify, pay
from community.tests.factories import resident

pytestmark = pytest.mark.django_db


@pytest.fixture
def household_with_bills():
    community, (home, neighbour) = estate(2)
    user = resident(home)
    bills = [BillFactory(household=home, period=p) for p in ("2019-08", "2019-09")]
    return {"user": user, "bills": bills, "community": community, "neighbour": neighbour}


def create(client, bill_ids, key="key-1", gateway="sandbox"):
    return client.post(
        "/api/v1/payments/",
        {"bill_ids": bill_ids, "gateway": gateway},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


def test_creating_a_payment_returns_the_pay_page(as_user, household_with_bills):
    bills = household_with_bills["bills"]
    response = create(as_user(household_with_bills["user"]), [b.pk for b in bills])

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "pending"
    assert body["gateway"] == "sandbox"
    assert Decimal(body["amount"]) == sum(b.amount for b in bills)
    assert body["pay_url"].endswith(f"/pay/sandbox/{body['out_trade_no']}/")
    assert SandboxTrade.objects.get(out_trade_no=body["out_trade_no"]).amount == Decimal(
        body["amount"]
    )


def test_the_same_idempotency_key_and_body_return_the_same_payment(as_user, household_with_bills):
    client = as_user(household_with_bills["user"])
    ids = [b.pk for b in household_with_bills["bills"]]
    first, second = create(client, ids), create(client, ids)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert Payment.objects.count() == 1


def test_the_same_key_with_another_body_is_a_conflict(as_user, household_with_bills):
    client = as_user(household_with_bills["user"])
    first, second = household_with_bills["bills"]
    assert create(client, [first.pk]).status_code == 201
    response = create(client, [first.pk, second.pk])
    assert response.status_code == 409
    assert Payment.objects.count() == 1


def test_a_replay_after_the_payment_succeeded_returns_it(as_user, household_with_bills):
    # The key is looked up only when the insert is refused: here the bills are settled by the
    # first request itself, and its retry still gets that payment, not "already settled".
    client = as_user(household_with_bills["user"])
    ids = [b.pk for b in household_with_bills["bills"]]
    first = create(client, ids)
    notify(Payment.objects.get(pk=first.json()["id"]))

    second = create(client, ids)

    assert second.status_code == 201
    assert second.json()["id"] == first.json()["id"]
    assert Payment.objects.count() == 1
    assert Payment.objects.get().status == Payment.Status.SUCCEEDED


def test_a_replay_of_a_pending_payment_registers_no_second_trade(as_user, household_with_bills):
    client = as_user(household_with_bills["user"])
    ids = [b.pk for b in household_with_bills["bills"]]
    first, second = create(client, ids), create(client, ids)

    assert second.json() == first.json()
    assert SandboxTrade.objects.count() == 1


def test_a_used_key_with_someone_elses_bill_is_a_conflict(as_user, household_with_bills):
    client = as_user(household_with_bills["user"])
    mine = household_with_bills["bills"][0]
    theirs = BillFactory(household=household_with_bills["neighbour"], period="2019-08")
    assert create(client, [mine.pk]).status_code == 201

    response = create(client, [theirs.pk])

    assert response.status_code == 409
    assert Payment.objects.count() == 1


def test_a_new_key_with_someone_elses_bill_is_not_found(as_user, household_with_bills):
    theirs = BillFactory(household=household_with_bills["neighbour"], period="2019-08")
    response = create(as_user(household_with_bills["user"]), [theirs.pk], key="fresh")
    assert response.status_code == 404
    assert Payment.objects.count() == 0


def test_an_idempotency_key_is_required(as_user, household_with_bills):
    response = as_user(household_with_bills["user"]).post(
        "/api/v1/payments/",
        {"bill_ids": [household_with_bills["bills"][0].pk], "gateway": "sandbox"},
        format="json",
    )
    assert response.status_code == 400
    assert Payment.objects.count() == 0


@pytest.mark.parametrize(
    "body",
    [
        {"bill_ids": [], "gateway": "sandbox"},
        {"bill_ids": ["x"], "gateway": "sandbox"},
        {"bill_ids": [1], "gateway": "paypal"},
        {"gateway": "sandbox"},
        {"bill_ids": 5},
    ],
)
def test_bad_payment_requests_are_400(as_user, household_with_bills, body):
    response = as_user(household_with_bills["user"]).post(
        "/api/v1/payments/", body, format="json", HTTP_IDEMPOTENCY_KEY="k"
    )
    assert response.status_code == 400
    assert Payment.objects.count() == 0


def test_a_bill_inside_a_pending_payment_cannot_be_paid_again(as_user, household_with_bills):
    client = as_user(household_with_bills["user"])
    bill = household_with_bills["bills"][0]
    assert create(client, [bill.pk], key="a").status_code == 201
    response = create(client, [bill.pk], key="b")
    assert response.status_code == 409
    assert Payment.objects.count() == 1


def test_a_paid_bill_cannot_be_paid_again(as_user, household_with_bills):
    user, bill = household_with_bills["user"], household_with_bills["bills"][0]
    pay(user, [bill])
    response = create(as_user(user), [bill.pk], key="again")
    assert response.status_code == 409
    assert Payment.objects.count() == 1


def test_another_households_bill_is_404_and_nothing_is_created(as_user, household_with_bills):
    theirs = BillFactory(household=household_with_bills["neighbour"])
    response = create(as_user(household_with_bills["user"]), [theirs.pk])
    assert response.status_code == 404
    mixed = create(
        as_user(household_with_bills["user"]),
        [household_with_bills["bills"][0].pk, theirs.pk],
        key="k2",
    )
    assert mixed.status_code == 404
    assert Payment.objects.count() == 0


def test_a_notification_pays_the_bills_and_credits_escrow(
    household_with_bills, django_capture_on_commit_callbacks
):
    user, bills = household_with_bills["user"], household_with_bills["bills"]
    received = []
    events.payment_succeeded.connect(
        lambda sender, **kw: received.append(kw), weak=False, dispatch_uid="test-receiver"
    )
    try:
        with django_capture_on_commit_callbacks(execute=True):
            payment = pay(user, bills)
    finally:
        events.payment_succeeded.disconnect(dispatch_uid="test-receiver")

    assert payment.status == "succeeded"
    for bill in bills:
        bill.refresh_from_db()
        assert (bill.status, bill.paid_amount) == ("paid", bill.amount)
    entry = LedgerTransaction.objects.get(payment=payment)
    legs = {(p.account.key, p.amount) for p in entry.postings.select_related("account")}
    community = household_with_bills["community"]
    assert legs == {("clearing:sandbox", payment.amount)} | {
        (f"escrow:{community.pk}", -b.amount) for b in bills
    }
    assert len(received) == 1
    assert received[0]["payment_id"] == payment.pk
    assert received[0]["on_time"] is False  # paid today, long after the 2019 due dates
    assert [b["period"] for b in received[0]["bills"]] == ["2019-08", "2019-09"]


def _signed(payment, **overrides):
    trade = SandboxTrade.objects.get(out_trade_no=payment.out_trade_no)
    data = json.loads(notification_body(trade)) | {
        "status": "SUCCESS",
        "paid_at": timezone.now().isoformat(),
    }
    data.update(overrides)
    return json.dumps(data).encode()


def _post_notification(client, body, signature):
    headers = {"HTTP_X_SANDBOX_SIGNATURE": signature} if signature is not None else {}
    return client.post(
        "/api/v1/payments/notify/sandbox/", body, content_type="application/json", **headers
    )


@pytest.fixture
def pending(as_user, household_with_bills):
    response = create(
        as_user(household_with_bills["user"]), [b.pk for b in household_with_bills["bills"]]
    )
    return Payment.objects.get(pk=response.json()["id"])


def test_the_notify_endpoint_answers_success_and_replays_change_nothing(client, pending):
    body = _signed(pending)
    for _ in range(10):
        response = _post_notification(client, body, sign(body))
        assert (response.status_code, response.content) == (200, b"success")
    pending.refresh_from_db()
    assert pending.status == "succeeded"
    assert LedgerTransaction.objects.filter(payment=pending).count() == 1
    assert Posting.objects.count() == 3


@pytest.mark.parametrize(
    "tamper",
    [
        "bad-signature",
        "missing-signature",
        "stale",
        "future",
        "wrong-amount",
        "unknown-trade",
        "signed-with-another-secret",
        "malformed",
    ],
)
def test_untrustworthy_notifications_are_400_and_change_nothing(client, pending, tamper):
    body = _signed(pending)
    signature = sign(body)
    if tamper == "bad-signature":
        signature = signature[:-4] + "0000"
    elif tamper == "missing-signature":
        signature = None
    elif tamper == "stale":
        signature = sign(body, timestamp=int(time.time()) - 301)
    elif tamper == "future":
        signature = sign(body, timestamp=int(time.time()) + 301)
    elif tamper == "wrong-amount":
        body = _signed(pending, amount=f"{pending.amount - Decimal('0.01'):.2f}")
        signature = sign(body)
    elif tamper == "unknown-trade":
        body = _signed(pending, out_trade_no="NOSUCHTRADE")
        signature = sign(body)
    elif tamper == "signed-with-another-secret":
        signature = sign(body, secret="not-the-secret")
    elif tamper == "malformed":
        body = b'{"out_trade_no": '
        signature = sign(body)

    response = _post_notification(client, body, signature)

    assert response.status_code == 400
    pending.refresh_from_db()
    assert pending.status == "pending"
    assert Posting.objects.count() == 0
    assert Bill.objects.filter(status="paid").count() == 0


def test_a_closed_trade_fails_the_payment_and_frees_its_bills(
    as_user, household_with_bills, pending
):
    notify(pending, status="CLOSED")
    pending.refresh_from_db()
    assert pending.status == "failed"
    retry = create(
        as_user(household_with_bills["user"]),
        [b.pk for b in household_with_bills["bills"]],
        key="retry",
    )
    assert retry.status_code == 201


def test_an_expired_payment_frees_its_bills(as_user, household_with_bills, pending):
    Payment.objects.filter(pk=pending.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert services.payment_expire_stale() == 1
    pending.refresh_from_db()
    assert (pending.status, pending.failure_reason) == ("failed", "expired")
    assert (
        create(
            as_user(household_with_bills["user"]),
            [household_with_bills["bills"][0].pk],
            key="again",
        ).status_code
        == 201
    )


def test_reconciliation_completes_a_payment_whose_notification_was_lost(pending):
    trade = SandboxTrade.objects.get(out_trade_no=pending.out_trade_no)
    from billing.gateways.sandbox import SandboxGateway

    SandboxGateway.confirm(trade)  # paid at the gateway; the notification never arrives
    Payment.objects.filter(pk=pending.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert services.payment_expire_stale() == 0
    pending.refresh_from_db()
    assert pending.status == "succeeded"
    assert pending.trade_no == trade.trade_no


def test_payer_can_cancel_a_pending_payment(as_user, household_with_bills, pending):
    client = as_user(household_with_bills["user"])
    response = client.post(f"/api/v1/payments/{pending.pk}/cancel/")
    assert response.status_code == 200
    assert response.json()["status"] == "failed"
    assert client.post(f"/api/v1/payments/{pending.pk}/cancel/").status_code == 409


def test_payment_detail_is_the_payers_only(as_user, household_with_bills, pending):
    mine = as_user(household_with_bills["user"]).get(f"/api/v1/payments/{pending.pk}/")
    assert mine.status_code == 200
    assert set(mine.json()) >= {"id", "amount", "status", "bills", "paid_at"}
    other = resident(household_with_bills["neighbour"])
    for path in ("", "trail/"):
        assert as_user(other).get(f"/api/v1/payments/{pending.pk}/{path}").status_code == 404
    assert as_user(other).post(f"/api/v1/payments/{pending.pk}/cancel/").status_code == 404


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_bill_outside_the_payers_scope_is_never_locked(as_user, household_with_bills):
    """The scope is part of the locking statement: naming a neighbour's bill answers 404
    without waiting for (or taking) that bill's lock, which someone else holds here."""
    from django.db import connection

    theirs = BillFactory(household=household_with_bills["neighbour"])
    blocker = connection.get_new_connection(connection.get_connection_params())
    try:
        with blocker.cursor() as cursor:
            cursor.execute("SELECT 1 FROM billing_bill WHERE id = %s FOR UPDATE", [theirs.pk])
        with connection.cursor() as cursor:
            # Were the neighbour's bill locked too, the create would fail on this, not 404.
            cursor.execute("SET lock_timeout = '1s'")
        try:
            response = create(as_user(household_with_bills["user"]), [theirs.pk])
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
    finally:
        blocker.rollback()
        blocker.close()
    assert response.status_code == 404
    assert Payment.objects.count() == 0


def test_the_payers_bills_are_those_household_list_lets_them_see(household_with_bills):
    """payer_bills_for_update writes the resident scope out in SQL and leaves a superuser's
    (every household) to household_list: the bills returned, in primary-key order, are those
    of the households each may see."""
    from django.db import transaction

    from billing.locks import payer_bills_for_update
    from community.tests.factories import UserFactory

    mine = sorted(b.pk for b in household_with_bills["bills"])
    theirs = BillFactory(household=household_with_bills["neighbour"]).pk
    with transaction.atomic():
        found = payer_bills_for_update(
            [theirs, *reversed(mine)], payer=household_with_bills["user"]
        )
        assert [bill.pk for bill in found] == mine
        superuser = UserFactory(is_superuser=True)
        found = payer_bills_for_update([theirs, *mine], payer=superuser)
        assert [bill.pk for bill in found] == sorted([*mine, theirs])
