"""factory_boy factories for the community app; other apps' factories build on these."""

from datetime import date
from decimal import Decimal

import factory

from community import models


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.User
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    display_name = factory.Faker("name", locale="zh_CN")
    password = factory.PostGenerationMethodCall("set_password", "pass-w0rd")

    @factory.post_generation
    def _save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save(update_fields=["password"])


class CentreFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Centre

    name = factory.Sequence(lambda n: f"邻礼中心{n}")


class PropertyCompanyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.PropertyCompany

    name = factory.Sequence(lambda n: f"物业公司{n}")


class OwnersCommitteeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.OwnersCommittee

    name = factory.Sequence(lambda n: f"业委会{n}")


class AllianceOrganisationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.AllianceOrganisation

    centre = factory.SubFactory(CentreFactory)
    name = factory.Sequence(lambda n: f"联盟成员{n}")
    kind = models.AllianceOrganisation.Kind.HOTLINE


class CommunityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Community

    name = factory.Sequence(lambda n: f"小区{n}")
    centre = factory.SubFactory(CentreFactory)
    company = factory.SubFactory(PropertyCompanyFactory)
    committee = factory.SubFactory(OwnersCommitteeFactory)


class BuildingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Building

    community = factory.SubFactory(CommunityFactory)
    name = factory.Sequence(lambda n: f"F{n}幢")


class HouseholdFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Household

    building = factory.SubFactory(BuildingFactory)
    unit = factory.Sequence(lambda n: f"U{n}")
    area = Decimal("89.50")


class ResidencyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Residency

    user = factory.SubFactory(UserFactory)
    household = factory.SubFactory(HouseholdFactory)
    relation = models.Residency.Relation.OWNER
    start_date = date(2019, 7, 1)


class RoleMembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.RoleMembership

    # No default scope: the caller names exactly the one its role needs (see `member`).
    user = factory.SubFactory(UserFactory)
    role = models.Role.PROPERTY_STAFF


class AgreementFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Agreement

    community = factory.SubFactory(CommunityFactory)
    effective_from = date(2019, 7, 1)
    fee_rate = Decimal("1.20")
    holdback_share = Decimal("0.10")
    payout_day = 5


def resident(household=None, **kwargs) -> models.User:
    """A user living in `household` (a new one if not given) as its owner."""
    residency = ResidencyFactory(**({"household": household} if household else {}), **kwargs)
    return residency.user


def member(role: str, **scope) -> models.User:
    """A user holding `role` over the given scope, e.g. member(Role.CENTRE_ADMIN, centre=c)."""
    return RoleMembershipFactory(role=role, **scope).user
