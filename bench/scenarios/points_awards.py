"""Points awards for 100,000 events through a real Celery worker, and exactly-once when that
worker is killed midway.

The events are billing's payment_succeeded payloads, sent as a bulk sender sends a due day's
payments: points.tasks.award_payments_batch on the broker (Redis), BATCH events a task (one
transaction each: points.services.award_for_payments), and a worker started here
(`celery -A config worker`, on production settings) awards the on-time reputation. The paid
bills of the period are the events (bench.datagen.ensure_paid); when the city has fewer than
100,000, the rest are payments of the same residents that exist only as events (the award needs
the payer, not the payment row).

When half the events are awarded the worker's whole process group gets SIGKILL, mid-task, and a
new worker starts. The tasks the dead worker had taken but not acknowledged (acks_late) come back
after the broker's visibility timeout (CELERY_VISIBILITY_TIMEOUT, 20 s here); the award's unique
source key, checked under the payers' locks, must make every event count once, including the
events of a batch redelivered whole after a kill (or committed but not acknowledged).
Checked: every event awarded, none twice, the points ledger sound.

Every payer's points holder and balance rows exist before the clock starts, as they do in a
city from its second month on (a resident's first award makes them), and the points tables are
analyzed, as autovacuum would have done (this machine's PostgreSQL runs without it). The entries
table starts empty, so its statistics go stale as the run fills it; that costs the awards'
reads, not the limit.

The limit: one raw INSERT … SELECT writing the same entries (holder, reputation, the rule's
amount, source and reference) into a copy of the entries table. It joins the payers' holders,
so it too starts from them. The worker's time excludes the wait for the visibility timeout and
the two workers' start (each reported on its own), which are the broker's recovery and Python's
start, not the award's cost.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import redis
from django.db import connection, transaction

from bench import datagen
from bench.core import PROJECT_ROOT, Context, Outcome, Target, profiled, stopwatch, targets_met
from config.celery import app
from points import tasks as points_tasks
from points.models import USER_CURRENCIES
from points.selectors import rule_in_force

GOAL = "≤ 10× the limit; no event awarded twice when the worker is killed and restarted midway"
LIMIT = "one raw INSERT … SELECT of the same entries into a copy of the entries table"
EVENTS = 100_000
TINY_EVENTS = 300
BATCH = 1000  # events a task
TINY_BATCH = 10  # small enough that the tiny run's worker is killed between batches
MAX_RATIO = 10.0
SOURCE = "payment_on_time"
TABLE = "bench_points_events"
COPY = "bench_points_entry_copy"


def _events(ctx: Context, count: int) -> int:
    """Fill TABLE with `count` events (reference = payment id, payer, paid_at): the period's
    generated payments first, then event-only payments of the same residents."""
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")
        cursor.execute(
            f"""
            CREATE TABLE {TABLE} (reference varchar(64) PRIMARY KEY, payment_id bigint,
                                  payer_id bigint, paid_at timestamptz, period varchar(7))
            """
        )
        cursor.execute(
            f"""
            INSERT INTO {TABLE}
            SELECT p.id::text, p.id, p.payer_id, p.paid_at, to_char(p.paid_at, 'YYYY-MM')
              FROM billing_payment p
             WHERE p.status = 'succeeded' AND p.out_trade_no LIKE 'BENCH%%'
             ORDER BY p.id LIMIT %s
            """,
            [count],
        )
        cursor.execute(f"SELECT count(*) FROM {TABLE}")
        real = cursor.fetchone()[0]
        cursor.execute("SELECT coalesce(max(id), 0) FROM billing_payment")
        top = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM community_residency WHERE end_date IS NULL")
        residents = cursor.fetchone()[0]
        # Event-only payments: ids past every real one, paid by the residents in turn (the
        # modulus is a constant, so the join is a hash join, not a nested loop).
        cursor.execute(
            f"""
            WITH residents AS (
                SELECT user_id, row_number() OVER (ORDER BY user_id) - 1 AS n
                  FROM community_residency WHERE end_date IS NULL
            )
            INSERT INTO {TABLE}
            SELECT (%(top)s + 1000000 + i)::text, %(top)s + 1000000 + i, r.user_id,
                   %(paid)s::timestamptz, %(period)s
              FROM generate_series(0, %(missing)s - 1) i
              JOIN residents r ON r.n = i %% %(residents)s
            """,
            {
                "top": top,
                "paid": ctx.period.day(datagen.BILL_DUE_DAY - 3),
                "period": str(ctx.period),
                "missing": max(0, count - real),
                "residents": residents,
            },
        )
        cursor.execute(f"ANALYZE {TABLE}")
    return real


def _holders() -> int:
    """Every payer's points holder and balance rows, as a city has them from its second month
    on (a resident's first award makes them), and fresh statistics for the planner, as
    autovacuum keeps them (this machine's PostgreSQL runs without it). The raw insert, the
    limit, joins the same holders, so both sides start from them. Returns the holders made."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO points_holder (user_id, leaderboard_opt_out, created_at)
            SELECT DISTINCT t.payer_id, false, now() FROM {TABLE} t
             WHERE NOT EXISTS (SELECT 1 FROM points_holder h WHERE h.user_id = t.payer_id)
            """
        )
        made = cursor.rowcount
        cursor.execute(
            """
            INSERT INTO points_balance (holder_id, currency, amount)
            SELECT h.id, c.currency, 0
              FROM points_holder h CROSS JOIN unnest(%s::varchar[]) AS c(currency)
             WHERE h.user_id IS NOT NULL
            ON CONFLICT (holder_id, currency) DO NOTHING
            """,
            [list(USER_CURRENCIES)],
        )
        cursor.execute("ANALYZE points_holder, points_balance, points_entry")
    return made


def _awarded(cursor) -> int:
    cursor.execute(
        f"""
        SELECT count(DISTINCT e.reference) FROM points_entry e
          JOIN {TABLE} t ON t.reference = e.reference
         WHERE e.source = %s AND e.kind = 'award'
        """,
        [SOURCE],
    )
    return cursor.fetchone()[0]


def _event(payment_id, payer_id, paid_at) -> dict:
    """payment_succeeded's payload as points' receiver passes it on (points.receivers)."""
    return {
        "payment_id": payment_id,
        "payer_id": payer_id,
        "paid_at": paid_at.isoformat(),
        "on_time": True,
        "months_prepaid": 0,
    }


def _payment_ids_on_the_broker(broker) -> set[int]:
    """The payment ids of every award event the broker still holds: queued, or taken by a
    worker and not acknowledged (kombu's "unacked" hash, handed out again after the visibility
    timeout). Read while no worker runs, right after the kill."""
    messages = [json.loads(raw) for raw in broker.lrange("celery", 0, -1)]
    messages += [json.loads(raw)[0] for raw in broker.hvals("unacked")]  # [message, exchange, key]
    ids = set()
    for message in messages:
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args, kwargs, _ = json.loads(body)
        events = kwargs.get("events", args[0] if args else [])
        ids.update(int(event["payment_id"]) for event in events)
    return ids


def _not_awarded(cursor) -> set[int]:
    """The payment ids of the events with no award (yet)."""
    cursor.execute(
        f"""
        SELECT t.payment_id FROM {TABLE} t
         WHERE NOT EXISTS (SELECT 1 FROM points_entry e JOIN points_holder h
                               ON h.id = e.holder_id
                            WHERE e.source = %s AND e.kind = 'award'
                              AND e.reference = t.reference AND h.user_id = t.payer_id)
        """,
        [SOURCE],
    )
    return {row[0] for row in cursor.fetchall()}


def _announce(rows, batch: int) -> None:
    """The events, `batch` to a task, on the broker."""
    for start in range(0, len(rows), batch):
        points_tasks.award_payments_batch.delay(
            [_event(*row) for row in rows[start : start + batch]]
        )


def _start_worker(ctx: Context, name: str) -> subprocess.Popen:
    log = open(ctx.workdir / f"worker-{name}.log", "ab")  # noqa: SIM115 (closed with the process)
    command = [
        ctx.python or sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        f"--concurrency={os.cpu_count() or 2}",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel=WARNING",
        f"--hostname=bench-{name}@%h",
    ]
    # The broker hands a killed worker's unacknowledged tasks out again only after the
    # visibility timeout (an hour by default): 20 s here, so the run can wait for them.
    env = {
        **ctx.subprocess_env(),
        "CELERY_VISIBILITY_TIMEOUT": os.environ.get("BENCH_VISIBILITY_TIMEOUT", "20"),
    }
    # A session of its own: SIGKILL to the group takes the pool's children with the parent.
    return subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _ready(name: str, process: subprocess.Popen, timeout: float = 60) -> float:
    """Wait until the worker answers a ping (it consumes from then on); returns the seconds its
    start took. Python, Django and Celery starting is not the awards' cost: it is reported on
    its own, like the visibility timeout. No answer within `timeout`: counted as work."""
    began = time.perf_counter()
    destination = [f"bench-{name}@{socket.gethostname()}"]
    while time.perf_counter() - began < timeout and process.poll() is None:
        if app.control.ping(destination=destination, timeout=0.1):
            return time.perf_counter() - began
    return 0.0


def _kill(process: subprocess.Popen, sig=signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    process.wait(timeout=60)


def _stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        _kill(process)
    except ProcessLookupError:
        pass


def _counter(cursor):
    """How many events are awarded, cheaply: the awards before the workers start (joined with
    the events) plus this source's awards written since (a range of the primary key, while only
    the workers award). Polled while the workers run, so it must not take their CPU; the
    checks at the end join every event."""
    before = _awarded(cursor)
    cursor.execute("SELECT coalesce(max(id), 0) FROM points_entry")
    since = cursor.fetchone()[0]

    def count() -> int:
        cursor.execute(
            # Events, not entries (a payment can earn two: on time and prepaid), and only this
            # run's events: a shared broker may hold other runs' award tasks, which the worker
            # also takes, and which must not make the wait end early.
            f"SELECT count(DISTINCT e.reference) FROM points_entry e"
            f" JOIN {TABLE} t ON t.reference = e.reference"
            f" JOIN points_holder h ON h.id = e.holder_id AND h.user_id = t.payer_id"
            f" WHERE e.id > %s AND e.source = %s AND e.kind = 'award'",
            [since, SOURCE],
        )
        return before + cursor.fetchone()[0]

    return count


def _wait(count, until: int, deadline: float, samples: list) -> int:
    began = time.perf_counter()
    while True:
        awarded = count()
        samples.append((time.perf_counter() - began, awarded))
        if awarded >= until or time.perf_counter() > deadline:
            return awarded
        time.sleep(0.2)


def _raw_limit(ctx: Context) -> float:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {COPY}")
        cursor.execute(f"CREATE TABLE {COPY} (LIKE points_entry INCLUDING ALL)")
        cursor.execute(
            f"""
            ALTER TABLE {COPY}
              ADD FOREIGN KEY (holder_id) REFERENCES points_holder (id)
                  DEFERRABLE INITIALLY DEFERRED,
              ADD FOREIGN KEY (rule_id) REFERENCES points_rule (id) DEFERRABLE INITIALLY DEFERRED
            """
        )
        cursor.execute(f"SELECT count(*) FROM {TABLE}")  # warm, as the worker's reads were
    with stopwatch() as took, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {COPY} (holder_id, currency, amount, kind, source, reference, rule_id,
                                detail, occurred_at, period, created_at)
            SELECT h.id, r.currency, r.amount, 'award', %s, t.reference, r.id, '', t.paid_at,
                   t.period, NOW()
              FROM {TABLE} t
              JOIN points_holder h ON h.user_id = t.payer_id
              JOIN points_rule r ON r.event = %s AND r.active_from <= t.paid_at::date
                                AND (r.active_to IS NULL OR r.active_to >= t.paid_at::date)
            """,
            [SOURCE, SOURCE],
        )
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {COPY}")
    return took.seconds


def run(ctx: Context) -> Outcome:
    target = TINY_EVENTS if ctx.tiny else int(ctx.extra.get("points_events", EVENTS))
    batch = TINY_BATCH if ctx.tiny else int(ctx.extra.get("points_batch", BATCH))
    if rule_in_force(event=SOURCE, on=ctx.period.day(datagen.BILL_DUE_DAY)) is None:
        raise RuntimeError(f"no points rule for {SOURCE} is in force: nothing would be awarded")
    datagen.ensure_paid(ctx)
    real = _events(ctx, target)
    holders_made = _holders()
    broker = redis.Redis.from_url(ctx.broker_url)
    # The queue must hold only this scenario's events: the payment rush before it queued an
    # award task per payment it made, and an earlier run's tasks (for databases since dropped,
    # or left unacknowledged by its killed worker) may still wait in the bench's broker
    # database. The worker would award those first, and the clock would count them.
    left_over = broker.llen("celery") + broker.hlen("unacked")
    broker.delete("celery", "unacked", "unacked_index")
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False  # test settings run tasks inline; these go to the broker
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT payment_id, payer_id, paid_at FROM {TABLE} ORDER BY 1")
            rows = cursor.fetchall()
        with stopwatch() as enqueue:
            _announce(rows, batch)
    finally:
        app.conf.task_always_eager = eager
    events = len(rows)
    deadline = 180 if ctx.tiny else 3600
    first_samples, second_samples = [], []
    with connection.cursor() as cursor:
        count = _counter(cursor)
        worker = _start_worker(ctx, "first")
        try:
            boot = _ready("first", worker)
            with stopwatch() as first:
                half = _wait(count, events // 2, time.perf_counter() + deadline, first_samples)
        finally:
            _kill(worker)  # mid-task: SIGKILL, no warm shutdown, no acknowledgements sent
        in_flight = broker.hlen("unacked")
        at_kill = _awarded(cursor)
        # Events neither awarded nor on the broker any more were lost by the broker at the
        # kill: kombu's Redis transport takes a message off the queue (BRPOP) before it writes
        # it to "unacked", and a worker killed in between takes the message with it. No worker
        # can award those; they are counted apart from what the awards' code must guarantee.
        lost_by_broker = _not_awarded(cursor) - _payment_ids_on_the_broker(broker)
        worker = _start_worker(ctx, "second")
        try:
            boot += _ready("second", worker)
            with stopwatch() as second:
                done = _wait(
                    count,
                    events - len(lost_by_broker),
                    time.perf_counter() + deadline,
                    second_samples,
                )
        finally:
            _stop(worker)
        cursor.execute(
            f"""
            SELECT count(*) FROM (
                SELECT e.holder_id, e.reference FROM points_entry e
                  JOIN {TABLE} t ON t.reference = e.reference
                 WHERE e.source = %s AND e.kind = 'award'
                 GROUP BY e.holder_id, e.reference HAVING count(*) > 1) twice
            """,
            [SOURCE],
        )
        twice = cursor.fetchone()[0]
        missing = len(_not_awarded(cursor) - lost_by_broker)
    # The worker's own time: until the last award that did not wait for the visibility
    # timeout (the first sample that reached all but the events of the tasks in flight at the
    # kill, a whole batch each at most).
    reachable = done - in_flight * batch
    second_work = next((t for t, count in second_samples if count >= reachable), second.seconds)
    worker_seconds = first.seconds + second_work
    limit_seconds = _raw_limit(ctx)
    ratio = worker_seconds / limit_seconds if limit_seconds else None
    figures = {
        "events": events,
        "events_of_real_payments": real,
        "holders_made_before": holders_made,
        "tasks_left_over_purged": left_over,
        "enqueue_seconds": round(enqueue.seconds, 1),
        "worker_seconds": round(worker_seconds, 1),
        "awards_per_second": round(events / worker_seconds) if worker_seconds else None,
        "limit_seconds": round(limit_seconds, 3),
        "awarded_at_kill": at_kill,
        "in_flight_at_kill": in_flight,
        "events_lost_by_the_broker": len(lost_by_broker),
        "events_per_task": batch,
        "recovery_wait_seconds": round(second.seconds - second_work, 1),
        "worker_start_seconds": round(boot, 1),
        "worker_concurrency": os.cpu_count() or 2,
    }
    checks = {"events_not_awarded": missing, "events_awarded_twice": twice}
    misses = []
    if half < events // 2:
        misses.append(f"only {half} of {events} awarded before the first deadline")
    if lost_by_broker:
        misses.append(
            f"the broker lost {len(lost_by_broker)} events at the kill: a message taken off the"
            " queue by the killed worker and not yet recorded as unacknowledged (kombu's Redis"
            " transport), which no worker could award again"
        )
    if ratio is not None and ratio > MAX_RATIO:
        misses.append(f"{ratio:.0f}× the raw insert (goal ≤ {MAX_RATIO:.0f}×)")
    explanation = "; ".join(misses)
    if misses and not ctx.tiny:
        written = _profile_awards(ctx, rows[:1])
        if written:
            explanation += f". Profile of one worker's award tasks, in-process: {written}."
    targets = [
        Target(
            "worker seconds ÷ raw insert's",
            "<=",
            MAX_RATIO,
            None if ratio is None else round(ratio, 2),
            limit=round(limit_seconds, 3),
        ),
        Target("events awarded before the first deadline", ">=", events // 2, half),
        Target("events not awarded", "==", 0, missing),
        Target("events the broker lost at the kill", "==", 0, len(lost_by_broker)),
        Target("events awarded twice", "==", 0, twice),
    ]
    return Outcome(
        scenario="points_awards",
        goal=GOAL,
        limit=LIMIT,
        figures=figures,
        ratio=ratio,
        met=targets_met(targets),
        explanation=explanation,
        checks=checks,
        targets=targets,
    )


def _profile_awards(ctx: Context, sample, count: int = 300) -> str:
    """What one batch task costs, without the broker: `count` event-only payments of the
    first resident, awarded in this process under pyinstrument (they add real awards)."""
    if not sample:
        return ""
    _, payer_id, paid_at = sample[0]
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(payment_id), 0) FROM " + TABLE)
        top = cursor.fetchone()[0] + 10_000_000
    with profiled(ctx, "points_awards") as written:
        points_tasks.award_payments_batch.run(
            [_event(top + n, payer_id, paid_at) for n in range(count)]
        )
    return str(written[0]) if written else ""
