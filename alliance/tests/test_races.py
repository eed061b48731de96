"""Races on PostgreSQL with real threads: a household rates once and a month is finalized (and
its hold-back released) once, whatever arrives at the same moment."""

import threading
from decimal import Decimal

import pytest
from django.db import connection

from alliance import services
from alliance.models import Scorecard, ServiceRating
from alliance.tests.factories import AUGUST, FIVES, Estate, august
from billing.models import LedgerTransaction, Payout
from config.api import Conflict

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_together(count, work):
    """Start `count` threads that each call work(i) at the same moment; collect the outcomes."""
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


def test_two_ratings_of_one_household_at_once_exactly_one_counts():
    estate = Estate()

    def rate(i):
        return services.rating_create(
            user=estate.residents[0],
            household_id=estate.households[0].pk,
            period=AUGUST,
            stars={**FIVES, "cleaning": i + 1},
            at=august(20),
        )

    outcomes = run_together(4, rate)
    created = [o for o in outcomes if isinstance(o, ServiceRating)]
    refused = [o for o in outcomes if isinstance(o, Conflict)]
    assert (len(created), len(refused)) == (1, 3), outcomes
    assert ServiceRating.objects.count() == 1


def test_finalizing_at_once_releases_the_hold_back_once():
    estate = Estate()
    estate.rate(0)
    estate.inspect()
    estate.pay_out()

    outcomes = run_together(
        3, lambda i: services.scorecard_finalize(community=estate.community, period=AUGUST)
    )
    assert all(isinstance(o, tuple) for o in outcomes), outcomes
    assert sorted(created for _, created in outcomes) == [False, False, True]
    assert len({card.pk for card, _ in outcomes}) == 1
    assert Scorecard.objects.count() == 1
    assert Payout.objects.filter(kind="holdback_release").count() == 1
    assert LedgerTransaction.objects.filter(kind="holdback_release").count() == 1
    release = Payout.objects.get(kind="holdback_release")
    assert release.to_company + release.to_public_fund == release.held_back == Decimal("24.12")


def test_a_rating_racing_the_finalization_is_either_counted_or_refused():
    estate = Estate()
    estate.rate(0)
    estate.inspect()
    estate.pay_out()

    def work(i):
        if i == 0:
            return services.scorecard_finalize(community=estate.community, period=AUGUST)
        return services.rating_create(
            user=estate.residents[1],
            household_id=estate.households[1].pk,
            period=AUGUST,
            stars=FIVES,
            at=august(25),
        )

    outcomes = run_together(2, work)
    card = Scorecard.objects.get()
    rated = ServiceRating.objects.count()
    # Either the rating landed first and the final scorecard counts it, or it was refused.
    assert card.rating_count == rated
    assert isinstance(outcomes[1], ServiceRating | Conflict), outcomes
