"""The rewards catalogue and redemption, through the API (contract: API.md "rewards"): 201 and
replays, every 409, 400 and 404, the provider's code and the centre's cancellation."""

from datetime import date, timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone, translation

from points import services
from points.models import Balance, Currency, Entry, Redemption, Reward
from points.tests.factories import (
    Estate,
    RewardFactory,
    contribution,
    give_contribution,
    give_reputation,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def estate():
    return Estate()


def redeem(client, reward, key="key-1"):
    return client.post(
        f"/api/v1/rewards/{reward.pk}/redeem/", HTTP_IDEMPOTENCY_KEY=key, format="json"
    )


def state(estate):
    """Everything a refused request must leave as it was."""
    estate.reward.refresh_from_db()
    return (
        estate.reward.stock,
        contribution(estate.alice),
        Redemption.objects.count(),
        Entry.objects.count(),
    )


# --- catalogue --------------------------------------------------------------------------------


def test_the_catalogue_lists_the_residents_centres_rewards_on_offer(estate, as_user):
    RewardFactory(centre=estate.centre, name="过期", active_to=date(2019, 7, 31))
    RewardFactory(
        centre=estate.centre, name="未开始", active_from=timezone.localdate() + timedelta(1)
    )
    sold_out = RewardFactory(centre=estate.centre, name="售罄", stock=0, cost=5)

    response = as_user(estate.alice).get("/api/v1/rewards/")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert [r["id"] for r in body["results"]] == [sold_out.pk, estate.reward.pk]
    assert body["results"][1] == {
        "id": estate.reward.pk,
        "name": estate.reward.name,
        "description": "",
        "provider": estate.law_firm.name,
        "provider_kind": "organisation",
        "cost": 10,
        "min_reputation": 0,
        "stock": 10,
        "active_from": "2019-07-01",
        "active_to": None,
    }


def test_the_catalogue_needs_a_sign_in(api_client):
    assert api_client.get("/api/v1/rewards/").status_code == 401


def test_the_catalogue_query_count_does_not_grow_with_rewards(
    estate, as_user, django_assert_max_num_queries
):
    for _ in range(15):
        RewardFactory(centre=estate.centre, organisation=estate.law_firm)
    client = as_user(estate.alice)
    with django_assert_max_num_queries(3):
        response = client.get("/api/v1/rewards/")
    assert response.json()["count"] == 16


# --- redeem -----------------------------------------------------------------------------------


def test_redeeming_takes_points_and_stock_together(estate, as_user):
    give_contribution(estate.alice, 25)

    response = redeem(as_user(estate.alice), estate.reward)

    assert response.status_code == 201
    redemption = Redemption.objects.get()
    assert response.json() == {
        "id": redemption.pk,
        "reward": estate.reward.pk,
        "reward_name": estate.reward.name,
        "cost": 10,
        "status": "issued",
        "code": redemption.code,
        "created_at": response.json()["created_at"],
        "fulfilled_at": None,
        "cancelled_at": None,
    }
    assert len(redemption.code) == 10
    estate.reward.refresh_from_db()
    assert estate.reward.stock == 9
    assert contribution(estate.alice) == 15
    debit = Entry.objects.get(kind="redemption")
    with translation.override("en"):
        reason = debit.reason
    assert (debit.amount, debit.currency, debit.reference, reason) == (
        -10,
        "contribution",
        str(redemption.pk),
        f"Redeemed: {estate.reward.name}",
    )


def test_the_same_key_again_returns_the_same_redemption_and_takes_nothing_more(estate, as_user):
    give_contribution(estate.alice, 30)
    client = as_user(estate.alice)

    first = redeem(client, estate.reward)
    again = redeem(client, estate.reward)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert Redemption.objects.count() == 1
    assert contribution(estate.alice) == 20


def test_the_same_key_for_another_reward_is_a_conflict(estate, as_user):
    give_contribution(estate.alice, 30)
    client = as_user(estate.alice)
    other = RewardFactory(centre=estate.centre, cost=5)
    redeem(client, estate.reward)
    before = state(estate)

    response = redeem(client, other)

    assert response.status_code == 409
    assert state(estate) == before
    other.refresh_from_db()
    assert other.stock == 10


def test_a_short_balance_is_a_conflict_and_changes_nothing(estate, as_user):
    give_contribution(estate.alice, 9)
    before = state(estate)

    response = redeem(as_user(estate.alice), estate.reward)

    assert response.status_code == 409
    assert "10" in response.json()["detail"]
    assert state(estate) == before


def test_reputation_under_the_minimum_is_a_conflict_and_changes_nothing(estate, as_user):
    Reward.objects.filter(pk=estate.reward.pk).update(min_reputation=20)
    give_contribution(estate.alice, 50)
    give_reputation(estate.alice, times=1)
    before = state(estate)

    response = redeem(as_user(estate.alice), estate.reward)

    assert response.status_code == 409
    assert state(estate) == before
    give_reputation(estate.alice, times=1)
    assert redeem(as_user(estate.alice), estate.reward, key="key-2").status_code == 201


def test_no_stock_is_a_conflict_and_changes_nothing(estate, as_user):
    Reward.objects.filter(pk=estate.reward.pk).update(stock=0)
    give_contribution(estate.alice, 50)
    before = state(estate)

    response = redeem(as_user(estate.alice), estate.reward)

    assert response.status_code == 409
    assert state(estate) == before


def test_a_reward_no_longer_offered_is_a_conflict(estate, as_user):
    Reward.objects.filter(pk=estate.reward.pk).update(active_to=date(2019, 12, 31))
    give_contribution(estate.alice, 50)
    before = state(estate)

    assert redeem(as_user(estate.alice), estate.reward).status_code == 409
    assert state(estate) == before


def test_another_centres_reward_is_not_found(estate, as_user):
    give_contribution(estate.alice, 50)
    before = state(estate)

    assert redeem(as_user(estate.alice), estate.other_reward).status_code == 404
    assert redeem(as_user(estate.alice), Reward(pk=999_999)).status_code == 404
    assert state(estate) == before
    estate.other_reward.refresh_from_db()
    assert estate.other_reward.stock == 10


def test_staff_without_a_home_here_cannot_redeem(estate, as_user):
    assert redeem(as_user(estate.staff), estate.reward).status_code == 404
    assert Redemption.objects.count() == 0


@pytest.mark.parametrize("key", ["", "x" * 101])
def test_a_missing_or_overlong_idempotency_key_is_bad_input(estate, as_user, key):
    give_contribution(estate.alice, 50)
    before = state(estate)
    response = as_user(estate.alice).post(
        f"/api/v1/rewards/{estate.reward.pk}/redeem/", HTTP_IDEMPOTENCY_KEY=key
    )
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()
    assert state(estate) == before


def test_the_spendable_balance_cannot_go_below_zero_in_the_database(estate):
    give_contribution(estate.alice, 5)
    balance = Balance.objects.get(holder__user=estate.alice, currency=Currency.CONTRIBUTION)
    with pytest.raises(IntegrityError), transaction.atomic():
        Balance.objects.filter(pk=balance.pk).update(amount=-1)
    balance.refresh_from_db()
    assert balance.amount == 5


def test_stock_cannot_go_below_zero_in_the_database(estate):
    with pytest.raises(IntegrityError), transaction.atomic():
        Reward.objects.filter(pk=estate.reward.pk).update(stock=-1)


def test_my_redemptions_are_mine_only(estate, as_user):
    give_contribution(estate.alice, 10)
    redeem(as_user(estate.alice), estate.reward)

    assert as_user(estate.bob).get("/api/v1/redemptions/").json()["count"] == 0
    mine = as_user(estate.alice).get("/api/v1/redemptions/").json()
    assert [r["status"] for r in mine["results"]] == ["issued"]


# --- fulfil and cancel ------------------------------------------------------------------------


@pytest.fixture
def issued(estate):
    give_contribution(estate.alice, 30)
    redemption, _ = services.reward_redeem(
        user=estate.alice, reward_id=estate.reward.pk, idempotency_key="k", fingerprint="f"
    )
    return redemption


def test_the_provider_marks_a_code_used_once(estate, issued, as_user):
    client = as_user(estate.lawyer)

    response = client.post("/api/v1/redemptions/fulfil/", {"code": issued.code.lower()})
    again = client.post("/api/v1/redemptions/fulfil/", {"code": issued.code})

    assert response.status_code == 200
    assert response.json()["status"] == "fulfilled"
    assert again.status_code == 409
    issued.refresh_from_db()
    assert (issued.status, issued.fulfilled_by) == ("fulfilled", estate.lawyer)


def test_a_code_of_another_provider_is_not_found(estate, issued, as_user):
    centre_reward = RewardFactory(centre=estate.centre)  # the centre's own, not the law firm's
    other, _ = services.reward_redeem(
        user=estate.alice, reward_id=centre_reward.pk, idempotency_key="k2", fingerprint="f2"
    )
    client = as_user(estate.lawyer)
    assert client.post("/api/v1/redemptions/fulfil/", {"code": other.code}).status_code == 404
    assert client.post("/api/v1/redemptions/fulfil/", {"code": "NOPE"}).status_code == 404
    # The centre's admin provides the centre's own rewards.
    admin = as_user(estate.centre_admin)
    assert admin.post("/api/v1/redemptions/fulfil/", {"code": other.code}).status_code == 200
    other.refresh_from_db()
    assert other.status == "fulfilled"
    issued.refresh_from_db()
    assert issued.status == "issued"


def test_residents_cannot_accept_codes_and_codes_must_be_sent(estate, issued, as_user):
    response = as_user(estate.alice).post("/api/v1/redemptions/fulfil/", {"code": issued.code})
    assert response.status_code == 403
    assert as_user(estate.lawyer).post("/api/v1/redemptions/fulfil/", {}).status_code == 400
    issued.refresh_from_db()
    assert issued.status == "issued"


def test_the_centre_cancels_an_unused_redemption_and_everything_comes_back(estate, issued, as_user):
    response = as_user(estate.centre_admin).post(
        f"/api/v1/redemptions/{issued.pk}/cancel/", {"reason": "活动取消"}
    )

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    estate.reward.refresh_from_db()
    assert estate.reward.stock == 10
    assert contribution(estate.alice) == 30
    assert list(
        Entry.objects.filter(source="redemption").order_by("pk").values_list("kind", "amount")
    ) == [
        ("redemption", -10),
        ("redemption_refund", 10),
    ]
    again = as_user(estate.centre_admin).post(f"/api/v1/redemptions/{issued.pk}/cancel/")
    assert again.status_code == 409
    assert contribution(estate.alice) == 30


def test_a_used_code_cannot_be_cancelled(estate, issued, as_user):
    services.redemption_fulfil(user=estate.lawyer, code=issued.code)
    response = as_user(estate.centre_admin).post(f"/api/v1/redemptions/{issued.pk}/cancel/")
    assert response.status_code == 409
    assert contribution(estate.alice) == 20


def test_only_the_centre_cancels(estate, issued, as_user):
    other_admin = Estate().centre_admin
    assert as_user(estate.alice).post(f"/api/v1/redemptions/{issued.pk}/cancel/").status_code == 403
    assert as_user(estate.bob).post(f"/api/v1/redemptions/{issued.pk}/cancel/").status_code == 404
    assert as_user(other_admin).post(f"/api/v1/redemptions/{issued.pk}/cancel/").status_code == 404
    response = as_user(estate.centre_admin).post(
        f"/api/v1/redemptions/{issued.pk}/cancel/", {"reason": "x" * 201}
    )
    assert response.status_code == 400
    issued.refresh_from_db()
    assert issued.status == "issued"
    assert contribution(estate.alice) == 20
