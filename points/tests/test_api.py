"""GET /api/v1/points/ (contract: API.md "points"), the leaderboard and the opt-out."""

import pytest

from community.models import Role
from community.periods import Period
from community.tests.factories import HouseholdFactory, member, resident
from points import services
from points.tests.factories import Estate, at, give_contribution

pytestmark = pytest.mark.django_db


@pytest.fixture
def estate():
    return Estate()


def test_points_shows_both_balances_and_the_history_with_reasons(estate, as_user):
    services.award_for_payment(
        payment_id=1, payer_id=estate.alice.pk, paid_at=at(day=3), on_time=True, months_prepaid=0
    )
    services.award_for_checkin(
        checkin_id=2,
        user_id=estate.alice.pk,
        kind="volunteering",
        hours="1.5",
        checked_in_at=at(day=5),
    )

    response = as_user(estate.alice).get("/api/v1/points/", HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 200
    body = response.json()
    assert (body["reputation"], body["contribution"], body["level"]) == (10, 15, "Newcomer")
    assert body["companies"] == []
    assert body["leaderboard_opt_out"] is False
    assert [
        (e["kind"], e["amount"], e["reason"], e["type"], e["source"]) for e in body["entries"]
    ] == [
        ("contribution", 15, "Volunteering: 1.5 h", "award", "volunteer_hour"),
        ("reputation", 10, "Paid the property fee on time", "award", "payment_on_time"),
    ]
    assert {"created_at", "occurred_at"} <= set(body["entries"][0])


def test_points_of_someone_with_none_yet_are_zero(estate, as_user):
    body = as_user(estate.bob).get("/api/v1/points/").json()
    assert (body["reputation"], body["contribution"], body["entries"]) == (0, 0, [])


def test_property_staff_see_their_companys_reward_points(estate, as_user):
    services.award_for_ticket_resolved(
        ticket_id=5,
        community_id=estate.community.pk,
        resolved_at=at(),
        within_sla=True,
        first_resolution=True,
    )
    body = as_user(estate.staff).get("/api/v1/points/", HTTP_ACCEPT_LANGUAGE="en").json()
    assert [(c["id"], c["reward_points"]) for c in body["companies"]] == [(estate.company.pk, 2)]
    assert [e["reason"] for e in body["companies"][0]["entries"]] == [
        "A ticket handled within its deadlines"
    ]
    # Nobody else sees the company's points.
    assert as_user(estate.alice).get("/api/v1/points/").json()["companies"] == []


def test_points_need_a_sign_in(api_client):
    assert api_client.get("/api/v1/points/").status_code == 401


def test_points_query_count_does_not_grow_with_the_history(
    estate, as_user, django_assert_max_num_queries
):
    for n in range(30):
        services.award_for_checkin(
            checkin_id=n,
            user_id=estate.alice.pk,
            kind="volunteering",
            hours="1",
            checked_in_at=at(),
        )
    client = as_user(estate.alice)
    with django_assert_max_num_queries(6):
        response = client.get("/api/v1/points/")
    assert len(response.json()["entries"]) == 30


def test_the_opt_out_is_read_and_changed(estate, as_user):
    client = as_user(estate.alice)
    assert client.get("/api/v1/points/profile/").json() == {"leaderboard_opt_out": False}
    response = client.patch("/api/v1/points/profile/", {"leaderboard_opt_out": True})
    assert response.json() == {"leaderboard_opt_out": True}
    assert client.get("/api/v1/points/").json()["leaderboard_opt_out"] is True
    assert (
        client.patch("/api/v1/points/profile/", {"leaderboard_opt_out": "maybe"}).status_code == 400
    )
    assert client.get("/api/v1/points/profile/").json() == {"leaderboard_opt_out": True}


# --- leaderboard ------------------------------------------------------------------------------


def leaderboard(client, community, period="2019-08"):
    return client.get(f"/api/v1/points/leaderboard/?community={community.pk}&period={period}")


def test_the_leaderboard_ranks_the_months_contribution_and_respects_opt_outs(estate, as_user):
    carol = resident(HouseholdFactory(building=estate.household.building))
    give_contribution(estate.alice, 30, when=at(day=2))
    give_contribution(estate.bob, 50, when=at(day=3))
    give_contribution(carol, 40, when=at(day=4))
    give_contribution(estate.alice, 99, when=at(day=4, month=9))  # another month
    give_contribution(estate.stranger, 80, when=at(day=4))  # another community
    services.leaderboard_opt_out_set(user=carol, opt_out=True)

    body = leaderboard(as_user(estate.alice), estate.community).json()

    assert body["period"] == "2019-08"
    assert [(r["rank"], r["name"], r["contribution"]) for r in body["results"]] == [
        (1, estate.bob.display_name, 50),
        (2, estate.alice.display_name, 30),
    ]


def test_the_leaderboard_is_not_lowered_by_spending(estate, as_user):
    give_contribution(estate.alice, 30, when=at(day=2))
    services.reward_redeem(
        user=estate.alice, reward_id=estate.reward.pk, idempotency_key="k", fingerprint="f"
    )
    current = str(Period.current())
    give_contribution(estate.bob, 20)
    body = leaderboard(as_user(estate.alice), estate.community, period=current).json()
    assert [r["contribution"] for r in body["results"]] == [20]
    august = leaderboard(as_user(estate.alice), estate.community).json()
    assert [r["contribution"] for r in august["results"]] == [30]


def test_the_leaderboard_of_a_community_out_of_sight_is_not_found(estate, as_user):
    assert leaderboard(as_user(estate.alice), estate.other_community).status_code == 404
    committee = member(Role.COMMITTEE_MEMBER, community=estate.community)
    assert leaderboard(as_user(committee), estate.community).status_code == 200


@pytest.mark.parametrize(
    "query", ["", "?community=abc", "?community=0", "?community={pk}&period=2019-13"]
)
def test_the_leaderboard_refuses_bad_input(estate, as_user, query):
    response = as_user(estate.alice).get(
        "/api/v1/points/leaderboard/" + query.format(pk=estate.community.pk)
    )
    assert response.status_code == 400


def test_the_leaderboard_is_one_query_whatever_the_crowd(
    estate, as_user, django_assert_max_num_queries
):
    for _ in range(25):
        give_contribution(resident(HouseholdFactory(building=estate.household.building)), 10)
    client = as_user(estate.alice)
    with django_assert_max_num_queries(5):
        response = leaderboard(client, estate.community, period=str(Period.current()))
    assert len(response.json()["results"]) == 20
