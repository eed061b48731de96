"""The HTTP scenarios of the benchmark (bench/scenarios/payment_rush.py, ticket_queue.py) at tiny
scale, for real: gunicorn on production settings serving this test database, the load generator
in a second process, the sandbox gateway's signed notifications. Asserted: behaviour (payments
completed and each bill paid once, ledger clean, queries per page fixed, the outcome filled in),
never a timing."""

import pytest
from django.conf import settings
from django.db import connection

from bench import datagen
from bench.core import Context, correctness_checks, ensure_static
from bench.scenarios import payment_rush, ticket_queue
from billing.models import Bill, LedgerTransaction, Payment, SandboxTrade
from community.periods import Period
from repairs.models import Ticket
from tests.test_bench import assert_targets

pytestmark = [pytest.mark.postgres, pytest.mark.broker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="session")
def static_root(tmp_path_factory):
    return tmp_path_factory.mktemp("bench-static")


@pytest.fixture
def ctx(tmp_path, static_root):
    settings_dict = connection.settings_dict
    url = (
        f"postgres://{settings_dict['USER']}"
        + (f":{settings_dict['PASSWORD']}" if settings_dict["PASSWORD"] else "")
        + f"@{settings_dict['HOST'] or '127.0.0.1'}:{settings_dict['PORT'] or 5432}"
        + f"/{settings_dict['NAME']}"
    )
    context = Context(
        database_url=url,
        households=60,
        communities=3,
        tiny=True,
        workdir=tmp_path,
        period=Period.current().previous(),
        broker_url=settings.CELERY_BROKER_URL,
    )
    # Collected at most once a session (pages only): gunicorn runs with production's manifest
    # storage.
    (tmp_path / "static").symlink_to(static_root, target_is_directory=True)
    datagen.generate(context)
    return context


def test_payment_rush_pays_each_bill_once_over_http(ctx):
    outcome = payment_rush.run(ctx)

    assert outcome.scenario == "payment_rush"
    assert outcome.checks == {
        "double_payments": [],
        "ledger": [],
        "payments_completed": [],
        "failed_cycles": [],
        "queries_per_cycle": [],
    }
    figures = outcome.figures
    # Counted on a real cycle: the notification writes more than the create reads and writes.
    queries = figures["queries_per_cycle"]
    assert queries["total"] == queries["create"] + queries["notify"]
    assert 0 < queries["create"] < queries["notify"]
    assert figures["one_row_rps"] > 0 and figures["rush_rps"] > 0
    # Where the machine's CPU went, per one-row request and per cycle, for the explanation.
    for who in ("server", "loadgen", "machine"):
        assert figures[f"{who}_cpu_ms_per_one_row"] > 0, who
        assert figures[f"{who}_cpu_ms_per_cycle"] > 0, who
    assert figures["machine_cpu_ms_per_cycle"] > figures["server_cpu_ms_per_cycle"]
    assert figures["gateway_step_p50_ms"] > 0
    assert figures["spread_communities"] == 2  # the other estates, the hot one left out
    # Every timed payment of the hot estate reported how long it held the account rows.
    assert figures["hot_row"]["payments"] == 5 and figures["hot_row"]["hold_ms_p50"] > 0
    # Every cycle that answered "success" paid exactly one bill, through the real notification:
    # a succeeded payment with its gateway trade number and one ledger transaction.
    # The month's payments the rush runs on top of, made set-based before it (a district in
    # operation has them): every bill of the month but one household in UNPAID_EVERY.
    history = Payment.objects.filter(out_trade_no__startswith="BENCH")
    assert history.count() == figures["payments_before"] > 0
    assert set(history.values_list("items__bill__period", flat=True)) == {str(ctx.period)}
    paid = Payment.objects.filter(status=Payment.Status.SUCCEEDED).exclude(
        out_trade_no__startswith="BENCH"
    )
    assert paid.count() > 0
    assert not paid.filter(trade_no="").exists()
    # The gateway's one-statement confirmation marked each trade paid on its own book, with
    # the trade number and time the notification carried.
    trades = SandboxTrade.objects.filter(out_trade_no__in=paid.values("out_trade_no"))
    assert trades.count() == paid.count()
    assert not trades.exclude(status="TRADE_SUCCESS").exists()
    assert {(t.trade_no, t.paid_at) for t in trades} == set(paid.values_list("trade_no", "paid_at"))
    assert LedgerTransaction.objects.filter(kind="payment").count() == (
        paid.count() + history.count()
    )
    rush_bills = Bill.objects.exclude(period=str(ctx.period))
    assert rush_bills.filter(status=Bill.Status.PAID).count() == paid.count()
    assert set(paid.values_list("items__bill__community_id", flat=True)) == set(
        ctx.extra["city"].community_ids
    )
    # The month the other scenarios pay out and score is left alone: the rush pays none of it.
    assert not Bill.objects.filter(period=str(ctx.period), payment_items__payment__in=paid).exists()
    assert outcome.ratio is not None
    assert_targets(outcome)
    assert "Little's law" in outcome.explanation
    assert correctness_checks() == {
        "ledger_problems": 0,
        "points_problems": 0,
        "double_payments": 0,
    }


def test_ticket_queue_makes_the_same_queries_for_a_small_and_a_large_table(ctx):
    ensure_static(ctx)
    outcome = ticket_queue.run(ctx)

    assert outcome.scenario == "ticket_queue"
    assert outcome.checks == {"queries_fixed": []}
    figures = outcome.figures
    assert figures["tickets_large"] == ticket_queue.TINY_LARGE
    assert figures["tickets_small"] == ticket_queue.TINY_SMALL
    assert Ticket.objects.count() == ticket_queue.TINY_LARGE + ticket_queue.TINY_SMALL
    # One in OPEN_EVERY is open, and the open ones are exactly those with a deadline.
    assert figures["open_large"] == ticket_queue.TINY_LARGE // ticket_queue.OPEN_EVERY
    assert Ticket.objects.filter(next_due__isnull=False).count() == (
        (ticket_queue.TINY_LARGE + ticket_queue.TINY_SMALL) // ticket_queue.OPEN_EVERY
    )
    for page in ("api", "api_estate", "console", "console_estate"):
        assert figures[f"{page}_queries"] > 0
    for page in ("api", "console"):
        assert figures[f"{page}_p50_ms_large"] > 0 and figures[f"{page}_p50_ms_small"] > 0
    assert outcome.ratio is not None
    assert_targets(outcome)


def test_the_cpu_budget_divides_the_machine_between_its_parts_only_when_it_was_saturated():
    figures = {
        "machine_cores_busy_one_row": 1.98,
        "machine_cores_busy": 1.97,
        "machine_cpu_ms_per_one_row": 8.0,
        "machine_cpu_ms_per_cycle": 40.0,
        "server_cpu_ms_per_one_row": 4.0,
        "server_cpu_ms_per_cycle": 18.0,
        "loadgen_cpu_ms_per_one_row": 3.0,
        "loadgen_cpu_ms_per_cycle": 10.0,
    }
    budget = payment_rush._cpu_budget(figures)
    assert "8.0 ms ÷ 40.0 ms = 0.20" in budget
    # What is neither gunicorn nor the load generator: 8 - 4 - 3, and 40 - 18 - 10.
    assert "the kernel 1.0 ms" in budget and "the kernel 12.0 ms" in budget
    # 0.40 of a one-row request's 8 ms: a cycle of at most 20 ms.
    assert "at most 20.0 ms" in budget
    # A run that left a core idle was not bounded by the machine's CPU: no budget is claimed.
    assert payment_rush._cpu_budget({**figures, "machine_cores_busy": 1.2}) == ""
    assert payment_rush._cpu_budget({**figures, "machine_cpu_ms_per_cycle": None}) == ""
