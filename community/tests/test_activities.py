"""Activities and volunteering: creating, signing up within capacity, cancelling, checking in
once (by the door code or by the organiser) with hours, and the activity_checked_in event."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from community import events, services
from community.models import Activity, ActivityCheckin, ActivitySignup, Role
from community.tests.factories import HouseholdFactory, member, resident
from community.tests.life import build_estate

pytestmark = pytest.mark.django_db

LIST = reverse("api-activities")


def signup_url(activity) -> str:
    return reverse("api-activity-signup", args=[activity.pk])


def checkin_url(activity) -> str:
    return reverse("api-activity-checkin", args=[activity.pk])


def payload(estate, **overrides) -> dict:
    starts = timezone.now() + timedelta(days=3)
    return {
        "community": estate.community.pk,
        "kind": "volunteering",
        "title": "楼道清理志愿服务",
        "place": "1幢至4幢楼道",
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=3)).isoformat(),
        "capacity": 20,
    } | overrides


@pytest.fixture
def received():
    """The activity_checked_in events sent, as payload dicts."""
    sent = []

    def receiver(sender, **payload):
        payload.pop("signal")
        sent.append({"sender": sender, **payload})

    events.activity_checked_in.connect(receiver, dispatch_uid="test-received")
    yield sent
    events.activity_checked_in.disconnect(dispatch_uid="test-received")


# --- creating ------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["staff", "centre_admin"])
def test_the_company_or_the_centre_creates_an_activity(as_user, who):
    estate = build_estate()
    response = as_user(getattr(estate, who)).post(LIST, payload(estate), format="json")

    assert response.status_code == 201, response.data
    body = response.data
    assert {k: body[k] for k in ("kind", "capacity", "signed_up", "places_left")} == {
        "kind": "volunteering",
        "capacity": 20,
        "signed_up": 0,
        "places_left": 20,
    }
    assert body["hours"] == "3.0"  # the session's length by default
    assert body["organiser"] == getattr(estate, who).pk
    assert len(Activity.objects.get().checkin_code) == 6


def test_an_event_credits_no_hours_and_refuses_them(as_user):
    estate = build_estate()
    client = as_user(estate.staff)
    ok = client.post(LIST, payload(estate, kind="event"), format="json")
    assert (ok.status_code, ok.data["hours"]) == (201, "0.0")
    refused = client.post(LIST, payload(estate, kind="event", hours="2.0"), format="json")
    assert refused.status_code == 400
    assert Activity.objects.count() == 1


@pytest.mark.parametrize("who", ["owner", "tenant", "committee"])
def test_residents_and_the_committee_do_not_organise(as_user, who):
    estate = build_estate()
    response = as_user(getattr(estate, who)).post(LIST, payload(estate), format="json")
    assert response.status_code == 403
    assert not Activity.objects.exists()


@pytest.mark.parametrize(
    "overrides",
    [
        {"kind": "party"},
        {"capacity": 0},
        {"capacity": 10001},
        {"capacity": "many"},
        {"title": ""},
        {"place": ""},
        {"starts_at": "tomorrow"},
        {"ends_at": (timezone.now() + timedelta(days=2)).isoformat()},  # before it starts
        {"hours": "24.5"},
        {"hours": "-1"},
        {"hours": "1.25"},
        {"community": 999_999},
        {"community": 2**70},
        {
            "starts_at": (timezone.now() - timedelta(days=2)).isoformat(),
            "ends_at": (timezone.now() - timedelta(days=1)).isoformat(),
        },  # over already
    ],
)
def test_bad_input_is_400_and_creates_nothing(as_user, overrides):
    estate = build_estate()
    response = as_user(estate.staff).post(LIST, payload(estate, **overrides), format="json")
    assert response.status_code == 400, response.data
    assert not Activity.objects.exists()


def test_staff_of_another_company_cannot_name_this_community(as_user):
    estate = build_estate()
    theirs = member(Role.PROPERTY_STAFF, company=estate.other.company)
    response = as_user(theirs).post(LIST, payload(estate), format="json")
    assert response.status_code == 400
    assert "community" in response.data
    assert not Activity.objects.exists()


# --- signing up ----------------------------------------------------------------------------------


def test_a_resident_signs_up_and_cancels(as_user):
    estate = build_estate()
    activity = estate.activity(capacity=2)
    client = as_user(estate.tenant)  # tenants and family take part like owners

    response = client.post(signup_url(activity))

    assert response.status_code == 201
    assert (response.data["signed_up"], response.data["me"]["signed_up"]) == (1, True)
    assert client.delete(signup_url(activity)).status_code == 204
    activity.refresh_from_db()
    assert activity.signed_up == 0
    assert not ActivitySignup.objects.exists()


def test_signing_up_twice_is_409_and_takes_one_place(as_user):
    estate = build_estate()
    activity = estate.activity()
    client = as_user(estate.owner)
    assert client.post(signup_url(activity)).status_code == 201
    assert client.post(signup_url(activity)).status_code == 409
    activity.refresh_from_db()
    assert activity.signed_up == 1
    assert ActivitySignup.objects.count() == 1


def test_a_full_activity_is_409(as_user):
    estate = build_estate()
    activity = estate.activity(capacity=2)
    assert as_user(estate.owner).post(signup_url(activity)).status_code == 201
    assert as_user(estate.family).post(signup_url(activity)).status_code == 201
    assert as_user(estate.tenant).post(signup_url(activity)).status_code == 409
    activity.refresh_from_db()
    assert activity.signed_up == 2
    assert not ActivitySignup.objects.filter(user=estate.tenant).exists()


def test_a_cancelled_place_can_be_taken_by_someone_else(as_user):
    estate = build_estate()
    activity = estate.activity(capacity=1)
    as_user(estate.owner).post(signup_url(activity))
    as_user(estate.owner).delete(signup_url(activity))
    assert as_user(estate.tenant).post(signup_url(activity)).status_code == 201


def test_staff_who_live_elsewhere_do_not_sign_up(as_user):
    estate = build_estate()
    activity = estate.activity()
    assert as_user(estate.staff).post(signup_url(activity)).status_code == 403
    assert not ActivitySignup.objects.exists()


def test_sign_up_after_the_end_is_409(as_user):
    estate = build_estate()
    activity = estate.activity(in_hours=-5, length_hours=2)
    assert as_user(estate.owner).post(signup_url(activity)).status_code == 409
    assert not ActivitySignup.objects.exists()


def test_cancelling_without_a_place_is_404(as_user):
    estate = build_estate()
    activity = estate.activity()
    assert as_user(estate.owner).delete(signup_url(activity)).status_code == 404


def test_cancelling_after_checking_in_is_409(as_user):
    estate = build_estate()
    activity = estate.activity(in_hours=-0.5)
    as_user(estate.owner).post(signup_url(activity))
    as_user(estate.owner).post(checkin_url(activity), {"code": activity.checkin_code})
    assert as_user(estate.owner).delete(signup_url(activity)).status_code == 409
    activity.refresh_from_db()
    assert activity.signed_up == 1


# --- checking in ---------------------------------------------------------------------------------


def test_a_resident_checks_in_with_the_door_code_and_is_credited_the_hours(
    as_user, received, django_capture_on_commit_callbacks
):
    estate = build_estate()
    activity = estate.activity(in_hours=-0.5, hours=Decimal("2.5"))
    as_user(estate.owner).post(signup_url(activity))

    with django_capture_on_commit_callbacks(execute=True):
        response = as_user(estate.owner).post(
            checkin_url(activity), {"code": activity.checkin_code}
        )

    assert response.status_code == 201
    assert (response.data["method"], response.data["hours"]) == ("code", "2.5")
    checkin = ActivityCheckin.objects.get()
    assert received == [
        {
            "sender": ActivityCheckin,
            "checkin_id": checkin.pk,
            "activity_id": activity.pk,
            "community_id": estate.community.pk,
            "user_id": estate.owner.pk,
            "kind": "volunteering",
            "hours": "2.5",
            "checked_in_at": checkin.checked_in_at.isoformat(),
        }
    ]
    me = as_user(estate.owner).get(reverse("api-activity", args=[activity.pk])).data["me"]
    assert me == {"signed_up": True, "checked_in": True, "hours": "2.5"}


def test_checking_in_twice_is_409_and_announces_once(
    as_user, received, django_capture_on_commit_callbacks
):
    estate = build_estate()
    activity = estate.activity(in_hours=-0.5)
    with django_capture_on_commit_callbacks(execute=True):
        first = as_user(estate.owner).post(checkin_url(activity), {"code": activity.checkin_code})
        again = as_user(estate.owner).post(checkin_url(activity), {"code": activity.checkin_code})
        by_staff = as_user(estate.staff).post(checkin_url(activity), {"user": estate.owner.pk})

    assert (first.status_code, again.status_code, by_staff.status_code) == (201, 409, 409)
    assert ActivityCheckin.objects.count() == 1
    assert len(received) == 1


def test_an_event_check_in_announces_zero_hours(
    as_user, received, django_capture_on_commit_callbacks
):
    estate = build_estate()
    activity = estate.activity(in_hours=-0.5, kind=Activity.Kind.EVENT)
    with django_capture_on_commit_callbacks(execute=True):
        as_user(estate.owner).post(checkin_url(activity), {"code": activity.checkin_code})
    assert [(e["kind"], e["hours"]) for e in received] == [("event", "0")]


def test_the_organiser_checks_a_resident_in_with_the_hours_worked(
    as_user, received, django_capture_on_commit_callbacks
):
    estate = build_estate()
    activity = estate.activity(in_hours=-3, length_hours=3)  # just over
    with django_capture_on_commit_callbacks(execute=True):
        response = as_user(estate.centre_admin).post(
            checkin_url(activity), {"user": estate.family.pk, "hours": "2"}, format="json"
        )

    assert response.status_code == 201
    checkin = ActivityCheckin.objects.get()
    assert (checkin.method, checkin.hours, checkin.recorded_by) == (
        "organiser",
        Decimal("2.0"),
        estate.centre_admin,
    )
    assert received[0]["hours"] == "2"
    # A walk-in takes a place.
    activity.refresh_from_db()
    assert activity.signed_up == 1
    assert ActivitySignup.objects.filter(user=estate.family).exists()


def test_a_walk_in_on_a_full_activity_is_409(as_user):
    estate = build_estate()
    activity = estate.activity(in_hours=-0.5, capacity=1)
    services.activity_signup(activity=activity, user=estate.tenant, at=activity.starts_at)
    response = as_user(estate.owner).post(checkin_url(activity), {"code": activity.checkin_code})
    assert response.status_code == 409
    assert not ActivityCheckin.objects.exists()
    activity.refresh_from_db()
    assert activity.signed_up == 1


def test_a_wrong_code_is_400_and_records_nothing(as_user):
    estate = build_estate()
    activity = estate.activity(in_hours=-0.5)
    wrong = f"{(int(activity.checkin_code) + 1) % 1_000_000:06d}"
    response = as_user(estate.owner).post(checkin_url(activity), {"code": wrong})
    assert response.status_code == 400
    assert "code" in response.data
    assert not ActivityCheckin.objects.exists()


def test_the_code_works_only_around_the_activitys_time(as_user):
    estate = build_estate()
    early = estate.activity(in_hours=2)
    late = estate.activity(in_hours=-6, length_hours=3, title="昨天的")
    for activity in (early, late):
        response = as_user(estate.owner).post(
            checkin_url(activity), {"code": activity.checkin_code}
        )
        assert response.status_code == 409
    assert not ActivityCheckin.objects.exists()
    # The organiser can still record attendance afterwards, not before.
    assert (
        as_user(estate.staff).post(checkin_url(late), {"user": estate.owner.pk}).status_code == 201
    )
    assert (
        as_user(estate.staff).post(checkin_url(early), {"user": estate.owner.pk}).status_code == 409
    )


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"code": "123456", "user": 1},
        {"user": "someone"},
        {"user": 999_999},
        {"user": 2**70},
        {"user": None},
        {"hours": "3"},
    ],
)
def test_bad_check_in_requests_are_400(as_user, body):
    estate = build_estate()
    activity = estate.activity(in_hours=-0.5)
    response = as_user(estate.staff).post(checkin_url(activity), body, format="json")
    assert response.status_code == 400, response.data
    assert not ActivityCheckin.objects.exists()


def test_the_organiser_cannot_check_in_someone_from_elsewhere_or_give_bad_hours(as_user):
    estate = build_estate()
    activity = estate.activity(in_hours=-0.5)
    client = as_user(estate.staff)
    assert client.post(checkin_url(activity), {"user": estate.outsider.pk}).status_code == 400
    for hours in ("25", "-1", "0.25"):
        response = client.post(checkin_url(activity), {"user": estate.owner.pk, "hours": hours})
        assert response.status_code == 400
    event = estate.activity(in_hours=-0.5, kind=Activity.Kind.EVENT, title="百家宴")
    assert (
        client.post(checkin_url(event), {"user": estate.owner.pk, "hours": "2"}).status_code == 400
    )
    assert not ActivityCheckin.objects.exists()


def test_residents_do_not_check_others_in(as_user):
    estate = build_estate()
    activity = estate.activity(in_hours=-0.5)
    response = as_user(estate.owner).post(checkin_url(activity), {"user": estate.tenant.pk})
    assert response.status_code == 403
    assert not ActivityCheckin.objects.exists()


def test_the_committee_does_not_check_people_in(as_user):
    estate = build_estate()
    activity = estate.activity(in_hours=-0.5)
    response = as_user(estate.committee).post(checkin_url(activity), {"user": estate.owner.pk})
    assert response.status_code == 403


# --- the organiser's participants list -----------------------------------------------------------


def test_the_organiser_sees_participants_and_the_door_code(as_user):
    estate = build_estate()
    activity = estate.activity(in_hours=-0.5)
    as_user(estate.owner).post(signup_url(activity))
    as_user(estate.tenant).post(signup_url(activity))
    as_user(estate.tenant).post(checkin_url(activity), {"code": activity.checkin_code})
    url = reverse("api-activity-participants", args=[activity.pk])

    body = as_user(estate.staff).get(url).data

    assert body["checkin_code"] == activity.checkin_code
    rows = [(p["user"], p["homes"], p["hours"]) for p in body["participants"]]
    assert rows == [
        (estate.owner.pk, [f"{estate.flat.building.name} 101"], None),
        (estate.tenant.pk, [f"{estate.flat.building.name} 102"], "3.0"),
    ]
    assert as_user(estate.owner).get(url).status_code == 403
    assert as_user(estate.committee).get(url).status_code == 403


# --- scope and lists -----------------------------------------------------------------------------


def test_a_resident_of_another_community_sees_none_of_it(as_user):
    estate = build_estate()
    activity = estate.activity(in_hours=-0.5)
    client = as_user(estate.outsider)
    assert client.get(LIST).data["count"] == 0
    assert client.get(reverse("api-activity", args=[activity.pk])).status_code == 404
    assert client.post(signup_url(activity)).status_code == 404
    assert client.delete(signup_url(activity)).status_code == 404
    assert client.post(checkin_url(activity), {"code": activity.checkin_code}).status_code == 404
    url = reverse("api-activity-participants", args=[activity.pk])
    assert client.get(url).status_code == 404
    assert not ActivitySignup.objects.exists()
    assert not ActivityCheckin.objects.exists()


def test_the_list_filters_and_orders(as_user):
    estate = build_estate()
    estate.activity(in_hours=48, title="后天")
    estate.activity(in_hours=24, title="明天", kind=Activity.Kind.EVENT)
    estate.activity(in_hours=-48, title="前天")
    client = as_user(estate.owner)

    def titles(**params):
        return [row["title"] for row in client.get(LIST, params).data["results"]]

    assert titles(when="upcoming") == ["明天", "后天"]
    assert titles(when="past") == ["前天"]
    assert titles(kind="event") == ["明天"]
    assert titles() == ["后天", "明天", "前天"]
    assert titles(community=estate.other.pk) == []
    for bad in ({"when": "soon"}, {"kind": "party"}, {"community": "x"}, {"community": 2**70}):
        assert client.get(LIST, bad).status_code == 400


def test_the_list_costs_the_same_queries_for_many_activities(
    as_user, django_assert_max_num_queries
):
    estate = build_estate()
    for number in range(15):
        activity = estate.activity(in_hours=-0.5 + number, title=f"活动{number}")
        services.activity_signup(activity=activity, user=estate.owner)
    others = [resident(HouseholdFactory(building=estate.flat.building)) for _ in range(3)]
    for other in others:
        services.activity_signup(activity=activity, user=other)

    with django_assert_max_num_queries(4):
        response = as_user(estate.owner).get(LIST)

    assert response.data["count"] == 15
    assert all(row["me"]["signed_up"] for row in response.data["results"])
