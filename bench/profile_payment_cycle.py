"""In-process profile of one full payment cycle, the unit of the payment rush (issue 9):
POST /api/v1/payments/ with an Idempotency-Key, then the sandbox gateway's signed notification,
through Django's test client with production settings (bench.settings) on PostgreSQL.

Reports server CPU ms and SQL queries per create and per notification, then the CPU ms of the
rush's limit (GET /bench/one-row/) in the same process and the cycle's multiple of it, and
optionally writes a pyinstrument profile (wall time) or a cProfile (--cprofile, CPU time). The
gateway's own step (confirming its trade and signing) is not timed: it is not a portal request.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/linli_h11 \
    CELERY_BROKER_URL=redis://127.0.0.1:6379/12 \
        .venv/bin/python -m bench.profile_payment_cycle --cycles 200 [--profile out.html]

It makes (and drops afterwards) a throw-away database named after DATABASE_URL's plus
"_cycle". Without CELERY_BROKER_URL the points task runs eagerly in-process, as in development;
the benchmark's gunicorn publishes to a real broker, so pass one to measure what it does.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import date
from decimal import Decimal

BENCH_ENV = {
    "DJANGO_SETTINGS_MODULE": "bench.settings",
    "DEBUG": "false",
    "SECRET_KEY": "bench-profile-payment-cycle-not-secret",
    "SANDBOX_GATEWAY_SECRET": "bench-profile-sandbox-secret",
    "ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
    "SECURE_SSL_REDIRECT": "false",
    "SESSION_COOKIE_SECURE": "false",
    "CSRF_COOKIE_SECURE": "false",
    "LOG_LEVEL": "WARNING",
    "PAYMENT_THROTTLE_RATE": "1000000/min",
    "AUTH_THROTTLE_RATE": "1000000/min",
}


def _estate(residents: int, months: int):
    from rest_framework.authtoken.models import Token

    from billing.models import Bill
    from community.tests.factories import (
        AgreementFactory,
        CommunityFactory,
        HouseholdFactory,
        resident,
    )

    community = CommunityFactory()
    AgreementFactory(
        community=community,
        effective_from=date(2019, 7, 1),
        fee_rate=Decimal("2.50"),
        holdback_share=Decimal("0.10"),
    )
    jobs = []
    for n in range(residents):
        home = HouseholdFactory(building__community=community, area=Decimal("90.00") + n)
        user = resident(home)
        token, _ = Token.objects.get_or_create(user=user)
        for m in range(months):
            year, month = divmod(2030 * 12 + m, 12)
            amount = (home.area * Decimal("2.50")).quantize(Decimal("0.01"))
            bill = Bill.objects.create(
                household=home,
                community=community,
                period=f"{year}-{month + 1:02d}",
                area=home.area,
                rate=Decimal("2.50"),
                amount=amount,
                due_date=date(year, month + 1, 15),
                is_prepaid=True,
            )
            jobs.append((token.key, bill.pk))
    # Interleave households, as the rush does, so consecutive cycles are different payers.
    jobs.sort(key=lambda job: (job[1] % months, job[1]))
    return jobs


def _cycle(client, gateway, token: str, bill_id: int, n: int, timings: dict) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from billing.models import SandboxTrade

    start = time.process_time()
    with CaptureQueriesContext(connection) as create_q:
        created = client.post(
            "/api/v1/payments/",
            {"bill_ids": [bill_id], "gateway": "sandbox"},
            format="json",
            HTTP_AUTHORIZATION=f"Token {token}",
            HTTP_IDEMPOTENCY_KEY=f"cycle-{n}",
        )
    timings["create_cpu"] += time.process_time() - start
    timings["create_each"].append(time.process_time() - start)
    assert created.status_code == 201, (created.status_code, created.content[:300])
    # The gateway's side: not a portal request, not timed.
    trade = SandboxTrade.objects.get(out_trade_no=created.json()["out_trade_no"])
    gateway.SandboxGateway.confirm(trade)
    body = gateway.notification_body(trade)
    signature = gateway.sign(body)
    start = time.process_time()
    with CaptureQueriesContext(connection) as notify_q:
        notified = client.post(
            "/api/v1/payments/notify/sandbox/",
            body,
            content_type="application/json",
            HTTP_X_SANDBOX_SIGNATURE=signature,
        )
    timings["notify_cpu"] += time.process_time() - start
    timings["notify_each"].append(time.process_time() - start)
    assert notified.status_code == 200 and notified.content == b"success", notified.content[:300]
    timings["create_q"] += len(create_q.captured_queries)
    timings["notify_q"] += len(notify_q.captured_queries)
    timings["last_create_sql"] = [q["sql"] for q in create_q.captured_queries]
    timings["last_notify_sql"] = [q["sql"] for q in notify_q.captured_queries]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--residents", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument(
        "--profile", help="write a pyinstrument profile of the timed cycles here (.html or text)"
    )
    parser.add_argument(
        "--cprofile",
        help="write cProfile stats of the timed cycles here, timed in process CPU (not wall) time",
    )
    parser.add_argument("--sql", action="store_true", help="print one cycle's SQL")
    args = parser.parse_args(argv)
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        parser.error("set DATABASE_URL to a PostgreSQL database (the rush runs on PostgreSQL)")
    for key, value in BENCH_ENV.items():
        os.environ.setdefault(key, value)

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_test_environment
    from rest_framework.test import APIClient

    from billing.gateways import sandbox

    setup_test_environment()  # ALLOWED_HOSTS gets testserver, e-mail goes to locmem
    settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = (
        settings.DATABASES["default"]["NAME"] + "_cycle"
    )
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        cycles = args.warmup + args.cycles
        months = -(-cycles // args.residents)
        jobs = _estate(args.residents, months)[:cycles]
        client = APIClient()
        timings = {"create_cpu": 0.0, "notify_cpu": 0.0, "create_q": 0, "notify_q": 0}
        timings.update(create_each=[], notify_each=[])
        for n, (token, bill_id) in enumerate(jobs[: args.warmup]):
            _cycle(client, sandbox, token, bill_id, n, timings)
        timings.update(create_cpu=0.0, notify_cpu=0.0, create_q=0, notify_q=0)
        timings.update(create_each=[], notify_each=[])
        profiler = None
        if args.profile:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005)
            profiler.start()
        cpu_profiler = None
        if args.cprofile:
            import cProfile

            # CPU, not wall: the server's CPU per cycle is what bounds the rush.
            cpu_profiler = cProfile.Profile(time.process_time)
            cpu_profiler.enable()
        wall = time.perf_counter()
        for n, (token, bill_id) in enumerate(jobs[args.warmup :], start=args.warmup):
            _cycle(client, sandbox, token, bill_id, n, timings)
        wall = time.perf_counter() - wall
        if cpu_profiler is not None:
            cpu_profiler.disable()
            cpu_profiler.dump_stats(args.cprofile)
        if profiler is not None:
            profiler.stop()
            with open(args.profile, "w") as out:
                if args.profile.endswith(".html"):
                    out.write(profiler.output_html())
                else:
                    out.write(profiler.output_text(unicode=True, show_all=False))
        m = args.cycles
        print(f"cycles: {m}  broker: {settings.CELERY_BROKER_URL or 'none (eager)'}")
        for name in ("create", "notify"):
            # The median as well as the mean: on a shared machine the mean takes every hiccup.
            print(
                f"{name}: {timings[f'{name}_cpu'] * 1000 / m:.2f} CPU ms "
                f"(median {statistics.median(timings[f'{name}_each']) * 1000:.2f}), "
                f"{timings[f'{name}_q'] / m:.1f} queries"
            )
        total_cpu = (timings["create_cpu"] + timings["notify_cpu"]) * 1000 / m
        total_q = (timings["create_q"] + timings["notify_q"]) / m
        print(
            f"cycle:  {total_cpu:.2f} CPU ms, {total_q:.1f} queries, {wall * 1000 / m:.1f} ms wall"
        )
        # The rush's limit, in the same process: the bare authenticated one-row request.
        token = jobs[0][0]
        for _ in range(args.warmup):
            client.get("/bench/one-row/", HTTP_AUTHORIZATION=f"Token {token}")
        start = time.process_time()
        for _ in range(m):
            client.get("/bench/one-row/", HTTP_AUTHORIZATION=f"Token {token}")
        one_row = (time.process_time() - start) * 1000 / m
        print(
            f"one-row: {one_row:.2f} CPU ms; a cycle costs {total_cpu / one_row:.1f}× that "
            f"(cycles/s at most ~{one_row / total_cpu:.0%} of its requests/s)"
        )
        if args.sql:
            for name in ("create", "notify"):
                print(f"--- {name} SQL")
                for sql in timings[f"last_{name}_sql"]:
                    print("  ", sql[:220])
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
