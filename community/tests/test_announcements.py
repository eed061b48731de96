"""Announcements: who posts to whom, what a resident's board shows (pinned first, newest first,
expired ones gone), and unread marking per person."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from community import selectors, services
from community.models import Announcement, AnnouncementRead, Role
from community.tests.factories import CommunityFactory, HouseholdFactory, member, resident
from community.tests.life import build_estate

pytestmark = pytest.mark.django_db

LIST = reverse("api-announcements")


def post(estate, author, **fields):
    values = {"author": author, "title": "停水通知", "body": "明天停水。"} | fields
    if "centre" not in values:
        values.setdefault("community", estate.community)
    return services.announcement_publish(**values)


def titles(client) -> list[str]:
    return [row["title"] for row in client.get(LIST).data["results"]]


def test_each_organisation_posts_in_its_own_name(as_user):
    estate = build_estate()
    cases = [
        (estate.centre_admin, "centre", estate.community.centre.name),
        (estate.staff, "company", estate.community.company.name),
        (estate.committee, "committee", estate.community.committee.name),
    ]
    for author, source, publisher in cases:
        response = as_user(author).post(
            LIST, {"community": estate.community.pk, "title": source, "body": "…"}
        )
        assert response.status_code == 201, response.data
        assert (response.data["source"], response.data["publisher"]) == (source, publisher)
    assert Announcement.objects.count() == 3


def test_the_centre_posts_to_all_of_its_communities_and_nobody_else_can(as_user):
    estate = build_estate()
    sister = CommunityFactory(centre=estate.community.centre, name="姐妹小区")
    sister_resident = resident(HouseholdFactory(building__community=sister))
    centre = estate.community.centre.pk

    response = as_user(estate.centre_admin).post(
        LIST, {"centre": centre, "title": "中心通知", "body": "…"}
    )

    assert response.status_code == 201
    assert (response.data["community"], response.data["source"]) == (None, "centre")
    assert titles(as_user(estate.owner)) == ["中心通知"]
    assert titles(as_user(sister_resident)) == ["中心通知"]
    assert titles(as_user(estate.outsider)) == []  # another centre
    for author in (estate.staff, estate.committee):
        refused = as_user(author).post(LIST, {"centre": centre, "title": "x", "body": "…"})
        assert refused.status_code == 403
    assert Announcement.objects.count() == 1


@pytest.mark.parametrize("who", ["owner", "tenant"])
def test_residents_do_not_post(as_user, who):
    estate = build_estate()
    response = as_user(getattr(estate, who)).post(
        LIST, {"community": estate.community.pk, "title": "x", "body": "…"}
    )
    assert response.status_code == 403
    assert not Announcement.objects.exists()


def test_one_person_with_two_roles_says_on_whose_behalf(as_user):
    estate = build_estate()
    both = member(Role.COMMITTEE_MEMBER, community=estate.community)
    both.memberships.create(role=Role.PROPERTY_STAFF, company=estate.community.company)
    client = as_user(both)
    body = {"community": estate.community.pk, "title": "x", "body": "…"}

    assert client.post(LIST, body).status_code == 400
    response = client.post(LIST, body | {"source": "committee"})
    assert (response.status_code, response.data["source"]) == (201, "committee")
    assert client.post(LIST, body | {"source": "centre"}).status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        {"title": "x", "body": "…"},  # neither community nor centre
        {"community": 0, "title": "x", "body": "…"},
        {"community": 2**70, "title": "x", "body": "…"},
        {"community": "A", "title": "", "body": "…"},
        {"community": "A", "title": "x", "body": ""},
        {"community": "A", "title": "x" * 121, "body": "…"},
        {"community": "A", "title": "x", "body": "…", "source": "mayor"},
        {"community": "A", "title": "x", "body": "…", "expires_at": "soon"},
        {"community": "A", "title": "x", "body": "…", "expires_at": "2000-01-01T00:00:00Z"},
        {"community": "A", "centre": "C", "title": "x", "body": "…"},  # both
        {"community": "B", "title": "x", "body": "…"},  # another centre's estate
    ],
)
def test_bad_input_is_400_and_posts_nothing(as_user, body):
    estate = build_estate()
    ids = {"A": estate.community.pk, "B": estate.other.pk, "C": estate.community.centre.pk}
    body = {k: ids.get(v, v) if isinstance(v, str) else v for k, v in body.items()}
    response = as_user(estate.centre_admin).post(LIST, body, format="json")
    assert response.status_code == 400, response.data
    assert not Announcement.objects.exists()


def test_the_board_shows_pinned_first_then_newest_and_hides_expired_and_future(as_user):
    estate = build_estate()
    now = timezone.now()
    post(estate, estate.staff, title="旧通知", published_at=now - timedelta(days=5))
    post(estate, estate.staff, title="新通知", published_at=now - timedelta(days=1))
    post(estate, estate.committee, title="置顶", pinned=True, published_at=now - timedelta(days=9))
    post(
        estate,
        estate.staff,
        title="过期",
        published_at=now - timedelta(days=3),
        expires_at=now - timedelta(minutes=1),
    )
    post(estate, estate.staff, title="明天发布", published_at=now + timedelta(days=1))

    assert titles(as_user(estate.tenant)) == ["置顶", "新通知", "旧通知"]
    expired = Announcement.objects.get(title="过期")
    url = reverse("api-announcement", args=[expired.pk])
    assert as_user(estate.tenant).get(url).status_code == 404


def test_unread_marking_is_per_person(as_user):
    estate = build_estate()
    first = post(estate, estate.staff, title="一")
    post(estate, estate.staff, title="二")
    read_url = reverse("api-announcement-read", args=[first.pk])

    assert as_user(estate.owner).post(read_url).status_code == 204
    assert as_user(estate.owner).post(read_url).status_code == 204  # again: no change

    def flags(user):
        return {row["title"]: row["read"] for row in as_user(user).get(LIST).data["results"]}

    assert flags(estate.owner) == {"一": True, "二": False}
    assert flags(estate.tenant) == {"一": False, "二": False}
    assert AnnouncementRead.objects.count() == 1
    assert selectors.announcement_unread_count(user=estate.owner) == 1
    services.announcement_mark_all_read(user=estate.owner)
    assert selectors.announcement_unread_count(user=estate.owner) == 0


def test_a_resident_of_another_community_sees_none_of_it(as_user):
    estate = build_estate()
    announcement = post(estate, estate.staff)
    client = as_user(estate.outsider)
    assert client.get(LIST).data["count"] == 0
    assert client.get(reverse("api-announcement", args=[announcement.pk])).status_code == 404
    read_url = reverse("api-announcement-read", args=[announcement.pk])
    assert client.post(read_url).status_code == 404
    assert not AnnouncementRead.objects.exists()


def test_the_board_costs_the_same_queries_for_many_announcements(
    as_user, django_assert_max_num_queries
):
    estate = build_estate()
    for number in range(25):
        author = (estate.staff, estate.committee, estate.centre_admin)[number % 3]
        post(estate, author, title=f"通知{number}")
    post(estate, estate.centre_admin, centre=estate.community.centre, title="全中心")
    client = as_user(estate.owner)
    with django_assert_max_num_queries(3):
        response = client.get(LIST)
    assert response.data["count"] == 26
