"""What the HTTP scenarios share: residents with API tokens made straight in the database, the
load generator run as a second process, and a sampler of PostgreSQL's wait events."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg2
from django.db import transaction
from rest_framework.authtoken.models import Token

from bench.core import Context
from community.models import Household, Residency


def residents_with_tokens(household_ids: list[int]) -> dict[int, tuple[int, str]]:
    """household id -> (user id, API token) of the owner the data generator housed there. The
    tokens are made in bulk, straight in the database: signing in would only measure PBKDF2."""
    owners = dict(
        Residency.objects.filter(
            household_id__in=household_ids, end_date__isnull=True, relation="owner"
        )
        .order_by("household_id", "user_id")
        .values_list("household_id", "user_id")
    )
    missing = set(household_ids) - set(owners)
    if missing:
        raise RuntimeError(f"{len(missing)} households have no owner to pay their bills")
    with transaction.atomic():
        with_token = set(
            Token.objects.filter(user_id__in=owners.values()).values_list("user_id", flat=True)
        )
        Token.objects.bulk_create(
            [
                Token(user_id=user_id, key=Token.generate_key())
                for user_id in set(owners.values()) - with_token
            ],
            batch_size=2000,
        )
    keys = dict(Token.objects.filter(user_id__in=owners.values()).values_list("user_id", "key"))
    return {pk: (owners[pk], keys[owners[pk]]) for pk in household_ids}


def households_spread(community_ids: list[int], per_community: int) -> list[int]:
    """Up to per_community households of each community, interleaved community by community, so
    that consecutive jobs (running at the same time) belong to different communities."""
    columns: list[list[int]] = []
    for community_id in community_ids:
        columns.append(
            list(
                Household.objects.filter(building__community_id=community_id)
                .order_by("pk")
                .values_list("pk", flat=True)[:per_community]
            )
        )
    spread = []
    for row in range(max((len(column) for column in columns), default=0)):
        spread += [column[row] for column in columns if row < len(column)]
    return spread


def run_loadgen(ctx: Context, args: list[str], *, name: str, env: dict | None = None) -> dict:
    """Run bench.loadgen in its own process and return its JSON report."""
    command = [ctx.python or sys.executable, "-m", "bench.loadgen", *args]
    log = ctx.workdir / f"loadgen-{name}.log"
    full_env = ctx.subprocess_env()
    full_env.update(env or {})
    with log.open("w") as err:
        done = subprocess.run(
            command,
            cwd=Path(__file__).resolve().parent.parent,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed ({done.returncode}): {log.read_text()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class WaitSampler:
    """Samples pg_stat_activity of the benchmark database every `interval` seconds, on its own
    connection: how many backends are active, and what the waiting ones wait for (a row lock
    shows as Lock/transactionid or Lock/tuple, with the statement that waits)."""

    def __init__(self, database_url: str, interval: float = 0.1):
        self.database_url, self.interval = database_url, interval
        self.samples = 0
        self.active = 0
        self.waits: Counter = Counter()
        self.waiting_statements: Counter = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        connection = psycopg2.connect(self.database_url)
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                while not self._stop.is_set():
                    cursor.execute(
                        """
                        SELECT wait_event_type, wait_event,
                               left(regexp_replace(query, '\\s+', ' ', 'g'), 70)
                          FROM pg_stat_activity
                         WHERE datname = current_database() AND pid <> pg_backend_pid()
                           AND state = 'active'
                        """
                    )
                    rows = cursor.fetchall()
                    self.samples += 1
                    self.active += len(rows)
                    for wait_type, wait_event, query in rows:
                        if wait_type in ("Lock", "LWLock", "IO", "IPC"):
                            self.waits[f"{wait_type}/{wait_event}"] += 1
                        if wait_type == "Lock":
                            self.waiting_statements[query] += 1
                    time.sleep(self.interval)
        finally:
            connection.close()

    def summary(self) -> dict:
        samples = max(self.samples, 1)
        return {
            "samples": self.samples,
            "active_backends_avg": round(self.active / samples, 2),
            "waiting_avg": {k: round(v / samples, 2) for k, v in self.waits.most_common(6)},
            "lock_waiting_statements_avg": {
                k: round(v / samples, 2) for k, v in self.waiting_statements.most_common(4)
            },
        }
