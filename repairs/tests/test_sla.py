"""SLA: deadlines come from the category; the beat job marks overdue tickets and escalates each
missed deadline once, to the centre's admins and the company's managers."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from community.models import Notice
from repairs import services, tasks
from repairs.models import Status, Ticket, TicketEvent
from repairs.tests.factories import Estate, hours_ago

pytestmark = pytest.mark.django_db


def escalations(ticket) -> int:
    return TicketEvent.objects.filter(ticket=ticket, kind=TicketEvent.Kind.ESCALATED).count()


def notified(ticket) -> list[tuple[int, str]]:
    return sorted(
        Notice.objects.filter(link=f"/repairs/{ticket.pk}/", dedupe_key__isnull=False).values_list(
            "user_id", "dedupe_key"
        )
    )


def test_deadlines_are_counted_from_filing_by_the_category():
    estate = Estate()
    at = timezone.now() - timedelta(minutes=10)
    repair = estate.repair(at=at)
    report = estate.report(at=at)
    assert (repair.response_due, repair.resolve_due) == (
        at + timedelta(hours=2),
        at + timedelta(hours=24),
    )
    assert (report.response_due, report.resolve_due) == (
        at + timedelta(hours=1),
        at + timedelta(hours=8),
    )
    assert repair.next_due == repair.response_due


def test_changing_a_category_later_keeps_the_deadlines_tickets_were_given():
    estate = Estate()
    ticket = estate.repair()
    due = ticket.resolve_due
    estate.repair_category.resolve_hours = 72
    estate.repair_category.save()
    ticket.refresh_from_db()
    assert ticket.resolve_due == due


def test_accepting_moves_the_next_deadline_to_the_resolution():
    estate = Estate()
    ticket = estate.repair()
    services.ticket_transition(ticket=ticket, actor=estate.staff, action="accept")
    ticket.refresh_from_db()
    assert ticket.next_due == ticket.resolve_due


def test_the_job_escalates_a_missed_response_once_to_the_people_in_charge():
    estate = Estate()
    ticket = estate.repair(at=hours_ago(3))  # accept within 2 hours: missed
    on_time = estate.repair(at=hours_ago(1))

    assert services.ticket_escalate_overdue() == 1

    ticket.refresh_from_db()
    assert ticket.sla_breached is True
    assert ticket.response_escalated_at is not None
    assert ticket.resolve_escalated_at is None
    assert escalations(ticket) == 1
    key = f"repairs:ticket:{ticket.pk}:response:{ticket.response_due.isoformat()}"
    # The company's manager and the centre's admin; not the other staff, not the filer.
    assert notified(ticket) == sorted([(estate.manager.pk, key), (estate.centre_admin.pk, key)])
    on_time.refresh_from_db()
    assert (on_time.sla_breached, escalations(on_time)) == (False, 0)

    # Every later run: nothing more.
    assert services.ticket_escalate_overdue() == 0
    assert services.ticket_escalate_overdue(now=timezone.now() + timedelta(minutes=30)) == 0
    assert escalations(ticket) == 1
    assert Notice.objects.filter(link=f"/repairs/{ticket.pk}/").count() == 2


def test_a_missed_resolution_is_a_second_deadline_escalated_once():
    estate = Estate()
    ticket = estate.repair(at=hours_ago(3))
    services.ticket_transition(ticket=ticket, actor=estate.staff, action="accept")
    # Accepted late: the response deadline is missed, but only open-for-response tickets are
    # escalated for it.
    assert services.ticket_escalate_overdue() == 0
    ticket.refresh_from_db()
    assert ticket.sla_breached is True

    later = ticket.resolve_due + timedelta(minutes=1)
    assert services.ticket_escalate_overdue(now=later) == 1
    assert services.ticket_escalate_overdue(now=later + timedelta(hours=5)) == 0
    ticket.refresh_from_db()
    assert ticket.resolve_escalated_at == later
    key = f"repairs:ticket:{ticket.pk}:resolve:{ticket.resolve_due.isoformat()}"
    assert {k for _user, k in notified(ticket)} == {key}


def test_a_ticket_never_accepted_escalates_both_deadlines_once_each():
    estate = Estate()
    ticket = estate.repair(at=hours_ago(30))
    assert services.ticket_escalate_overdue() == 2
    assert services.ticket_escalate_overdue() == 0
    assert escalations(ticket) == 2
    assert len(notified(ticket)) == 4  # two deadlines x two people


def test_finished_tickets_are_never_escalated():
    estate = Estate()
    ticket = estate.repair(at=hours_ago(30))
    services.ticket_transition(ticket=ticket, actor=estate.filer, action="cancel")
    assert services.ticket_escalate_overdue() == 0
    assert escalations(ticket) == 0


def test_a_reopened_ticket_has_new_deadlines_and_is_escalated_again_once():
    estate = Estate()
    ticket = estate.repair(at=hours_ago(3))
    assert services.ticket_escalate_overdue() == 1
    for actor, action in [(estate.staff, "accept"), (estate.staff, "resolve")]:
        services.ticket_transition(ticket=ticket, actor=actor, action=action)
    reopened_at = timezone.now()
    services.ticket_transition(ticket=ticket, actor=estate.filer, action="reopen", at=reopened_at)

    after = reopened_at + timedelta(hours=2, minutes=1)
    assert services.ticket_escalate_overdue(now=after) == 1
    assert services.ticket_escalate_overdue(now=after) == 0
    assert escalations(ticket) == 2
    keys = {key for _user, key in notified(ticket)}
    assert len(keys) == 2  # one per response deadline


def test_late_resolution_counts_as_missed_even_before_the_job_runs():
    estate = Estate()
    ticket = estate.repair(at=hours_ago(1))
    services.ticket_transition(ticket=ticket, actor=estate.staff, action="accept")
    services.ticket_transition(
        ticket=ticket,
        actor=estate.staff,
        action="resolve",
        at=ticket.resolve_due + timedelta(seconds=1),
    )
    ticket.refresh_from_db()
    assert (ticket.status, ticket.sla_breached) == (Status.RESOLVED, True)


def test_nobody_to_escalate_to_still_marks_the_ticket(caplog):
    estate = Estate()
    estate.manager.memberships.update(is_manager=False)
    estate.centre_admin.memberships.all().delete()
    ticket = estate.repair(at=hours_ago(3))
    assert services.ticket_escalate_overdue() == 1
    assert Ticket.objects.get(pk=ticket.pk).sla_breached is True
    assert notified(ticket) == []
    assert "nobody to escalate to" in caplog.text


def test_the_beat_task_runs_the_check_every_few_minutes():
    entry = settings.CELERY_BEAT_SCHEDULE["repairs-escalate-overdue-tickets"]
    assert entry["task"] == "repairs.tasks.escalate_overdue_tickets"
    assert entry["schedule"] == settings.REPAIRS_SLA_CHECK_MINUTES * 60
    estate = Estate()
    estate.repair(at=hours_ago(3))
    assert tasks.escalate_overdue_tickets.delay().get() == 1
    assert tasks.escalate_overdue_tickets.delay().get() == 0
