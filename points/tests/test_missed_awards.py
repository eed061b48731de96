"""Payment awards and refund clawbacks whose task never ran: the quarter-hourly sweeps
(points.tasks.award_missed_payments, clawback_missed_refunds) find the succeeded payments of the
last two days that earn an award and have none, and the refunds whose payment's award still
stands, and do exactly what the event would have, once, however often they run."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.utils import timezone

from billing import services as billing_services
from billing.models import Payment, Refund
from billing.tests.factories import BillFactory, pay
from billing.tests.factories import estate as billing_estate
from community.models import Role
from community.tests.factories import member, resident
from points import selectors, tasks
from points.models import Entry
from points.selectors import points_problems
from points.tests.factories import reputation

pytestmark = pytest.mark.django_db

SETTLED = timedelta(minutes=settings.PAYMENT_PENDING_MINUTES) + tasks.SWEEP_GRACE


def _due_in(days: int):
    return timezone.localdate() + timedelta(days=days)


def _aged(payment: Payment, by: timedelta) -> Payment:
    """As if the payment had been made `by` ago (its creation time is what the sweep reads)."""
    Payment.objects.filter(pk=payment.pk).update(created_at=timezone.now() - by)
    return payment


def _paid_without_award(capture, user, bills) -> Payment:
    """A payment whose payment_succeeded event is lost: the broker dropped its award's message."""
    with capture(execute=False) as lost:
        payment = pay(user, bills)
    assert len(lost) == 1  # the event, never delivered
    return payment


def _entries(payment: Payment) -> list[tuple]:
    return list(
        Entry.objects.filter(reference=str(payment.pk))
        .order_by("source")
        .values_list("source", "kind", "currency", "amount", "detail")
    )


def test_a_payment_whose_award_never_arrived_is_awarded_by_the_sweep_once(
    django_capture_on_commit_callbacks,
):
    _community, (home, other_home) = billing_estate(2)
    user, other = resident(home), resident(other_home)
    lost = _paid_without_award(
        django_capture_on_commit_callbacks, user, [BillFactory(household=home, due_date=_due_in(3))]
    )
    # The same payment of a neighbour, whose award did arrive: what the sweep must match.
    with django_capture_on_commit_callbacks(execute=True):
        arrived = pay(other, [BillFactory(household=other_home, due_date=_due_in(3))])
    _aged(lost, SETTLED + timedelta(minutes=5))
    _aged(arrived, SETTLED + timedelta(minutes=5))
    assert reputation(user) == 0 and reputation(other) == 10

    assert tasks.award_missed_payments.apply().get() == 1

    assert reputation(user) == 10
    assert _entries(lost) == _entries(arrived) != []
    # Again, and again: nothing more, and the neighbour's award is not repeated either.
    assert tasks.award_missed_payments.apply().get() == 0
    assert tasks.award_missed_payments.apply().get() == 0
    assert reputation(user) == 10 and reputation(other) == 10
    assert points_problems() == []


def test_a_lost_prepayment_award_counts_its_months_as_the_event_would(
    django_capture_on_commit_callbacks,
):
    _community, (home, other_home) = billing_estate(2)
    user, other = resident(home), resident(other_home)

    def prepaid(household):  # a year ahead: the default rule's threshold is 12 months
        return [
            BillFactory(
                household=household,
                period=f"2031-{month:02d}",
                is_prepaid=True,
                due_date=_due_in(40 + 30 * month),
            )
            for month in range(1, 13)
        ]

    lost = _paid_without_award(django_capture_on_commit_callbacks, user, prepaid(home))
    with django_capture_on_commit_callbacks(execute=True):
        arrived = pay(other, prepaid(other_home))
    for payment in (lost, arrived):
        _aged(payment, SETTLED + timedelta(hours=1))

    tasks.award_missed_payments.apply().get()

    assert _entries(lost) == _entries(arrived)
    assert [detail for *_, detail in _entries(lost)] == ["12"]  # twelve months prepaid
    assert reputation(user) == reputation(other) > 0


def test_the_sweep_leaves_alone_what_is_not_a_lost_award(django_capture_on_commit_callbacks):
    community, homes = billing_estate(5)
    users = [resident(home) for home in homes]
    capture = django_capture_on_commit_callbacks

    def bill(n, **extra):
        return [BillFactory(household=homes[n], **{"due_date": _due_in(3), **extra})]

    # Ids grow with creation time, as the sweep relies on: oldest first.
    # Older than the two days every sweep looks back over.
    old = _paid_without_award(capture, users[0], bill(0))
    _aged(old, SETTLED + tasks.SWEEP_LOOKBACK + timedelta(hours=1))
    # Paid after its bill fell due, nothing prepaid: it earns nothing, lost or not.
    late = _paid_without_award(capture, users[1], bill(1, due_date=_due_in(-5)))
    _aged(late, SETTLED + timedelta(minutes=7))
    # Refunded before the sweep: a refunded payment earns nothing (award_for_payment's rule).
    refunded = _paid_without_award(capture, users[2], bill(2))
    with capture(execute=True):
        billing_services.payment_refund(
            payment=refunded,
            amount=Decimal("1.00"),
            reason="多缴",
            by=member(Role.CENTRE_ADMIN, centre=community.centre),
            idempotency_key="refund-1",
            fingerprint="f1",
        )
    _aged(refunded, SETTLED + timedelta(minutes=6))
    # Still settling: its award may yet arrive through its own task.
    recent = _paid_without_award(capture, users[3], bill(3))
    _aged(recent, SETTLED - timedelta(minutes=5))

    assert tasks.award_missed_payments.apply().get() == 0
    assert all(reputation(user) == 0 for user in users[:4])

    # Once the recent one has settled, the next sweep awards it, and it alone.
    _aged(recent, SETTLED + timedelta(minutes=5))
    assert tasks.award_missed_payments.apply().get() == 1
    assert [reputation(user) for user in users[:4]] == [0, 0, 0, 10]


def test_finding_the_lost_awards_takes_the_same_queries_for_few_payments_and_many(
    django_capture_on_commit_callbacks, django_assert_max_num_queries, django_assert_num_queries
):
    _community, homes = billing_estate(6)
    payments = [
        _paid_without_award(
            django_capture_on_commit_callbacks,
            resident(home),
            [BillFactory(household=home, due_date=_due_in(3))],
        )
        for home in homes
    ]
    # Paid on the due day itself (on time), and the day after it (earns nothing).
    _other, (due_today_home, late_home) = billing_estate(2)
    due_today = _paid_without_award(
        django_capture_on_commit_callbacks,
        resident(due_today_home),
        [BillFactory(household=due_today_home, due_date=_due_in(0))],
    )
    late = _paid_without_award(
        django_capture_on_commit_callbacks,
        resident(late_home),
        [BillFactory(household=late_home, due_date=_due_in(-1))],
    )
    # The late one is left out by the query itself: its bills are not even loaded.
    with django_assert_num_queries(1):
        assert selectors.payments_missing_their_award(after_id=late.pk - 1, up_to_id=late.pk) == []
    payments.append(due_today)
    first, last = payments[0].pk - 1, payments[-1].pk + 1
    # Two: the payments without an award, then their items with their bills.
    with django_assert_max_num_queries(2):
        few = selectors.payments_missing_their_award(after_id=first, up_to_id=first + 1)
    with django_assert_max_num_queries(2):
        many = selectors.payments_missing_their_award(after_id=first, up_to_id=last)
    assert [event["payment_id"] for event in few] == [payments[0].pk]
    assert [event["payment_id"] for event in many] == [payment.pk for payment in payments]
    assert all(event["on_time"] and event["months_prepaid"] == 0 for event in many)


def test_the_beat_runs_the_sweep_every_quarter_of_an_hour(settings):
    from config.celery import app

    app.loader.import_default_modules()
    entry = settings.CELERY_BEAT_SCHEDULE["points-award-missed-payments"]
    assert entry["task"] == "points.tasks.award_missed_payments" and entry["task"] in app.tasks
    assert len(entry["schedule"].minute) == 4 and entry["schedule"].hour == set(range(24))


def _refund(capture, payment, key, *, execute):
    admin = member(Role.CENTRE_ADMIN, centre=payment.items.first().bill.community.centre)
    with capture(execute=execute) as callbacks:
        billing_services.payment_refund(
            payment=payment,
            amount=Decimal("1.00"),
            reason="多缴",
            by=admin,
            idempotency_key=key,
            fingerprint=key,
        )
    return Refund.objects.get(payment=payment), callbacks


def _refund_aged(refund: Refund, by: timedelta) -> None:
    Refund.objects.filter(pk=refund.pk).update(created_at=timezone.now() - by)


def test_a_refund_whose_clawback_never_arrived_is_taken_back_by_the_sweep_once(
    django_capture_on_commit_callbacks,
):
    capture = django_capture_on_commit_callbacks
    _community, homes = billing_estate(3)
    users = [resident(home) for home in homes]
    payments = []
    for user, home in zip(users, homes, strict=True):
        with capture(execute=True):  # the awards did arrive
            payments.append(pay(user, [BillFactory(household=home, due_date=_due_in(3))]))
    assert [reputation(user) for user in users] == [10, 10, 10]
    # Oldest first, as ids grow: a refund older than the sweep's look-back, one whose clawback
    # was lost a while ago, and one just made whose clawback may still be on its way.
    ancient, lost_old = _refund(capture, payments[0], "r0", execute=False)
    lost, lost_callbacks = _refund(capture, payments[1], "r1", execute=False)
    recent, lost_recent = _refund(capture, payments[2], "r2", execute=False)
    assert len(lost_old) == len(lost_callbacks) == len(lost_recent) == 1  # the lost events
    _refund_aged(ancient, tasks.SWEEP_GRACE + tasks.SWEEP_LOOKBACK + timedelta(hours=1))
    _refund_aged(lost, tasks.SWEEP_GRACE + timedelta(minutes=5))
    _refund_aged(recent, tasks.SWEEP_GRACE - timedelta(minutes=5))

    assert tasks.clawback_missed_refunds.apply().get() == 1
    assert tasks.clawback_missed_refunds.apply().get() == 0

    assert [reputation(user) for user in users] == [10, 0, 10]
    assert list(
        Entry.objects.filter(kind="clawback").values_list("reference", "amount", "source")
    ) == [(str(payments[1].pk), -10, "payment_on_time")]
    # The award sweep does not give a refunded payment its award back.
    for payment in payments:
        _aged(payment, SETTLED + timedelta(minutes=5))
    assert tasks.award_missed_payments.apply().get() == 0
    assert points_problems() == []


def test_a_refund_of_a_payment_that_earned_nothing_has_nothing_to_take_back(
    django_capture_on_commit_callbacks,
):
    capture = django_capture_on_commit_callbacks
    _community, (home,) = billing_estate(1)
    user = resident(home)
    with capture(execute=True):
        late = pay(user, [BillFactory(household=home, due_date=_due_in(-5))])
    refund, _lost = _refund(capture, late, "r-late", execute=False)
    _refund_aged(refund, tasks.SWEEP_GRACE + timedelta(minutes=5))

    assert tasks.clawback_missed_refunds.apply().get() == 0
    assert not Entry.objects.exists()


def test_the_beat_runs_the_clawback_sweep_every_quarter_of_an_hour(settings):
    from config.celery import app

    app.loader.import_default_modules()
    entry = settings.CELERY_BEAT_SCHEDULE["points-clawback-missed-refunds"]
    assert entry["task"] == "points.tasks.clawback_missed_refunds" and entry["task"] in app.tasks
    assert len(entry["schedule"].minute) == 4 and entry["schedule"].hour == set(range(24))
