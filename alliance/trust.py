"""Reads that say how far a scorecard can be trusted, and its appeals (the "Transparency" issue).

- coverage: of the households that paid for the month (the only ones that may rate), the share
  that rated; a score from 3 ratings of 56 paying households says less than one from 40;
- spread: the month's spot checks grouped by the alliance organisation that made them, each
  organisation's attendance rate and two cooperation degrees computed as the scorecard computes
  them (alliance.scoring), and per component the highest minus the lowest organisation. Only
  when two organisations or more inspected: one organisation has nobody to disagree with;
- bursts: all-5★ or all-1★ ratings (every dimension the same extreme) from one building within
  one hour, ALLIANCE_RATING_BURST_SIZE of them or more. Neighbours may well agree, so a burst is
  a flag for a person to look at, never a change to the score. Where and when the burst was is
  for the company's staff, the centre's admins and the alliance's mediators; everyone else sees
  how many flags there are (a building and an hour can point at a few households).

Everything is a fixed number of queries, whatever the size of the estate.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Q, QuerySet

from alliance import scoring
from alliance.models import DIMENSIONS, Inspection, Scorecard, ScorecardAppeal, ServiceRating
from billing import selectors as billing_selectors
from community import selectors as community_selectors
from community.models import AllianceOrganisation, Community, Role, User
from community.periods import Period

BURST_WINDOW = timedelta(minutes=60)
SPREAD_COMPONENTS = ("attendance_rate", "grid_cooperation", "major_matter_cooperation")
# Who sees where and when a burst happened, besides the alliance's mediators.
BURST_DETAIL_ROLES = (Role.PROPERTY_STAFF, Role.CENTRE_ADMIN)


@dataclass(frozen=True)
class Coverage:
    rated: int  # paying households that rated
    paid: int  # households that paid for the month
    rate: Decimal | None  # rated / paid, 4 decimals; None when nobody paid


@dataclass(frozen=True)
class OrganisationFigures:
    organisation_id: int
    name: str
    inspections: int
    attendance_rate: Decimal
    grid_cooperation: Decimal
    major_matter_cooperation: Decimal


@dataclass(frozen=True)
class Spread:
    organisations: list[OrganisationFigures]
    # component -> highest − lowest organisation; empty with fewer than two organisations
    components: dict[str, Decimal] = field(default_factory=dict)

    @property
    def shown(self) -> bool:
        return len(self.organisations) >= 2


@dataclass(frozen=True)
class BurstFlag:
    building_id: int
    building: str
    stars: int  # 5 or 1
    count: int
    first_at: datetime
    last_at: datetime


@dataclass(frozen=True)
class Trust:
    coverage: Coverage
    spread: Spread
    flags: list[BurstFlag]

    @property
    def flag_count(self) -> int:
        return len(self.flags)


def rating_coverage(*, community: Community, period: Period) -> Coverage:
    paid = billing_selectors.households_paid_for_period(community=community, period=period)
    paid_count = paid.count()
    rated = ServiceRating.objects.filter(
        community=community, period=str(period), household_id__in=paid
    ).count()
    rate = scoring.rate(Decimal(rated) / paid_count) if paid_count else None
    return Coverage(rated=rated, paid=paid_count, rate=rate)


def inspection_spread(*, community: Community, period: Period) -> Spread:
    rows = Inspection.objects.filter(community=community, period=str(period)).values_list(
        "organisation_id",
        "organisation__name",
        "staff_on_duty",
        "staff_rostered",
        "grid_cooperation",
        "major_matter_cooperation",
    )
    by_organisation = defaultdict(list)
    names = {}
    for organisation_id, name, *figures in rows:
        by_organisation[organisation_id].append(figures)
        names[organisation_id] = name
    organisations = [
        OrganisationFigures(
            organisation_id=organisation_id,
            name=names[organisation_id],
            inspections=len(checks),
            attendance_rate=scoring.attendance_rate((c[0], c[1]) for c in checks),
            grid_cooperation=scoring.cooperation(c[2] for c in checks),
            major_matter_cooperation=scoring.cooperation(c[3] for c in checks),
        )
        for organisation_id, checks in sorted(
            by_organisation.items(), key=lambda item: (names[item[0]], item[0])
        )
    ]
    components = {}
    if len(organisations) >= 2:
        for component in SPREAD_COMPONENTS:
            values = [getattr(o, component) for o in organisations]
            components[component] = max(values) - min(values)
    return Spread(organisations=organisations, components=components)


def _extreme(stars: int) -> Q:
    return Q(**{dimension: stars for dimension in DIMENSIONS})


def rating_bursts(
    *, community: Community, period: Period, size: int | None = None
) -> list[BurstFlag]:
    """Runs of all-5★ (or all-1★) ratings from one building where at least `size` fall within
    60 minutes (less than an hour from the first to the last). Overlapping windows are one flag,
    from its first rating to its last."""
    size = size or settings.ALLIANCE_RATING_BURST_SIZE
    rows = (
        ServiceRating.objects.filter(community=community, period=str(period))
        .filter(_extreme(5) | _extreme(1))
        .values_list(
            "household__building_id", "household__building__name", "cleaning", "created_at"
        )
        .order_by("household__building_id", "cleaning", "created_at", "pk")
    )
    groups = defaultdict(list)
    names = {}
    for building_id, name, stars, at in rows:
        groups[(building_id, stars)].append(at)
        names[building_id] = name
    flags = []
    for (building_id, stars), times in groups.items():
        # Each qualifying window as a range of indices, then overlapping ranges merged.
        start = end = None
        j = 0
        for i, first in enumerate(times):
            j = max(j, i)
            while j + 1 < len(times) and times[j + 1] - first < BURST_WINDOW:
                j += 1
            if j - i + 1 < size:
                continue
            if start is not None and i <= end:
                end = max(end, j)
                continue
            if start is not None:
                flags.append(_flag(building_id, names, stars, times, start, end))
            start, end = i, j
        if start is not None:
            flags.append(_flag(building_id, names, stars, times, start, end))
    return sorted(flags, key=lambda flag: (flag.first_at, flag.building, flag.stars))


def _flag(building_id, names, stars, times, start, end) -> BurstFlag:
    return BurstFlag(
        building_id=building_id,
        building=names[building_id],
        stars=stars,
        count=end - start + 1,
        first_at=times[start],
        last_at=times[end],
    )


def scorecard_trust(*, scorecard: Scorecard) -> Trust:
    """Coverage, spread and burst flags of the scorecard's community and month, from the data as
    it is now. For the scorecard page and the estate's public page (which shows the flag count
    only, never `flags`' buildings and times)."""
    community, period = scorecard.community, Period.parse(scorecard.period)
    return Trust(
        coverage=rating_coverage(community=community, period=period),
        spread=inspection_spread(community=community, period=period),
        flags=rating_bursts(community=community, period=period),
    )


# --- who may see and do what ------------------------------------------------------------------


def mediator_organisations(*, user: User, community: Community) -> QuerySet[AllianceOrganisation]:
    """The mediator organisations (kind "mediator") of the community's centre through which the
    user is an alliance inspector: such a user is the alliance's mediator for its estates."""
    if not user.is_authenticated:
        return AllianceOrganisation.objects.none()
    memberships = community_selectors.membership_list_for_user(user=user).filter(
        role=Role.ALLIANCE_INSPECTOR,
        organisation__centre_id=community.centre_id,
        organisation__kind=AllianceOrganisation.Kind.MEDIATOR,
    )
    return AllianceOrganisation.objects.filter(pk__in=memberships.values("organisation_id"))


def is_mediator(*, user: User, community: Community) -> bool:
    return mediator_organisations(user=user, community=community).exists()


def is_company_manager(*, user: User, community: Community) -> bool:
    """A manager (负责人) of the property company that manages the community."""
    if not user.is_authenticated or community.company_id is None:
        return False
    return (
        community_selectors.membership_list_for_user(user=user)
        .filter(role=Role.PROPERTY_STAFF, company_id=community.company_id, is_manager=True)
        .exists()
    )


def may_see_burst_details(*, user: User, community: Community, roles=None) -> bool:
    """The company's staff, the centre's admins and the alliance's mediators (`roles`: the
    user's roles in the community, when the caller has them already)."""
    if user.is_superuser:
        return True
    if roles is None:
        roles = community_selectors.roles_in_community(user=user, community=community)
    if roles & set(BURST_DETAIL_ROLES):
        return True
    return Role.ALLIANCE_INSPECTOR in roles and is_mediator(user=user, community=community)


# --- appeals ----------------------------------------------------------------------------------


def scorecard_appeals(*, scorecard: Scorecard) -> QuerySet[ScorecardAppeal]:
    """Every appeal against the community's scorecard of that month (against any revision),
    oldest first, with the revision an upheld appeal made. Public: the grounds, the decision
    and its text are published with the scorecard (who filed and decided are not shown)."""
    return (
        ScorecardAppeal.objects.filter(
            scorecard__community_id=scorecard.community_id, scorecard__period=scorecard.period
        )
        .select_related("scorecard", "revision", "organisation")
        .order_by("filed_at", "pk")
    )
