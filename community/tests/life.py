"""Builders for the community-life tests: an estate with every kind of person in it, and
activities and consultations at given times."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from community import services
from community.models import Activity, Community, Consultation, Household, Role, User
from community.tests.factories import CommunityFactory, HouseholdFactory, member, resident

OPTIONS = [{"label": "同意", "approves": True}, {"label": "反对"}, {"label": "弃权"}]


@dataclass
class Estate:
    community: Community
    flat: Household  # the owner's (and the family member's) flat
    rented: Household  # the tenant's
    owner: User
    family: User
    tenant: User
    centre_admin: User
    staff: User
    committee: User
    other: Community  # another centre's estate
    outsider: User  # a resident of it

    def activity(self, *, in_hours: float = 24, length_hours: float = 3, **fields) -> Activity:
        """An activity starting `in_hours` from now (negative: already started)."""
        starts_at = timezone.now() + timedelta(hours=in_hours)
        values = {
            "organiser": self.staff,
            "community": self.community,
            "kind": Activity.Kind.VOLUNTEERING,
            "title": "楼道清理",
            "place": "1幢",
            "starts_at": starts_at,
            "ends_at": starts_at + timedelta(hours=length_hours),
            "capacity": 10,
            "at": starts_at - timedelta(days=2),
        } | fields
        return services.activity_create(**values)

    def consultation(
        self, *, opens_at: datetime | None = None, closes_at: datetime | None = None, **fields
    ) -> Consultation:
        now = timezone.now()
        opens_at = opens_at or now - timedelta(days=1)
        closes_at = closes_at or opens_at + timedelta(days=7)
        values = {
            "creator": self.committee,
            "community": self.community,
            "title": "增设充电桩",
            "description": "拟增设电动自行车充电桩。",
            "opens_at": opens_at,
            "closes_at": closes_at,
            "options": OPTIONS,
            "at": min(opens_at, now) - timedelta(hours=1),
        } | fields
        return services.consultation_create(**values)


def build_estate(area: Decimal = Decimal("89.50")) -> Estate:
    community = CommunityFactory(name="翰林苑")
    flat = HouseholdFactory(building__community=community, unit="101", area=area)
    rented = HouseholdFactory(building=flat.building, unit="102", area=area)
    other = CommunityFactory(name="别的小区")
    return Estate(
        community=community,
        flat=flat,
        rented=rented,
        owner=resident(flat, user__username="owner"),
        family=resident(flat, relation="family", user__username="family"),
        tenant=resident(rented, relation="tenant", user__username="tenant"),
        centre_admin=member(Role.CENTRE_ADMIN, centre=community.centre),
        staff=member(Role.PROPERTY_STAFF, company=community.company),
        committee=member(Role.COMMITTEE_MEMBER, community=community),
        other=other,
        outsider=resident(HouseholdFactory(building__community=other), user__username="outsider"),
    )


def option(consultation: Consultation, label: str):
    return consultation.options.get(label=label)
