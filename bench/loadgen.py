"""The load generator of the HTTP scenarios, run as its own process (so its CPU is not the
server's): N virtual users on asyncio + httpx, each sending its next request as soon as the last
one answered (a closed loop, like residents tapping "pay"), for T seconds after a short warm-up.
Prints one JSON object on stdout: requests/s, cycles/s, latency percentiles, status counts.

Two modes:
  get      every user GETs one path over and over, with a token from --tokens.
  payment  every user takes the next (token, bill) job from --jobs and runs one full cycle:
           POST /api/v1/payments/ (Idempotency-Key) -> the sandbox gateway marks the trade paid on
           its own book and builds and signs its notification with the gateway's own code
           (billing.gateways.sandbox.notification_body / sign) -> POST the notification to
           /api/v1/payments/notify/sandbox/ and expect "success". The gateway's step touches its
           own book (billing_sandboxtrade) and is not a portal request: it is excluded from the
           per-request latencies but included in the cycle rate.

    python -m bench.loadgen --base-url http://127.0.0.1:8123 --users 32 --seconds 60 \
        get --path /bench/one-row/ --tokens tokens.txt
    python -m bench.loadgen ... payment --jobs jobs.jsonl --secret <SANDBOX_GATEWAY_SECRET>
(payment mode needs DJANGO_SETTINGS_MODULE and DATABASE_URL: the gateway's book is in the DB.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Recorder:
    def __init__(self):
        self.measuring = False
        self.stop_at = 0.0  # set when the users start, after any setup
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.statuses: Counter = Counter()
        self.errors: Counter = Counter()
        self.cycles = 0
        self.completed = 0  # requests answered, or cycles answered "success"; warm-up included
        self.failed_cycles = 0
        self.gateway_ms: list[float] = []
        self.cpu_at_start: float | None = None  # this process's CPU when the users started

    def users_start(self, seconds: float) -> None:
        self.stop_at = time.monotonic() + seconds
        self.cpu_at_start = _cpu_seconds()

    def request(self, kind: str, seconds: float, status: int) -> None:
        if self.measuring:
            self.latencies[kind].append(seconds * 1000)
            self.statuses[f"{kind} {status}"] += 1

    def summary(self, measured_seconds: float) -> dict:
        everything = sorted(v for values in self.latencies.values() for v in values)

        def stats(values):
            values = sorted(values)
            return {
                "count": len(values),
                # The mean too: Little's law (users in flight ÷ requests/s) is about the mean.
                "mean_ms": round(sum(values) / len(values), 2) if values else None,
                "p50_ms": percentile(values, 50),
                "p95_ms": percentile(values, 95),
                "p99_ms": percentile(values, 99),
                "max_ms": values[-1] if values else None,
            }

        cpu = _cpu_seconds()
        return {
            "seconds": measured_seconds,
            "requests": len(everything),
            "rps": len(everything) / measured_seconds if measured_seconds else 0.0,
            "cycles": self.cycles,
            "failed_cycles": self.failed_cycles,
            "completed": self.completed,
            "cycles_per_s": self.cycles / measured_seconds if measured_seconds else 0.0,
            **{k: v for k, v in stats(everything).items() if k != "count"},
            "by_kind": {kind: stats(values) for kind, values in self.latencies.items()},
            "gateway_step": stats(self.gateway_ms),
            "statuses": dict(self.statuses),
            "errors": dict(self.errors),
            "loadgen_cpu_seconds": cpu,
            # From the users' start (warm-up included, set-up not), as the scenarios count the
            # server's: the load generator shares its cores, so its CPU per request or cycle is
            # part of what a ratio between two runs compares.
            "loadgen_cpu_seconds_running": cpu - self.cpu_at_start
            if self.cpu_at_start is not None
            else None,
        }


async def timed(recorder: Recorder, kind: str, call):
    began = time.perf_counter()
    response = await call
    recorder.request(kind, time.perf_counter() - began, response.status_code)
    return response


# --- get mode ----------------------------------------------------------------------------------


async def get_user(client, recorder, path, headers):
    while time.monotonic() < recorder.stop_at:
        try:
            await timed(recorder, "get", client.get(path, headers=headers))
            recorder.completed += 1
        except Exception as exc:  # a refused or reset connection is a result, not a crash
            recorder.errors[type(exc).__name__] += 1


# --- payment mode ------------------------------------------------------------------------------


class Gateway:
    """The sandbox gateway's side of a payment: confirm the trade on its book, then build and
    sign the notification it would send with the gateway's own code (notification_body, sign).

    The gateway is the outside world, yet here it runs on the server's two cores, so it keeps
    its own cost small: the confirmation is one UPDATE … RETURNING, with what
    SandboxGateway.confirm does (a waiting trade becomes paid, now; any other stays as it is),
    rather than the ORM's read, save and their compilation in this process's threads."""

    CONFIRM = """
        UPDATE billing_sandboxtrade
           SET status = CASE WHEN status = 'WAIT_BUYER_PAY' THEN 'TRADE_SUCCESS' ELSE status END,
               paid_at = CASE WHEN status = 'WAIT_BUYER_PAY' THEN %s ELSE paid_at END
         WHERE out_trade_no = %s
     RETURNING out_trade_no, trade_no, amount, status, paid_at"""

    def __init__(self, secret: str, threads: int):
        import django

        django.setup()
        from django.db import connection
        from django.utils import timezone

        from billing.gateways import sandbox
        from billing.models import SandboxTrade

        self.sandbox, self.trades, self.secret = sandbox, SandboxTrade, secret
        self.connection, self.now = connection, timezone.now
        self.pool = ThreadPoolExecutor(max_workers=threads)

    def _confirm_and_sign(self, out_trade_no: str) -> tuple[bytes, str]:
        # Each pool thread has its own connection, in autocommit: the statement is its commit.
        with self.connection.cursor() as cursor:
            cursor.execute(self.CONFIRM, [self.now(), out_trade_no])
            row = cursor.fetchone()
        if row is None:
            raise LookupError(f"the gateway has no trade {out_trade_no}")
        names = ("out_trade_no", "trade_no", "amount", "status", "paid_at")
        trade = self.trades(**dict(zip(names, row, strict=True)))
        body = self.sandbox.notification_body(trade)
        return body, self.sandbox.sign(body, secret=self.secret)

    async def confirm_and_sign(self, out_trade_no: str) -> tuple[bytes, str]:
        return await asyncio.get_running_loop().run_in_executor(
            self.pool, self._confirm_and_sign, out_trade_no
        )


async def payment_user(client, recorder, jobs: asyncio.Queue, gateway: Gateway):
    while time.monotonic() < recorder.stop_at:
        try:
            job = jobs.get_nowait()
        except asyncio.QueueEmpty:
            recorder.errors["out of bills"] += 1
            return
        headers = {"Authorization": f"Token {job['token']}", "Idempotency-Key": uuid.uuid4().hex}
        measuring = recorder.measuring
        try:
            created = await timed(
                recorder,
                "create",
                client.post(
                    "/api/v1/payments/",
                    json={"bill_ids": [job["bill_id"]], "gateway": "sandbox"},
                    headers=headers,
                ),
            )
            if created.status_code != 201:
                recorder.errors[f"create {created.status_code}: {created.text[:120]}"] += 1
                recorder.failed_cycles += measuring
                continue
            began = time.perf_counter()
            body, signature = await gateway.confirm_and_sign(created.json()["out_trade_no"])
            if measuring:
                recorder.gateway_ms.append((time.perf_counter() - began) * 1000)
            notified = await timed(
                recorder,
                "notify",
                client.post(
                    "/api/v1/payments/notify/sandbox/",
                    content=body,
                    headers={
                        "Content-Type": "application/json",
                        "X-Sandbox-Signature": signature,
                    },
                ),
            )
        except Exception as exc:
            recorder.errors[type(exc).__name__] += 1
            recorder.failed_cycles += measuring
            continue
        if notified.status_code == 200 and notified.text == "success":
            recorder.completed += 1
            recorder.cycles += measuring and recorder.measuring
        else:
            recorder.errors[f"notify {notified.status_code}: {notified.text[:120]}"] += 1
            recorder.failed_cycles += measuring


# --- main --------------------------------------------------------------------------------------


async def run(args) -> dict:
    import httpx

    recorder = Recorder()
    limits = httpx.Limits(max_connections=args.users, max_keepalive_connections=args.users)
    async with httpx.AsyncClient(
        base_url=args.base_url, limits=limits, timeout=args.timeout
    ) as client:
        if args.mode == "get":
            with open(args.tokens or args.sessions) as lines:
                keys = [line.strip() for line in lines if line.strip()]
            if args.tokens:
                auth = [{"Authorization": f"Token {key}"} for key in keys]
            else:  # a browser: the session cookie
                auth = [{"Cookie": f"sessionid={key}"} for key in keys]
            users = [
                get_user(client, recorder, args.path, auth[n % len(auth)])
                for n in range(args.users)
            ]
        else:
            queue: asyncio.Queue = asyncio.Queue()
            with open(args.jobs) as lines:
                for line in lines:
                    if line.strip():
                        queue.put_nowait(json.loads(line))
            gateway = Gateway(args.secret, threads=args.gateway_threads)
            users = [payment_user(client, recorder, queue, gateway) for _ in range(args.users)]

        async def start_measuring():
            await asyncio.sleep(args.warmup)
            recorder.measuring = True

        # The clock starts once the setup (Django, for the gateway) is done.
        recorder.users_start(args.warmup + args.seconds)
        tasks = [asyncio.ensure_future(u) for u in users]
        await start_measuring()
        measured_began = time.monotonic()
        await asyncio.gather(*tasks)
        # Users stop after their in-flight request: the window ends when the last one is back
        # (or earlier, when the jobs ran out).
        measured = time.monotonic() - measured_began
    result = recorder.summary(measured)
    result.update(mode=args.mode, users=args.users, warmup_seconds=args.warmup)
    return result


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--timeout", type=float, default=30)
    modes = parser.add_subparsers(dest="mode", required=True)
    get = modes.add_parser("get")
    get.add_argument("--path", required=True)
    credentials = get.add_mutually_exclusive_group(required=True)
    credentials.add_argument("--tokens", help="file: one API token a line")
    credentials.add_argument("--sessions", help="file: one session key a line (pages)")
    payment = modes.add_parser("payment")
    payment.add_argument("--jobs", required=True, help='file: {"token","bill_id"} JSON a line')
    payment.add_argument("--secret", required=True, help="SANDBOX_GATEWAY_SECRET of the server")
    payment.add_argument("--gateway-threads", type=int, default=4)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    result = asyncio.run(run(parse(argv)))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
