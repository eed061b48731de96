"""Races with real threads on PostgreSQL (SQLite serialises whole-database writes, so these run
on PostgreSQL only, in CI): redemptions take exactly what stock and balance allow, an event
delivered many times at once awards once, and a monthly cap holds under concurrent awards."""

import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from community.tests.factories import HouseholdFactory, resident
from config.api import Conflict
from points import services
from points.models import Balance, Currency, Entry, Redemption, Reward
from points.selectors import points_problems
from points.tests.factories import Estate, at, contribution, give_contribution

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_together(count, work):
    """Start `count` threads that each call work(i) at the same moment, each on its own
    connection; collect what each returned or raised."""
    barrier = threading.Barrier(count)
    outcomes = [None] * count

    def runner(i):
        try:
            barrier.wait()
            outcomes[i] = work(i)
        except Exception as exc:  # the outcome under test
            outcomes[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_twenty_redemptions_of_the_last_five_units_with_a_balance_for_three():
    estate = Estate()
    Reward.objects.filter(pk=estate.reward.pk).update(stock=5, cost=10)
    give_contribution(estate.alice, 30)

    def attempt(i):
        client = APIClient()
        client.force_authenticate(user=estate.alice)
        return client.post(
            f"/api/v1/rewards/{estate.reward.pk}/redeem/", HTTP_IDEMPOTENCY_KEY=f"race-{i}"
        ).status_code

    codes = run_together(20, attempt)

    assert sorted(codes) == [201] * 3 + [409] * 17, codes
    estate.reward.refresh_from_db()
    assert estate.reward.stock == 2
    assert contribution(estate.alice) == 0
    assert Redemption.objects.count() == 3
    assert Entry.objects.filter(kind="redemption").count() == 3
    assert points_problems() == []


def test_twenty_residents_racing_for_five_units_get_exactly_five():
    estate = Estate()
    Reward.objects.filter(pk=estate.reward.pk).update(stock=5, cost=10)
    residents = [resident(HouseholdFactory(building=estate.household.building)) for _ in range(20)]
    for person in residents:
        give_contribution(person, 10)

    def attempt(i):
        redemption, _ = services.reward_redeem(
            user=residents[i], reward_id=estate.reward.pk, idempotency_key="k", fingerprint="f"
        )
        return redemption

    outcomes = run_together(20, attempt)

    won = [o for o in outcomes if isinstance(o, Redemption)]
    refused = [o for o in outcomes if isinstance(o, Conflict)]
    assert (len(won), len(refused)) == (5, 15), outcomes
    estate.reward.refresh_from_db()
    assert estate.reward.stock == 0
    spent = Balance.objects.filter(currency=Currency.CONTRIBUTION, amount=0).count()
    assert spent == 5
    assert not Balance.objects.filter(amount__lt=0).exists()
    assert points_problems() == []


def test_the_same_request_racing_itself_redeems_once():
    estate = Estate()
    give_contribution(estate.alice, 100)

    outcomes = run_together(
        10,
        lambda i: (
            services.reward_redeem(
                user=estate.alice,
                reward_id=estate.reward.pk,
                idempotency_key="same",
                fingerprint="f",
            )[0].pk
        ),
    )

    assert len(set(outcomes)) == 1, outcomes
    assert contribution(estate.alice) == 90
    estate.reward.refresh_from_db()
    assert estate.reward.stock == 9


def test_an_event_delivered_ten_times_at_once_awards_once():
    estate = Estate()

    outcomes = run_together(
        10,
        lambda i: services.award_for_payment(
            payment_id=7, payer_id=estate.alice.pk, paid_at=at(), on_time=True, months_prepaid=24
        ),
    )

    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    assert sorted(Entry.objects.values_list("source", "amount")) == [
        ("payment_on_time", 10),
        ("prepayment", 30),
    ]
    assert Balance.objects.get(holder__user=estate.alice, currency="reputation").amount == 40


def test_a_monthly_cap_holds_when_awards_race():
    estate = Estate()

    outcomes = run_together(
        8,
        lambda i: services.award_for_checkin(
            checkin_id=100 + i,
            user_id=estate.alice.pk,
            kind="event",
            hours="0",
            checked_in_at=at(day=1 + i),
        ),
    )

    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    assert Entry.objects.filter(holder__user=estate.alice).count() == 3
    assert contribution(estate.alice) == 15


def test_a_cancellation_racing_the_provider_leaves_one_outcome():
    estate = Estate()
    give_contribution(estate.alice, 10)
    redemption, _ = services.reward_redeem(
        user=estate.alice, reward_id=estate.reward.pk, idempotency_key="k", fingerprint="f"
    )

    def work(i):
        if i % 2:
            return services.redemption_cancel(redemption=redemption, by=estate.centre_admin).status
        return services.redemption_fulfil(user=estate.lawyer, code=redemption.code).status

    outcomes = run_together(6, work)

    statuses = [o for o in outcomes if isinstance(o, str)]
    assert len(statuses) == 1, outcomes
    assert all(isinstance(o, Conflict) for o in outcomes if not isinstance(o, str))
    redemption.refresh_from_db()
    assert redemption.status == statuses[0]
    assert contribution(estate.alice) == (10 if statuses[0] == "cancelled" else 0)
    assert points_problems() == []
