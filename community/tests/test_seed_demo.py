"""seed_demo builds the pilot story's estate, and a second run changes nothing."""

from decimal import Decimal

import pytest
from django.apps import apps
from django.contrib.auth import authenticate
from django.core.management import call_command

from community.demo import DEMO_PASSWORD
from community.models import Community, Household, Residency, Role, RoleMembership

pytestmark = pytest.mark.django_db


def snapshot() -> dict:
    """Every row of every model, as plain values: equal snapshots mean nothing changed."""
    return {
        model._meta.label: sorted(map(repr, model.objects.values_list()))
        for model in apps.get_models()
        if model._meta.app_label
        in {"community", "billing", "repairs", "alliance", "points", "auth"}
    }


def test_seed_demo_builds_the_story_estate():
    call_command("seed_demo", stdout=None)

    community = Community.objects.get(name="翰林苑")
    households = Household.objects.filter(building__community=community)
    assert households.count() == 56
    assert all(Decimal("70") <= h.area <= Decimal("140") for h in households)
    agreement = community.agreements.get()
    assert (agreement.fee_rate, agreement.holdback_share) == (Decimal("1.20"), Decimal("0.10"))
    assert community.centre.organisations.count() == 4
    assert set(community.centre.organisations.values_list("kind", flat=True)) == {
        "hotline",
        "bank",
        "mediator",
        "law_firm",
    }


def test_resident_nn_lives_in_household_nn_and_can_log_in():
    call_command("seed_demo", stdout=None)
    households = list(Household.objects.order_by("building__name", "unit"))
    for number in (1, 28, 56):
        user = authenticate(username=f"resident{number:02d}", password=DEMO_PASSWORD)
        assert user is not None
        residency = Residency.objects.get(user=user)
        assert residency.household == households[number - 1]
        assert residency.relation == "owner"


def test_demo_staff_accounts_hold_their_roles():
    call_command("seed_demo", stdout=None)
    roles = dict(RoleMembership.objects.values_list("user__username", "role"))
    assert roles == {
        "centre": Role.CENTRE_ADMIN,
        "staff": Role.PROPERTY_STAFF,
        "repairer": Role.PROPERTY_STAFF,
        "inspector": Role.ALLIANCE_INSPECTOR,
        "committee": Role.COMMITTEE_MEMBER,
    }
    for username in roles:
        assert authenticate(username=username, password=DEMO_PASSWORD) is not None


def test_running_seed_demo_twice_changes_nothing():
    call_command("seed_demo", stdout=None)
    first = snapshot()
    call_command("seed_demo", stdout=None)
    assert snapshot() == first
    assert Household.objects.count() == 56
