"""A task sent through the real broker is executed by a real worker process and its result
comes back. Needs CELERY_BROKER_URL (CI points it at Redis)."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from community.tasks import worker_probe
from config.celery import app

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def worker():
    """A worker on a queue of its own, so no other worker on the broker can take the task."""
    queue = f"test-{uuid.uuid4().hex}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "--queues",
            queue,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=WARNING",
        ],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"},
    )
    try:
        yield process, queue
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.broker
def test_a_task_round_trips_through_the_broker_and_a_worker(worker):
    process, queue = worker
    token = uuid.uuid4().hex
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False  # test settings run tasks inline; this one must not
    try:
        result = worker_probe.apply_async(args=[token], queue=queue)
        answer = result.get(timeout=60)
    finally:
        app.conf.task_always_eager = eager
    assert answer["token"] == token
    # It ran in the worker process, not in this one.
    assert answer["pid"] == process.pid
    assert answer["pid"] != os.getpid()
    assert result.state == "SUCCESS"


def test_without_a_broker_tasks_run_eagerly_in_process():
    """The embedded default: .delay() runs the task here and now."""
    result = worker_probe.delay("inline")
    assert result.get()["pid"] == os.getpid()
