"""Concurrent writes on one ticket, with real threads on PostgreSQL: one wins, the others get 409,
and the timeline records exactly one event. SQLite serialises whole-database writes, so these run
on PostgreSQL only (CI)."""

import threading
import time

import pytest
from django.db import connection, transaction
from django.urls import reverse
from rest_framework.test import APIClient

from community.models import Notice
from config.api import Conflict
from repairs import services
from repairs.models import Status, Ticket, TicketEvent
from repairs.tests.factories import Estate, hours_ago

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


def test_staff_accepting_at_once_one_wins_and_the_others_get_409():
    estate = Estate()
    ticket = estate.repair()
    url = reverse("api-ticket-transition", args=[ticket.pk])

    def accept_as(user):
        def call():
            client = APIClient()
            client.force_authenticate(user=user)
            return client.post(url, {"action": "accept"}, format="json").status_code

        return call

    codes = run_in_threads([accept_as(u) for u in (estate.staff, estate.colleague, estate.manager)])

    assert sorted(codes) == [200, 409, 409]
    ticket.refresh_from_db()
    assert ticket.status == Status.ACCEPTED
    assert TicketEvent.objects.filter(ticket=ticket, kind=TicketEvent.Kind.ACCEPTED).count() == 1


def _waiting_for_a_lock(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
    return bool(row) and row[0] == "Lock"


def test_the_second_accept_waits_for_the_first_and_then_sees_its_result():
    """Deterministic interleaving: the main thread accepts inside an open transaction while a
    second request tries to; the second must wait on the ticket's row lock and, once the first
    commits, read the new state and refuse. Without the lock it would read "submitted" and
    accept a second time."""
    estate = Estate()
    ticket = estate.repair()
    second: dict = {}

    def accept_as_colleague():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            second["pid"] = cursor.fetchone()[0]
        started.set()
        try:
            services.ticket_transition(ticket=ticket.pk, actor=estate.colleague, action="accept")
            second["result"] = "accepted"
        except Conflict:
            second["result"] = "conflict"
        finally:
            connection.close()

    started = threading.Event()
    with transaction.atomic():
        services.ticket_transition(ticket=ticket.pk, actor=estate.staff, action="accept")
        thread = threading.Thread(target=accept_as_colleague)
        thread.start()
        assert started.wait(timeout=30)
        # Synchronisation, not an assertion on time: wait until the other request is blocked.
        deadline = time.monotonic() + 30
        while not _waiting_for_a_lock(second["pid"]):
            assert time.monotonic() < deadline, "the second request never waited for the lock"
            time.sleep(0.02)
    thread.join(timeout=30)

    assert second["result"] == "conflict"
    assert TicketEvent.objects.filter(ticket=ticket, kind=TicketEvent.Kind.ACCEPTED).count() == 1
    assert Ticket.objects.get(pk=ticket.pk).status == Status.ACCEPTED


def test_two_escalation_runs_at_once_escalate_each_deadline_once():
    estate = Estate()
    ticket = estate.repair(at=hours_ago(3))  # response due after 2 hours: overdue

    results = run_in_threads([services.ticket_escalate_overdue, services.ticket_escalate_overdue])

    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(results) == 1
    assert ticket.events.filter(kind=TicketEvent.Kind.ESCALATED).count() == 1
    recipients = {estate.manager.pk, estate.centre_admin.pk}
    notices = Notice.objects.filter(dedupe_key__startswith=f"repairs:ticket:{ticket.pk}:")
    assert sorted(notices.values_list("user_id", flat=True)) == sorted(recipients)
