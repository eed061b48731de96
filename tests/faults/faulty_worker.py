"""The project's Celery worker (config.celery, unchanged) with a gate the fault tests can close,
to hold tasks at a chosen point and kill the worker there:

- `in_transaction`: inside the task's database transaction, with its writes made and not
  committed: for a ledger posting, just before billing.ledger.post's write (a payout has then
  inserted its row and rewritten its items); for points, right after points.services._post.
  Held before the ledger's write rather than after it: that statement takes the chain's lock
  (billing/chain.py), the site's one queue from a posting to its commit, so a transaction held
  with it would hold every other posting too, and the batch could not reach its second hold
  point;
- `committed`: after the task returned (its transaction committed), before the worker
  acknowledges the message (Celery's task_postrun runs in the pool process before the result
  reaches the main process, which acks).

With FAULT_GATE_AFTER=K the first K tasks this broker sees pass; the ones after are held in
turn at `in_transaction` and `committed` for as long as the Redis key `fault:gate` exists. Each
held pool process adds its pid to `fault:held:<point>`; `fault:started` counts task starts.

Run as `python -m tests.faults.faulty_worker worker ...` (the `celery worker` arguments).
"""

import os
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

import django

django.setup()

import redis  # noqa: E402
from celery.signals import task_postrun, task_prerun  # noqa: E402

from billing import ledger  # noqa: E402
from config.celery import app  # noqa: E402
from points import services as points_services  # noqa: E402

GATE_AFTER = os.environ.get("FAULT_GATE_AFTER")
HOLD_AT_MOST_SECONDS = 60  # a test that dies leaves no worker held for ever
_point = None  # where this pool process holds its current task, if anywhere


def _redis() -> redis.Redis:
    return redis.Redis.from_url(app.conf.broker_url, socket_timeout=5)


@task_prerun.connect
def _count_and_choose(**kwargs):
    global _point
    started = _redis().incr("fault:started")
    _point = None
    if GATE_AFTER is not None and started > int(GATE_AFTER):
        _point = "in_transaction" if (started - int(GATE_AFTER)) % 2 else "committed"


def _hold(point: str) -> None:
    if _point != point:
        return
    client = _redis()
    client.sadd(f"fault:held:{point}", os.getpid())
    deadline = time.monotonic() + HOLD_AT_MOST_SECONDS
    while time.monotonic() < deadline:
        try:
            if not client.exists("fault:gate"):
                break
        except redis.ConnectionError:
            pass  # Redis is being restarted under us: the gate counts as closed
        time.sleep(0.05)
    client.srem(f"fault:held:{point}", os.getpid())


def _held_in_transaction(original):
    def wrapper(*args, **kwargs):
        result = original(*args, **kwargs)
        _hold("in_transaction")
        return result

    return wrapper


def _held_before(original):
    def wrapper(*args, **kwargs):
        _hold("in_transaction")
        return original(*args, **kwargs)

    return wrapper


@task_postrun.connect
def _held_after_commit(**kwargs):
    _hold("committed")


# ledger.post calls its write through the module's global, so the wrapper is what it runs.
ledger._write_postgresql = _held_before(ledger._write_postgresql)
points_services._post = _held_in_transaction(points_services._post)

if __name__ == "__main__":
    app.worker_main(sys.argv[1:])
