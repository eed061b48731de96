"""The community-life pages, phone first: the board on the resident's home, activities with
sign-up and the door check-in, the organiser's page with the code and its QR, consultations
with the vote and the result."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from community import services
from community.models import (
    Activity,
    ActivityCheckin,
    ActivitySignup,
    Announcement,
    AnnouncementRead,
    Ballot,
    Consultation,
)
from community.tests.factories import HouseholdFactory, resident
from community.tests.life import build_estate, option

pytestmark = pytest.mark.django_db


@pytest.fixture
def estate():
    return build_estate()


def html(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


# --- announcements -------------------------------------------------------------------------------


def test_the_resident_home_shows_the_board_with_new_ones_marked(client, estate):
    services.announcement_publish(
        author=estate.committee, community=estate.community, title="业主大会通知", body="…"
    )
    services.announcement_publish(
        author=estate.staff, community=estate.community, title="停水通知", body="…", pinned=True
    )
    client.force_login(estate.owner)

    page = html(client.get(reverse("resident-home")))

    assert page.index("停水通知") < page.index("业主大会通知")  # pinned first
    assert "2 条新公告" in page or "2 new" in page
    assert reverse("activities") in page and reverse("consultations") in page


def test_opening_an_announcement_marks_it_read_for_that_person_only(client, estate):
    announcement = services.announcement_publish(
        author=estate.staff, community=estate.community, title="停水通知", body="明天 9 点停水"
    )
    client.force_login(estate.owner)
    page = html(client.get(reverse("announcement-detail", args=[announcement.pk])))
    assert "明天 9 点停水" in page
    assert announcement.publisher_name in page
    assert list(AnnouncementRead.objects.values_list("user", flat=True)) == [estate.owner.pk]


def test_staff_post_an_announcement_from_the_form(client, estate):
    client.force_login(estate.staff)
    response = client.post(
        reverse("announcement-new"),
        {
            "audience": f"community:{estate.community.pk}",
            "title": "电梯维保",
            "body": "周三上午电梯维保。",
        },
    )
    announcement = Announcement.objects.get()
    assert response.status_code == 302
    assert (announcement.source, announcement.author) == ("company", estate.staff)


def test_the_centre_chooses_all_of_its_communities_on_the_form(client, estate):
    client.force_login(estate.centre_admin)
    form = html(client.get(reverse("announcement-new")))
    assert f'value="centre:{estate.community.centre.pk}"' in form
    client.post(
        reverse("announcement-new"),
        {"audience": f"centre:{estate.community.centre.pk}", "title": "全体", "body": "…"},
    )
    assert Announcement.objects.get().community is None


def test_residents_get_no_posting_form(client, estate):
    client.force_login(estate.owner)
    assert client.get(reverse("announcement-new")).status_code == 403
    assert reverse("announcement-new") not in html(client.get(reverse("announcements")))


def test_another_communitys_announcement_is_404(client, estate):
    announcement = services.announcement_publish(
        author=estate.staff, community=estate.community, title="停水通知", body="…"
    )
    client.force_login(estate.outsider)
    assert client.get(reverse("announcement-detail", args=[announcement.pk])).status_code == 404
    assert "停水通知" not in html(client.get(reverse("announcements")))


# --- activities ----------------------------------------------------------------------------------


def test_a_resident_signs_up_on_the_activity_page_and_cancels(client, estate):
    activity = estate.activity()
    client.force_login(estate.owner)
    detail = reverse("activity-detail", args=[activity.pk])
    assert reverse("activity-signup", args=[activity.pk]) in html(client.get(detail))

    client.post(reverse("activity-signup", args=[activity.pk]))
    page = html(client.get(detail))
    assert reverse("activity-cancel", args=[activity.pk]) in page
    assert ActivitySignup.objects.filter(activity=activity, user=estate.owner).exists()

    client.post(reverse("activity-cancel", args=[activity.pk]))
    assert not ActivitySignup.objects.exists()


def test_the_qr_link_opens_the_check_in_with_the_code_filled_in(client, estate):
    activity = estate.activity(in_hours=-0.5, hours=Decimal("2.5"))
    client.force_login(estate.owner)
    url = reverse("activity-checkin", args=[activity.pk])

    form = html(client.get(url, {"code": activity.checkin_code}))
    assert f'value="{activity.checkin_code}"' in form
    response = client.post(url, {"code": activity.checkin_code}, follow=True)

    assert "2.5" in html(response)
    assert ActivityCheckin.objects.get().hours == Decimal("2.5")
    assert "2.5" in html(client.get(reverse("activities")))  # my volunteering hours


def test_a_wrong_code_on_the_page_says_so_and_records_nothing(client, estate):
    activity = estate.activity(in_hours=-0.5)
    client.force_login(estate.owner)
    response = client.post(reverse("activity-checkin", args=[activity.pk]), {"code": "x"})
    assert 'role="alert"' in html(response)
    assert not ActivityCheckin.objects.exists()


def test_the_organisers_page_shows_the_code_the_qr_and_checks_people_in(client, estate):
    activity = estate.activity(in_hours=-0.5)
    services.activity_signup(activity=activity, user=estate.tenant)
    client.force_login(estate.staff)

    page = html(client.get(reverse("activity-manage", args=[activity.pk])))

    assert activity.checkin_code in page
    assert "<svg" in page and "<path" in page  # the QR code, drawn on the server
    assert estate.tenant.get_display_name() in page
    client.post(
        reverse("activity-checkin-manual", args=[activity.pk]),
        {"user": estate.tenant.pk, "hours": "1.5"},
    )
    client.post(
        reverse("activity-checkin-manual", args=[activity.pk]),
        {"user": estate.owner.pk, "hours": "3"},
    )
    hours = dict(ActivityCheckin.objects.values_list("user", "hours"))
    assert hours == {estate.tenant.pk: Decimal("1.5"), estate.owner.pk: Decimal("3.0")}


def test_residents_and_the_committee_do_not_get_the_organisers_page(client, estate):
    activity = estate.activity(in_hours=-0.5)
    for user in (estate.owner, estate.committee):
        client.force_login(user)
        assert client.get(reverse("activity-manage", args=[activity.pk])).status_code == 403
        response = client.post(
            reverse("activity-checkin-manual", args=[activity.pk]), {"user": estate.owner.pk}
        )
        assert response.status_code == 403
    assert not ActivityCheckin.objects.exists()


def test_staff_create_an_activity_from_the_form(client, estate):
    client.force_login(estate.staff)
    starts = timezone.localtime() + timedelta(days=2)
    response = client.post(
        reverse("activity-new"),
        {
            "community": estate.community.pk,
            "kind": "volunteering",
            "title": "植树",
            "place": "中心花园",
            "starts_at": starts.strftime("%Y-%m-%dT%H:%M"),
            "ends_at": (starts + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
            "capacity": "15",
        },
    )
    activity = Activity.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("activity-manage", args=[activity.pk])
    assert (activity.hours, activity.organiser) == (Decimal("2.0"), estate.staff)


def test_a_resident_of_another_community_gets_404_on_every_activity_page(client, estate):
    activity = estate.activity(in_hours=-0.5)
    client.force_login(estate.outsider)
    for name in ("activity-detail", "activity-checkin", "activity-manage"):
        assert client.get(reverse(name, args=[activity.pk])).status_code == 404
    for name in ("activity-signup", "activity-cancel", "activity-checkin-manual"):
        assert client.post(reverse(name, args=[activity.pk])).status_code == 404
    assert activity.title not in html(client.get(reverse("activities")))
    assert not ActivitySignup.objects.exists()


# --- consultations -------------------------------------------------------------------------------


def test_an_owner_votes_on_the_page_and_may_change_it(client, estate):
    consultation = estate.consultation()
    client.force_login(estate.owner)
    url = reverse("consultation-detail", args=[consultation.pk])
    assert reverse("consultation-vote", args=[consultation.pk]) in html(client.get(url))

    vote = reverse("consultation-vote", args=[consultation.pk])
    client.post(vote, {"option": option(consultation, "同意").pk, "household": estate.flat.pk})
    client.post(vote, {"option": option(consultation, "反对").pk, "household": estate.flat.pk})

    assert Ballot.objects.get().option.label == "反对"
    assert "反对" in html(client.get(url))


def test_a_tenant_sees_the_question_but_no_ballot(client, estate):
    consultation = estate.consultation()
    client.force_login(estate.tenant)
    page = html(client.get(reverse("consultation-detail", args=[consultation.pk])))
    assert consultation.title in page
    assert reverse("consultation-vote", args=[consultation.pk]) not in page
    client.post(
        reverse("consultation-vote", args=[consultation.pk]),
        {"option": option(consultation, "同意").pk},
    )
    assert not Ballot.objects.exists()


def test_after_closing_everyone_in_the_estate_sees_both_majorities(client, estate):
    now = timezone.now()
    consultation = estate.consultation(
        opens_at=now - timedelta(days=8), closes_at=now, secret_ballot=False
    )
    landlord = resident(estate.rented, user__username="landlord")
    for user in (estate.owner, landlord):
        services.consultation_vote(
            consultation=consultation,
            user=user,
            option=option(consultation, "同意"),
            at=now - timedelta(days=1),
        )
    client.force_login(estate.tenant)
    page = html(client.get(reverse("consultation-detail", args=[consultation.pk])))
    assert "100.00%" in page  # turnout by households and by area: everyone voted
    assert "179.00" in page  # the area that voted: 2 × 89.50 m²
    assert "Ballots" not in page and "投票明细" not in page

    client.force_login(estate.committee)
    page = html(client.get(reverse("consultation-detail", args=[consultation.pk])))
    assert landlord.get_display_name() in page  # who voted how, for the committee
    listing = html(client.get(reverse("consultations")))
    assert consultation.title in listing


def test_the_committee_opens_a_consultation_from_the_form(client, estate):
    client.force_login(estate.committee)
    now = timezone.localtime()
    response = client.post(
        reverse("consultation-new"),
        {
            "community": estate.community.pk,
            "title": "更换门禁",
            "description": "拟更换单元门禁。",
            "options": "同意\n反对\n弃权\n",
            "opens_at": now.strftime("%Y-%m-%dT%H:%M"),
            "closes_at": (now + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M"),
            "rule": "special",
        },
    )
    consultation = Consultation.objects.get()
    assert response.status_code == 302
    assert [(o.label, o.approves) for o in consultation.options.all()] == [
        ("同意", True),
        ("反对", False),
        ("弃权", False),
    ]
    assert (consultation.approval_numerator, consultation.approval_denominator) == (3, 4)
    assert consultation.approval_inclusive is True
    assert consultation.secret_ballot is False  # the box was left unticked


def test_a_resident_of_another_community_gets_404_on_consultation_pages(client, estate):
    consultation = estate.consultation()
    client.force_login(estate.outsider)
    assert client.get(reverse("consultation-detail", args=[consultation.pk])).status_code == 404
    response = client.post(
        reverse("consultation-vote", args=[consultation.pk]),
        {"option": option(consultation, "同意").pk},
    )
    assert response.status_code == 404
    assert consultation.title not in html(client.get(reverse("consultations")))


# --- query counts --------------------------------------------------------------------------------


def test_the_list_pages_cost_the_same_queries_for_many_rows(
    client, estate, django_assert_max_num_queries
):
    now = timezone.now()
    neighbours = [resident(HouseholdFactory(building=estate.flat.building)) for _ in range(3)]
    for number in range(12):
        activity = estate.activity(in_hours=number * 10 - 60, title=f"活动{number}")
        for user in [estate.owner, *neighbours]:
            services.activity_signup(activity=activity, user=user, at=activity.starts_at)
        services.announcement_publish(
            author=estate.staff, community=estate.community, title=f"通知{number}", body="…"
        )
        estate.consultation(title=f"事项{number}", opens_at=now - timedelta(days=9), closes_at=now)
    client.force_login(estate.owner)
    client.get(reverse("consultations"))  # the first reading after closing tallies them

    # Session and user: 2; then a few per section, none per row.
    for url, limit in [
        (reverse("resident-home"), 8),
        (reverse("announcements"), 6),
        (reverse("activities"), 7),
        (reverse("consultations"), 7),
        (reverse("consultation-detail", args=[Consultation.objects.first().pk]), 6),
    ]:
        with django_assert_max_num_queries(limit):
            html(client.get(url))
    client.force_login(estate.staff)
    with django_assert_max_num_queries(7):
        html(client.get(reverse("activity-manage", args=[activity.pk])))
