"""The points pages: the resident's points, the catalogue and redeeming from it, the
leaderboard, the company's reward points, and the provider's code page."""

import pytest
from django.urls import reverse

from community.tests.factories import HouseholdFactory, resident
from points import services
from points.models import Redemption, Reward
from points.tests.factories import Estate, at, contribution, give_contribution, give_reputation

pytestmark = pytest.mark.django_db


@pytest.fixture
def estate():
    return Estate()


@pytest.fixture
def signed_in(client, settings):
    """Signed in, reading the pages in English (the portal is Chinese first)."""

    def login(user):
        client.force_login(user)
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
        return client

    return login


def test_the_points_page_shows_both_balances_the_level_and_the_history(estate, signed_in):
    give_reputation(estate.alice, times=3, when=at(day=2))
    give_contribution(estate.alice, 25, when=at(day=3))

    page = signed_in(estate.alice).get(reverse("points-home"))

    assert page.status_code == 200
    html = page.content.decode()
    assert page.context["mine"].reputation == 30
    assert page.context["mine"].contribution == 25
    assert "History" in html  # in English, as the cookie asks (the portal is Chinese first)
    assert "Good neighbour" in html  # 30 reputation: the band from 20
    assert "Trusted neighbour from 60" in html
    assert "Paid the property fee on time" in html
    assert "Volunteering: 2.5 h" in html
    assert "+25" in html


def test_the_points_page_pages_its_history_in_bounded_queries(
    estate, signed_in, django_assert_max_num_queries
):
    for _ in range(40):
        give_contribution(estate.alice, 10)
    client = signed_in(estate.alice)
    with django_assert_max_num_queries(9):
        first = client.get(reverse("points-home"))
    assert len(first.context["page"].object_list) == 30
    second = client.get(reverse("points-home") + "?page=2")
    assert len(second.context["page"].object_list) == 10


def test_the_points_page_needs_a_sign_in(client):
    response = client.get(reverse("points-home"))
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_hiding_from_the_leaderboard_and_back(estate, signed_in):
    client = signed_in(estate.alice)
    give_contribution(estate.alice, 10, when=at(day=2))
    url = reverse("points-leaderboard") + f"?community={estate.community.pk}&period=2019-08"
    assert [row.user_id for row in client.get(url).context["rows"]] == [estate.alice.pk]

    client.post(reverse("points-profile"), {"leaderboard_opt_out": "1"})
    assert client.get(url).context["rows"] == []
    assert client.get(reverse("points-home")).context["opted_out"] is True

    client.post(reverse("points-profile"), {"leaderboard_opt_out": "0"})
    assert [row.user_id for row in client.get(url).context["rows"]] == [estate.alice.pk]


def test_the_leaderboard_page_of_a_community_out_of_sight_is_not_found(estate, signed_in):
    client = signed_in(estate.alice)
    other = reverse("points-leaderboard") + f"?community={estate.other_community.pk}"
    assert client.get(other).status_code == 404
    page = client.get(reverse("points-leaderboard") + "?period=nonsense")
    assert page.status_code == 200
    assert page.context["community"] == estate.community


def test_the_leaderboard_page_is_bounded_in_queries(
    estate, signed_in, django_assert_max_num_queries
):
    for _ in range(25):
        give_contribution(resident(HouseholdFactory(building=estate.household.building)), 10)
    client = signed_in(estate.alice)
    with django_assert_max_num_queries(7):
        page = client.get(reverse("points-leaderboard"))
    assert len(page.context["rows"]) == 20


def test_the_catalogue_says_why_a_reward_cannot_be_redeemed(estate, signed_in):
    Reward.objects.filter(pk=estate.reward.pk).update(min_reputation=10)
    give_contribution(estate.alice, 5)
    page = signed_in(estate.alice).get(reverse("points-rewards"))
    html = page.content.decode()
    assert "Needs 10 reputation" in html
    assert reverse("points-redeem", args=[estate.reward.pk]) not in html

    give_reputation(estate.alice)
    html = signed_in(estate.alice).get(reverse("points-rewards")).content.decode()
    assert "5 more contribution points needed" in html


def test_redeeming_from_the_catalogue_shows_the_code(estate, signed_in):
    give_contribution(estate.alice, 10)
    client = signed_in(estate.alice)
    page = client.get(reverse("points-rewards"))
    key = page.context["idempotency_key"]
    url = reverse("points-redeem", args=[estate.reward.pk])

    first = client.post(url, {"idempotency_key": key}, follow=True)
    client.post(url, {"idempotency_key": key})  # a double click

    redemption = Redemption.objects.get()
    assert redemption.code in first.content.decode()
    assert contribution(estate.alice) == 0


def test_redeeming_without_the_points_says_so_and_changes_nothing(estate, signed_in):
    response = signed_in(estate.alice).post(
        reverse("points-redeem", args=[estate.reward.pk]), {"idempotency_key": "k"}, follow=True
    )
    assert "you have 0" in response.content.decode()
    assert Redemption.objects.count() == 0
    estate.reward.refresh_from_db()
    assert estate.reward.stock == 10


def test_redeeming_another_centres_reward_is_not_found(estate, signed_in):
    give_contribution(estate.alice, 10)
    response = signed_in(estate.alice).post(
        reverse("points-redeem", args=[estate.other_reward.pk]), {"idempotency_key": "k"}
    )
    assert response.status_code == 404
    assert contribution(estate.alice) == 10


def test_the_catalogue_page_is_bounded_in_queries(estate, signed_in, django_assert_max_num_queries):
    give_contribution(estate.alice, 30)
    for n in range(12):
        reward = Reward.objects.create(centre=estate.centre, name=f"r{n}", cost=1, stock=5)
        services.reward_redeem(
            user=estate.alice, reward_id=reward.pk, idempotency_key=f"k{n}", fingerprint="f"
        )
    client = signed_in(estate.alice)
    with django_assert_max_num_queries(8):
        page = client.get(reverse("points-rewards"))
    assert len(page.context["rewards"]) == 13
    assert len(page.context["redemptions"]) == 12


def test_property_staff_see_their_companys_reward_points(estate, signed_in):
    services.award_for_ticket_resolved(
        ticket_id=9,
        community_id=estate.community.pk,
        resolved_at=at(),
        within_sla=True,
        first_resolution=True,
    )
    page = signed_in(estate.staff).get(reverse("points-company"))
    assert page.status_code == 200
    assert [(c.company, c.reward_points) for c in page.context["companies"]] == [
        (estate.company, 2)
    ]
    assert "A ticket handled within its deadlines" in page.content.decode()


def test_residents_have_no_company_page(estate, signed_in):
    assert signed_in(estate.alice).get(reverse("points-company")).status_code == 403


def test_the_provider_accepts_a_code_on_their_page(estate, signed_in):
    give_contribution(estate.alice, 10)
    redemption, _ = services.reward_redeem(
        user=estate.alice, reward_id=estate.reward.pk, idempotency_key="k", fingerprint="f"
    )
    client = signed_in(estate.lawyer)
    assert redemption.code in client.get(reverse("points-fulfil")).content.decode()

    response = client.post(reverse("points-fulfil"), {"code": redemption.code}, follow=True)

    assert "accepted" in response.content.decode()
    redemption.refresh_from_db()
    assert redemption.status == "fulfilled"
    again = client.post(reverse("points-fulfil"), {"code": redemption.code}, follow=True)
    assert "already fulfilled" in again.content.decode()
    unknown = client.post(reverse("points-fulfil"), {"code": "ZZZZ"}, follow=True)
    assert "No reward of yours has this code." in unknown.content.decode()


def test_residents_have_no_provider_page(estate, signed_in):
    assert signed_in(estate.alice).get(reverse("points-fulfil")).status_code == 403
