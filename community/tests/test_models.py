"""Structural rules live in the database: these tests write past the model validators on purpose
and expect the database itself to refuse."""

from datetime import date
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from community import services
from community.models import Agreement, Household, Residency, Role, RoleMembership
from community.tests.factories import (
    AgreementFactory,
    BuildingFactory,
    CentreFactory,
    CommunityFactory,
    HouseholdFactory,
    PropertyCompanyFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("area", [Decimal("0"), Decimal("-12.50")])
def test_database_rejects_a_household_without_positive_area(area):
    building = BuildingFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Household.objects.create(building=building, unit="101", area=area)
    assert Household.objects.count() == 0


def test_model_validation_reports_bad_area_as_a_field_error():
    household = Household(building=BuildingFactory(), unit="101", area=Decimal("0"))
    with pytest.raises(ValidationError) as error:
        household.full_clean()
    assert "area" in error.value.message_dict


def test_database_rejects_a_duplicate_unit_in_one_building():
    building = BuildingFactory()
    Household.objects.create(building=building, unit="101", area=Decimal("88.00"))
    with pytest.raises(IntegrityError), transaction.atomic():
        Household.objects.create(building=building, unit="101", area=Decimal("95.00"))
    assert Household.objects.filter(building=building).count() == 1


def test_same_unit_label_is_fine_in_another_building():
    first, second = BuildingFactory(), BuildingFactory()
    Household.objects.create(building=first, unit="101", area=Decimal("88.00"))
    Household.objects.create(building=second, unit="101", area=Decimal("88.00"))
    assert Household.objects.filter(unit="101").count() == 2


def test_area_is_stored_exactly():
    household = HouseholdFactory(area=Decimal("89.57"))
    household.refresh_from_db()
    assert household.area == Decimal("89.57")


def test_database_rejects_a_membership_scoped_to_the_wrong_kind_of_thing():
    user = UserFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        # A centre admin must be scoped to a centre, not to a company.
        RoleMembership.objects.create(
            user=user, role=Role.CENTRE_ADMIN, company=PropertyCompanyFactory()
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        # Exactly one scope: not two.
        RoleMembership.objects.create(
            user=user,
            role=Role.CENTRE_ADMIN,
            centre=CentreFactory(),
            company=PropertyCompanyFactory(),
        )
    assert RoleMembership.objects.count() == 0


def test_database_rejects_a_duplicate_membership():
    user, centre = UserFactory(), CentreFactory()
    RoleMembership.objects.create(user=user, role=Role.CENTRE_ADMIN, centre=centre)
    with pytest.raises(IntegrityError), transaction.atomic():
        RoleMembership.objects.create(user=user, role=Role.CENTRE_ADMIN, centre=centre)
    assert RoleMembership.objects.count() == 1


def test_membership_reports_its_scope():
    centre = CentreFactory()
    membership = RoleMembership.objects.create(
        user=UserFactory(), role=Role.CENTRE_ADMIN, centre=centre
    )
    assert (membership.scope_type, membership.scope_id, membership.scope) == (
        "centre",
        centre.pk,
        centre,
    )


def test_database_rejects_a_residency_ending_before_it_starts():
    with pytest.raises(IntegrityError), transaction.atomic():
        Residency.objects.create(
            user=UserFactory(),
            household=HouseholdFactory(),
            relation="owner",
            start_date=date(2020, 1, 1),
            end_date=date(2019, 12, 31),
        )
    assert Residency.objects.count() == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("fee_rate", Decimal("0")),
        ("holdback_share", Decimal("1.5")),
        ("holdback_share", Decimal("-0.1")),
        ("payout_day", 29),
        ("payout_day", 0),
        ("bill_due_day", 31),
    ],
)
def test_database_rejects_an_agreement_with_a_bad_term(field, value):
    community = CommunityFactory()
    terms = {"fee_rate": Decimal("1.20"), "holdback_share": Decimal("0.10"), "payout_day": 5}
    terms[field] = value
    with pytest.raises(IntegrityError), transaction.atomic():
        Agreement.objects.create(community=community, effective_from=date(2020, 1, 1), **terms)
    assert Agreement.objects.count() == 0


def _agreement_terms(**overrides):
    terms = {
        "fee_rate": Decimal("1.20"),
        "holdback_share": Decimal("0.10"),
        "payout_day": 5,
        "effective_from": date(2019, 7, 1),
        "effective_to": None,
    }
    return terms | overrides


def test_service_refuses_an_overlapping_agreement_and_saves_nothing():
    existing = AgreementFactory(effective_from=date(2019, 7, 1), effective_to=None)
    with pytest.raises(ValidationError):
        services.agreement_create(
            community=existing.community, **_agreement_terms(effective_from=date(2021, 1, 1))
        )
    assert Agreement.objects.filter(community=existing.community).count() == 1


def test_service_accepts_back_to_back_agreements():
    community = CommunityFactory()
    services.agreement_create(
        community=community, **_agreement_terms(effective_to=date(2020, 6, 30))
    )
    services.agreement_create(
        community=community,
        **_agreement_terms(effective_from=date(2020, 7, 1), fee_rate=Decimal("1.35")),
    )
    assert Agreement.objects.filter(community=community).count() == 2


def test_agreements_of_different_communities_may_overlap():
    services.agreement_create(community=CommunityFactory(), **_agreement_terms())
    services.agreement_create(community=CommunityFactory(), **_agreement_terms())
    assert Agreement.objects.count() == 2


@pytest.mark.postgres
def test_postgres_rejects_overlapping_agreements_even_past_the_service():
    existing = AgreementFactory(effective_from=date(2019, 7, 1), effective_to=date(2020, 12, 31))
    with pytest.raises(IntegrityError), transaction.atomic():
        # Writing the row directly skips the service's check: the exclusion constraint stops it.
        Agreement.objects.create(
            community=existing.community, **_agreement_terms(effective_from=date(2020, 12, 31))
        )
    AgreementFactory(community=existing.community, effective_from=date(2021, 1, 1))
    assert Agreement.objects.filter(community=existing.community).count() == 2
