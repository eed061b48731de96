"""The state machine: every allowed transition, every forbidden one (409), who may take each
(403 / 404), and the rules around them. Written against an explicit table of our own, so a change
to repairs.transitions that nobody meant fails here."""

from datetime import timedelta
from itertools import product

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import override_settings
from django.urls import reverse

from config.api import Conflict
from repairs import services, transitions
from repairs.models import Status, Ticket, TicketEvent
from repairs.tests.factories import Estate, hours_ago

pytestmark = pytest.mark.django_db

S = Status
ALLOWED = {
    (S.SUBMITTED, "accept"): S.ACCEPTED,
    (S.ACCEPTED, "assign"): S.ASSIGNED,
    (S.ASSIGNED, "assign"): S.ASSIGNED,
    (S.IN_PROGRESS, "assign"): S.ASSIGNED,
    (S.ASSIGNED, "start"): S.IN_PROGRESS,
    (S.ACCEPTED, "resolve"): S.RESOLVED,
    (S.ASSIGNED, "resolve"): S.RESOLVED,
    (S.IN_PROGRESS, "resolve"): S.RESOLVED,
    (S.RESOLVED, "close"): S.CLOSED,
    (S.RESOLVED, "reopen"): S.SUBMITTED,
    (S.CLOSED, "reopen"): S.SUBMITTED,
    (S.SUBMITTED, "reject"): S.REJECTED,
    (S.ACCEPTED, "reject"): S.REJECTED,
    (S.SUBMITTED, "cancel"): S.CANCELLED,
    (S.ACCEPTED, "cancel"): S.CANCELLED,
    (S.ASSIGNED, "cancel"): S.CANCELLED,
}
ACTIONS = ["accept", "assign", "start", "resolve", "close", "reopen", "reject", "cancel"]
FORBIDDEN = [(s, a) for s, a in product(S.values, ACTIONS) if (s, a) not in ALLOWED]
FILER_ACTIONS = {"close", "reopen", "cancel"}


def bring_to(estate: Estate, status: str) -> Ticket:
    """A repair ticket moved along the usual path to `status`, by the people who would."""
    ticket = estate.repair(at=hours_ago(5))
    staff, filer = estate.staff, estate.filer
    path = {
        S.SUBMITTED: [],
        S.ACCEPTED: [(staff, "accept")],
        S.ASSIGNED: [(staff, "accept"), (staff, "assign")],
        S.IN_PROGRESS: [(staff, "accept"), (staff, "assign"), (staff, "start")],
        S.RESOLVED: [(staff, "accept"), (staff, "assign"), (staff, "start"), (staff, "resolve")],
        S.CLOSED: [
            (staff, "accept"),
            (staff, "assign"),
            (staff, "start"),
            (staff, "resolve"),
            (filer, "close"),
        ],
        S.REJECTED: [(staff, "reject")],
        S.CANCELLED: [(filer, "cancel")],
    }[status]
    for actor, action in path:
        note = "不属于物业责任" if action == "reject" else ""
        services.ticket_transition(ticket=ticket, actor=actor, action=action, note=note)
    ticket.refresh_from_db()
    assert ticket.status == status
    return ticket


def actor_for(estate: Estate, action: str):
    return estate.filer if action in FILER_ACTIONS else estate.staff


def snapshot(ticket: Ticket) -> tuple:
    ticket.refresh_from_db()
    return (
        ticket.status,
        ticket.assignee_id,
        ticket.updated_at,
        ticket.next_due,
        TicketEvent.objects.filter(ticket=ticket).count(),
    )


def test_the_table_in_the_code_is_the_one_we_mean():
    in_code = {
        (source, action): t.target
        for action, t in transitions.TRANSITIONS.items()
        for source in t.sources
    }
    assert in_code == ALLOWED
    assert list(transitions.ACTIONS) == ACTIONS


@pytest.mark.parametrize(("source", "action"), list(ALLOWED))
def test_every_allowed_transition_moves_the_ticket_and_writes_its_timeline(source, action):
    estate = Estate()
    ticket = bring_to(estate, source)
    events_before = ticket.events.count()
    actor = actor_for(estate, action)
    note = "原因说明" if action == "reject" else "备注"

    moved = services.ticket_transition(ticket=ticket, actor=actor, action=action, note=note)

    moved.refresh_from_db()
    assert moved.status == ALLOWED[(source, action)]
    assert ticket.events.count() == events_before + 1
    event = ticket.events.order_by("-pk").first()
    assert (event.actor, event.from_status, event.to_status, event.note) == (
        actor,
        source,
        moved.status,
        note,
    )
    assert event.kind == transitions.TRANSITIONS[action].event
    # next_due follows the state: a deadline while open, none once finished.
    expected_due = {
        S.SUBMITTED: moved.response_due,
        S.ACCEPTED: moved.resolve_due,
        S.ASSIGNED: moved.resolve_due,
        S.IN_PROGRESS: moved.resolve_due,
    }.get(moved.status)
    assert moved.next_due == expected_due


@pytest.mark.parametrize(("source", "action"), FORBIDDEN)
def test_every_other_transition_is_a_conflict_and_changes_nothing(source, action):
    estate = Estate()
    ticket = bring_to(estate, source)
    if action == "start":
        # Only an assignee may start; make the actor one where the state allows it.
        Ticket.objects.filter(pk=ticket.pk).update(assignee=estate.staff)
    before = snapshot(ticket)

    with pytest.raises(Conflict):
        services.ticket_transition(
            ticket=ticket, actor=actor_for(estate, action), action=action, note="x"
        )

    assert snapshot(ticket) == before


# Who may take each action, in a state that allows it. "assignee" is estate.staff (the path in
# bring_to assigns the ticket to them); "colleague" is staff of the same company.
ROLE_EXPECTATIONS = {
    # action: (state, {role: HTTP status})
    "accept": (S.SUBMITTED, {"staff": 200, "colleague": 200, "filer": 403, "housemate": 403}),
    "assign": (S.ACCEPTED, {"staff": 200, "colleague": 200, "filer": 403, "housemate": 403}),
    "start": (S.ASSIGNED, {"staff": 200, "colleague": 403, "filer": 403, "housemate": 403}),
    "resolve": (S.IN_PROGRESS, {"staff": 200, "colleague": 200, "filer": 403, "housemate": 403}),
    "close": (S.RESOLVED, {"staff": 403, "colleague": 403, "filer": 200, "housemate": 403}),
    "reopen": (S.RESOLVED, {"staff": 403, "colleague": 403, "filer": 200, "housemate": 403}),
    "reject": (S.SUBMITTED, {"staff": 200, "colleague": 200, "filer": 403, "housemate": 403}),
    "cancel": (S.SUBMITTED, {"staff": 403, "colleague": 403, "filer": 200, "housemate": 403}),
}
# Everyone else: the centre admin sees the ticket but acts on none (403); the neighbour, another
# company's staff and the committee member do not see it at all (404).
OTHERS = {"centre_admin": 403, "neighbour": 404, "other_staff": 404, "committee": 404}


@pytest.mark.parametrize(
    ("action", "role"),
    [(a, r) for a, (_, roles) in ROLE_EXPECTATIONS.items() for r in [*roles, *OTHERS]],
)
def test_who_may_take_each_action(as_user, action, role):
    estate = Estate()
    state, roles = ROLE_EXPECTATIONS[action]
    ticket = bring_to(estate, state)
    expected = {**roles, **OTHERS}[role]
    before = snapshot(ticket)

    response = as_user(getattr(estate, role)).post(
        reverse("api-ticket-transition", args=[ticket.pk]),
        {"action": action, "note": "理由"},
    )

    assert response.status_code == expected, response.data
    if expected == 200:
        assert response.data["status"] == ALLOWED[(state, action)]
    else:
        assert snapshot(ticket) == before


def test_assign_without_an_assignee_takes_the_ticket_oneself():
    estate = Estate()
    ticket = bring_to(estate, S.ACCEPTED)
    services.ticket_transition(ticket=ticket, actor=estate.colleague, action="assign")
    ticket.refresh_from_db()
    assert ticket.assignee == estate.colleague


def test_assign_to_a_colleague_records_who_in_the_timeline():
    estate = Estate()
    ticket = bring_to(estate, S.ACCEPTED)
    services.ticket_transition(
        ticket=ticket, actor=estate.staff, action="assign", assignee=estate.colleague
    )
    ticket.refresh_from_db()
    assert ticket.assignee == estate.colleague
    assert ticket.events.get(kind=TicketEvent.Kind.ASSIGNED).assignee == estate.colleague


@pytest.mark.parametrize("who", ["filer", "other_staff", "centre_admin"])
def test_assigning_to_someone_not_staff_of_the_estate_is_refused(who):
    estate = Estate()
    ticket = bring_to(estate, S.ACCEPTED)
    before = snapshot(ticket)
    with pytest.raises(ValidationError) as error:
        services.ticket_transition(
            ticket=ticket, actor=estate.staff, action="assign", assignee=getattr(estate, who)
        )
    assert "assignee" in error.value.message_dict
    assert snapshot(ticket) == before


def test_rejecting_needs_a_reason():
    estate = Estate()
    ticket = bring_to(estate, S.SUBMITTED)
    before = snapshot(ticket)
    with pytest.raises(ValidationError) as error:
        services.ticket_transition(ticket=ticket, actor=estate.staff, action="reject", note=" ")
    assert "note" in error.value.message_dict
    assert snapshot(ticket) == before


def test_an_assignee_is_only_for_the_assign_action():
    estate = Estate()
    ticket = bring_to(estate, S.SUBMITTED)
    before = snapshot(ticket)
    with pytest.raises(ValidationError):
        services.ticket_transition(
            ticket=ticket, actor=estate.staff, action="accept", assignee=estate.colleague
        )
    assert snapshot(ticket) == before


def test_an_unknown_action_is_bad_input():
    estate = Estate()
    ticket = bring_to(estate, S.SUBMITTED)
    with pytest.raises(ValidationError):
        services.ticket_transition(ticket=ticket, actor=estate.staff, action="delete")


def test_a_centre_admin_may_not_act_even_through_the_service():
    estate = Estate()
    ticket = bring_to(estate, S.SUBMITTED)
    with pytest.raises(PermissionDenied):
        services.ticket_transition(ticket=ticket, actor=estate.centre_admin, action="accept")


def test_resolving_straight_after_accepting_makes_the_resolver_the_assignee():
    estate = Estate()
    ticket = bring_to(estate, S.ACCEPTED)
    services.ticket_transition(ticket=ticket, actor=estate.colleague, action="resolve")
    ticket.refresh_from_db()
    assert (ticket.status, ticket.assignee) == (S.RESOLVED, estate.colleague)
    assert ticket.resolved_at is not None


@override_settings(REPAIRS_REOPEN_DAYS=7)
def test_reopen_within_the_window_puts_the_ticket_back_with_fresh_deadlines():
    estate = Estate()
    ticket = bring_to(estate, S.CLOSED)
    resolved_at = ticket.resolved_at
    at = resolved_at + timedelta(days=6, hours=23)

    services.ticket_transition(ticket=ticket, actor=estate.filer, action="reopen", at=at)

    ticket.refresh_from_db()
    assert ticket.status == S.SUBMITTED
    assert ticket.assignee is None
    assert (ticket.accepted_at, ticket.resolved_at, ticket.closed_at) == (None, None, None)
    category = estate.repair_category
    assert ticket.response_due == at + timedelta(hours=category.response_hours)
    assert ticket.resolve_due == at + timedelta(hours=category.resolve_hours)
    assert ticket.next_due == ticket.response_due
    assert (ticket.response_escalated_at, ticket.resolve_escalated_at) == (None, None)


@override_settings(REPAIRS_REOPEN_DAYS=7)
def test_reopen_after_the_window_is_a_conflict_and_changes_nothing():
    estate = Estate()
    ticket = bring_to(estate, S.CLOSED)
    before = snapshot(ticket)
    with pytest.raises(Conflict):
        services.ticket_transition(
            ticket=ticket,
            actor=estate.filer,
            action="reopen",
            at=ticket.resolved_at + timedelta(days=7, minutes=1),
        )
    assert snapshot(ticket) == before


def test_a_housemate_sees_the_flats_ticket_but_only_the_filer_closes_it(as_user):
    estate = Estate()
    ticket = bring_to(estate, S.RESOLVED)
    client = as_user(estate.housemate)
    detail = client.get(reverse("api-ticket", args=[ticket.pk]))
    assert detail.status_code == 200
    assert detail.data["allowed_actions"] == []
    assert (
        client.post(
            reverse("api-ticket-transition", args=[ticket.pk]), {"action": "close"}
        ).status_code
        == 403
    )


def test_a_note_longer_than_the_timeline_holds_is_bad_input():
    estate = Estate()
    ticket = bring_to(estate, S.SUBMITTED)
    before = snapshot(ticket)
    with pytest.raises(ValidationError):
        services.ticket_transition(
            ticket=ticket, actor=estate.staff, action="accept", note="长" * 501
        )
    assert snapshot(ticket) == before


def test_the_loser_of_a_race_is_told_it_is_already_done():
    estate = Estate()
    ticket = bring_to(estate, S.ACCEPTED)
    with pytest.raises(Conflict) as error:
        services.ticket_transition(ticket=ticket, actor=estate.colleague, action="accept")
    assert str(ticket.get_status_display()) in str(error.value.detail)
