"""Fixtures for the fault tests: a private Redis that a test may stop and restart (the shared
one is never touched), a real Celery worker process against it and the test database, and the
points rules that a transactional test's flush removes.

A worker is `python -m tests.faults.faulty_worker`: the project's own worker (config.celery)
with a gate that a test can close to hold tasks at a chosen point (inside their database
transaction, or committed but not yet acknowledged) and then kill them there.
"""

import importlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from celery import Celery
from django.apps import apps as django_apps
from django.db import connection
from kombu import Exchange, Queue

ROOT = Path(__file__).resolve().parents[2]
PORTS = range(6391, 6400)  # private Redis instances for restart tests (never 6379)
DEFAULT_RULES = importlib.import_module("points.migrations.0003_default_rules")
# Short, so a killed worker's unacknowledged messages come back within seconds (see settings).
VISIBILITY_TIMEOUT = 3


def wait_until(condition, *, timeout: float, what: str, every: float = 0.1):
    """Poll `condition` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


@pytest.fixture(autouse=True)
def _default_rules(request):
    """The default earning rules (as in points/tests/conftest.py): a transactional test empties
    every table when it ends, so they are put back for each test that uses the database."""
    uses_db = {"db", "transactional_db"} & set(request.fixturenames) or (
        request.node.get_closest_marker("django_db")
    )
    if uses_db:
        DEFAULT_RULES.forwards(django_apps, None)


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.fail(f"no free port for a private Redis in {PORTS.start}-{PORTS.stop - 1}")


class PrivateRedis:
    """A redis-server of the test's own, append-only like production's (docker-compose.yml), so
    a restart keeps the queued messages."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_until(self._answers, timeout=15, what=f"redis-server on port {self.port}")

    def _answers(self) -> bool:
        try:
            return self.client().ping()
        except redis.ConnectionError:
            return False

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: redis flushes its append-only file and exits
            self.process.wait(timeout=15)
        self.process = None

    def restart(self):
        self.stop()
        self.start()

    def queued(self) -> int:
        """Messages waiting in the default queue plus those delivered but not acknowledged."""
        client = self.client()
        return client.llen("celery") + client.hlen("unacked")


def require_binary(name: str) -> None:
    """Skip without the program, or fail where services are required (CI), as the root
    conftest does for the postgres and broker markers."""
    if shutil.which(name) is None:
        reason = f"needs {name} on PATH"
        if os.environ.get("LINLI_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason} (LINLI_REQUIRE_SERVICES=1: this run must not skip it)")
        pytest.skip(reason)


@pytest.fixture
def private_redis(tmp_path):
    require_binary("redis-server")
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def database_url(name: str | None = None) -> str:
    """The URL of the test database (test_<name>), or of another on the same server, for a
    process started by a test."""
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    return f"postgres://{auth}@{host}:{port}/{name or db['NAME']}"


class Worker:
    """A real `celery worker` (prefork, two pool processes) in a process group of its own, so
    SIGKILL can take the whole worker at once, as the OOM killer or `docker kill` would."""

    def __init__(self, broker_url: str, *, concurrency: int = 2, gate_after: int | None = None):
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.base",
            "DEBUG": "false",
            "SECRET_KEY": "fault-test-worker-" + "x" * 40,
            "SANDBOX_GATEWAY_SECRET": "test-sandbox-secret",
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": broker_url,
            "CELERY_RESULT_BACKEND": "",
            "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
            "WORKER_HEARTBEAT_SECONDS": "1",
            "DB_CONN_MAX_AGE": "0",
            "LOG_LEVEL": "WARNING",
        }
        env.pop("CACHE_URL", None)
        if gate_after is not None:
            env["FAULT_GATE_AFTER"] = str(gate_after)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.faults.faulty_worker",
                "worker",
                "--pool=prefork",
                f"--concurrency={concurrency}",
                "--without-gossip",
                "--without-mingle",
                "--loglevel=WARNING",
            ],
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self):
        """SIGKILL to the main process and its pool processes at once: nothing is acked."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)

    def stop(self):
        if self.alive():
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def start_worker():
    workers = []

    def start(broker_url: str, **kwargs) -> Worker:
        worker = Worker(broker_url, **kwargs)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:  # before the test database is flushed or dropped
        worker.stop()


def send_tasks(broker_url: str, calls: list[tuple[str, list]]) -> int:
    """Publish task messages (name, args) to `broker_url`, as the web process or beat would.
    A bare Celery client with an explicit connection: Celery prefers the CELERY_BROKER_URL
    environment variable (the shared broker) to any configured URL."""
    client = Celery("fault-test-sender", set_as_current=False)
    with client.connection_for_write(broker_url) as connection:
        # Declared here too: a message published before the worker declared its queue is lost.
        Queue("celery", Exchange("celery", "direct"), routing_key="celery")(
            connection.default_channel
        ).declare()
        for name, args in calls:
            client.send_task(name, args=args, connection=connection)
    return len(calls)
