"""Run the benchmark suite: `python -m bench.run --households 100000 --communities 200`.

Creates a throw-away PostgreSQL database next to the one DATABASE_URL names (the server must be
PostgreSQL; default postgres://postgres@127.0.0.1:5432/postgres), migrates it, generates the
city (bench.datagen), runs each scenario (bench.scenarios) and, after each, the correctness
checks (bench.core.correctness_checks). Writes the table into docs/performance.md and the figures
into bench/results.json, then drops the database (unless --keep-db).

A missed goal is reported as MISSED with its explanation, and the exit code stays 0. The exit
code is 1 when a correctness check fails or a scenario could not run at all.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench.core import PROJECT_ROOT, Context, Outcome, targets_met

RESULTS = PROJECT_ROOT / "bench" / "results.json"
REPORT = PROJECT_ROOT / "docs" / "performance.md"
TABLE_START = "<!-- bench:table:start -->"
TABLE_END = "<!-- bench:table:end -->"


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _admin_connection(url: str):
    import psycopg2

    parts = urlsplit(_with_database(url, "postgres"))
    connection = psycopg2.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password,
        dbname="postgres",
    )
    connection.autocommit = True
    return connection


def create_database(server_url: str, name: str) -> str:
    connection = _admin_connection(server_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
    finally:
        connection.close()
    return _with_database(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    connection = _admin_connection(server_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        connection.close()


def _setup_django(ctx: Context) -> None:
    """Point this process at the benchmark database with the production settings."""
    os.environ.update(ctx.subprocess_env())
    import django

    django.setup()


def _machine() -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        server = cursor.fetchone()[0]
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "postgresql": server,
        "platform": platform.platform(),
    }


def run_scenario(name: str, ctx: Context) -> tuple[Outcome, bool]:
    """Run one scenario and the checks after it. Returns (outcome, ran): ran is False when the
    scenario raised (the outcome then carries the traceback)."""
    from bench import scenarios
    from bench.core import correctness_checks

    began = time.perf_counter()
    try:
        outcome = scenarios.load(name).run(ctx)
        ran = True
    except Exception as exc:
        log = ctx.workdir / f"error-{name}.txt"
        log.write_text(traceback.format_exc())
        where = traceback.extract_tb(exc.__traceback__)[-1]
        outcome = Outcome(
            scenario=name,
            goal="",
            limit="",
            figures={},
            ratio=None,
            met=False,
            explanation=(
                f"The scenario failed to run: {type(exc).__name__}: {exc} "
                f"(at {where.filename}:{where.lineno}; traceback in {log})"
            ),
        )
        ran = False
    outcome.checks = {**outcome.checks, **correctness_checks()}
    outcome.figures.setdefault("scenario_wall_seconds", round(time.perf_counter() - began, 1))
    return outcome, ran


def checks_clean(outcome: Outcome) -> bool:
    return not any(outcome.checks.values())


# --- results ------------------------------------------------------------------------------------


def _name(entry: dict) -> str:
    return entry.get("name") or entry["scenario"]  # "scenario": results written before names


def _key(entry: dict) -> tuple:
    return (_name(entry), entry["households"], entry["communities"])


def merge_results(path: Path, new: list[dict], machine: dict) -> dict:
    """Keep earlier results of other scenarios or scales (a --only run replaces its own)."""
    results = {"scenarios": []}
    if path.exists():
        with contextlib.suppress(ValueError):
            results = json.loads(path.read_text())
    replaced = {_key(entry) for entry in new}
    kept = [entry for entry in results.get("scenarios", []) if _key(entry) not in replaced]
    results["scenarios"] = kept + new
    results["machine"] = machine
    results["updated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return results


def _figure(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.3f}" if value < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def render_table(results: dict) -> str:
    from bench.scenarios import SCENARIOS

    order = {name: n for n, name in enumerate(SCENARIOS)}
    entries = sorted(
        results["scenarios"],
        key=lambda e: (order.get(_name(e), 99), e["households"], e["communities"]),
    )
    machine = results.get("machine", {})
    # A run with --only replaces its own rows: say when the rows were measured, not just when
    # the file was last written.
    run_at = sorted({e["run_at"] for e in entries if e.get("run_at")})
    when = (
        f"Rows measured from {run_at[0]} to {run_at[-1]} (each row's run_at is in results.json)"
        if len(run_at) > 1
        else f"Last run {results.get('updated_at', '?')}"
    )
    lines = [
        f"{when} on {machine.get('cpus', '?')} CPUs, "
        f"PostgreSQL {machine.get('postgresql', '?')}, Python {machine.get('python', '?')}.",
        "",
        "| scenario | scale | goal | limit (same run) | targets: measured (goal) | figures "
        "| ratio | result |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for entry in entries:
        figures = "; ".join(
            f"{key} {_figure(value)}"
            for key, value in entry["figures"].items()
            # Nested figures (wait-event samples and the like) stay in results.json.
            if key != "scenario_wall_seconds" and isinstance(value, int | float | str)
        )
        ratio = "—" if entry["ratio"] is None else f"{entry['ratio']:.2f}"
        problems = {key: value for key, value in entry["checks"].items() if value}
        if problems:
            result = "**CHECK FAILED** " + ", ".join(f"{k} {v}" for k, v in problems.items())
        else:
            result = "met" if entry["met"] else "**MISSED**"
        scale = f"{entry['households']:,} households / {entry['communities']:,} communities"
        targets = "; ".join(
            f"{t['name']} {_figure(t['measured'])} ({t['goal']}"
            + (f", limit {_figure(t['limit'])}" if t.get("limit") is not None else "")
            + f"){'' if t['met'] else ' **missed**'}"
            for t in entry.get("targets", [])
        )
        lines.append(
            f"| {_name(entry)} | {scale} | {entry['goal']} | {entry['limit'] or '—'} "
            f"| {targets or '—'} | {figures} | {ratio} | {result} |"
        )
    notes = [
        f"- **{_name(entry)}** ({entry['households']:,} households): "
        + " ".join(entry["explanation"].split())
        for entry in entries
        if entry["explanation"]
    ]
    checks = sorted({name for entry in entries for name in entry["checks"]})
    lines += [
        "",
        "Correctness checks after every scenario (all must be 0): " + ", ".join(checks) + ".",
    ]
    if notes:
        lines += ["", "Notes from the run:", "", *notes]
    return "\n".join(lines)


def write_report(path: Path, table: str) -> None:
    block = f"{TABLE_START}\n{table}\n{TABLE_END}"
    if path.exists() and TABLE_START in path.read_text():
        text = path.read_text()
        before, rest = text.split(TABLE_START, 1)
        after = rest.split(TABLE_END, 1)[1] if TABLE_END in rest else ""
        path.write_text(before + block + after)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# Performance\n\n{block}\n")


# --- command ------------------------------------------------------------------------------------


def _entries(ctx: Context, outcomes: list[Outcome]) -> list[dict]:
    """One entry per scenario: its name, goal, limit, measured and met first (what a reader
    and tests/test_bench_results.py look at), each target with the same five, then the rest of
    the figures and the correctness checks."""
    return [
        {
            "name": o.scenario,
            "goal": o.goal,
            "limit": o.limit,
            "measured": {target.name: target.measured for target in o.targets},
            "met": targets_met(o.targets) if o.targets else o.met,
            "targets": [target.as_dict() for target in o.targets],
            "households": ctx.households,
            "communities": ctx.communities,
            "figures": o.figures,
            "ratio": None if o.ratio is None else round(o.ratio, 3),
            "explanation": o.explanation,
            "checks": o.checks,
            "run_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        for o in outcomes
    ]


def _write(ctx: Context, outcomes: list[Outcome], machine: dict) -> None:
    results = merge_results(RESULTS, _entries(ctx, outcomes), machine)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    write_report(REPORT, render_table(results))


def parse_args(argv=None) -> argparse.Namespace:
    from bench.scenarios import SCENARIOS

    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--households", type=int, default=100_000)
    parser.add_argument("--communities", type=int, default=200)
    parser.add_argument(
        "--only",
        action="append",
        choices=SCENARIOS,
        help="run only this scenario (repeatable); default: all, in order",
    )
    parser.add_argument("--keep-db", action="store_true", help="keep the benchmark database")
    parser.add_argument("--no-profile", action="store_true", help="no pyinstrument profiles")
    parser.add_argument(
        "--no-write", action="store_true", help="print the table, leave the report files alone"
    )
    parser.add_argument(
        "--period", help="the month to bill and pay out, YYYY-MM (default: last month)"
    )
    parser.add_argument(
        "--points-events",
        type=int,
        default=100_000,
        help="events for points_awards (default 100,000, as the goal states)",
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from bench.scenarios import SCENARIOS

    server_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    if not server_url.startswith(("postgres://", "postgresql://")):
        print("bench: DATABASE_URL must name a PostgreSQL server", file=sys.stderr)
        return 2
    broker_url = os.environ.get("CELERY_BROKER_URL") or "redis://127.0.0.1:6379/0"
    name = f"linli_bench_{datetime.now(UTC):%Y%m%d%H%M%S}_{os.getpid()}"
    workdir = Path(tempfile.mkdtemp(prefix="linli-bench-"))
    database_url = create_database(server_url, name)
    print(f"bench: database {name}, work folder {workdir}", flush=True)

    from community.periods import Period

    ctx = Context(
        database_url=database_url,
        households=args.households,
        communities=args.communities,
        tiny=False,
        workdir=workdir,
        period=None,  # set once Django knows the time zone
        broker_url=broker_url,
        python=sys.executable,
        profile=not args.no_profile,
        extra={"points_events": args.points_events},
    )
    failed = False
    outcomes: list[Outcome] = []
    machine: dict = {}
    try:
        _setup_django(ctx)
        ctx.period = Period.parse(args.period) if args.period else Period.current().previous()
        from django.core.management import call_command
        from django.db import connections

        from bench import datagen
        from bench.core import ensure_static, stopwatch

        with stopwatch() as took:
            call_command("migrate", verbosity=0)
        print(f"bench: migrated in {took.seconds:.1f} s", flush=True)
        ensure_static(ctx)
        with stopwatch() as took:
            town = datagen.generate(ctx)
        print(
            f"bench: generated {town.households:,} households in {len(town.community_ids):,} "
            f"communities in {took.seconds:.1f} s",
            flush=True,
        )
        ctx.extra["datagen_seconds"] = round(took.seconds, 1)
        machine = _machine()
        for scenario in args.only or SCENARIOS:
            print(f"bench: {scenario} …", flush=True)
            outcome, ran = run_scenario(scenario, ctx)
            outcomes.append(outcome)
            verdict = "met" if outcome.met else "MISSED"
            if not checks_clean(outcome):
                verdict = f"CHECK FAILED {outcome.checks}"
                failed = True
            if not ran:
                failed = True
                verdict = "FAILED TO RUN"
            print(
                f"bench: {scenario}: {verdict}; ratio {outcome.ratio}; {outcome.figures}; "
                f"checks {outcome.checks}",
                flush=True,
            )
            if outcome.explanation and not ran:
                print(outcome.explanation, file=sys.stderr, flush=True)
            if not args.no_write:  # after each scenario: a long run stopped midway keeps its rows
                _write(ctx, outcomes, machine)
        connections.close_all()
    finally:
        if args.keep_db:
            print(f"bench: kept database {name} ({database_url})")
        else:
            try:
                from django.db import connections

                connections.close_all()
            except Exception:  # Django never set up: nothing to close
                pass
            drop_database(server_url, name)
    if args.no_write:
        print(render_table(merge_results(Path("/nonexistent"), _entries(ctx, outcomes), machine)))
    else:
        _write(ctx, outcomes, machine)
        print(f"bench: wrote {REPORT.relative_to(PROJECT_ROOT)} and {RESULTS.name}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
