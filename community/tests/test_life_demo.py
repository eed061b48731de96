"""seed_demo's community life, and the issue's walk-through on it: a resident reads a notice,
signs up for the volunteering session, is checked in and sees the hours; an owner votes in the
open consultation and, after it closes, everyone in the estate sees both majorities."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from community import demo
from community.models import (
    Activity,
    ActivityCheckin,
    Announcement,
    Ballot,
    Consultation,
    User,
)

pytestmark = pytest.mark.django_db


def test_the_story_month_has_its_activities_check_ins_and_a_decided_consultation():
    call_command("seed_demo", stdout=None)

    morning = Activity.objects.get(title=demo.VOLUNTEERING_MORNING)
    assert morning.kind == "volunteering"
    assert morning.starts_at.astimezone(timezone.get_default_timezone()).weekday() == 5
    hours = sorted(ActivityCheckin.objects.filter(activity=morning).values_list("hours", flat=True))
    assert hours == [Decimal("2.0")] * 2 + [Decimal("3.0")] * 12
    dinner = Activity.objects.get(title=demo.NEIGHBOURS_DINNER)
    assert dinner.checkins.count() == 36
    assert set(dinner.checkins.values_list("hours", flat=True)) == {Decimal("0")}
    assert (dinner.signed_up, morning.signed_up) == (40, 16)

    closed = Consultation.objects.get(title=demo.CLOSED_CONSULTATION)
    assert closed.status == "closed"
    assert closed.tallied_at is not None
    assert (closed.electorate_households, closed.ballots.count()) == (56, 44)
    assert Announcement.objects.count() == 5


def test_the_walk_through(as_user):
    call_command("seed_demo", stdout=None)
    resident01 = User.objects.get(username="resident01")
    resident02 = User.objects.get(username="resident02")
    client = as_user(resident01)

    # Reads a notice: the board shows the pinned result notice first, not the expired one.
    board = client.get(reverse("api-announcements")).data["results"]
    assert board[0]["pinned"] is True
    assert "中秋节物业值班安排" not in [row["title"] for row in board]
    unread = next(row for row in board if not row["read"])
    assert client.post(reverse("api-announcement-read", args=[unread["id"]])).status_code == 204

    # Signs up for the volunteering session under way, checks in with the door code.
    live = Activity.objects.get(title=demo.LIVE_VOLUNTEERING)
    assert client.post(reverse("api-activity-signup", args=[live.pk])).status_code == 201
    response = client.post(
        reverse("api-activity-checkin", args=[live.pk]), {"code": live.checkin_code}
    )
    assert response.status_code == 201
    me = client.get(reverse("api-activity", args=[live.pk])).data["me"]
    assert me == {"signed_up": True, "checked_in": True, "hours": "3.0"}

    # Votes in the open consultation; a neighbour who voted already may change their mind.
    consultation = Consultation.objects.get(title=demo.OPEN_CONSULTATION)
    agree = consultation.options.get(label="同意")
    vote = reverse("api-consultation-vote", args=[consultation.pk])
    assert client.post(vote, {"option": agree.pk}).status_code == 201
    assert client.get(reverse("api-consultation", args=[consultation.pk])).data["result"] is None

    # It closes (time passes); everyone in the estate sees the result with both majorities.
    Consultation.objects.filter(pk=consultation.pk).update(closes_at=timezone.now())
    result = as_user(resident02).get(reverse("api-consultation", args=[consultation.pk]))
    body = result.data["result"]
    voted = Ballot.objects.filter(consultation=consultation).count()
    assert body["participating"]["heads"] == voted == 19
    assert body["total"]["heads"] == 56
    assert set(body["turnout"]) == {"heads", "area"}
    assert body["passed"] is False  # 19 of 56 households is short of two thirds
    assert body["participation_met_by"] == {"heads": False, "area": False}


def test_the_open_items_stay_open_for_a_while():
    call_command("seed_demo", stdout=None)
    now = timezone.now()
    live = Activity.objects.get(title=demo.LIVE_VOLUNTEERING)
    assert live.starts_at <= now < live.ends_at
    upcoming = Activity.objects.get(title=demo.NEXT_EVENT)
    assert upcoming.starts_at > now + timedelta(days=6)
    opened = Consultation.objects.get(title=demo.OPEN_CONSULTATION)
    assert opened.status == "open"
    assert opened.closes_at > now + timedelta(days=11)
