"""Sign-ups, check-ins and votes at the same moment, with real threads on PostgreSQL: the
activity's row lock keeps it from being overbooked, the unique constraints keep one sign-up and
one check-in per person, and the consultation's lock keeps one ballot per household. SQLite
serialises whole-database writes, so these run on PostgreSQL only (CI)."""

import threading
import time

import pytest
from django.db import connection, transaction
from django.urls import reverse
from rest_framework.test import APIClient

from community import services
from community.models import Activity, ActivityCheckin, ActivitySignup, Ballot
from community.tests.factories import HouseholdFactory, resident
from community.tests.life import build_estate, option
from config.api import Conflict

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_in_threads(functions) -> list:
    """Start every function at the same moment (a barrier), each on its own connection."""
    barrier = threading.Barrier(len(functions))
    results = [None] * len(functions)

    def run(index, function):
        try:
            barrier.wait()
            results[index] = function()
        except Exception as exc:
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, f)) for i, f in enumerate(functions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def post_as(user, url, data=None):
    def call():
        client = APIClient()
        client.force_authenticate(user=user)
        return client.post(url, data or {}, format="json").status_code

    return call


def test_more_sign_ups_than_places_at_once_never_overbook():
    estate = build_estate()
    activity = estate.activity(capacity=3)
    neighbours = [resident(HouseholdFactory(building=estate.flat.building)) for _ in range(8)]
    url = reverse("api-activity-signup", args=[activity.pk])

    codes = run_in_threads([post_as(user, url) for user in neighbours])

    assert sorted(codes) == [201] * 3 + [409] * 5
    activity.refresh_from_db()
    assert activity.signed_up == 3
    assert ActivitySignup.objects.filter(activity=activity).count() == 3


def test_walk_ins_checking_in_at_once_never_overbook_either():
    estate = build_estate()
    activity = estate.activity(in_hours=-0.5, capacity=2)
    neighbours = [resident(HouseholdFactory(building=estate.flat.building)) for _ in range(6)]
    url = reverse("api-activity-checkin", args=[activity.pk])
    code = {"code": activity.checkin_code}

    codes = run_in_threads([post_as(user, url, code) for user in neighbours])

    assert sorted(codes) == [201] * 2 + [409] * 4
    activity.refresh_from_db()
    assert activity.signed_up == 2
    assert ActivityCheckin.objects.filter(activity=activity).count() == 2


def test_the_same_person_checking_in_twice_at_once_is_checked_in_once():
    estate = build_estate()
    activity = estate.activity(in_hours=-0.5)
    url = reverse("api-activity-checkin", args=[activity.pk])
    by_code = post_as(estate.owner, url, {"code": activity.checkin_code})
    by_staff = post_as(estate.staff, url, {"user": estate.owner.pk})

    codes = run_in_threads([by_code, by_staff, by_code])

    assert sorted(codes) == [201, 409, 409]
    assert ActivityCheckin.objects.filter(activity=activity, user=estate.owner).count() == 1
    assert Activity.objects.get(pk=activity.pk).signed_up == 1


def _waiting_for_a_lock(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
    return bool(row) and row[0] == "Lock"


def test_the_second_sign_up_for_the_last_place_waits_and_then_finds_it_taken():
    """Deterministic interleaving: the main thread takes the last place inside an open
    transaction while another resident asks for it; the second must wait on the activity's row
    lock and, once the first commits, see the activity full (409, not a constraint error)."""
    estate = build_estate()
    activity = estate.activity(capacity=1)
    second: dict = {}

    def sign_up_tenant():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            second["pid"] = cursor.fetchone()[0]
        started.set()
        try:
            services.activity_signup(activity=activity, user=estate.tenant)
            second["result"] = "signed up"
        except Conflict:
            second["result"] = "conflict"
        finally:
            connection.close()

    started = threading.Event()
    with transaction.atomic():
        services.activity_signup(activity=activity, user=estate.owner)
        thread = threading.Thread(target=sign_up_tenant)
        thread.start()
        assert started.wait(timeout=30)
        # Synchronisation, not an assertion on time: wait until the other request is blocked.
        deadline = time.monotonic() + 30
        while not _waiting_for_a_lock(second["pid"]):
            assert time.monotonic() < deadline, "the second sign-up never waited for the lock"
            time.sleep(0.02)
    thread.join(timeout=30)

    assert second["result"] == "conflict"
    assert list(ActivitySignup.objects.values_list("user", flat=True)) == [estate.owner.pk]


def test_two_owners_of_one_household_voting_at_once_leave_one_ballot():
    estate = build_estate()
    co_owner = resident(estate.flat, user__username="co-owner")
    consultation = estate.consultation()
    url = reverse("api-consultation-vote", args=[consultation.pk])
    agree, disagree = option(consultation, "同意"), option(consultation, "反对")

    codes = run_in_threads(
        [
            post_as(estate.owner, url, {"option": agree.pk}),
            post_as(co_owner, url, {"option": disagree.pk}),
        ]
    )

    assert sorted(codes) == [200, 201]
    ballot = Ballot.objects.get(consultation=consultation)
    assert ballot.household == estate.flat
    assert (ballot.option, ballot.cast_by) in {(agree, estate.owner), (disagree, co_owner)}
