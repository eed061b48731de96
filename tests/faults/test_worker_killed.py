"""A Celery worker killed with SIGKILL in the middle of a batch, then restarted, leaves every
effect exactly once: one payout (and one payout ledger transaction) per community and month,
one points entry per source, none missing.

Each test runs a real worker (tests/faults/faulty_worker.py) against a Redis of its own and
the test database, sends a batch, and once a few tasks are done holds the next ones at two
points: inside their database transaction (a posting written, not committed) and after their
commit but before the worker acknowledged the message. Then:

1. it kills one pool process held inside its transaction: Celery must requeue that message
   (reject_on_worker_lost), not acknowledge it as it does by default;
2. it kills the whole worker (main process and pool) with SIGKILL: nothing is acknowledged;
3. it starts a fresh worker, which takes the queued messages and, once the visibility timeout
   has passed, the ones the dead worker had taken (CELERY_VISIBILITY_TIMEOUT, shortened here).

The message whose effect was committed but never acknowledged runs a second time: its
idempotency (the unique constraints) is what keeps it from paying or awarding twice.
"""

import os

import pytest
from django.db.models import Count, Sum

from billing import ledger
from billing.models import LedgerTransaction, PaymentItem, Payout
from billing.tests.factories import BillFactory, estate, pay
from community.tests.factories import UserFactory, resident
from points.models import Entry
from points.selectors import balances_of, holder_of_user
from tests.faults.conftest import send_tasks, wait_until

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.broker,
    pytest.mark.django_db(transaction=True),
]

PASSED_BEFORE_THE_GATE = 5  # tasks done before the worker is killed


def _held(server, point: str) -> set[int]:
    return {int(pid) for pid in server.client().smembers(f"fault:held:{point}")}


def _kill_mid_batch(server, start_worker, send_batch, committed_count) -> dict:
    """Run the batch on a worker, kill it twice mid-batch as described above, restart, and wait
    until the broker is drained. Returns the figures."""
    client = server.client()
    client.set("fault:gate", "closed")
    worker = start_worker(server.url, gate_after=PASSED_BEFORE_THE_GATE)
    sent = send_batch()

    # Two tasks held: one inside its transaction, one committed but unacknowledged.
    held = wait_until(
        lambda: (
            (_held(server, "in_transaction"), _held(server, "committed"))
            if _held(server, "in_transaction") and _held(server, "committed")
            else None
        ),
        timeout=60,
        what="a task held inside its transaction and one held after its commit",
    )
    assert committed_count() == PASSED_BEFORE_THE_GATE + 1

    # 1. One pool process killed mid-transaction: its message must come back, not be acked.
    (victim,) = held[0]
    os.kill(victim, 9)
    client.srem("fault:held:in_transaction", victim)
    wait_until(
        lambda: _held(server, "in_transaction") - {victim},
        timeout=60,
        what="the killed pool process's task (or the next one) held again",
    )
    assert committed_count() == PASSED_BEFORE_THE_GATE + 1  # the killed write left nothing

    # 2. The whole worker killed: main process and pool, nothing acknowledged.
    in_flight = client.hlen("unacked")
    worker.kill()
    client.delete("fault:gate", "fault:held:in_transaction", "fault:held:committed")
    queued = client.llen("celery")

    # 3. A fresh worker: the queue, then (after the visibility timeout) the unacked messages.
    start_worker(server.url)
    wait_until(lambda: server.queued() == 0, timeout=90, what="the broker to be drained")
    return {
        "sent": sent,
        "faults": 2,
        "in_flight_at_kill": in_flight,
        "queued_at_kill": queued,
        "task_starts": int(client.get("fault:started")),
    }


def test_payout_batch_killed_mid_way_pays_every_community_exactly_once(private_redis, start_worker):
    communities = []
    for _ in range(14):
        community, homes = estate(2)
        bills = [BillFactory(household=home) for home in homes]
        for home, bill in zip(homes, bills, strict=True):
            pay(resident(home), [bill])
        communities.append(community)
    collected = {
        row["bill__community"]: row["total"]
        for row in PaymentItem.objects.values("bill__community").annotate(total=Sum("amount"))
    }

    def send_batch():  # what run_due_payouts sends on the payout day
        return send_tasks(
            private_redis.url,
            [("billing.tasks.run_payout", [c.pk, "2019-08"]) for c in communities],
        )

    figures = _kill_mid_batch(
        private_redis, start_worker, send_batch, lambda: Payout.objects.count()
    )

    payouts = Payout.objects.filter(period="2019-08", kind=Payout.Kind.REGULAR)
    assert sorted(payouts.values_list("community_id", flat=True)) == sorted(
        c.pk for c in communities
    )
    for payout in payouts:
        assert payout.collected == collected[payout.community_id]
        assert payout.to_company + payout.held_back == payout.collected
        # Money moved once: the company is owed exactly this payout (credits are negative).
        payable = ledger.company_payable_account(payout.community)
        assert payable.balance == -payout.to_company
    transactions = LedgerTransaction.objects.filter(kind=LedgerTransaction.Kind.PAYOUT)
    per_community = transactions.values("payout__community").annotate(n=Count("pk"))
    assert sorted(row["n"] for row in per_community) == [1] * len(communities)
    assert not PaymentItem.objects.filter(payout__isnull=True).exists()
    # The committed-but-unacknowledged task and the two killed ones ran again.
    assert figures["task_starts"] >= figures["sent"] + 3
    print(f"\nfaults: payout batch {figures}; payouts {payouts.count()}, lost 0, twice 0")


def test_award_batch_killed_mid_way_awards_every_source_exactly_once(private_redis, start_worker):
    users = [UserFactory() for _ in range(10)]
    checkins = [(n, user) for n, user in enumerate(users * 2, start=7001)]

    def send_batch():
        return send_tasks(
            private_redis.url,
            [
                (
                    "points.tasks.award_checkin",
                    [checkin_id, user.pk, "volunteering", "1.5", "2019-08-10T10:00:00+08:00"],
                )
                for checkin_id, user in checkins
            ],
        )

    figures = _kill_mid_batch(
        private_redis,
        start_worker,
        send_batch,
        lambda: Entry.objects.filter(source="volunteer_hour").count(),
    )

    entries = Entry.objects.filter(source="volunteer_hour", kind=Entry.Kind.AWARD)
    assert sorted(entries.values_list("reference", flat=True)) == sorted(
        str(checkin_id) for checkin_id, _ in checkins
    )
    assert set(entries.values_list("amount", flat=True)) == {15}  # 10 a hour × 1.5 h
    for user in users:  # two check-ins each, 15 contribution each, once
        assert balances_of(holder_of_user(user=user))["contribution"] == 30
    assert figures["task_starts"] >= figures["sent"] + 3
    print(f"\nfaults: award batch {figures}; entries {entries.count()}, lost 0, twice 0")
