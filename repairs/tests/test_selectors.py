"""Handling figures per community and month (for alliance/ and the KPI endpoint), and the
viewer's roles."""

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from community.periods import Period
from repairs import selectors, services, transitions
from repairs.tests.factories import Estate

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
OCTOBER = Period(2026, 10)


def at(day: int, hour: int = 10, month: int = 10) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=SHANGHAI)


def handle(estate: Estate, ticket, *, resolve_at: datetime, close=False, stars=None):
    services.ticket_transition(
        ticket=ticket,
        actor=estate.staff,
        action="accept",
        at=ticket.created_at + timedelta(minutes=30),
    )
    services.ticket_transition(ticket=ticket, actor=estate.staff, action="resolve", at=resolve_at)
    if close:
        services.ticket_transition(
            ticket=ticket, actor=estate.filer, action="close", at=resolve_at + timedelta(hours=1)
        )
    if stars:
        services.ticket_rate(
            ticket=ticket, user=estate.filer, stars=stars, at=resolve_at + timedelta(hours=2)
        )


def test_handling_figures_of_a_month():
    estate = Estate()
    in_time = estate.repair(at=at(3))
    handle(estate, in_time, resolve_at=at(3, 14), close=True, stars=5)
    late = estate.report(at=at(5))  # resolve within 8 hours
    handle(estate, late, resolve_at=at(6), stars=3)
    still_open = estate.repair(at=at(10))
    rejected = estate.report(at=at(12))
    services.ticket_transition(
        ticket=rejected, actor=estate.staff, action="reject", note="重复", at=at(12, 11)
    )
    cancelled = estate.repair(at=at(15))
    services.ticket_transition(ticket=cancelled, actor=estate.filer, action="cancel", at=at(15, 11))
    # Not this month's, or not this estate's:
    estate.repair(at=at(1, 10, month=11))
    Estate().repair(at=at(3))
    del still_open

    figures = selectors.handling_figures(community=estate.community, period=OCTOBER)

    assert (figures.total, figures.handled, figures.handled_within_sla) == (4, 2, 1)
    assert (figures.rated, figures.satisfied, figures.average_stars) == (2, 1, Decimal("4.00"))
    assert figures.handling_rate == Decimal("0.5000")
    assert figures.within_sla_rate == Decimal("0.2500")
    assert figures.satisfaction_rate == Decimal("0.5000")


def test_a_month_without_tickets_reads_zero_and_no_rates():
    estate = Estate()
    figures = selectors.handling_figures(community=estate.community.pk, period=OCTOBER)
    assert (figures.total, figures.handled, figures.rated, figures.average_stars) == (0, 0, 0, None)
    assert (figures.handling_rate, figures.satisfaction_rate) == (None, None)


def test_the_month_is_counted_in_the_estates_time_zone():
    estate = Estate()
    # 1 November 00:30 in Shanghai is still 31 October in UTC.
    first_of_november = datetime(2026, 11, 1, 0, 30, tzinfo=SHANGHAI)
    last_of_october = datetime(2026, 10, 31, 23, 59, tzinfo=SHANGHAI)
    estate.repair(at=first_of_november)
    estate.repair(at=last_of_october)
    assert selectors.handling_figures(community=estate.community, period=OCTOBER).total == 1
    november = selectors.handling_figures(community=estate.community, period=OCTOBER.next())
    assert november.total == 1


def test_the_figures_are_one_query():
    estate = Estate()
    estate.repair(at=at(3))
    with CaptureQueriesContext(connection) as captured:
        selectors.handling_figures(community=estate.community, period=OCTOBER)
    assert len(captured) == 1


def test_roles_on_a_ticket():
    estate = Estate()
    ticket = estate.repair()
    services.ticket_transition(ticket=ticket, actor=estate.staff, action="accept")
    services.ticket_transition(ticket=ticket, actor=estate.staff, action="assign")
    ticket.refresh_from_db()

    def roles(user):
        return selectors.ticket_viewer(user=user).roles_on(ticket)

    assert roles(estate.filer) == {transitions.FILER}
    assert roles(estate.housemate) == set()
    assert roles(estate.staff) == {transitions.STAFF, transitions.ASSIGNEE}
    assert roles(estate.colleague) == {transitions.STAFF}
    assert roles(estate.centre_admin) == {transitions.CENTRE_ADMIN}
    assert roles(estate.other_staff) == set()


def test_the_reopen_button_disappears_after_the_window(settings):
    settings.REPAIRS_REOPEN_DAYS = 3
    estate = Estate()
    ticket = estate.repair()
    services.ticket_transition(ticket=ticket, actor=estate.staff, action="accept")
    services.ticket_transition(ticket=ticket, actor=estate.staff, action="resolve")
    ticket.refresh_from_db()
    viewer = selectors.ticket_viewer(user=estate.filer)
    inside = ticket.resolved_at + timedelta(days=2)
    outside = ticket.resolved_at + timedelta(days=3, seconds=1)
    assert selectors.ticket_available_actions(viewer=viewer, ticket=ticket, now=inside) == [
        "close",
        "reopen",
    ]
    assert selectors.ticket_available_actions(viewer=viewer, ticket=ticket, now=outside) == [
        "close"
    ]
