"""The one table of ticket transitions: from which states each action may be taken, the state it
leads to, and who may take it. repairs.services.ticket_transition enforces it; pages and the API
read it to offer only the actions a person may take now. Kept apart from services.py because it
is pure data and both the services and the selectors' callers need it without touching the
database.

    action   from                              to           who
    accept   submitted                         accepted     staff
    assign   accepted, assigned, in_progress   assigned     staff      (to a colleague or oneself)
    start    assigned                          in_progress  assignee
    resolve  accepted, assigned, in_progress   resolved     staff
    close    resolved                          closed       filer      (confirms the fix)
    reopen   resolved, closed                  submitted    filer      (within REPAIRS_REOPEN_DAYS)
    reject   submitted, accepted               rejected     staff      (a note is required)
    cancel   submitted, accepted, assigned     cancelled    filer      (not once work started)

"staff" is property staff of the company that manages the ticket's community; "assignee" is the
staff member the ticket is assigned to; "filer" is the resident who filed it. Centre admins and
owners' committee members watch but take no action. Anything else: 409 if the action is not
allowed from the current state, 403 if the person may not take it at all.
"""

from dataclasses import dataclass

from repairs.models import Status, TicketEvent

FILER = "filer"
STAFF = "staff"
ASSIGNEE = "assignee"
CENTRE_ADMIN = "centre_admin"


@dataclass(frozen=True)
class Transition:
    action: str
    sources: frozenset[str]
    target: str
    actors: frozenset[str]
    event: str


def _t(action, sources, target, actors, event) -> Transition:
    return Transition(action, frozenset(sources), target, frozenset(actors), event)


S = Status
TRANSITIONS: dict[str, Transition] = {
    t.action: t
    for t in [
        _t("accept", [S.SUBMITTED], S.ACCEPTED, [STAFF], TicketEvent.Kind.ACCEPTED),
        _t(
            "assign",
            [S.ACCEPTED, S.ASSIGNED, S.IN_PROGRESS],
            S.ASSIGNED,
            [STAFF],
            TicketEvent.Kind.ASSIGNED,
        ),
        _t("start", [S.ASSIGNED], S.IN_PROGRESS, [ASSIGNEE], TicketEvent.Kind.STARTED),
        _t(
            "resolve",
            [S.ACCEPTED, S.ASSIGNED, S.IN_PROGRESS],
            S.RESOLVED,
            [STAFF],
            TicketEvent.Kind.RESOLVED,
        ),
        _t("close", [S.RESOLVED], S.CLOSED, [FILER], TicketEvent.Kind.CLOSED),
        _t("reopen", [S.RESOLVED, S.CLOSED], S.SUBMITTED, [FILER], TicketEvent.Kind.REOPENED),
        _t("reject", [S.SUBMITTED, S.ACCEPTED], S.REJECTED, [STAFF], TicketEvent.Kind.REJECTED),
        _t(
            "cancel",
            [S.SUBMITTED, S.ACCEPTED, S.ASSIGNED],
            S.CANCELLED,
            [FILER],
            TicketEvent.Kind.CANCELLED,
        ),
    ]
}
ACTIONS = tuple(TRANSITIONS)


def may_take(action: str, roles: frozenset[str]) -> bool:
    """Whether someone holding `roles` on a ticket may take `action` at all (in some state)."""
    return bool(TRANSITIONS[action].actors & roles)


def allowed_actions(status: str, roles: frozenset[str]) -> list[str]:
    """The actions someone holding `roles` may take on a ticket in `status`, in table order.
    (Time limits, such as the reopen window, are checked by the service.)"""
    return [action for action, t in TRANSITIONS.items() if status in t.sources and t.actors & roles]
