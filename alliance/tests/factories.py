"""The estate the alliance tests work on, built through the other apps' factories and services."""

from datetime import datetime, timedelta

from django.utils import timezone

from alliance import services
from billing import services as billing_services
from billing.tests.factories import BillFactory, estate, pay
from community.models import Role
from community.periods import Period
from community.tests.factories import (
    AllianceOrganisationFactory,
    CommunityFactory,
    HouseholdFactory,
    member,
    resident,
)
from repairs import services as repairs_services
from repairs.tests.factories import TicketCategoryFactory

AUGUST = Period(2019, 8)
FIVES = {"cleaning": 5, "greening": 5, "security": 5, "reporting": 5, "repair": 5}


def august(day: int, hour: int = 10, minute: int = 0) -> datetime:
    return timezone.make_aware(datetime(2019, 8, day, hour, minute))


class Estate:
    """A community under a 10% hold-back agreement with three households: the first two have
    paid their August bills (120.00 and 121.20 yuan), the third has a bill it has not paid.
    Around it: an inspector of the centre's alliance, one of another centre, the company's
    staff, a centre admin, the committee, and a resident of another community."""

    def __init__(self, households: int = 3):
        self.community, self.households = estate(households)
        self.residents = [resident(home) for home in self.households]
        self.bills = [BillFactory(household=home, period=str(AUGUST)) for home in self.households]
        self.paid, self.unpaid = self.households[:2], self.households[2:]
        for home, user, bill in zip(self.households, self.residents, self.bills, strict=True):
            if home in self.paid:
                pay(user, [bill])
        self.organisation = AllianceOrganisationFactory(centre=self.community.centre)
        self.inspector = member(Role.ALLIANCE_INSPECTOR, organisation=self.organisation)
        self.outside_inspector = member(
            Role.ALLIANCE_INSPECTOR, organisation=AllianceOrganisationFactory()
        )
        self.staff = member(Role.PROPERTY_STAFF, company=self.community.company)
        self.centre_admin = member(Role.CENTRE_ADMIN, centre=self.community.centre)
        self.committee = member(Role.COMMITTEE_MEMBER, community=self.community)
        self.other_community = CommunityFactory(centre=self.community.centre)
        self.outsider = resident(HouseholdFactory(building__community=self.other_community))
        self.other_staff = member(Role.PROPERTY_STAFF, company=self.other_community.company)

    def rate(self, index: int = 0, stars=None, comment: str = "", period=AUGUST, at=None):
        return services.rating_create(
            user=self.residents[index],
            household_id=self.households[index].pk,
            period=period,
            stars=stars or FIVES,
            comment=comment,
            at=at or august(20),
        )

    def inspect(self, on_duty=11, rostered=12, grid=95, major=90, period=AUGUST, at=None):
        return services.inspection_create(
            user=self.inspector,
            community_id=self.community.pk,
            period=period,
            staff_on_duty=on_duty,
            staff_rostered=rostered,
            grid_cooperation=grid,
            major_matter_cooperation=major,
            at=at or august(21),
        )

    def tickets(self, *, handled: int, open_: int = 0, day: int = 5):
        """Reports filed in August: `handled` accepted and resolved at once (within their
        deadlines), `open_` left untouched (filed, never handled)."""
        category = TicketCategoryFactory(kind="report", response_hours=2, resolve_hours=24)
        for n in range(handled + open_):
            at = august(day, 9, n)
            ticket = repairs_services.ticket_create(
                filed_by=self.residents[0],
                kind="report",
                category=category,
                title=f"路灯不亮 {n}",
                location="3幢东侧",
                community=self.community,
                at=at,
            )
            if n < handled:
                for action in ("accept", "resolve"):
                    at += timedelta(minutes=10)
                    repairs_services.ticket_transition(
                        ticket=ticket, actor=self.staff, action=action, at=at
                    )

    def pay_out(self, period=AUGUST):
        return billing_services.payout_run(community=self.community, period=period)
