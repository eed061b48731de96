"""Admin for community life: a centre admin works on their own centre's announcements,
activities and consultations; sign-ups, check-ins and ballots are not theirs to edit."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from community import services
from community.models import Consultation, Role
from community.permissions import CENTRE_ADMIN_GROUP
from community.tests.factories import UserFactory, member
from community.tests.life import build_estate, option

pytestmark = pytest.mark.django_db


@pytest.fixture
def estate():
    return build_estate()


@pytest.fixture
def admin_client(client, estate):
    user = estate.centre_admin
    user.is_staff = True
    user.save()
    user.groups.add(Group.objects.get(name=CENTRE_ADMIN_GROUP))
    client.force_login(user)
    return client


def test_the_centre_admin_group_gets_the_community_life_permissions():
    codenames = set(
        Group.objects.get(name=CENTRE_ADMIN_GROUP).permissions.values_list("codename", flat=True)
    )
    assert {
        "add_announcement",
        "change_activity",
        "view_activitycheckin",
        "add_consultation",
        "add_consultationoption",
    } <= codenames
    assert not {"view_ballot", "change_activitycheckin", "add_activitysignup"} & codenames


def test_a_centre_admin_lists_only_their_centres_rows(admin_client, estate):
    ours = estate.activity(title="我们的活动")
    theirs_staff = member(Role.PROPERTY_STAFF, company=estate.other.company)
    services.activity_create(
        organiser=theirs_staff,
        community=estate.other,
        kind="event",
        title="别人的活动",
        place="x",
        starts_at=ours.starts_at,
        ends_at=ours.ends_at,
        capacity=5,
    )
    services.announcement_publish(
        author=theirs_staff, community=estate.other, title="别人的公告", body="…"
    )
    services.announcement_publish(
        author=estate.staff, community=estate.community, title="我们的公告", body="…"
    )
    estate.consultation(title="我们的表决")

    activities = admin_client.get(reverse("admin:community_activity_changelist")).content.decode()
    assert "我们的活动" in activities and "别人的活动" not in activities
    board = admin_client.get(reverse("admin:community_announcement_changelist")).content.decode()
    assert "我们的公告" in board and "别人的公告" not in board
    votes = admin_client.get(reverse("admin:community_consultation_changelist"))
    assert "我们的表决" in votes.content.decode()


def test_a_centre_admin_cannot_see_ballots(admin_client, estate):
    assert admin_client.get(reverse("admin:community_ballot_changelist")).status_code == 403


def test_a_consultation_is_fixed_once_it_opens(admin_client, estate):
    now = timezone.now()
    draft = estate.consultation(title="草稿", opens_at=now + timedelta(days=1))
    opened = estate.consultation(title="进行中")
    services.consultation_vote(
        consultation=opened, user=estate.owner, option=option(opened, "同意")
    )

    draft_page = admin_client.get(reverse("admin:community_consultation_change", args=[draft.pk]))
    assert 'name="title"' in draft_page.content.decode()
    open_page = admin_client.get(reverse("admin:community_consultation_change", args=[opened.pk]))
    assert 'name="title"' not in open_page.content.decode()
    assert 'name="options-0-label"' not in open_page.content.decode()
    assert Consultation.objects.get(pk=opened.pk).title == "进行中"


def test_every_community_life_admin_page_opens_for_a_superuser(client, estate):
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    activity = estate.activity(in_hours=-0.5)
    services.activity_checkin(
        activity=activity, user=estate.owner, recorded_by=estate.owner, code=activity.checkin_code
    )
    consultation = estate.consultation()
    services.consultation_vote(
        consultation=consultation, user=estate.owner, option=option(consultation, "同意")
    )
    services.announcement_publish(
        author=estate.staff, community=estate.community, title="通知", body="…"
    )
    for model in ("announcement", "activity", "activitycheckin", "consultation", "ballot"):
        changelist = client.get(reverse(f"admin:community_{model}_changelist"))
        assert changelist.status_code == 200, model
    for model in ("announcement", "activity", "consultation"):
        assert client.get(reverse(f"admin:community_{model}_add")).status_code == 200, model
    change = client.get(reverse("admin:community_activity_change", args=[activity.pk]))
    assert change.status_code == 200


def test_the_admin_checks_the_options_of_a_new_consultation(admin_client, estate):
    opens = timezone.localtime() + timedelta(days=1)
    closes = opens + timedelta(days=7)
    data = {
        "community": estate.community.pk,
        "title": "更换门禁",
        "description": "…",
        "opens_at_0": opens.strftime("%Y-%m-%d"),
        "opens_at_1": opens.strftime("%H:%M:%S"),
        "closes_at_0": closes.strftime("%Y-%m-%d"),
        "closes_at_1": closes.strftime("%H:%M:%S"),
        "approval_numerator": "1",
        "approval_denominator": "2",
        "participation_numerator": "2",
        "participation_denominator": "3",
        "participation_inclusive": "on",
        "secret_ballot": "on",
        "options-TOTAL_FORMS": "2",
        "options-INITIAL_FORMS": "0",
        "options-MIN_NUM_FORMS": "0",
        "options-MAX_NUM_FORMS": "1000",
        "options-0-position": "1",
        "options-0-label": "同意",
        "options-0-approves": "on",
        "options-1-position": "2",
        "options-1-label": "反对",
        "options-1-approves": "on",
    }
    url = reverse("admin:community_consultation_add")

    refused = admin_client.post(url, data)
    assert refused.status_code == 200  # the form comes back with the error
    assert not Consultation.objects.exists()
    half = admin_client.post(url, data | {"approval_inclusive": "on", "options-1-approves": ""})
    assert half.status_code == 200  # "at least half" could let two options tie
    assert not Consultation.objects.exists()

    accepted = admin_client.post(url, data | {"options-1-approves": ""})
    assert accepted.status_code == 302
    consultation = Consultation.objects.get()
    assert consultation.created_by == estate.centre_admin
    assert [o.approves for o in consultation.options.all()] == [True, False]
