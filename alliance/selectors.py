"""Reads for the alliance app, scoped through community.selectors (outside the scope: 404).

Who sees what:
- service ratings: the residents of a household see their household's ratings; property staff of
  the company and the centre's admins see every rating of their communities, with the comments,
  but not which household gave it (residents rate honestly when the company cannot tell who);
- inspections: the alliance inspectors of the centre, its admins, the company's staff and the
  owners' committee;
- scorecards: everyone who sees the community (residents, committee, staff, inspectors, admins);
  the centre's admins also see their communities ranked.
"""

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Count, F, Q, QuerySet, Sum

from alliance import scoring
from alliance.models import (
    COMPONENTS,
    DEFAULT_WEIGHTS,
    DIMENSIONS,
    Dimension,
    Inspection,
    Scorecard,
    ScoreWeight,
    ServiceRating,
)
from billing import selectors as billing_selectors
from community import selectors as community_selectors
from community.models import Agreement, AllianceOrganisation, Community, Household, Role, User
from community.periods import Period
from repairs import selectors as repairs_selectors

RATING_READER_ROLES = (Role.PROPERTY_STAFF, Role.CENTRE_ADMIN)
TWO_PLACES = Decimal("0.01")
INSPECTION_READER_ROLES = (
    Role.ALLIANCE_INSPECTOR,
    Role.CENTRE_ADMIN,
    Role.PROPERTY_STAFF,
    Role.COMMITTEE_MEMBER,
)


# --- ratings ----------------------------------------------------------------------------------


def rating_list(*, user: User) -> QuerySet[ServiceRating]:
    """Ratings the user may read: their own households' (as a resident) and every rating of the
    communities they read ratings for (property staff, centre admin)."""
    own = community_selectors.household_list(user=user, roles=[community_selectors.RESIDENT])
    readable = community_selectors.community_list(user=user, roles=RATING_READER_ROLES)
    if user.is_superuser:
        qs = ServiceRating.objects.all()
    else:
        qs = ServiceRating.objects.filter(
            Q(household__in=own.values("pk")) | Q(community__in=readable.values("pk"))
        )
    return qs.select_related("community").order_by("-created_at", "-pk")


def may_read_ratings(*, user: User, community: Community) -> bool:
    roles = community_selectors.roles_in_community(user=user, community=community)
    return user.is_superuser or bool(roles & set(RATING_READER_ROLES))


@dataclass(frozen=True)
class DimensionSummary:
    dimension: str
    label: str
    average: Decimal | None  # 2 decimals
    distribution: dict[int, int]  # stars -> how many households gave them


@dataclass(frozen=True)
class RatingSummary:
    community: Community
    period: Period
    count: int
    dimensions: list[DimensionSummary]
    satisfaction: Decimal | None  # as on the scorecard


def rating_summary(*, community: Community, period: Period) -> RatingSummary:
    """Per dimension: the average and the distribution of the stars, in one aggregate query."""
    aggregates = {"count": Count("pk")}
    for dimension in DIMENSIONS:
        aggregates[f"{dimension}_sum"] = Sum(dimension)
        for stars in range(1, 6):
            aggregates[f"{dimension}_{stars}"] = Count("pk", filter=Q(**{dimension: stars}))
    row = ServiceRating.objects.filter(community=community, period=str(period)).aggregate(
        **aggregates
    )
    count = row["count"]
    dimensions = []
    star_total = 0
    for dimension in DIMENSIONS:
        total = row[f"{dimension}_sum"] or 0
        star_total += total
        dimensions.append(
            DimensionSummary(
                dimension=dimension,
                label=Dimension(dimension).label,
                average=(Decimal(total) / count).quantize(TWO_PLACES, ROUND_HALF_UP)
                if count
                else None,
                distribution={stars: row[f"{dimension}_{stars}"] for stars in range(5, 0, -1)},
            )
        )
    return RatingSummary(
        community=community,
        period=period,
        count=count,
        dimensions=dimensions,
        satisfaction=scoring.satisfaction(star_total=star_total, answers=count * len(DIMENSIONS)),
    )


def rating_comments(*, community: Community, period: Period) -> QuerySet[ServiceRating]:
    """The month's ratings that came with a comment, newest first (no household shown)."""
    return (
        ServiceRating.objects.filter(community=community, period=str(period))
        .exclude(comment="")
        .order_by("-created_at", "-pk")
    )


@dataclass(frozen=True)
class RatingSlot:
    """Can this household rate this month, and if not, why."""

    household: Household
    period: Period
    rating: ServiceRating | None
    paid: bool
    closed: bool  # the month's scorecard is final

    @property
    def can_rate(self) -> bool:
        return self.rating is None and self.paid and not self.closed


def rating_slots(*, user: User, periods: list[Period]) -> list[RatingSlot]:
    """For each household the user lives in and each of `periods`: rated, may rate, or why not."""
    # The households the person lives in today (a superuser too: not every household).
    households = [
        residency.household for residency in community_selectors.residency_list_for_user(user=user)
    ]
    if not households:
        return []
    names = [str(p) for p in periods]
    ratings = {
        (r.household_id, r.period): r
        for r in ServiceRating.objects.filter(household__in=households, period__in=names)
    }
    closed = set(
        Scorecard.objects.filter(
            community__in={h.building.community_id for h in households},
            period__in=names,
            is_current=True,
            finalized_at__isnull=False,
        ).values_list("community_id", "period")
    )
    return [
        RatingSlot(
            household=household,
            period=period,
            rating=ratings.get((household.pk, str(period))),
            paid=billing_selectors.household_paid_for_period(household=household, period=period),
            closed=(household.building.community_id, str(period)) in closed,
        )
        for household in households
        for period in periods
    ]


# --- inspections ------------------------------------------------------------------------------


def inspection_list(*, user: User) -> QuerySet[Inspection]:
    communities = community_selectors.community_list(user=user, roles=INSPECTION_READER_ROLES)
    return (
        Inspection.objects.filter(community__in=communities.values("pk"))
        .select_related("community", "inspector", "organisation")
        .order_by("-created_at", "-pk")
    )


def inspector_organisation(*, user: User, community: Community) -> AllianceOrganisation | None:
    """The member organisation through which `user` inspects `community` (one of its centre's),
    or None when they are no inspector there."""
    membership = (
        community_selectors.membership_list_for_user(user=user)
        .filter(role=Role.ALLIANCE_INSPECTOR, organisation__centre_id=community.centre_id)
        .first()
    )
    return membership.organisation if membership else None


def inspection_communities(*, user: User) -> QuerySet[Community]:
    """Communities the user may inspect: every community of their organisations' centres."""
    return community_selectors.community_list(user=user, roles=[Role.ALLIANCE_INSPECTOR]).order_by(
        "name"
    )


# --- scorecards -------------------------------------------------------------------------------


def score_weights() -> dict[str, Decimal]:
    """The weights in force: the admin-edited rows, and the default for any component without
    one (a database emptied by a test, or a component added later)."""
    weights = dict(DEFAULT_WEIGHTS)
    weights.update(ScoreWeight.objects.values_list("component", "weight"))
    return {component: weights[component] for component in COMPONENTS}


@dataclass(frozen=True)
class Figures:
    """A month's scorecard figures, computed from the data as it is now."""

    attendance_rate: Decimal | None
    handling_rate: Decimal | None
    grid_cooperation: Decimal | None
    major_matter_cooperation: Decimal | None
    resident_satisfaction: Decimal | None
    score: Decimal | None
    weights: dict[str, Decimal]
    rating_count: int
    average_stars: Decimal | None
    inspection_count: int
    ticket_count: int
    tickets_within_sla: int

    def rates(self) -> dict[str, Decimal | None]:
        return {component: getattr(self, component) for component in COMPONENTS}


def scorecard_figures(*, community: Community, period: Period) -> Figures:
    """Compute one community's figures for one month (see alliance.scoring for the rules)."""
    month = str(period)
    checks = list(
        Inspection.objects.filter(community=community, period=month).values_list(
            "staff_on_duty", "staff_rostered", "grid_cooperation", "major_matter_cooperation"
        )
    )
    ratings = ServiceRating.objects.filter(community=community, period=month).aggregate(
        count=Count("pk"), **{dimension: Sum(dimension) for dimension in DIMENSIONS}
    )
    rating_count = ratings["count"]
    star_total = sum(ratings[dimension] or 0 for dimension in DIMENSIONS)
    answers = rating_count * len(DIMENSIONS)
    tickets = repairs_selectors.handling_figures(community=community, period=period)
    rates = {
        "attendance_rate": scoring.attendance_rate((c[0], c[1]) for c in checks),
        # None for a month without tickets: left out of the score (see alliance.scoring).
        "handling_rate": tickets.within_sla_rate,
        "grid_cooperation": scoring.cooperation(c[2] for c in checks),
        "major_matter_cooperation": scoring.cooperation(c[3] for c in checks),
        "resident_satisfaction": scoring.satisfaction(star_total=star_total, answers=answers),
    }
    weights = score_weights()
    return Figures(
        **rates,
        score=scoring.combine(rates, weights),
        weights=weights,
        rating_count=rating_count,
        average_stars=(Decimal(star_total) / answers).quantize(TWO_PLACES, ROUND_HALF_UP)
        if answers
        else None,
        inspection_count=len(checks),
        ticket_count=tickets.total,
        tickets_within_sla=tickets.handled_within_sla,
    )


def scorecard_list(*, user: User) -> QuerySet[Scorecard]:
    """The published (current) scorecard of every month of every community the user sees."""
    communities = community_selectors.community_list(user=user)
    return (
        Scorecard.objects.filter(is_current=True, community__in=communities.values("pk"))
        .select_related("community")
        .order_by("-period", "community__name", "community_id")
    )


def scorecard_current(*, community: Community, period: Period) -> Scorecard | None:
    return (
        Scorecard.objects.filter(community=community, period=str(period), is_current=True)
        .select_related("community", "finalized_by")
        .first()
    )


def scorecard_revisions(*, community: Community, period: Period) -> QuerySet[Scorecard]:
    return Scorecard.objects.filter(community=community, period=str(period)).order_by("revision")


def scorecard_trend(*, community: Community, until: Period, months: int = 12) -> list[Scorecard]:
    """The published scorecards of the `months` months up to `until`, oldest first."""
    since = until.plus(-(months - 1))
    return list(
        Scorecard.objects.filter(
            community=community,
            is_current=True,
            period__gte=str(since),
            period__lte=str(until),
        ).order_by("period")
    )


def order_by_score(qs: QuerySet[Scorecard]) -> QuerySet[Scorecard]:
    """Best score first, a scorecard without a score last; ties by month and name."""
    return qs.order_by(F("score").desc(nulls_last=True), "-period", "community__name", "pk")


def scorecard_ranking(*, user: User, period: Period) -> QuerySet[Scorecard]:
    """The centre admin's communities' scorecards of `period`, best score first."""
    communities = community_selectors.community_list(user=user, roles=[Role.CENTRE_ADMIN])
    return order_by_score(
        Scorecard.objects.filter(
            is_current=True, period=str(period), community__in=communities.values("pk")
        ).select_related("community")
    )


# --- the monthly jobs -------------------------------------------------------------------------


def communities_under_agreement(*, period: Period) -> list[int]:
    """Ids of the communities with a tri-party agreement in force at some time in `period`: the
    ones whose company is evaluated (and paid) for that month. A system-wide read for the jobs,
    with no user to scope by, hence on the agreements directly (as billing's payout job does)."""
    return sorted(
        set(
            Agreement.objects.filter(effective_from__lte=period.last_day)
            .filter(Q(effective_to__isnull=True) | Q(effective_to__gte=period.first_day))
            .values_list("community_id", flat=True)
        )
    )


def draft_targets(*, today: date) -> list[tuple[int, Period]]:
    """What the daily draft job recomputes: this month and the previous one, for every
    community under an agreement then (finalized ones are skipped by the service)."""
    current = Period.containing(today)
    return [
        (community_id, period)
        for period in (current.previous(), current)
        for community_id in communities_under_agreement(period=period)
    ]


def finalize_targets(*, today: date, finalize_day: int) -> list[tuple[int, Period]]:
    """What the finalize job tries today: from `finalize_day` of a month on, the previous month
    of every community under an agreement then; any day, an older month still a draft (a
    missed run, a month billing was not ready for). Months already final are left out."""
    previous = Period.containing(today).previous()
    targets = set()
    if today.day >= finalize_day:
        targets |= {(c, str(previous)) for c in communities_under_agreement(period=previous)}
    targets |= set(
        Scorecard.objects.filter(
            is_current=True, finalized_at__isnull=True, period__lt=str(previous)
        ).values_list("community_id", "period")
    )
    final = set(
        Scorecard.objects.filter(
            is_current=True, finalized_at__isnull=False, period__in={p for _, p in targets}
        ).values_list("community_id", "period")
    )
    return [(c, Period.parse(p)) for c, p in sorted(targets - final)]


def centre_admins(*, community: Community) -> QuerySet[User]:
    """Who hears about the community's scorecards (revisions, a month the job cannot finalize):
    the admins of its centre. community.selectors has no "people in charge of" query, so the
    rule is written here against the role memberships (as repairs' escalation does)."""
    return (
        User.objects.filter(
            is_active=True,
            memberships__role=Role.CENTRE_ADMIN,
            memberships__centre_id=community.centre_id,
        )
        .distinct()
        .order_by("pk")
    )
