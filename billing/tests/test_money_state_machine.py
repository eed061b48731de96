"""A stateful property test of the escrow's money, on PostgreSQL with its real triggers.

Hypothesis drives random sequences of what happens to an estate's money through the real
services: residents start payments; the sandbox gateway confirms them and sends its signed
notification (sometimes twice, sometimes lost and found again by reconciliation), or a forged,
stale or wrong-amount notification arrives; payers cancel; pending payments expire (and a
late notification may still arrive); the centre refunds any amount, waives bills, pays months
out and releases their hold-back by a score. Every service call commits (transactional
database), so the deferred balance trigger and the overdraft constraints run for real.

After every step these must hold:
- every ledger transaction balances and every cached balance equals its postings
  (billing.selectors.ledger_problems, what `manage.py check_ledger` runs);
- no account is below its floor: escrow, company payable and public fund never overdrawn
  (balance ≤ 0, they are credit-normal), the gateway's clearing account never negative;
- per bill: 0 ≤ paid ≤ billed, and paid is what its payments' items still hold;
- per payment: 0 ≤ refunded ≤ paid, equal to its refunds, and the sandbox refunded the same;
- escrow: held + released + forfeited + refunded = collected (billing.selectors.escrow_summary),
  with collected and refunded also counted independently by the machine, and every bill's
  share of every payment accounted for in non-negative parts (selectors.whereabouts): a refund
  takes from the company, the hold-back and the public fund in proportion, never more from one
  than went there;
- everything the gateway captured and the portal heard of is on the books: the clearing account
  holds what was captured less what was refunded, and money no bill could take sits in the
  gateway's suspense account, equal to what the payments hold in suspense.
"""

import json
import os
from decimal import Decimal
from fractions import Fraction

import pytest
from django.db.models import Sum
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from billing import selectors, services
from billing.gateways.base import NotificationRejected
from billing.gateways.sandbox import SandboxGateway, notification_body, sign
from billing.models import (
    Account,
    Bill,
    LedgerTransaction,
    Payment,
    PaymentItem,
    Payout,
    Posting,
    Refund,
    SandboxTrade,
)
from billing.money import ZERO
from billing.tests.factories import BillFactory, estate
from community.models import Role
from community.periods import Period
from community.tests.factories import member, resident
from config.api import Conflict

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PERIODS = [Period(2019, 8), Period(2019, 9)]
# Areas and a rate that make fees with odd fen, and hold-back shares that split them unevenly.
AREAS = [Decimal("89.37"), Decimal("101.23")]
RATE = "1.37"
# CI's budget; LINLI_MACHINE_EXAMPLES=500 searches deeper by hand.
MAX_EXAMPLES = int(os.environ.get("LINLI_MACHINE_EXAMPLES", 30))
STEPS = 25
RUNS = {"examples": 0, "steps": 0}


def deliver(body: bytes, signature: str) -> Payment:
    return services.payment_notification_receive(
        gateway="sandbox", body=body, headers={"X-Sandbox-Signature": signature}
    )


def snapshot() -> tuple:
    """Everything a rejected or duplicate notification must leave exactly as it was."""
    return (
        Posting.objects.count(),
        list(
            Payment.objects.order_by("pk").values_list(
                "pk", "status", "refunded_amount", "in_suspense"
            )
        ),
        list(Bill.objects.order_by("pk").values_list("pk", "paid_amount", "status")),
        list(Account.objects.order_by("pk").values_list("pk", "balance")),
        list(SandboxTrade.objects.order_by("pk").values_list("pk", "status", "refunded")),
    )


class EscrowMachine(RuleBasedStateMachine):
    payments = Bundle("payments")

    @initialize(holdback=st.sampled_from(["0.10", "0.15", "0.3333", "0.00", "1.00"]))
    def estate(self, holdback):
        RUNS["examples"] += 1
        self.community, self.homes = estate(len(AREAS), rate=RATE, holdback=holdback)
        self.payers = []
        self.bills = []
        for home, area in zip(self.homes, AREAS, strict=True):
            home.area = area
            home.save(update_fields=["area"])
            self.payers.append(resident(home))
            for period in PERIODS:
                self.bills.append(
                    BillFactory(
                        household=home,
                        period=str(period),
                        rate=Decimal(RATE),
                        due_date=period.day(15),
                    )
                )
        self.admin = member(Role.CENTRE_ADMIN, centre=self.community.centre)
        self.keys = 0
        # What the machine itself saw happen, to check the ledger's account of it.
        self.collected = ZERO
        self.refunded = ZERO  # from the estate's accounts (not from suspense)

    def _key(self) -> str:
        self.keys += 1
        return f"machine-{self.community.pk}-{self.keys}"

    def _settled(self, payment: Payment, before: str) -> None:
        """Count a payment the step just turned into money received."""
        payment.refresh_from_db()
        if before not in ("succeeded", "refunded") and payment.status == "succeeded":
            self.collected += payment.amount

    # --- payments --------------------------------------------------------------------------

    @rule(
        target=payments,
        payer=st.integers(0, len(AREAS) - 1),
        periods=st.sets(st.sampled_from(range(len(PERIODS))), min_size=1),
    )
    def start_payment(self, payer, periods):
        RUNS["steps"] += 1
        bills = [self.bills[payer * len(PERIODS) + i] for i in sorted(periods)]
        ids = [b.pk for b in bills]
        try:
            payment, created = services.payment_create(
                payer=self.payers[payer],
                bill_ids=ids,
                gateway="sandbox",
                idempotency_key=self._key(),
                fingerprint=services.request_fingerprint({"bill_ids": ids}),
            )
        except Conflict:
            # Settled, waived or inside another pending payment: then nothing was created.
            assert (
                Bill.objects.filter(pk__in=ids).exclude(status__in=["paid", "waived"]).count()
                < len(ids)
                or PaymentItem.objects.filter(bill_id__in=ids, is_open=True).exists()
            )
            return multiple()
        assert created and payment.status == "pending"
        outstanding = sum((b.amount - b.paid_amount for b in Bill.objects.filter(pk__in=ids)), ZERO)
        assert payment.amount == outstanding
        return payment

    @rule(payment=payments)
    def gateway_confirms_and_notifies(self, payment):
        RUNS["steps"] += 1
        payment.refresh_from_db()
        before = payment.status
        trade = SandboxTrade.objects.get(out_trade_no=payment.out_trade_no)
        if trade.status == "TRADE_CLOSED":
            return
        SandboxGateway.confirm(trade)
        body = notification_body(trade)
        deliver(body, sign(body))
        self._settled(payment, before)
        payment.refresh_from_db()
        assert payment.status in ("succeeded", "refunded") or (
            payment.failure_reason == "captured after its bills were settled: refund due"
            and payment.in_suspense + payment.refunded_amount == payment.amount
        )

    @rule(payment=payments)
    def gateway_confirms_but_the_notification_is_lost(self, payment):
        RUNS["steps"] += 1
        trade = SandboxTrade.objects.get(out_trade_no=payment.out_trade_no)
        SandboxGateway.confirm(trade)

    @rule(payment=payments)
    def the_same_notification_again(self, payment):
        RUNS["steps"] += 1
        payment.refresh_from_db()
        trade = SandboxTrade.objects.get(out_trade_no=payment.out_trade_no)
        if payment.status not in ("succeeded", "refunded") or trade.status != "TRADE_SUCCESS":
            return
        before = snapshot()
        body = notification_body(trade)
        assert deliver(body, sign(body)).pk == payment.pk
        assert snapshot() == before

    @rule(payment=payments, forgery=st.sampled_from(["secret", "stale", "amount", "unknown"]))
    def a_bad_notification_changes_nothing(self, payment, forgery):
        RUNS["steps"] += 1
        trade = SandboxTrade.objects.get(out_trade_no=payment.out_trade_no)
        data = {
            "out_trade_no": trade.out_trade_no,
            "trade_no": trade.trade_no,
            "amount": f"{trade.amount:.2f}",
            "status": "SUCCESS",
            "paid_at": "2019-08-10T10:00:00+08:00",
        }
        if forgery == "amount":
            data["amount"] = f"{trade.amount + Decimal('0.01'):.2f}"
        if forgery == "unknown":
            data["out_trade_no"] = "NO" + trade.out_trade_no
        body = json.dumps(data).encode()
        signature = {
            "secret": lambda: sign(body, secret="not-the-gateway"),
            "stale": lambda: sign(body, timestamp=1_000_000_000),
        }.get(forgery, lambda: sign(body))()
        before = snapshot()
        with pytest.raises(NotificationRejected):
            deliver(body, signature)
        assert snapshot() == before

    @rule(payment=payments)
    def gateway_closes_the_trade(self, payment):
        RUNS["steps"] += 1
        trade = SandboxTrade.objects.get(out_trade_no=payment.out_trade_no)
        SandboxGateway.cancel(trade)
        trade.refresh_from_db()
        if trade.status != "TRADE_CLOSED":
            return  # already paid at the gateway: closing is no longer possible
        body = notification_body(trade)
        payment = deliver(body, sign(body))
        assert payment.status != "succeeded"

    @rule(payment=payments)
    def payer_cancels(self, payment):
        RUNS["steps"] += 1
        payment.refresh_from_db()
        try:
            services.payment_cancel(payment=payment)
        except Conflict:
            assert payment.status != "pending"
            return
        assert PaymentItem.objects.filter(payment=payment, is_open=True).count() == 0

    @rule(payment=payments)
    def pending_payment_expires(self, payment):
        """What the expiry beat job does once the payment is stale: ask the gateway first."""
        RUNS["steps"] += 1
        payment.refresh_from_db()
        before = payment.status
        services.payment_reconcile(payment_id=payment.pk, expire=True)
        self._settled(payment, before)
        if before == "pending":
            assert payment.status in ("succeeded", "failed")

    # --- the centre --------------------------------------------------------------------------

    @rule(payment=payments, part=st.fractions(min_value=0, max_value=1) | st.just(1))
    def centre_refunds(self, payment, part):
        RUNS["steps"] += 1
        payment.refresh_from_db()
        left = payment.in_suspense or payment.amount - payment.refunded_amount
        amount = max(
            Decimal("0.01"),
            (left * Decimal(part.numerator) / part.denominator).quantize(Decimal("0.01")),
        )
        before = snapshot()
        try:
            refund, created = services.payment_refund(
                payment=payment,
                amount=amount,
                reason="moving out",
                by=self.admin,
                idempotency_key=self._key(),
                fingerprint=self._key(),
            )
        except Conflict:
            # Not refundable (neither succeeded nor in suspense, or less left): refused before
            # the gateway moved anything. Money that is refundable always is: a refund takes
            # from each account at most what the payment put there.
            assert snapshot() == before
            assert not (
                (payment.status == "succeeded" or payment.in_suspense > 0) and amount <= left
            ), (payment.status, amount, left)
            return
        assert created and refund.amount == amount <= left
        sources = [refund.from_escrow, refund.from_company, refund.from_fund, refund.from_suspense]
        assert all(part >= 0 for part in sources) and sum(sources) == amount
        self.refunded += amount - refund.from_suspense

    @rule(payment=payments)
    def centre_refunds_too_much(self, payment):
        RUNS["steps"] += 1
        payment.refresh_from_db()
        before = snapshot()
        left = payment.in_suspense or payment.amount - payment.refunded_amount
        with pytest.raises(Conflict):
            services.payment_refund(
                payment=payment,
                amount=left + Decimal("0.01"),
                reason="too much",
                by=self.admin,
                idempotency_key=self._key(),
                fingerprint=self._key(),
            )
        assert snapshot() == before

    @rule(bill=st.integers(0, len(AREAS) * len(PERIODS) - 1))
    def centre_waives_a_bill(self, bill):
        RUNS["steps"] += 1
        bill = Bill.objects.get(pk=self.bills[bill].pk)
        try:
            services.bill_waive(bill=bill)
        except Conflict:
            assert bill.paid_amount > 0 or bill.payment_items.filter(is_open=True).exists()

    @rule(period=st.sampled_from(PERIODS))
    def month_is_paid_out(self, period):
        RUNS["steps"] += 1
        existed = Payout.objects.filter(
            community=self.community, period=str(period), kind="regular"
        ).exists()
        payout, created = services.payout_run(community=self.community, period=period)
        assert created != existed
        assert payout.to_company + payout.held_back == payout.collected

    @rule(period=st.sampled_from(PERIODS), score=st.decimals(0, 1, places=4))
    def scorecard_releases_the_holdback(self, period, score):
        RUNS["steps"] += 1
        try:
            release, _created = services.release_holdback(
                community=self.community, period=period, score=score
            )
        except Conflict:
            assert not Payout.objects.filter(
                community=self.community, period=str(period), kind="regular"
            ).exists()
            return
        assert release.to_company + release.to_public_fund == release.held_back

    # --- invariants --------------------------------------------------------------------------

    @invariant()
    def ledger_is_sound(self):
        assert selectors.ledger_problems() == []

    @invariant()
    def no_account_below_its_floor(self):
        overdrawn = Account.objects.filter(kind__in=Account.LIABILITIES, balance__gt=0)
        assert list(overdrawn.values_list("key", "balance")) == []
        negative = Account.objects.filter(kind=Account.Kind.GATEWAY_CLEARING, balance__lt=0)
        assert list(negative.values_list("key", "balance")) == []

    @invariant()
    def paid_is_at_most_billed(self):
        for bill in Bill.objects.filter(community=self.community):
            assert ZERO <= bill.paid_amount <= bill.amount, bill
            held = PaymentItem.objects.filter(
                bill=bill, payment__status__in=["succeeded", "refunded"]
            ).aggregate(total=Sum("amount", default=ZERO) - Sum("refunded_amount", default=ZERO))
            assert bill.paid_amount == held["total"], bill
            if bill.status != Bill.Status.WAIVED:
                assert bill.status == Bill.status_for(
                    amount=bill.amount, paid_amount=bill.paid_amount
                )

    @invariant()
    def refunded_is_at_most_paid(self):
        payments = Payment.objects.filter(items__bill__community=self.community).distinct()
        for payment in payments:
            assert ZERO <= payment.refunded_amount <= payment.amount, payment
            refunds = Refund.objects.filter(payment=payment).aggregate(
                t=Sum("amount", default=ZERO)
            )
            from_suspense = Refund.objects.filter(payment=payment).aggregate(
                t=Sum("from_suspense", default=ZERO)
            )
            items = payment.items.aggregate(t=Sum("refunded_amount", default=ZERO))
            trade = SandboxTrade.objects.get(out_trade_no=payment.out_trade_no)
            assert payment.refunded_amount == refunds["t"] == trade.refunded
            assert payment.refunded_amount == items["t"] + from_suspense["t"]
            if payment.status == "failed":  # its money, if any, went to suspense, not bills
                assert items["t"] == ZERO
            else:
                assert (payment.status == "refunded") == (
                    payment.refunded_amount == payment.amount and payment.amount > 0
                )

    @invariant()
    def escrow_accounts_for_everything_collected(self):
        summary = selectors.escrow_summary(community=self.community)
        collected = LedgerTransaction.objects.filter(
            kind="payment", postings__account__key=f"escrow:{self.community.pk}"
        ).aggregate(total=Sum("postings__amount", default=ZERO))["total"]
        assert -collected == self.collected
        assert summary["refunded"] == self.refunded
        assert all(value >= 0 for value in summary.values()), summary
        assert summary["withheld"] <= summary["held"]
        assert (
            summary["held"]
            + summary["released"]
            + summary["forfeited_to_fund"]
            + summary["refunded"]
            == self.collected
        ), summary
        items = PaymentItem.objects.filter(
            bill__community=self.community, payment__status__in=["succeeded", "refunded"]
        ).select_related("bill")
        for item in items:
            where = selectors.whereabouts(item)
            parts = [where.held_in_escrow, where.paid_to_company, where.forfeited_to_fund]
            assert sum(parts, where.refunded) == item.amount
            assert all(part >= 0 for part in [*parts, where.refunded, where.held_back]), where
            assert where.held_back <= where.held_in_escrow

    @invariant()
    def everything_captured_is_on_the_books(self):
        booked = Payment.objects.filter(paid_at__isnull=False, gateway="sandbox")
        captured = booked.aggregate(t=Sum("amount", default=ZERO))["t"]
        refunded = Refund.objects.aggregate(t=Sum("amount", default=ZERO))["t"]
        clearing = Account.objects.filter(key="clearing:sandbox").first()
        assert (clearing.balance if clearing else ZERO) == captured - refunded
        suspense = Account.objects.filter(key="suspense:sandbox").first()
        in_suspense = booked.aggregate(t=Sum("in_suspense", default=ZERO))["t"]
        assert -(suspense.balance if suspense else ZERO) == in_suspense
        assert not Payment.objects.filter(in_suspense__gt=0).exclude(status="failed").exists()


def test_money_is_never_lost_or_made_up():
    run_state_machine_as_test(
        EscrowMachine,
        settings=settings(
            max_examples=MAX_EXAMPLES,
            stateful_step_count=STEPS,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    print(f"escrow machine: {RUNS['examples']} examples, {RUNS['steps']} steps")
    assert RUNS["examples"] >= MAX_EXAMPLES


def check_invariants(machine: EscrowMachine) -> None:
    machine.ledger_is_sound()
    machine.no_account_below_its_floor()
    machine.paid_is_at_most_billed()
    machine.refunded_is_at_most_paid()
    machine.escrow_accounts_for_everything_collected()
    machine.everything_captured_is_on_the_books()


def test_money_for_bills_settled_meanwhile_goes_to_suspense_until_refunded():
    """A sequence the machine's rules allow: a payment expires, the bill is paid again, then
    the gateway reports the first payment paid after all (it settles the bill) and the second
    paid too. The second's money cannot settle anything: it is booked to the gateway's suspense
    account (before, it stayed outside the ledger), the payment fails and the centre admins are
    asked to refund it, which takes it out of suspense."""
    machine = EscrowMachine()
    machine.estate(holdback="0.10")
    first = machine.start_payment(payer=0, periods={0})
    machine.pending_payment_expires(first)
    second = machine.start_payment(payer=0, periods={0})
    machine.gateway_confirms_and_notifies(first)
    machine.gateway_confirms_but_the_notification_is_lost(second)
    machine.pending_payment_expires(second)
    check_invariants(machine)

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == ("succeeded", "failed")
    assert second.failure_reason == "captured after its bills were settled: refund due"
    assert second.in_suspense == second.amount
    assert not second.items.filter(is_open=True).exists()
    assert machine.admin.notices.filter(dedupe_key=f"late-payment:{second.pk}").exists()
    capture = LedgerTransaction.objects.get(payment=second)
    assert capture.kind == "capture_unbooked"
    assert {p.account.key: p.amount for p in capture.postings.all()} == {
        "clearing:sandbox": second.amount,
        "suspense:sandbox": -second.amount,
    }
    # Its notification, arriving late, changes nothing more.
    before = snapshot()
    body = notification_body(SandboxTrade.objects.get(out_trade_no=second.out_trade_no))
    deliver(body, sign(body))
    assert snapshot() == before
    check_invariants(machine)
    # The refund takes it out of suspense and back to the payer.
    machine.centre_refunds(second, Fraction(1))
    second.refresh_from_db()
    assert (second.status, second.in_suspense, second.refunded_amount) == (
        "failed",
        ZERO,
        second.amount,
    )
    assert Account.objects.get(key="suspense:sandbox").balance == ZERO
    check_invariants(machine)


def test_a_full_refund_after_a_release_at_score_zero_takes_the_fund_its_part():
    """The machine's earlier find: one payment of August and September, August paid out and
    its hold-back released with score 0 (all of it forfeited to the public fund), then a full
    refund. When refunds after a release came from the company alone, its payable held only
    90% of August and the refund was refused. Now each part comes back from where it went: the
    company's 90% from the company payable, the forfeited 10% from the public fund."""
    machine = EscrowMachine()
    machine.estate(holdback="0.10")
    payment = machine.start_payment(payer=0, periods={0, 1})
    machine.gateway_confirms_and_notifies(payment)
    machine.month_is_paid_out(PERIODS[0])
    machine.scorecard_releases_the_holdback(PERIODS[0], Decimal(0))

    machine.centre_refunds(payment, Fraction(1))

    check_invariants(machine)
    refund = Refund.objects.get(payment=payment)
    august = payment.items.get(bill__period=str(PERIODS[0]))
    assert refund.from_fund == august.forfeited_to_fund > 0
    assert refund.from_company == august.paid_out_to_company
    balances = dict(
        Account.objects.filter(community=machine.community).values_list("key", "balance")
    )
    assert set(balances.values()) == {ZERO}
