"""GET /healthz/ checks the database, the cache, the broker (Redis) and the worker, and answers
200 only when all of them are fine, 503 (with each check's result) otherwise."""

from unittest import mock

import pytest
from django.db import OperationalError, connection
from django.test import override_settings

from tests.faults.conftest import wait_until

pytestmark = pytest.mark.django_db


def _health(client):
    response = client.get("/healthz/")
    return response.status_code, response.json()


def test_with_eager_tasks_every_check_passes_and_the_worker_counts_as_eager(client):
    status, body = _health(client)
    assert (status, body) == (
        200,
        {
            "status": "ok",
            "checks": {"database": "ok", "cache": "ok", "broker": "eager", "worker": "eager"},
        },
    )


def test_a_database_that_does_not_answer_makes_it_503(client):
    with mock.patch.object(
        connection, "cursor", side_effect=OperationalError("server closed the connection")
    ):
        status, body = _health(client)
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "error: OperationalError"
    assert body["checks"]["cache"] == "ok"  # the others are still reported


@pytest.mark.postgres
@pytest.mark.broker
def test_the_worker_and_broker_checks_follow_a_real_worker_and_redis(
    client, private_redis, start_worker
):
    with override_settings(CELERY_TASK_ALWAYS_EAGER=False, CELERY_BROKER_URL=private_redis.url):
        status, body = _health(client)
        assert status == 503
        assert body["checks"] == {
            "database": "ok",
            "cache": "ok",
            "broker": "ok",
            "worker": "no worker heartbeat",
        }

        worker = start_worker(private_redis.url)  # beats every second (WORKER_HEARTBEAT_SECONDS)
        wait_until(lambda: _health(client)[0] == 200, timeout=60, what="the worker's heartbeat")
        assert _health(client)[1]["checks"]["worker"] == "ok"

        worker.kill()  # its heartbeat expires after three missed beats
        wait_until(lambda: _health(client)[0] == 503, timeout=30, what="the heartbeat to expire")
        assert _health(client)[1]["checks"]["worker"] == "no worker heartbeat"

        private_redis.stop()
        status, body = _health(client)
        assert status == 503
        assert body["checks"]["broker"] == "error: ConnectionError"
        assert body["checks"]["worker"] == "error: ConnectionError"
        assert body["checks"]["database"] == "ok"


def test_only_runs_the_named_checks_so_a_stopped_worker_does_not_fail_the_web_probe(
    client, settings
):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    not_asked = mock.Mock(side_effect=AssertionError("not asked for"))
    with mock.patch.dict("config.health.CHECKS", {"worker": not_asked, "broker": not_asked}):
        response = client.get("/healthz/?only=database,cache")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "cache": "ok"}}


def test_an_unknown_check_name_is_a_400(client):
    response = client.get("/healthz/?only=database,disk")
    assert response.status_code == 400
    assert "disk" in response.json()["detail"]
