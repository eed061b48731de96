"""Redis restarted under a running worker: the worker reconnects by itself, the tasks queued
before the restart and those sent after it are all done, and the two tasks that were running
across the restart (one inside its transaction, one committed but not yet acknowledged) are
neither lost nor done twice. Redis runs append-only, as in docker-compose.yml, so what was
queued survives the restart."""

import pytest

from community.tests.factories import UserFactory
from points.models import Entry
from points.selectors import balances_of, holder_of_user
from tests.faults.conftest import send_tasks, wait_until

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.broker,
    pytest.mark.django_db(transaction=True),
]


def _awards(users, first_reference: int) -> list[tuple[str, list]]:
    return [
        (
            "points.tasks.award_checkin",
            [first_reference + n, user.pk, "volunteering", "1", "2019-08-10T10:00:00+08:00"],
        )
        for n, user in enumerate(users)
    ]


def _held(server) -> bool:
    client = server.client()
    return bool(client.scard("fault:held:in_transaction") and client.scard("fault:held:committed"))


def test_a_worker_survives_a_redis_restart_and_loses_no_task(private_redis, start_worker):
    users = [UserFactory() for _ in range(8)]
    client = private_redis.client()
    client.set("fault:gate", "closed")
    worker = start_worker(private_redis.url, gate_after=3)
    before = send_tasks(private_redis.url, _awards(users, 8001))
    wait_until(lambda: _held(private_redis), timeout=60, what="two tasks held mid-flight")

    private_redis.restart()
    private_redis.client().delete("fault:gate")  # the held tasks go on, on a new connection
    after = send_tasks(private_redis.url, _awards(users, 9001))

    expected = {str(8001 + n) for n in range(len(users))} | {
        str(9001 + n) for n in range(len(users))
    }
    wait_until(
        lambda: (
            set(Entry.objects.values_list("reference", flat=True)) == expected
            and private_redis.queued() == 0
        ),
        timeout=90,
        what="every award made and the broker drained",
    )
    # The same worker process did it all: it reconnected rather than being restarted.
    assert worker.alive()
    entries = Entry.objects.filter(source="volunteer_hour", kind=Entry.Kind.AWARD)
    assert entries.count() == before + after == 16
    for user in users:
        assert balances_of(holder_of_user(user=user))["contribution"] == 20  # 2 × 10, once each
    print(f"\nfaults: redis restart, sent {before}+{after}, held across it 2, lost 0, twice 0")
