"""The dashboards' per-estate, per-month summary (community.summaries) equals a recount of the
bills and tickets (alliance.summary) after any sequence of the writes that keep it.

A Hypothesis state machine drives two estates through the real services: the bill run,
prepayments, payments through the sandbox gateway's signed notification, payments at the desk,
cancelled and failed payments (a prepayment's bills then go void), refunds of any part, waivers,
late fees and their waiver, opening arrears; tickets filed on either side of a month's end in
the project's time zone, moved by every action of the transition table at times inside and past
their deadlines, escalated, and rated. After every step each summary row must equal its recount.
Each example runs in a savepoint rolled back at its end.
"""

import contextlib
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
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

from alliance import kpis
from alliance.summary import summary_problems, summary_rebuild
from billing import charges, desk, services
from billing.models import Bill, BillLine, LateFeeRule, SandboxTrade
from billing.tests.factories import estate, notify
from community.models import EstateMonth, Role
from community.periods import Period
from community.tests.factories import member, resident
from config.api import Conflict
from repairs import services as repairs_services
from repairs import transitions
from repairs.models import Kind
from repairs.tests.factories import TicketCategoryFactory

pytestmark = pytest.mark.django_db

PERIODS = [Period(2019, 8), Period(2019, 9)]
TZ = timezone.get_default_timezone()
# Filing instants around the end of August in Shanghai time: 23:30 on the 31st is still
# August there (15:30 UTC), 00:30 on 1 September is September (16:30 UTC on 31 August).
FILED_AT = [
    datetime(2019, 8, 5, 9, 0, tzinfo=TZ),
    datetime(2019, 8, 31, 23, 30, tzinfo=TZ),
    datetime(2019, 9, 1, 0, 30, tzinfo=TZ),
    datetime(2019, 9, 20, 15, 0, tzinfo=TZ),
]
SETTINGS = settings(
    max_examples=12,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class SummaryMachine(RuleBasedStateMachine):
    payments = Bundle("payments")
    tickets = Bundle("tickets")

    @initialize()
    def estates(self):
        self._savepoint = transaction.atomic()
        self._savepoint.__enter__()
        self.homes, self.residents = [], []
        for _ in range(2):
            community, homes = estate(2)
            self.homes += homes
            self.residents += [resident(home) for home in homes]
            LateFeeRule.objects.create(
                community=community,
                name="Late fee",
                grace_days=0,
                daily_rate=Decimal("0.001"),
                cap_rate=Decimal("0.1"),
            )
        self.communities = [home.building.community for home in self.homes[::2]]
        self.admin = member(Role.CENTRE_ADMIN, centre=self.communities[0].centre)
        self.admin_elsewhere = member(Role.CENTRE_ADMIN, centre=self.communities[1].centre)
        self.staff = [member(Role.PROPERTY_STAFF, company=c.company) for c in self.communities]
        self.category = TicketCategoryFactory(kind=Kind.REPORT, response_hours=2, resolve_hours=8)
        self.keys = 0

    def teardown(self):
        if hasattr(self, "_savepoint"):
            transaction.set_rollback(True)
            self._savepoint.__exit__(None, None, None)

    def _key(self) -> str:
        self.keys += 1
        return f"summary-{self.keys}"

    def _bills(self, home: int) -> list[Bill]:
        return list(Bill.objects.filter(household=self.homes[home]).order_by("period", "pk"))

    def _cashier(self, home: int):
        return self.admin if home < 2 else self.admin_elsewhere

    @invariant()
    def summary_equals_a_recount(self):
        if hasattr(self, "_savepoint"):
            assert summary_problems() == []

    # --- bills -------------------------------------------------------------------------------

    @rule(period=st.sampled_from(PERIODS))
    def the_bill_run(self, period):
        services.bill_generate_for_period(period=period)

    @rule(home=st.integers(0, 3), period=st.sampled_from(PERIODS))
    def opening_arrears(self, home, period):
        # The month has a bill already: refused.
        with contextlib.suppress(Conflict):
            charges.opening_arrears_record(
                household=self.homes[home], period=period, amount="88.80"
            )

    @rule(home=st.integers(0, 3), which=st.integers(0, 3))
    def the_centre_waives_a_bill(self, home, which):
        bills = self._bills(home)
        if bills:
            # Paid in part, or inside a payment: refused.
            with contextlib.suppress(Conflict):
                services.bill_waive(bill=bills[which % len(bills)])

    @rule(day=st.sampled_from([date(2019, 8, 20), date(2019, 9, 30), date(2019, 11, 1)]))
    def late_fees_accrue(self, day):
        charges.late_fees_assess(today=day)

    @rule(home=st.integers(0, 3))
    def the_centre_waives_a_late_fee(self, home):
        line = (
            BillLine.objects.filter(
                bill__household=self.homes[home], kind="late_fee", waived_at__isnull=True
            )
            .order_by("pk")
            .first()
        )
        if line is not None:
            # Paid already, or inside a payment: refused.
            with contextlib.suppress(Conflict):
                charges.late_fee_waive(line=line, by=self.admin, reason="in hospital")

    # --- payments ----------------------------------------------------------------------------

    @rule(target=payments, home=st.integers(0, 3), which=st.sets(st.integers(0, 3), min_size=1))
    def a_resident_starts_a_payment(self, home, which):
        bills = self._bills(home)
        ids = sorted({bills[n % len(bills)].pk for n in which}) if bills else []
        if not ids:
            return multiple()
        try:
            payment, _ = services.payment_create(
                payer=self.residents[home],
                bill_ids=ids,
                gateway="sandbox",
                idempotency_key=self._key(),
                fingerprint=self._key(),
            )
        except Conflict:
            return multiple()  # settled, waived, void or inside another payment
        return payment

    @rule(target=payments, home=st.integers(0, 3), months=st.integers(1, 3))
    def a_resident_prepays(self, home, months):
        try:
            payment, _ = services.bill_prepay(
                user=self.residents[home],
                household_id=self.homes[home].pk,
                months=months,
                gateway="sandbox",
                idempotency_key=self._key(),
                fingerprint=self._key(),
            )
        except Conflict:
            return multiple()
        return payment

    @rule(payment=payments)
    def the_gateway_confirms_and_notifies(self, payment):
        trade = SandboxTrade.objects.filter(out_trade_no=payment.out_trade_no).first()
        if trade is not None and trade.status == "WAIT_BUYER_PAY":
            notify(payment)

    @rule(payment=payments)
    def the_gateway_closes_the_trade(self, payment):
        trade = SandboxTrade.objects.filter(out_trade_no=payment.out_trade_no).first()
        if trade is not None and trade.status == "WAIT_BUYER_PAY":
            notify(payment, status="CLOSED")

    @rule(payment=payments)
    def the_payer_cancels(self, payment):
        with contextlib.suppress(Conflict):
            services.payment_cancel(payment=payment)

    @rule(target=payments, home=st.integers(0, 3), which=st.sets(st.integers(0, 3), min_size=1))
    def a_payment_at_the_desk(self, home, which):
        bills = self._bills(home)
        ids = sorted({bills[n % len(bills)].pk for n in which}) if bills else []
        if not ids:
            return multiple()
        try:
            payment, _ = desk.desk_payment_record(
                cashier=self._cashier(home),
                household_id=self.homes[home].pk,
                bill_ids=ids,
                method="transfer",
                reference="bank",
                idempotency_key=self._key(),
                fingerprint=self._key(),
            )
        except (Conflict, ValidationError):
            return multiple()
        return payment

    @rule(payment=payments, part=st.sampled_from(["0.01", "0.5", "1"]))
    def the_centre_refunds(self, payment, part):
        payment.refresh_from_db()
        left = payment.in_suspense or payment.amount - payment.refunded_amount
        amount = max(Decimal("0.01"), (left * Decimal(part)).quantize(Decimal("0.01")))
        community_id = payment.items.first().bill.community_id
        admin = self.admin if community_id == self.communities[0].pk else self.admin_elsewhere
        # Not succeeded, or nothing left: refused.
        with contextlib.suppress(Conflict):
            services.payment_refund(
                payment=payment,
                amount=amount,
                reason="moving out",
                by=admin,
                idempotency_key=self._key(),
                fingerprint=self._key(),
            )

    # --- tickets -----------------------------------------------------------------------------

    @rule(target=tickets, home=st.integers(0, 3), at=st.sampled_from(FILED_AT))
    def a_resident_files_a_report(self, home, at):
        return repairs_services.ticket_create(
            filed_by=self.residents[home],
            kind=Kind.REPORT,
            category=self.category,
            title="路灯不亮",
            location="东门",
            community=self.homes[home].building.community,
            at=at,
        )

    @rule(
        ticket=tickets,
        action=st.sampled_from(transitions.ACTIONS),
        by_filer=st.booleans(),
        hours=st.sampled_from([0.5, 3, 30]),
    )
    def someone_moves_a_ticket(self, ticket, action, by_filer, hours):
        ticket.refresh_from_db()
        staff = self.staff[self.communities.index(ticket.community)]
        with contextlib.suppress(Conflict, PermissionDenied, ValidationError):
            repairs_services.ticket_transition(
                ticket=ticket,
                actor=ticket.filed_by if by_filer else staff,
                action=action,
                note="not ours" if action == "reject" else "",
                at=ticket.updated_at + timedelta(hours=hours),
            )

    @rule(ticket=tickets, stars=st.integers(1, 5))
    def the_filer_rates(self, ticket, stars):
        ticket.refresh_from_db()
        # Not resolved yet, or rated already: refused.
        with contextlib.suppress(Conflict):
            repairs_services.ticket_rate(
                ticket=ticket,
                user=ticket.filed_by,
                stars=stars,
                at=ticket.updated_at + timedelta(hours=1),
            )

    @rule(days=st.sampled_from([0, 1, 60]))
    def the_escalation_job_runs(self, days):
        repairs_services.ticket_escalate_overdue(now=FILED_AT[-1] + timedelta(days=days))


def test_the_summary_equals_a_recount_after_any_sequence_of_writes():
    run_state_machine_as_test(SummaryMachine, settings=SETTINGS)


def test_a_write_around_the_services_shows_as_a_difference_and_a_rebuild_mends_it():
    community, homes = estate(2)
    services.bill_generate_for_period(period=PERIODS[0])
    assert summary_problems() == []
    row = EstateMonth.objects.get(community=community, period=str(PERIODS[0]))
    assert (row.bills_due, row.bills_paid) == (2, 0)

    Bill.objects.filter(household=homes[0]).update(status="waived")  # no service: no summary

    assert summary_problems() == [
        f"summary of community {community.pk} {PERIODS[0]}: (stored, recount) "
        "{'bills_due': (2, 1)}"
    ]
    assert summary_rebuild() == 1
    assert summary_problems() == []
    assert (
        kpis.kpi_grid(community_ids=[community.pk], until=PERIODS[0])[
            (community.pk, PERIODS[0])
        ].bills_due
        == 1
    )


def test_the_rebuild_command_and_its_check(capsys):
    community, _homes = estate(1)
    services.bill_generate_for_period(period=PERIODS[0])
    EstateMonth.objects.all().delete()

    with pytest.raises(Exception, match="1 summary row"):
        call_command("summary_rebuild", "--check")
    call_command("summary_rebuild")
    call_command("summary_rebuild", "--check")

    assert "equals a recount" in capsys.readouterr().out
    assert EstateMonth.objects.get(community=community).bills_due == 1
