"""The batch award of payment events (services.award_for_payments, tasks.award_payments_batch):
the same entries and balances as awarding the events one by one, once, whatever was delivered
before, twice, or in the same batch; caps counted across the batch."""

import threading
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing import services as billing_services
from billing.tests.factories import BillFactory, pay
from billing.tests.factories import estate as billing_estate
from community.models import Role
from community.tests.factories import UserFactory, member, resident
from points import services, tasks
from points.models import Balance, Entry, Event, Holder, Rule
from points.selectors import points_problems
from points.tests.factories import at, reputation

pytestmark = pytest.mark.django_db

UNKNOWN_USER = 987_654_321


def event(user_id, payment_id, when, *, on_time=True, months_prepaid=0):
    return {
        "payment_id": payment_id,
        "payer_id": user_id,
        "paid_at": when.isoformat(),
        "on_time": on_time,
        "months_prepaid": months_prepaid,
    }


def one_by_one(events) -> int:
    """Each event as its own task does it (an unknown payer skipped, as the task does)."""
    return sum(tasks.award_payment.run(**e) for e in events)


def ledger_state() -> tuple[list, dict]:
    """Every entry and balance, by user rather than holder id (holders made in a rolled-back
    attempt leave their ids behind on PostgreSQL)."""
    entries = sorted(
        Entry.objects.values_list(
            "holder__user_id",
            "currency",
            "amount",
            "kind",
            "source",
            "reference",
            "rule_id",
            "detail",
            "occurred_at",
            "period",
        )
    )
    balances = {
        (user_id, currency): amount
        for user_id, currency, amount in Balance.objects.values_list(
            "holder__user_id", "currency", "amount"
        )
    }
    return entries, balances


def outcome_of(award) -> tuple[list, dict]:
    """The ledger after `award`, then rolled back, so the other way can run on the same data."""
    with transaction.atomic():
        award()
        state = ledger_state()
        transaction.set_rollback(True)
    return state


@pytest.fixture
def people():
    """Residents with a real payment each (one of them refunded in part), a centre admin."""
    community, homes = billing_estate(3)
    alice, bob, carol = (resident(home) for home in homes)
    due = timezone.localdate() + timedelta(days=3)
    paid = {
        user: pay(user, [BillFactory(household=home, due_date=due)])
        for user, home in zip((alice, bob, carol), homes, strict=True)
    }
    admin = member(Role.CENTRE_ADMIN, centre=community.centre)
    billing_services.payment_refund(
        payment=paid[bob],
        amount=Decimal("5.00"),
        reason="多缴",
        by=admin,
        idempotency_key="refund-1",
        fingerprint="f1",
    )
    return {"alice": alice, "bob": bob, "carol": carol, "admin": admin, "payments": paid}


def test_a_batch_writes_what_one_by_one_awards_write(people):
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    paid = people["payments"]
    # A capped on-time rule until 2019-08-20, a richer one (uncapped) from then on.
    Rule.objects.filter(event=Event.PAYMENT_ON_TIME).update(
        cap_per_month=2, active_to=date(2019, 8, 19)
    )
    Rule.objects.create(
        event=Event.PAYMENT_ON_TIME,
        currency="reputation",
        amount=15,
        active_from=date(2019, 8, 20),
    )
    # Delivered before the batch: alice's payment 101 and one capped award of bob's in August.
    services.award_for_payment(
        payment_id=101, payer_id=alice.pk, paid_at=at(5), on_time=True, months_prepaid=0
    )
    services.award_for_payment(
        payment_id=201, payer_id=bob.pk, paid_at=at(6), on_time=True, months_prepaid=0
    )
    stranger = UserFactory()  # no holder yet: the batch makes it
    events = [
        event(alice.pk, 101, at(5)),  # awarded before
        event(alice.pk, 102, at(7), months_prepaid=12),  # on time and prepaid
        event(alice.pk, 103, at(8), on_time=False, months_prepaid=6),  # under the threshold
        event(alice.pk, 102, at(7), months_prepaid=12),  # twice in the batch
        event(bob.pk, 202, at(8)),  # the cap's second award in August
        event(bob.pk, 203, at(9)),  # over the cap
        event(bob.pk, 204, at(21)),  # the new rule: no cap, 15
        event(bob.pk, 205, at(1, month=9)),  # September: the new rule too
        event(bob.pk, paid[bob].pk, at(10), months_prepaid=24),  # refunded: nothing at all
        event(carol.pk, paid[bob].pk, at(10)),  # bob's refunded payment is not carol's
        event(carol.pk, paid[carol].pk, at(11), on_time=False, months_prepaid=12),
        event(UNKNOWN_USER, 301, at(10)),  # no such user: skipped
        event(stranger.pk, 401, at(12)),
        event(alice.pk, paid[alice].pk, at(25)),  # the new rule
    ]

    singly = outcome_of(lambda: one_by_one(events))
    batched = outcome_of(lambda: services.award_for_payments(events))

    assert batched == singly
    entries, balances = batched
    # Not two empty ledgers agreeing: what the mix should have written, written.
    new = [(e[0], e[4], e[5], e[2]) for e in entries if e[5] not in ("101", "201")]
    assert sorted(new) == sorted(
        [
            (alice.pk, "payment_on_time", "102", 10),
            (alice.pk, "prepayment", "102", 30),
            (bob.pk, "payment_on_time", "202", 10),
            (bob.pk, "payment_on_time", "204", 15),
            (bob.pk, "payment_on_time", "205", 15),
            (carol.pk, "payment_on_time", str(paid[bob].pk), 10),
            (carol.pk, "prepayment", str(paid[carol].pk), 30),
            (stranger.pk, "payment_on_time", "401", 10),
            (alice.pk, "payment_on_time", str(paid[alice].pk), 15),
        ]
    )
    assert balances[(bob.pk, "reputation")] == 10 + 10 + 15 + 15


def test_a_batch_delivered_twice_awards_once(people):
    alice, bob = people["alice"], people["bob"]
    events = [event(alice.pk, n, at(n)) for n in range(1, 6)] + [event(bob.pk, 9, at(9))]

    first = services.award_for_payments(events)
    again = services.award_for_payments(events)

    assert len(first) == 6
    assert again == []
    assert Entry.objects.count() == 6
    assert reputation(alice) == 50
    assert points_problems() == []


def test_a_batch_overlapping_single_awards_adds_only_what_is_new(people):
    alice = people["alice"]
    services.award_for_payment(
        payment_id=2, payer_id=alice.pk, paid_at=at(2), on_time=True, months_prepaid=12
    )
    events = [event(alice.pk, n, at(n), months_prepaid=12) for n in range(1, 4)]

    made = services.award_for_payments(events)

    assert sorted((e.source, e.reference) for e in made) == [
        ("payment_on_time", "1"),
        ("payment_on_time", "3"),
        ("prepayment", "1"),
        ("prepayment", "3"),
    ]
    # And a single delivery after the batch finds its award there.
    again = services.award_for_payment(
        payment_id=3, payer_id=alice.pk, paid_at=at(3), on_time=True, months_prepaid=12
    )
    assert {e.pk for e in again} <= {e.pk for e in made}
    assert reputation(alice) == 3 * 40
    assert Entry.objects.count() == 6


def test_the_entries_a_batch_returns_are_the_rows_it_wrote(people):
    # On PostgreSQL the entries are written with one INSERT from arrays and their ids read
    # back: each returned entry must be its own row, field for field, not a neighbour's.
    alice, bob = people["alice"], people["bob"]
    events = [event(alice.pk, n, at(n), months_prepaid=12 * (n % 2)) for n in range(1, 7)]
    events += [event(bob.pk, 50 + n, at(n, month=9)) for n in range(1, 4)]
    fields = ["holder_id", "currency", "amount", "kind", "source", "reference", "rule_id"]
    fields += ["detail", "occurred_at", "period", "created_at"]

    made = services.award_for_payments(events)

    assert len(made) == 12  # nine on time, three prepaid years
    stored = {row["id"]: row for row in Entry.objects.values("id", *fields)}
    assert {
        entry.pk: {"id": entry.pk, **{f: getattr(entry, f) for f in fields}} for entry in made
    } == stored
    assert all(not entry._state.adding for entry in made)


def test_the_monthly_cap_counts_the_batch_s_own_awards(people):
    alice, bob = people["alice"], people["bob"]
    Rule.objects.filter(event=Event.PAYMENT_ON_TIME).update(cap_per_month=3)
    events = [event(alice.pk, n, at(n)) for n in range(1, 6)]  # five in August
    events += [event(alice.pk, 10 + n, at(n, month=9)) for n in range(1, 3)]  # two in September
    events += [event(bob.pk, 20 + n, at(n)) for n in range(1, 5)]  # bob's cap is his own

    made = services.award_for_payments(events)

    awarded = sorted((e.holder.user_id, e.reference) for e in made)
    assert awarded == sorted(
        [(alice.pk, str(n)) for n in (1, 2, 3, 11, 12)] + [(bob.pk, str(20 + n)) for n in (1, 2, 3)]
    )
    # The cap stays used up for a later single award in August.
    assert (
        services.award_for_payment(
            payment_id=99, payer_id=alice.pk, paid_at=at(20), on_time=True, months_prepaid=0
        )
        == []
    )


def cap_counts(queries) -> list[str]:
    return [q["sql"] for q in queries if "COUNT(" in q["sql"] and "points_entry" in q["sql"]]


def test_the_caps_are_counted_only_for_capped_sources(people):
    alice = people["alice"]
    events = [event(alice.pk, n, at(n), months_prepaid=12 * (n % 2)) for n in range(1, 5)]

    # Neither payment rule has a cap (the defaults): the batch reads no counts at all.
    with transaction.atomic(), CaptureQueriesContext(connection) as uncapped:
        assert len(services.award_for_payments(events)) == 6
        transaction.set_rollback(True)
    assert cap_counts(uncapped.captured_queries) == []

    # A cap on prepayments: counted, for that source alone, and it still holds.
    Rule.objects.filter(event=Event.PREPAYMENT).update(cap_per_month=1)
    with CaptureQueriesContext(connection) as capped:
        made = services.award_for_payments(events)
    [count] = cap_counts(capped.captured_queries)
    assert Event.PREPAYMENT in count and Event.PAYMENT_ON_TIME not in count
    assert sorted((e.source, e.reference) for e in made) == sorted(
        [(Event.PAYMENT_ON_TIME, str(n)) for n in range(1, 5)] + [(Event.PREPAYMENT, "1")]
    )


def test_the_batch_task_counts_its_awards_and_skips_unknown_payers(people):
    alice = people["alice"]
    events = [event(alice.pk, 1, at(1)), event(UNKNOWN_USER, 2, at(2)), event(alice.pk, 3, at(3))]

    result = tasks.award_payments_batch.apply(args=[events])

    assert result.get() == 2
    assert reputation(alice) == 20
    assert not Holder.objects.filter(user_id=UNKNOWN_USER).exists()
    assert tasks.award_payments_batch.acks_late
    assert tasks.award_payments_batch.reject_on_worker_lost


def test_an_empty_batch_or_one_of_unknown_payers_does_nothing(people):
    assert services.award_for_payments([]) == []
    assert services.award_for_payments([event(UNKNOWN_USER, 1, at(1))]) == []
    assert Entry.objects.count() == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_batches_racing_each_other_and_single_awards_award_each_event_once():
    _community, homes = billing_estate(4)
    users = [resident(home) for home in homes]
    # Overlapping batches in different orders, and the same events one by one, all at once.
    events = [
        event(user.pk, 1000 * n + i, at(1 + i)) for n, user in enumerate(users) for i in range(5)
    ]
    work = [
        lambda: services.award_for_payments(events),
        lambda: services.award_for_payments(list(reversed(events))),
        lambda: services.award_for_payments(events[::2]),
        lambda: one_by_one(events[::3]),
        lambda: one_by_one(list(reversed(events))),
    ]
    barrier = threading.Barrier(len(work))
    errors = []

    def runner(job):
        try:
            barrier.wait()
            job()
        except Exception as exc:  # the outcome under test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=runner, args=(job,)) for job in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert Entry.objects.count() == len(events)
    assert Entry.objects.values("holder", "reference").distinct().count() == len(events)
    for user in users:
        assert reputation(user) == 50
    assert points_problems() == []
