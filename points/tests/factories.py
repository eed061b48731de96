"""Factories and helpers for the points tests: a community with residents and a catalogue, and
ways to give a resident points through the real award services (never by writing entries)."""

from datetime import date, datetime
from decimal import Decimal

import factory
from django.utils import timezone

from community.models import Role
from community.tests.factories import (
    AllianceOrganisationFactory,
    CommunityFactory,
    HouseholdFactory,
    member,
    resident,
)
from points import services
from points.models import Currency, Reward
from points.selectors import balances_of, holder_of_user

_references = iter(range(1, 10**9))


class RewardFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Reward

    centre = factory.SubFactory("community.tests.factories.CentreFactory")
    name = factory.Sequence(lambda n: f"奖励{n}")
    cost = 10
    min_reputation = 0
    stock = 10
    active_from = date(2019, 7, 1)


def at(day: int = 10, month: int = 8, year: int = 2019, hour: int = 10) -> datetime:
    return timezone.make_aware(datetime(year, month, day, hour))


def give_contribution(user, points: int, *, when: datetime | None = None) -> None:
    """Volunteering hours worth `points` contribution (10 a hour by the default rule)."""
    services.award_for_checkin(
        checkin_id=next(_references) + 500_000,
        user_id=user.pk,
        kind="volunteering",
        hours=str(Decimal(points) / 10),
        checked_in_at=when or timezone.now(),
    )


def give_reputation(user, times: int = 1, *, when: datetime | None = None) -> None:
    """On-time payments, 10 reputation each by the default rule."""
    for _ in range(times):
        services.award_for_payment(
            payment_id=next(_references) + 900_000,
            payer_id=user.pk,
            paid_at=when or timezone.now(),
            on_time=True,
            months_prepaid=0,
        )


def balances(user) -> dict[str, int]:
    return balances_of(holder_of_user(user=user))


def reputation(user) -> int:
    return balances(user)[Currency.REPUTATION]


def contribution(user) -> int:
    return balances(user)[Currency.CONTRIBUTION]


class Estate:
    """A community of a centre with two residents, the law firm of the centre's alliance and
    its inspector, the centre's admin, the company's staff, and a second centre with its own
    resident and reward."""

    def __init__(self):
        self.community = CommunityFactory()
        self.centre = self.community.centre
        self.company = self.community.company
        self.household = HouseholdFactory(building__community=self.community)
        self.alice = resident(self.household)
        self.bob = resident(HouseholdFactory(building=self.household.building))
        self.law_firm = AllianceOrganisationFactory(centre=self.centre, kind="law_firm")
        self.lawyer = member(Role.ALLIANCE_INSPECTOR, organisation=self.law_firm)
        self.centre_admin = member(Role.CENTRE_ADMIN, centre=self.centre)
        self.staff = member(Role.PROPERTY_STAFF, company=self.company)
        self.reward = RewardFactory(centre=self.centre, organisation=self.law_firm, cost=10)
        self.other_community = CommunityFactory()
        self.stranger = resident(HouseholdFactory(building__community=self.other_community))
        self.other_reward = RewardFactory(centre=self.other_community.centre)
