"""Domain events: ticket_resolved and ticket_rated go out after the commit, with the documented
payloads, and never for a change that was rolled back."""

import pytest
from django.db import transaction

from repairs import events, services
from repairs.models import Ticket
from repairs.tests.factories import Estate, hours_ago

pytestmark = pytest.mark.django_db


@pytest.fixture
def received():
    calls = []

    def on_resolved(sender, **payload):
        calls.append(("resolved", sender, payload))

    def on_rated(sender, **payload):
        calls.append(("rated", sender, payload))

    events.ticket_resolved.connect(on_resolved, dispatch_uid="test-resolved")
    events.ticket_rated.connect(on_rated, dispatch_uid="test-rated")
    yield calls
    events.ticket_resolved.disconnect(dispatch_uid="test-resolved")
    events.ticket_rated.disconnect(dispatch_uid="test-rated")


def test_resolving_announces_ticket_resolved_after_the_commit(
    received, django_capture_on_commit_callbacks
):
    estate = Estate()
    ticket = estate.repair(at=hours_ago(1))
    services.ticket_transition(ticket=ticket, actor=estate.staff, action="accept")
    with django_capture_on_commit_callbacks() as callbacks:
        services.ticket_transition(ticket=ticket, actor=estate.colleague, action="resolve")
        assert received == []  # nothing before the commit
    for callback in callbacks:
        callback()

    ticket.refresh_from_db()
    assert received == [
        (
            "resolved",
            Ticket,
            {
                "signal": events.ticket_resolved,
                "ticket_id": ticket.pk,
                "community_id": estate.community.pk,
                "kind": "repair",
                "category_id": estate.repair_category.pk,
                "household_id": estate.household.pk,
                "filed_by_id": estate.filer.pk,
                "assignee_id": estate.colleague.pk,
                "resolved_by_id": estate.colleague.pk,
                "resolved_at": ticket.resolved_at,
                "within_sla": True,
                "first_resolution": True,
            },
        )
    ]


def test_a_second_resolution_says_so(received, django_capture_on_commit_callbacks):
    estate = Estate()
    ticket = estate.repair()
    with django_capture_on_commit_callbacks(execute=True):
        services.ticket_transition(ticket=ticket, actor=estate.staff, action="accept")
        services.ticket_transition(ticket=ticket, actor=estate.staff, action="resolve")
        services.ticket_transition(ticket=ticket, actor=estate.filer, action="reopen")
        services.ticket_transition(ticket=ticket, actor=estate.staff, action="accept")
        services.ticket_transition(ticket=ticket, actor=estate.staff, action="resolve")
    assert [p["first_resolution"] for _, _, p in received] == [True, False]


def test_rating_announces_ticket_rated(received, django_capture_on_commit_callbacks):
    estate = Estate()
    ticket = estate.report()
    with django_capture_on_commit_callbacks(execute=True):
        services.ticket_transition(ticket=ticket, actor=estate.staff, action="accept")
        services.ticket_transition(ticket=ticket, actor=estate.staff, action="resolve")
    received.clear()
    with django_capture_on_commit_callbacks(execute=True):
        rating = services.ticket_rate(ticket=ticket, user=estate.filer, stars=4, comment="好")
    assert received == [
        (
            "rated",
            Ticket,
            {
                "signal": events.ticket_rated,
                "ticket_id": ticket.pk,
                "community_id": estate.community.pk,
                "kind": "report",
                "household_id": None,
                "rated_by_id": estate.filer.pk,
                "stars": 4,
                "rated_at": rating.created_at,
            },
        )
    ]


def test_nothing_is_announced_for_a_rolled_back_resolution(
    received, django_capture_on_commit_callbacks
):
    estate = Estate()
    ticket = estate.repair()
    services.ticket_transition(ticket=ticket, actor=estate.staff, action="accept")
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        services.ticket_transition(ticket=ticket, actor=estate.staff, action="resolve")
        raise RuntimeError("the request failed after the service")
    assert received == []
    assert Ticket.objects.get(pk=ticket.pk).status == "accepted"


def test_a_failing_receiver_is_logged_and_disturbs_nobody(
    received, django_capture_on_commit_callbacks, caplog
):
    def broken(sender, **payload):
        raise ValueError("listener bug")

    events.ticket_resolved.connect(broken, dispatch_uid="test-broken")
    try:
        estate = Estate()
        ticket = estate.repair()
        with django_capture_on_commit_callbacks(execute=True):
            services.ticket_transition(ticket=ticket, actor=estate.staff, action="accept")
            services.ticket_transition(ticket=ticket, actor=estate.staff, action="resolve")
    finally:
        events.ticket_resolved.disconnect(dispatch_uid="test-broken")
    assert [kind for kind, _, _ in received] == ["resolved"]
    assert "listener bug" in caplog.text
