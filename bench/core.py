"""What every benchmark scenario shares: the context it runs in and the outcome it reports.

A scenario is a module in bench/scenarios/ with `run(ctx: Context) -> Outcome`. It measures its
figure and, where the goal names one, the limit it is compared with in the same run on the same
PostgreSQL, so the ratio means something on a shared, noisy machine.
"""

from __future__ import annotations

import operator
import os
import resource
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from community.periods import Period

# Secrets for the child processes (gunicorn, Celery worker) of a throw-away benchmark database.
BENCH_SECRET_KEY = "bench-only-secret-key-never-used-anywhere-else-" + "x" * 20
BENCH_SANDBOX_SECRET = "bench-sandbox-secret"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Password of every generated user (residents, staff, admin).
BENCH_PASSWORD = "linli-bench-2026"


# How a target compares its measured figure with its goal.
COMPARISONS = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
}


@dataclass(frozen=True)
class Target:
    """One goal of a scenario as bench/results.json carries it, so a reader (and
    tests/test_bench_results.py) sees which are met: `measured` compared with `goal` by `op`.
    `limit` is the figure measured in the same run that `measured` is a ratio of, when it is one
    (the raw insert's seconds, the bare endpoint's requests/s)."""

    name: str  # what is measured, unit included: "cycles/s ÷ one-row requests/s", "p99 ms"
    op: str  # a key of COMPARISONS
    goal: float
    measured: float | None  # None: could not be measured in this run (never met)
    limit: float | None = None

    def __post_init__(self):
        if self.op not in COMPARISONS:
            raise ValueError(f"unknown comparison {self.op!r}")

    @property
    def met(self) -> bool:
        return self.measured is not None and COMPARISONS[self.op](self.measured, self.goal)

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "goal": f"{self.op} {self.goal:g}",
            "limit": self.limit,
            "measured": self.measured,
            "met": self.met,
        }


def targets_met(targets: list[Target]) -> bool:
    return all(target.met for target in targets)


@dataclass
class Outcome:
    scenario: str
    goal: str  # the goal as the issue states it, e.g. "≤ 3× the limit; < 15 s at 1,000,000"
    limit: str  # what the figure is compared with, e.g. "raw INSERT … SELECT into a copy"
    figures: dict  # absolute measurements, units in the key names: "seconds", "rps", "p99_ms"
    ratio: float | None  # measured vs the limit as the goal states it (None: no limit)
    met: bool
    explanation: str = ""  # why a goal was missed and what bounds it; notes otherwise
    checks: dict = field(default_factory=dict)  # correctness after the scenario: name -> problems
    # The goal as measurable targets; `met` must equal targets_met(targets) where there are any.
    targets: list[Target] = field(default_factory=list)


@dataclass
class Context:
    database_url: str  # the throw-away benchmark database
    households: int
    communities: int
    tiny: bool  # tests: smallest sizes, no repetitions, no profiling
    workdir: Path  # scratch space for logs, profiles, pid files
    period: Period  # the month being billed, paid out and scored
    broker_url: str = "redis://127.0.0.1:6379/0"  # Celery broker of the worker scenarios
    python: str = ""  # interpreter for child processes (default: this one)
    profile: bool = False  # write a pyinstrument profile where a goal is missed
    extra: dict = field(default_factory=dict)  # ids the data generator made (centre, admin, ...)

    def subprocess_env(self) -> dict:
        """Environment for gunicorn and the Celery worker: production settings, this database."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DJANGO_", "PYTEST_", "COV_"))
        }
        env.update(
            {
                "DATABASE_URL": self.database_url,
                "CELERY_BROKER_URL": self.broker_url,
                "CELERY_RESULT_BACKEND": self.broker_url,
                "DJANGO_SETTINGS_MODULE": "config.settings.base",
                "DEBUG": "false",
                "SECRET_KEY": BENCH_SECRET_KEY,
                "SANDBOX_GATEWAY_SECRET": BENCH_SANDBOX_SECRET,
                "ALLOWED_HOSTS": "127.0.0.1,localhost",
                "SITE_URL": "http://127.0.0.1:8000",
                # Plain HTTP on loopback: no TLS proxy in front of the benchmark's gunicorn.
                "SECURE_SSL_REDIRECT": "false",
                "SESSION_COOKIE_SECURE": "false",
                "CSRF_COOKIE_SECURE": "false",
                "LOG_LEVEL": "WARNING",
                # Production serves hashed static files from a manifest: collected once per run
                # into the work folder by ensure_static().
                "STATIC_ROOT": str(self.workdir / "static"),
                # Per-user rate limits are for abuse, not for 32 residents a benchmark replays.
                "AUTH_THROTTLE_RATE": "1000000/min",
                "PAYMENT_THROTTLE_RATE": "1000000/min",
                "TICKET_THROTTLE_RATE": "1000000/min",
            }
        )
        return env


@contextmanager
def stopwatch():
    """`with stopwatch() as t: ...` then t.seconds."""

    class Elapsed:
        seconds = 0.0

    elapsed = Elapsed()
    began = time.perf_counter()
    try:
        yield elapsed
    finally:
        elapsed.seconds = time.perf_counter() - began


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """Resident memory now, from /proc (no psutil)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def ensure_static(ctx: Context) -> Path:
    """Collect the static files once into the work folder, as the production image does, so
    child processes on production settings (manifest storage) can render pages."""
    import subprocess
    import sys

    root = ctx.workdir / "static"
    if not (root / "staticfiles.json").exists():
        subprocess.run(
            [ctx.python or sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
            cwd=PROJECT_ROOT,
            env=ctx.subprocess_env(),
            check=True,
        )
    return root


@contextmanager
def profiled(ctx: Context, name: str):
    """Profile the block with pyinstrument when ctx.profile is on; the text report is written
    to <workdir>/profile-<name>.txt and its path yielded in a list (empty when off)."""
    written: list[Path] = []
    if not ctx.profile:
        yield written
        return
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001)
    profiler.start()
    try:
        yield written
    finally:
        profiler.stop()
        path = ctx.workdir / f"profile-{name}.txt"
        path.write_text(profiler.output_text(unicode=True, color=False, show_all=False))
        written.append(path)


def correctness_checks() -> dict[str, int]:
    """What must hold after every scenario, whatever it measured: the escrow ledger and the
    points ledger recompute to their cached balances (billing.selectors.ledger_problems,
    points.selectors.points_problems: what check_ledger / check_points run), and no bill was
    paid twice (its succeeded payments, net of refunds, exceed what it asked for). Each value
    is a count of problems."""
    from django.db import connection

    from billing.selectors import ledger_problems
    from points.selectors import points_problems

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*) FROM (
                SELECT i.bill_id FROM billing_paymentitem i
                  JOIN billing_payment p ON p.id = i.payment_id
                  JOIN billing_bill b ON b.id = i.bill_id
                 WHERE p.status IN ('succeeded', 'refunded')
                 GROUP BY i.bill_id, b.amount
                HAVING sum(i.amount - i.refunded_amount) > b.amount) twice
            """
        )
        double_payments = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM billing_bill WHERE paid_amount > amount")
        overpaid = cursor.fetchone()[0]
    return {
        "ledger_problems": len(ledger_problems()),
        "points_problems": len(points_problems()),
        "double_payments": double_payments + overpaid,
    }
