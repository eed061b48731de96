"""The benchmark suite (bench/) at tiny scale: the data generator and each scenario run for real
on PostgreSQL (and a real Celery worker for the points awards), so the suite breaks when a
scenario breaks. Only behaviour is asserted — rows made, checks clean, outcome filled in,
exactly-once after the worker is killed — never a timing."""

import json
from dataclasses import fields
from datetime import date

import pytest
from django.conf import settings
from django.contrib.auth import authenticate
from django.db import connection

from alliance.models import Scorecard
from bench import datagen
from bench.core import BENCH_PASSWORD, Context, Outcome, Target, correctness_checks, targets_met
from bench.run import merge_results, render_table, write_report
from billing.models import Bill, Payment, PaymentItem, Payout
from community import selectors as community_selectors
from community.models import Agreement, Community, Household, Residency
from community.periods import Period
from points.models import Entry, Rule

postgres_db = pytest.mark.django_db(transaction=True)

HOUSEHOLDS = 40
COMMUNITIES = 2


@pytest.fixture
def ctx(tmp_path):
    settings_dict = connection.settings_dict
    url = (
        f"postgres://{settings_dict['USER']}"
        + (f":{settings_dict['PASSWORD']}" if settings_dict["PASSWORD"] else "")
        + f"@{settings_dict['HOST'] or '127.0.0.1'}:{settings_dict['PORT'] or 5432}"
        + f"/{settings_dict['NAME']}"
    )
    context = Context(
        database_url=url,
        households=HOUSEHOLDS,
        communities=COMMUNITIES,
        tiny=True,
        workdir=tmp_path,
        period=Period.current().previous(),
        broker_url=settings.CELERY_BROKER_URL or "redis://127.0.0.1:6379/0",
    )
    datagen.generate(context)
    return context


def assert_targets(outcome: Outcome) -> None:
    """Every goal is a measurable target, and the verdict is theirs."""
    assert outcome.targets
    assert all(target.measured is not None for target in outcome.targets)
    assert outcome.met == targets_met(outcome.targets)


def _filled(outcome: Outcome, scenario: str) -> None:
    assert outcome.scenario == scenario
    assert outcome.goal and outcome.figures
    assert_targets(outcome)
    assert correctness_checks() == {
        "ledger_problems": 0,
        "points_problems": 0,
        "double_payments": 0,
    }


@pytest.mark.postgres
@postgres_db
def test_the_generator_makes_a_city_residents_can_sign_in_to(ctx):
    town = datagen.city(ctx)
    assert Community.objects.count() == COMMUNITIES == len(town.community_ids)
    assert Agreement.objects.count() == COMMUNITIES
    assert Household.objects.count() == HOUSEHOLDS == town.households
    for community_id in town.community_ids:
        assert Household.objects.filter(building__community_id=community_id).count() == 20
    assert Residency.objects.filter(end_date__isnull=True, relation="owner").count() == HOUSEHOLDS
    household = Household.objects.order_by("pk").last()
    resident = authenticate(
        username=datagen.resident_username(household.pk), password=BENCH_PASSWORD
    )
    assert resident is not None
    mine = community_selectors.household_list(user=resident, roles=[community_selectors.RESIDENT])
    assert list(mine) == [household]
    admin = authenticate(username=town.admin_username, password=BENCH_PASSWORD)
    assert admin.memberships.get().centre_id == town.centre_id


@pytest.mark.postgres
@postgres_db
def test_the_bill_run_bills_every_household_once(ctx):
    from bench.scenarios import bill_run

    outcome = bill_run.run(ctx)
    _filled(outcome, "bill_run")
    assert outcome.figures["bills_created"] == HOUSEHOLDS
    assert Bill.objects.filter(period=str(ctx.period)).count() == HOUSEHOLDS
    assert outcome.ratio > 0 and outcome.figures["peak_rss_mb"] > 0
    # The limit's copy of the bills table is gone again.
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('bench_bill_copy')")
        assert cursor.fetchone()[0] is None


def _foreign_keys(table: str) -> set[tuple[str, str, bool]]:
    """(column, referenced table, deferrable and deferred?) of each foreign key of `table`."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT a.attname, c.confrelid::regclass::text, c.condeferrable AND c.condeferred
              FROM pg_constraint c
              JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
             WHERE c.conrelid = %s::regclass AND c.contype = 'f'
            """,
            [table],
        )
        return {(column, target, deferred) for column, target, deferred in cursor.fetchall()}


@pytest.mark.postgres
@postgres_db
def test_the_bill_runs_limit_writes_into_copies_with_every_foreign_key():
    """The raw insert is the same rows only if its tables check what the real ones do."""
    from bench.scenarios import bill_run

    bill_run._make_copy()
    try:
        bills, lines = _foreign_keys("billing_bill"), _foreign_keys("billing_billline")
        copied_bills, copied_lines = (
            _foreign_keys(bill_run.COPY),
            _foreign_keys(bill_run.LINE_COPY),
        )
    finally:  # the copies' keys would stop the test database's flush
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {bill_run.LINE_COPY}, {bill_run.COPY}")

    assert len(bills) == 2 and len(lines) == 5
    assert copied_bills == bills
    assert copied_lines == {
        (column, bill_run.COPY if target == "billing_bill" else target, deferred)
        for column, target, deferred in lines
    }


@pytest.mark.postgres
@postgres_db
def test_generated_payments_keep_the_ledger_sound(ctx):
    paid = datagen.ensure_paid(ctx)
    unpaid = HOUSEHOLDS // datagen.UNPAID_EVERY
    assert paid == HOUSEHOLDS - unpaid
    assert Payment.objects.filter(status="succeeded").count() == paid
    assert Bill.objects.filter(period=str(ctx.period), status="paid").count() == paid
    assert datagen.ensure_paid(ctx) == 0  # nothing paid twice
    assert correctness_checks()["ledger_problems"] == 0


@pytest.mark.postgres
@postgres_db
def test_the_double_payment_check_sees_a_bill_paid_twice(ctx):
    datagen.ensure_paid(ctx)
    item = PaymentItem.objects.select_related("payment").first()
    again = Payment.objects.create(
        payer_id=item.payment.payer_id,
        gateway="sandbox",
        out_trade_no="TWICE",
        amount=item.amount,
        status="succeeded",
        idempotency_key="twice",
        request_fingerprint="",
        expires_at=item.payment.expires_at,
    )
    PaymentItem.objects.create(
        payment=again, bill_id=item.bill_id, amount=item.amount, is_open=False
    )
    assert correctness_checks()["double_payments"] == 1
    PaymentItem.objects.filter(payment=again).delete()  # leave the autouse ledger check clean
    again.delete()


@pytest.mark.postgres
@postgres_db
def test_payouts_pay_out_and_release_every_community(ctx):
    from bench.scenarios import payouts

    outcome = payouts.run(ctx)
    _filled(outcome, "payouts")
    assert outcome.figures["payouts"] == outcome.figures["releases"] == COMMUNITIES
    assert Payout.objects.filter(kind="regular", period=str(ctx.period)).count() == COMMUNITIES
    assert not PaymentItem.objects.filter(payout__isnull=True).exists()


@pytest.mark.postgres
@postgres_db
def test_scorecards_score_every_community(ctx):
    from bench.scenarios import scorecards

    outcome = scorecards.run(ctx)
    _filled(outcome, "scorecards")
    cards = Scorecard.objects.filter(period=str(ctx.period), is_current=True)
    assert cards.count() == COMMUNITIES
    assert not cards.filter(score__isnull=True).exists()
    assert all(card.rating_count and card.inspection_count == 2 for card in cards)


@pytest.mark.postgres
@postgres_db
def test_the_dashboard_scenario_renders_every_community(ctx):
    from bench.scenarios import dashboard

    outcome = dashboard.run(ctx)
    _filled(outcome, "dashboard")
    assert outcome.figures["communities"] == COMMUNITIES
    assert 0 < outcome.figures["queries"] <= dashboard.MAX_QUERIES
    assert Bill.objects.values("period").distinct().count() == 12


@pytest.mark.postgres
@postgres_db
@pytest.mark.broker
def test_points_are_awarded_exactly_once_when_the_worker_is_killed(ctx, monkeypatch):
    from bench.scenarios import points_awards

    monkeypatch.setenv("BENCH_VISIBILITY_TIMEOUT", "3")
    # The migration's default rules are gone once an earlier transactional test has flushed.
    Rule.objects.get_or_create(
        event="payment_on_time",
        defaults={"currency": "reputation", "amount": 10, "active_from": date(2000, 1, 1)},
    )
    outcome = points_awards.run(ctx)
    _filled(outcome, "points_awards")
    events = outcome.figures["events"]
    assert events == points_awards.TINY_EVENTS
    # Every event the broker still held after the kill awarded, none twice.
    assert outcome.checks == {"events_not_awarded": 0, "events_awarded_twice": 0}
    # Batches of events, several a run, so the kill falls between or inside them.
    assert outcome.figures["events_per_task"] == points_awards.TINY_BATCH < events // 2
    # The worker was killed before the end, and the second one finished the job.
    assert outcome.figures["awarded_at_kill"] >= events // 2
    # Now and then the kill lands between kombu's BRPOP and its record of the message as
    # unacknowledged, and that one message (a whole batch) is gone from the broker: counted
    # and reported as a missed target, never more than the one message the worker was taking.
    lost = outcome.figures["events_lost_by_the_broker"]
    assert lost in (0, points_awards.TINY_BATCH)
    if lost:
        assert not outcome.met
    awards = Entry.objects.filter(source="payment_on_time", kind="award")
    assert awards.count() == events - lost
    assert awards.values("holder", "reference").distinct().count() == events - lost


def test_a_target_is_met_only_by_its_measured_figure():
    assert Target("p99 ms", "<", 150, 149.9).met
    assert not Target("p99 ms", "<", 150, 150).met
    assert Target("ratio", ">=", 0.4, 0.4, limit=250.9).met
    assert not Target("ratio", ">=", 0.4, 0.39).met
    assert not Target("seconds", "<", 30, None).met  # not measured is not met
    assert Target("ratio", ">=", 0.4, 0.41, limit=250.9).as_dict() == {
        "name": "ratio",
        "goal": ">= 0.4",
        "limit": 250.9,
        "measured": 0.41,
        "met": True,
    }
    with pytest.raises(ValueError):
        Target("seconds", "≤", 30, 1)


def test_the_report_merges_runs_and_marks_misses(tmp_path):
    def entry(scenario, households, met, checks=None):
        target = Target("seconds", "<", 1 if not met else 2, 1.5)
        return {
            "name": scenario,
            "goal": "g",
            "limit": "",
            "measured": {"seconds": 1.5},
            "met": met,
            "targets": [target.as_dict()],
            "households": households,
            "communities": 200,
            "figures": {"seconds": 1.5},
            "ratio": 1.0,
            "explanation": "" if met else "bounded by the disk",
            "checks": checks or {"ledger_problems": 0},
        }

    path = tmp_path / "results.json"
    path.write_text(json.dumps({"scenarios": [entry("bill_run", 1_000_000, True)]}))
    results = merge_results(path, [entry("bill_run", 100_000, False)], {"cpus": 2})
    assert len(results["scenarios"]) == 2  # another scale is kept
    results = merge_results(
        path, [entry("bill_run", 1_000_000, True, {"ledger_problems": 2})], {"cpus": 2}
    )
    assert len(results["scenarios"]) == 1  # the same scale is replaced
    table = render_table(merge_results(path, [entry("dashboard", 100_000, False)], {}))
    assert "**MISSED**" in table and "bounded by the disk" in table
    assert "seconds 1.500 (< 1) **missed**" in table
    assert "CHECK FAILED" in render_table(results)
    # Rows from runs at different times: the header gives the span, not the last write.
    early, late = entry("bill_run", 100_000, True), entry("dashboard", 100_000, True)
    early["run_at"], late["run_at"] = "2026-12-01T10:00:00+00:00", "2026-12-07T18:00:00+00:00"
    header = render_table({"scenarios": [late, early], "updated_at": "2026-12-07T18:00:00+00:00"})
    assert header.startswith(
        "Rows measured from 2026-12-01T10:00:00+00:00 to 2026-12-07T18:00:00+00:00"
    )
    late["run_at"] = early["run_at"]
    assert render_table({"scenarios": [late, early], "updated_at": "x"}).startswith("Last run x")
    report = tmp_path / "performance.md"
    report.write_text(
        "# P\n\nprose before\n<!-- bench:table:start -->\nold\n<!-- bench:table:end -->\nafter\n"
    )
    write_report(report, "NEW TABLE")
    text = report.read_text()
    assert "prose before" in text and "after" in text and "NEW TABLE" in text
    assert "old" not in text


def test_an_outcome_has_the_fields_the_http_scenarios_fill():
    assert [f.name for f in fields(Outcome)] == [
        "scenario",
        "goal",
        "limit",
        "figures",
        "ratio",
        "met",
        "explanation",
        "checks",
        "targets",
    ]
