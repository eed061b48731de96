"""Daily reconciliation with the gateway's statement (billing/reconciliation.py, the beat task
billing.tasks.reconcile_settlements): each kind of difference injected on the gateway's side,
the capture the ledger lacked booked from the statement, and who sees the differences."""

import secrets
from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from billing import reconciliation, services, tasks
from billing.gateways.base import GatewayError
from billing.gateways.sandbox import SandboxGateway
from billing.models import (
    LedgerTransaction,
    Payment,
    Reconciliation,
    ReconciliationLine,
    SandboxRefund,
    SandboxTrade,
)
from billing.tests.factories import BillFactory, estate, pay
from community.audit import Action
from community.models import AuditEntry, Notice, Role
from community.permissions import CENTRE_ADMIN_GROUP, sync_role_groups
from community.tests.factories import member, resident

pytestmark = pytest.mark.django_db

Result = ReconciliationLine.Result


@pytest.fixture
def day_of_trades():
    """One estate, two households: one paid and then partly refunded, one paid."""
    community, (home, neighbour) = estate(2)
    admin = member(Role.CENTRE_ADMIN, centre=community.centre)
    alice, bob = resident(home), resident(neighbour)
    refunded = pay(alice, [BillFactory(household=home, period="2019-08")])
    paid = pay(bob, [BillFactory(household=neighbour, period="2019-08")])
    refund, _ = services.payment_refund(
        payment=refunded,
        amount=Decimal("10.00"),
        reason="overcharged",
        by=admin,
        idempotency_key="r1",
        fingerprint="r1",
    )
    return {
        "community": community,
        "admin": admin,
        "refunded": refunded,
        "paid": paid,
        "refund": refund,
        "day": timezone.localdate(paid.paid_at),
    }


def run(day):
    return reconciliation.reconciliation_run(gateway="sandbox", day=day)


def results(recon):
    return {
        (line.kind, line.out_trade_no if line.kind == "payment" else line.refund_no): line.result
        for line in recon.lines.all()
    }


def test_a_day_whose_statement_agrees_with_the_ledger_matches_every_line(day_of_trades):
    recon = run(day_of_trades["day"])
    assert recon.status == Reconciliation.Status.MATCHED
    assert results(recon) == {
        ("payment", day_of_trades["refunded"].out_trade_no): Result.MATCHED,
        ("payment", day_of_trades["paid"].out_trade_no): Result.MATCHED,
        ("refund", day_of_trades["refund"].refund_no): Result.MATCHED,
    }
    refund_line = recon.lines.get(kind="refund")
    assert refund_line.gateway_amount == refund_line.ledger_amount == Decimal("-10.00")
    assert refund_line.refund_id == day_of_trades["refund"].pk
    assert {line.centre_id for line in recon.lines.all()} == {day_of_trades["community"].centre_id}
    assert not AuditEntry.objects.filter(action=Action.SETTLEMENT_DIFFERENCE).exists()
    assert not Notice.objects.filter(dedupe_key__startswith="reconciliation:").exists()


def test_an_amount_the_gateway_settled_differently_is_amount_differs(day_of_trades):
    paid = day_of_trades["paid"]
    SandboxTrade.objects.filter(out_trade_no=paid.out_trade_no).update(
        amount=paid.amount + Decimal("0.01")
    )
    recon = run(day_of_trades["day"])
    assert recon.status == Reconciliation.Status.DIFFERENCES
    line = recon.lines.get(out_trade_no=paid.out_trade_no, kind="payment")
    assert line.result == Result.AMOUNT_DIFFERS
    assert (line.gateway_amount, line.ledger_amount) == (paid.amount + Decimal("0.01"), paid.amount)
    assert (recon.matched, recon.amount_differs) == (2, 1)


def test_a_payment_the_gateway_does_not_list_is_missing_at_the_gateway(day_of_trades):
    paid = day_of_trades["paid"]
    SandboxTrade.objects.filter(out_trade_no=paid.out_trade_no).update(status="TRADE_CLOSED")
    recon = run(day_of_trades["day"])
    line = recon.lines.get(out_trade_no=paid.out_trade_no)
    assert (line.result, line.gateway_amount, line.ledger_amount) == (
        Result.MISSING_AT_GATEWAY,
        None,
        paid.amount,
    )
    assert line.payment_id == paid.pk
    assert recon.missing_at_gateway == 1


def test_a_refund_the_gateway_does_not_list_is_missing_at_the_gateway(day_of_trades):
    SandboxRefund.objects.filter(refund_no=day_of_trades["refund"].refund_no).delete()
    recon = run(day_of_trades["day"])
    assert results(recon)[("refund", day_of_trades["refund"].refund_no)] == (
        Result.MISSING_AT_GATEWAY
    )


def test_a_trade_the_portal_never_issued_is_missing_in_the_ledger_and_seen_by_every_admin(
    day_of_trades,
):
    stranger = SandboxTrade.objects.create(
        out_trade_no="LLNEVERISSUED",
        trade_no=f"SBX{secrets.token_hex(6)}",
        amount=Decimal("88.00"),
        status="TRADE_SUCCESS",
        notify_url="http://x/",
        paid_at=day_of_trades["paid"].paid_at,
    )
    other_estate, _ = estate(1)
    other_centre_admin = member(Role.CENTRE_ADMIN, centre=other_estate.centre)
    recon = run(day_of_trades["day"])
    line = recon.lines.get(out_trade_no=stranger.out_trade_no)
    assert (line.result, line.gateway_amount, line.ledger_amount, line.centre_id) == (
        Result.MISSING_IN_LEDGER,
        Decimal("88.00"),
        None,
        None,
    )
    # Nobody's centre: every centre admin sees it, and is told.
    for admin in (day_of_trades["admin"], other_centre_admin):
        visible = reconciliation.reconciliation_differences(user=admin)
        assert list(visible.values_list("out_trade_no", flat=True)) == ["LLNEVERISSUED"]
        assert admin.notices.filter(dedupe_key__startswith=f"reconciliation:{recon.pk}:").exists()
    entry = AuditEntry.objects.get(action=Action.SETTLEMENT_DIFFERENCE)
    assert entry.centre_id is None
    assert entry.details["trades"] == ["LLNEVERISSUED"]


def test_a_centres_differences_are_its_own_admins_only(day_of_trades):
    paid = day_of_trades["paid"]
    SandboxTrade.objects.filter(out_trade_no=paid.out_trade_no).update(amount=Decimal("1.00"))
    other_estate, _ = estate(1)
    other_centre_admin = member(Role.CENTRE_ADMIN, centre=other_estate.centre)
    recon = run(day_of_trades["day"])
    assert reconciliation.reconciliation_differences(user=day_of_trades["admin"]).count() == 1
    assert reconciliation.reconciliation_differences(user=other_centre_admin).count() == 0
    assert not other_centre_admin.notices.exists()
    entry = AuditEntry.objects.get(action=Action.SETTLEMENT_DIFFERENCE)
    assert entry.centre_id == day_of_trades["community"].centre_id
    assert entry.details["trades"] == [paid.out_trade_no]
    resident_user = paid.payer
    assert reconciliation.reconciliation_differences(user=resident_user).count() == 0
    summary = reconciliation.reconciliation_difference_summary(user=day_of_trades["admin"])
    assert summary["total"] == 1
    assert [line.pk for line in summary["newest"]] == [
        recon.lines.get(result=Result.AMOUNT_DIFFERS).pk
    ]


def test_running_a_day_again_replaces_its_lines_and_tells_nobody_twice(day_of_trades):
    paid = day_of_trades["paid"]
    SandboxTrade.objects.filter(out_trade_no=paid.out_trade_no).update(amount=Decimal("1.00"))
    first = run(day_of_trades["day"])
    second = run(day_of_trades["day"])
    assert first.pk == second.pk
    assert ReconciliationLine.objects.count() == 3
    assert (
        day_of_trades["admin"].notices.filter(dedupe_key__startswith="reconciliation:").count() == 1
    )
    # The gateway corrects its statement: the rerun matches, the day is clean.
    SandboxTrade.objects.filter(out_trade_no=paid.out_trade_no).update(amount=paid.amount)
    assert run(day_of_trades["day"]).status == Reconciliation.Status.MATCHED


def test_a_capture_the_ledger_lacked_is_booked_from_the_statement(day_of_trades):
    """The notification was lost and nobody asked the gateway: the statement lists the trade,
    the run books it (to its bills) and then matches it. Nothing captured stays off the books."""
    home = day_of_trades["refunded"].items.get().bill.household
    bill = BillFactory(household=home, period="2019-09")
    payment, _ = services.payment_create(
        payer=day_of_trades["refunded"].payer,
        bill_ids=[bill.pk],
        gateway="sandbox",
        idempotency_key="lost",
        fingerprint="lost",
    )
    trade = SandboxTrade.objects.get(out_trade_no=payment.out_trade_no)
    trade.status, trade.paid_at = "TRADE_SUCCESS", timezone.now()
    trade.save()
    recon = run(day_of_trades["day"])
    payment.refresh_from_db()
    bill.refresh_from_db()
    assert (payment.status, bill.status) == ("succeeded", "paid")
    assert results(recon)[("payment", payment.out_trade_no)] == Result.MATCHED
    assert recon.status == Reconciliation.Status.MATCHED


def test_a_capture_for_bills_settled_meanwhile_is_booked_to_suspense_and_matches(day_of_trades):
    """A cancelled order the payer paid anyway, after its replacement succeeded: the run books
    it to the gateway's suspense account; the statement and the ledger then agree."""
    home = day_of_trades["refunded"].items.get().bill.household
    payer = day_of_trades["refunded"].payer
    bill = BillFactory(household=home, period="2019-09")
    abandoned, _ = services.payment_create(
        payer=payer, bill_ids=[bill.pk], gateway="sandbox", idempotency_key="a", fingerprint="a"
    )
    services.payment_cancel(payment=abandoned)
    pay(payer, [bill], key="b")
    trade = SandboxTrade.objects.get(out_trade_no=abandoned.out_trade_no)
    trade.status, trade.paid_at = "TRADE_SUCCESS", timezone.now()
    trade.save()
    recon = run(day_of_trades["day"])
    abandoned.refresh_from_db()
    assert (abandoned.status, abandoned.in_suspense) == ("failed", abandoned.amount)
    assert LedgerTransaction.objects.get(payment=abandoned).kind == "capture_unbooked"
    assert results(recon)[("payment", abandoned.out_trade_no)] == Result.MATCHED


def test_a_statement_that_cannot_be_fetched_is_recorded_as_failed(day_of_trades):
    with mock.patch(
        "billing.gateways.sandbox.SandboxGateway.settlement",
        side_effect=GatewayError("bill not ready"),
    ):
        recon = run(day_of_trades["day"])
    assert (recon.status, recon.error, recon.lines.count()) == (
        Reconciliation.Status.FAILED,
        "bill not ready",
        0,
    )


def test_the_daily_job_reconciles_yesterday_and_catches_up_failed_days(day_of_trades):
    today = day_of_trades["day"] + timedelta(days=3)
    failed_day = day_of_trades["day"]
    Reconciliation.objects.create(
        gateway="sandbox", day=failed_day, status=Reconciliation.Status.FAILED, error="down"
    )
    done_day = today - timedelta(days=2)
    Reconciliation.objects.create(
        gateway="sandbox", day=done_day, status=Reconciliation.Status.MATCHED
    )
    with mock.patch("billing.tasks.timezone.localdate", return_value=today):
        found = tasks.reconcile_settlements.delay().get()
    # Yesterday, the failed day (now fetched and matched) and the days never run; not the one done.
    assert found[f"sandbox:{failed_day.isoformat()}"] == 0
    assert f"sandbox:{(today - timedelta(days=1)).isoformat()}" in found
    assert f"sandbox:{done_day.isoformat()}" not in found
    assert len(found) == tasks.RECONCILE_CATCH_UP_DAYS
    assert Reconciliation.objects.get(day=failed_day).status == Reconciliation.Status.MATCHED
    assert Payment.objects.filter(status="succeeded").count() == 2


def test_the_job_runs_after_the_gateways_publish(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["billing-reconcile-settlements"]
    assert entry["task"] == "billing.tasks.reconcile_settlements"
    # WeChat Pay publishes yesterday's bill after 10:00 Beijing time, Alipay after about 09:00.
    assert entry["schedule"].hour == {10} and min(entry["schedule"].minute) >= 30
    assert settings.CELERY_TIMEZONE == "Asia/Shanghai"


def test_admin_lists_a_centres_differences_and_fetches_a_day_again(client, day_of_trades):
    paid = day_of_trades["paid"]
    SandboxTrade.objects.filter(out_trade_no=paid.out_trade_no).update(amount=Decimal("1.00"))
    recon = run(day_of_trades["day"])
    other_estate, _ = estate(1)
    outsider = member(Role.CENTRE_ADMIN, centre=other_estate.centre)
    sync_role_groups()
    for user in (day_of_trades["admin"], outsider):
        user.is_staff = True
        user.save()
        user.groups.add(Group.objects.get(name=CENTRE_ADMIN_GROUP))

    client.force_login(day_of_trades["admin"])
    lines = client.get("/admin/billing/reconciliationline/?differs=yes")
    assert lines.status_code == 200
    assert list(lines.context["cl"].result_list) == [recon.lines.get(result="amount_differs")]
    assert client.get(f"/admin/billing/reconciliation/{recon.pk}/change/").status_code == 200
    # The gateway corrects its statement; the admin fetches the day again.
    SandboxTrade.objects.filter(out_trade_no=paid.out_trade_no).update(amount=paid.amount)
    response = client.post(
        "/admin/billing/reconciliation/",
        {"action": "fetch_again", "_selected_action": [recon.pk]},
    )
    assert response.status_code == 302
    recon.refresh_from_db()
    assert recon.status == Reconciliation.Status.MATCHED

    client.force_login(outsider)
    assert not client.get("/admin/billing/reconciliationline/").context["cl"].result_list


def test_the_centre_dashboard_shows_the_differences_and_the_money_in_suspense(
    client, day_of_trades
):
    client.force_login(day_of_trades["admin"])
    clean = client.get("/dashboards/centre/")
    assert clean.context["statement_differences"]["total"] == 0
    assert clean.context["in_suspense"]["count"] == 0

    paid = day_of_trades["paid"]
    SandboxTrade.objects.filter(out_trade_no=paid.out_trade_no).update(amount=Decimal("1.00"))
    run(day_of_trades["day"])
    home = day_of_trades["refunded"].items.get().bill.household
    payer = day_of_trades["refunded"].payer
    bill = BillFactory(household=home, period="2019-09")
    abandoned, _ = services.payment_create(
        payer=payer, bill_ids=[bill.pk], gateway="sandbox", idempotency_key="a", fingerprint="a"
    )
    services.payment_cancel(payment=abandoned)
    pay(payer, [bill], key="b")
    SandboxGateway.confirm(SandboxTrade.objects.get(out_trade_no=abandoned.out_trade_no))
    services.payment_book_from_gateway(payment_id=abandoned.pk)

    response = client.get("/dashboards/centre/")
    assert response.context["statement_differences"]["total"] == 1
    assert response.context["in_suspense"] == {"count": 1, "amount": abandoned.amount}
    assert paid.out_trade_no.encode() in response.content
    assert b"/admin/billing/payment/?suspense=yes" in response.content
