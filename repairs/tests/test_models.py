"""Database constraints: the rules hold even for a write that skips the services."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from repairs.models import Kind, Status, Ticket, TicketCategory, TicketRating
from repairs.tests.factories import Estate

pytestmark = pytest.mark.django_db


def raw_ticket(estate: Estate, **fields) -> Ticket:
    now = timezone.now()
    values = {
        "kind": Kind.REPAIR,
        "category": estate.repair_category,
        "community": estate.community,
        "household": estate.household,
        "title": "x",
        "filed_by": estate.filer,
        "response_due": now + timedelta(hours=1),
        "resolve_due": now + timedelta(hours=2),
        "next_due": now + timedelta(hours=1),
    }
    return Ticket.objects.create(**{**values, **fields})


@pytest.mark.parametrize(
    "fields",
    [
        {"household": None, "location": ""},
        {"status": "lost"},
        {"kind": "complaint"},
        {"status": Status.CLOSED},  # finished, yet with a deadline
        {"status": Status.ACCEPTED, "next_due": None},  # open, without one
        {"resolve_due": timezone.now()},  # before the response deadline
    ],
    ids=["nowhere", "status", "kind", "closed-with-due", "open-without-due", "due-order"],
)
def test_the_database_refuses_an_inconsistent_ticket(fields):
    estate = Estate()
    with pytest.raises(IntegrityError), transaction.atomic():
        raw_ticket(estate, **fields)
    assert Ticket.objects.count() == 0


def test_a_category_resolves_no_sooner_than_it_responds():
    with pytest.raises(IntegrityError), transaction.atomic():
        TicketCategory.objects.create(kind=Kind.REPAIR, name="x", response_hours=8, resolve_hours=4)
    with pytest.raises(IntegrityError), transaction.atomic():
        TicketCategory.objects.create(kind=Kind.REPAIR, name="y", response_hours=0, resolve_hours=4)


@pytest.mark.summary_bypassed
@pytest.mark.parametrize("stars", [0, 6])
def test_stars_are_1_to_5_in_the_database(stars):
    estate = Estate()
    ticket = raw_ticket(estate)
    with pytest.raises(IntegrityError), transaction.atomic():
        TicketRating.objects.create(ticket=ticket, rated_by=estate.filer, stars=stars)


@pytest.mark.summary_bypassed
def test_one_rating_per_ticket_in_the_database():
    estate = Estate()
    ticket = raw_ticket(estate)
    TicketRating.objects.create(ticket=ticket, rated_by=estate.filer, stars=5)
    with pytest.raises(IntegrityError), transaction.atomic():
        TicketRating.objects.create(ticket=ticket, rated_by=estate.filer, stars=1)
