"""A payment's award whose message the broker lost (kombu's Redis transport takes a message off
the queue before it records it as unacknowledged, so a worker SIGKILLed in between takes it
with it; an event announced while the broker is down is only logged): a real worker, given the
quarter-hourly sweep as beat sends it, awards the payment once, and a second sweep nothing."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from billing.models import Payment
from billing.tests.factories import BillFactory, pay
from billing.tests.factories import estate as billing_estate
from community.tests.factories import resident
from points import receivers, tasks
from points.models import Entry
from points.tests.factories import reputation
from tests.faults.conftest import send_tasks, wait_until

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.broker,
    pytest.mark.django_db(transaction=True),
]

SWEEP = "points.tasks.award_missed_payments"


def test_an_award_the_broker_lost_is_made_once_by_the_sweep_on_a_real_worker(
    private_redis, start_worker, monkeypatch
):
    _community, (home, other_home) = billing_estate(2)
    user, other = resident(home), resident(other_home)
    lost = []
    # The receiver hands the award to Celery after the payment's commit; here it never reaches
    # a worker, as when the broker loses its message.
    monkeypatch.setattr(receivers, "_later", lambda task, **kwargs: lost.append(kwargs))
    due = timezone.localdate() + timedelta(days=3)
    payment = pay(user, [BillFactory(household=home, due_date=due)])
    # A payment of the same day still settling: the sweep must leave it to its own task.
    settling = pay(other, [BillFactory(household=other_home, due_date=due)])
    assert [award["payment_id"] for award in lost] == [payment.pk, settling.pk]
    settled = timedelta(minutes=settings.PAYMENT_PENDING_MINUTES) + tasks.SWEEP_GRACE
    Payment.objects.filter(pk=payment.pk).update(created_at=timezone.now() - settled * 2)
    Payment.objects.filter(pk=settling.pk).update(created_at=timezone.now() - settled / 2)

    start_worker(private_redis.url)
    send_tasks(private_redis.url, [(SWEEP, []), (SWEEP, [])])  # beat, and a second sweep

    wait_until(
        lambda: (
            Entry.objects.filter(reference=str(payment.pk)).exists() and private_redis.queued() == 0
        ),
        timeout=90,
        what="the sweep's award made and the broker drained",
    )
    # Both sweeps ran to their end (the queue is empty and nothing is unacknowledged).
    assert list(
        Entry.objects.values_list("source", "reference", "kind", "amount").order_by("pk")
    ) == [("payment_on_time", str(payment.pk), "award", 10)]
    assert reputation(user) == 10 and reputation(other) == 0
