"""Token sign-in and /api/v1/me/ as the contract (API.md) describes them."""

import pytest
from django.core.cache import cache
from django.test import override_settings
from rest_framework.authtoken.models import Token

from community.models import Role
from community.tests.factories import (
    CommunityFactory,
    HouseholdFactory,
    UserFactory,
    member,
    resident,
)

pytestmark = pytest.mark.django_db


def test_token_for_the_right_password_authenticates_me(api_client):
    home = HouseholdFactory()
    user = resident(home, user__username="zhang")
    response = api_client.post(
        "/api/v1/auth/token/", {"username": "zhang", "password": "pass-w0rd"}, format="json"
    )
    assert response.status_code == 200
    token = response.json()["token"]
    assert Token.objects.get(user=user).key == token

    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    me = api_client.get("/api/v1/me/")
    assert me.status_code == 200
    assert me.json()["username"] == "zhang"


@pytest.mark.parametrize(
    "body",
    [
        {"username": "zhang", "password": "wrong"},
        {"username": "nobody", "password": "pass-w0rd"},
        {"username": "zhang"},
        {},
    ],
)
def test_wrong_credentials_get_400_and_no_token(api_client, body):
    UserFactory(username="zhang")
    response = api_client.post("/api/v1/auth/token/", body, format="json")
    assert response.status_code == 400
    assert "token" not in response.json()
    assert Token.objects.count() == 0


def test_an_inactive_account_gets_no_token(api_client):
    UserFactory(username="gone", is_active=False)
    response = api_client.post(
        "/api/v1/auth/token/", {"username": "gone", "password": "pass-w0rd"}, format="json"
    )
    assert response.status_code == 400
    assert Token.objects.count() == 0


@override_settings(
    REST_FRAMEWORK={
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "rest_framework.authentication.TokenAuthentication",
        ],
        "DEFAULT_THROTTLE_RATES": {"auth": "3/min"},
    }
)
def test_password_guessing_is_throttled(api_client, monkeypatch):
    from rest_framework.settings import api_settings
    from rest_framework.throttling import ScopedRateThrottle

    # DRF caches its rate table at import; point it at the overridden settings for this test.
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", api_settings.DEFAULT_THROTTLE_RATES)
    cache.clear()
    UserFactory(username="zhang")
    codes = [
        api_client.post(
            "/api/v1/auth/token/", {"username": "zhang", "password": f"guess{i}"}, format="json"
        ).status_code
        for i in range(4)
    ]
    assert codes == [400, 400, 400, 429]
    cache.clear()


def test_me_requires_authentication(api_client):
    assert api_client.get("/api/v1/me/").status_code == 401


def test_me_lists_only_the_residents_own_households(as_user):
    community = CommunityFactory(name="翰林苑")
    mine = HouseholdFactory(building__community=community, building__name="3幢", unit="502")
    HouseholdFactory(building__community=community)  # a neighbour's
    user = resident(mine, user__display_name="王阿姨")

    body = as_user(user).get("/api/v1/me/").json()

    assert body == {
        "id": user.pk,
        "username": user.username,
        "display_name": "王阿姨",
        "roles": [],
        "households": [
            {
                "id": mine.pk,
                "community": community.pk,
                "community_name": "翰林苑",
                "building": "3幢",
                "unit": "502",
                "area": "89.50",
                "relation": "owner",
            }
        ],
    }


def test_me_lists_staff_roles_with_their_scope(as_user):
    community = CommunityFactory()
    staff = member(Role.PROPERTY_STAFF, company=community.company)
    body = as_user(staff).get("/api/v1/me/").json()
    assert body["households"] == []
    assert body["roles"] == [
        {
            "role": "property_staff",
            "scope_type": "company",
            "scope_id": community.company.pk,
            "scope_name": community.company.name,
        }
    ]


def test_me_answers_in_a_fixed_number_of_queries(as_user, django_assert_max_num_queries):
    user = UserFactory()
    for _ in range(5):
        resident(HouseholdFactory(), user=user)
    member(Role.COMMITTEE_MEMBER, user=user, community=CommunityFactory())
    with django_assert_max_num_queries(4):
        body = as_user(user).get("/api/v1/me/").json()
    assert len(body["households"]) == 5
