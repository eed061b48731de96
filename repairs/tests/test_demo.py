"""The demo: the story's month at 翰林苑 reads 28 tickets (22 reports, 6 repairs), all handled
within their deadlines, all rated 5 stars by the residents who filed them; today's overdue
ticket is escalated by the job."""

from decimal import Decimal

import pytest
from django.core.management import call_command

from community.demo import default_demo_period
from community.models import Community, Notice
from repairs import selectors, services
from repairs.models import Status, Ticket, TicketCategory

pytestmark = pytest.mark.django_db


def test_the_story_month_reads_28_handled_all_rated_5_stars():
    call_command("seed_demo", stdout=None)
    community = Community.objects.get(name="翰林苑")
    period = default_demo_period()

    figures = selectors.handling_figures(community=community, period=period)

    assert (figures.total, figures.handled, figures.handled_within_sla) == (28, 28, 28)
    assert figures.handling_rate == Decimal("1.0000")
    assert (figures.rated, figures.average_stars) == (28, Decimal("5.00"))
    start, end = selectors.period_bounds(period)
    month = Ticket.objects.filter(community=community, created_at__gte=start, created_at__lt=end)
    assert month.filter(kind="report").count() == 22
    assert month.filter(kind="repair").count() == 6
    for ticket in month.select_related("rating"):
        assert ticket.status == Status.CLOSED
        assert ticket.rating.rated_by_id == ticket.filed_by_id
        assert ticket.rating.stars == 5
        if ticket.kind == "repair":
            # A repair comes from inside the filer's own flat.
            assert ticket.household.residencies.filter(user=ticket.filed_by).exists()
        assert [e.kind for e in ticket.events.all()] == [
            "filed",
            "accepted",
            "assigned",
            "started",
            "resolved",
            "closed",
            "rated",
        ]
    # The residents' "your ticket is resolved" notices of that month exist, already read.
    links = [f"/repairs/{pk}/" for pk in month.values_list("pk", flat=True)]
    told = Notice.objects.filter(link__in=links)
    assert told.count() == 28
    assert not told.filter(read_at__isnull=True).exists()


def test_running_the_seed_again_adds_no_tickets():
    call_command("seed_demo", stdout=None)
    counts = (Ticket.objects.count(), TicketCategory.objects.count())
    call_command("seed_demo", stdout=None)
    assert (Ticket.objects.count(), TicketCategory.objects.count()) == counts


def test_todays_unaccepted_ticket_is_escalated_by_the_job():
    call_command("seed_demo", stdout=None)
    open_tickets = Ticket.objects.filter(next_due__isnull=False)
    assert open_tickets.count() == 2
    assert services.ticket_escalate_overdue() >= 1
    assert Notice.objects.filter(user__username="staff", dedupe_key__startswith="repairs:").exists()
    assert Notice.objects.filter(
        user__username="centre", dedupe_key__startswith="repairs:"
    ).exists()
