"""Scoping: the one place that answers "which communities and households may this user see, and in
which role". Every endpoint and page filters through these functions, and anything outside the
result answers 404 (not 403), so nobody learns that another household's records exist.

Who sees what:
- resident (a residency in force today): their own households, and their communities;
- centre_admin: every community of their centre, and its households;
- property_staff: every community their company manages, and its households;
- alliance_inspector: every community of their organisation's centre (no households);
- committee_member: their community, and its households;
- a superuser: everything.

Everything stays a subquery, so the database does the work at any scale.
"""

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from community import tally
from community.models import (
    Activity,
    ActivityCheckin,
    ActivitySignup,
    Agreement,
    Announcement,
    AnnouncementRead,
    Ballot,
    Community,
    Consultation,
    ConsultationOption,
    Household,
    Notice,
    Residency,
    Role,
    RoleMembership,
    User,
)

RESIDENT = "resident"
ALL_ROLES = frozenset({RESIDENT, *Role.values})
# Roles that see the households of the communities they see.
HOUSEHOLD_VIEWING_ROLES = frozenset({Role.CENTRE_ADMIN, Role.PROPERTY_STAFF, Role.COMMITTEE_MEMBER})


def _memberships(user: User, role: str) -> QuerySet[RoleMembership]:
    return RoleMembership.objects.filter(user=user, role=role)


def _community_q(user: User, role: str) -> Q:
    if role == RESIDENT:
        ids = (
            Residency.objects.active().filter(user=user).values("household__building__community_id")
        )
        return Q(pk__in=ids)
    if role == Role.CENTRE_ADMIN:
        return Q(centre_id__in=_memberships(user, role).values("centre_id"))
    if role == Role.PROPERTY_STAFF:
        return Q(company_id__in=_memberships(user, role).values("company_id"))
    if role == Role.ALLIANCE_INSPECTOR:
        return Q(centre_id__in=_memberships(user, role).values("organisation__centre_id"))
    if role == Role.COMMITTEE_MEMBER:
        return Q(pk__in=_memberships(user, role).values("community_id"))
    raise ValueError(f"unknown role {role!r}")


def _roles(roles: Iterable[str] | None) -> frozenset[str]:
    chosen = ALL_ROLES if roles is None else frozenset(roles)
    unknown = chosen - ALL_ROLES
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")
    return chosen


def community_list(*, user: User, roles: Iterable[str] | None = None) -> QuerySet[Community]:
    """Communities the user may see through any of `roles` (default: any role at all)."""
    if not user.is_authenticated or not user.is_active:
        return Community.objects.none()
    qs = Community.objects.select_related("centre", "company", "committee")
    if user.is_superuser:
        return qs
    q = Q(pk__in=[])
    for role in _roles(roles):
        q |= _community_q(user, role)
    return qs.filter(q)


def community_get(*, user: User, community_id, roles: Iterable[str] | None = None) -> Community:
    """One visible community; raises Community.DoesNotExist (-> 404) outside the user's scope."""
    return community_list(user=user, roles=roles).get(pk=community_id)


def household_list(*, user: User, roles: Iterable[str] | None = None) -> QuerySet[Household]:
    """Households the user may see: their own as a resident, or those of communities they manage
    or represent (centre admin, property staff, committee member)."""
    if not user.is_authenticated or not user.is_active:
        return Household.objects.none()
    qs = Household.objects.select_related("building__community")
    if user.is_superuser:
        return qs
    chosen = _roles(roles)
    q = Q(pk__in=[])
    if RESIDENT in chosen:
        q |= Q(pk__in=Residency.objects.active().filter(user=user).values("household_id"))
    managing = chosen & HOUSEHOLD_VIEWING_ROLES
    if managing:
        q |= Q(building__community__in=community_list(user=user, roles=managing).values("pk"))
    return qs.filter(q)


def resident_households_sql(*, user: User) -> tuple[str, list] | None:
    """household_list(user=user, roles=[RESIDENT]) as an SQL subquery of household ids and its
    parameters, for the few statements that are written out in SQL because every payment runs
    them (the payment's create locks the payer's bills with it): building and compiling the
    same subquery with the ORM cost about a millisecond of CPU on each. The rule is
    household_list's resident branch (Residency.objects.active()): the tests check that both
    give the same households. None for a user it does not describe (a superuser sees every
    household, an inactive user none): use household_list."""
    if not user.is_authenticated or not user.is_active or user.is_superuser:
        return None
    on = connection.ops.adapt_datefield_value(timezone.localdate())
    table = connection.ops.quote_name(Residency._meta.db_table)
    sql = (
        f'SELECT "household_id" FROM {table} WHERE "user_id" = %s '
        'AND "start_date" <= %s AND ("end_date" IS NULL OR "end_date" >= %s)'
    )
    return sql, [user.pk, on, on]


def household_get(*, user: User, household_id, roles: Iterable[str] | None = None) -> Household:
    """One visible household; raises Household.DoesNotExist (-> 404) outside the user's scope."""
    return household_list(user=user, roles=roles).get(pk=household_id)


def residency_list_for_user(*, user: User) -> QuerySet[Residency]:
    """The user's residencies in force today, with their households, for the home page and /me."""
    return (
        Residency.objects.active()
        .filter(user=user)
        .select_related("household__building__community")
        .order_by(
            "household__building__community__name", "household__building__name", "household__unit"
        )
    )


def membership_list_for_user(*, user: User) -> QuerySet[RoleMembership]:
    return (
        RoleMembership.objects.filter(user=user)
        .select_related("centre", "company", "organisation", "community")
        .order_by("role", "pk")
    )


def roles_in_community(*, user: User, community: Community) -> frozenset[str]:
    """The roles through which `user` sees `community` (empty if none): for permission checks
    such as "may this user create an activity here" in the apps built on top."""
    if not user.is_authenticated or not user.is_active:
        return frozenset()
    flags = {
        role: Exists(Community.objects.filter(_community_q(user, role), pk=OuterRef("pk")))
        for role in ALL_ROLES
    }
    row = Community.objects.filter(pk=community.pk).annotate(**flags).values(*ALL_ROLES).first()
    return frozenset(role for role, present in (row or {}).items() if present)


def agreement_in_force(*, community: Community, on=None) -> Agreement | None:
    """The tri-party agreement in force for `community` on a date (today by default), if any."""
    on = on or timezone.localdate()
    return (
        Agreement.objects.filter(community=community, effective_from__lte=on)
        .filter(Q(effective_to__isnull=True) | Q(effective_to__gte=on))
        .first()
    )


def notice_list(*, user: User, unread_only: bool = False) -> QuerySet[Notice]:
    qs = Notice.objects.filter(user=user)
    return qs.filter(read_at__isnull=True) if unread_only else qs


# ==============================================================================================
# Community life: announcements, activities, consultations. Everything here is seen through
# community_list (any role): a community outside the caller's scope shows none of it (404).
# ==============================================================================================

# Who may do what in a community, by the roles through which they see it.
ACTIVITY_ORGANISER_ROLES = frozenset({Role.CENTRE_ADMIN, Role.PROPERTY_STAFF})
CONSULTATION_CREATOR_ROLES = frozenset({Role.CENTRE_ADMIN, Role.COMMITTEE_MEMBER})
# The role an announcement is posted in decides whose name it carries.
ANNOUNCEMENT_SOURCE_OF_ROLE = {
    Role.CENTRE_ADMIN: Announcement.Source.CENTRE,
    Role.PROPERTY_STAFF: Announcement.Source.COMPANY,
    Role.COMMITTEE_MEMBER: Announcement.Source.COMMITTEE,
}


def community_roles(*, user: User, community: Community) -> frozenset[str]:
    """roles_in_community, where a superuser also holds every staff role."""
    roles = roles_in_community(user=user, community=community)
    if user.is_authenticated and user.is_superuser:
        roles |= frozenset(Role.values)
    return roles


def _visible_community_ids(user: User) -> QuerySet:
    return community_list(user=user).values("pk")


# --- announcements ------------------------------------------------------------------------------


def announcement_list(*, user: User, at: datetime | None = None) -> QuerySet[Announcement]:
    """The board as `user` sees it now: published, not expired, for one of their communities or
    for all of their communities' centre; pinned first, newest first; `is_read` per row."""
    if not user.is_authenticated:
        return Announcement.objects.none()
    at = at or timezone.now()
    visible = community_list(user=user)
    return (
        Announcement.objects.filter(
            Q(community__in=visible.values("pk"))
            | Q(community__isnull=True, centre__in=visible.values("centre_id"))
        )
        .filter(published_at__lte=at)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=at))
        .select_related("centre", "community__company", "community__committee", "author")
        .annotate(
            is_read=Exists(AnnouncementRead.objects.filter(announcement=OuterRef("pk"), user=user))
        )
        .order_by("-pinned", "-published_at", "-pk")
    )


def announcement_get(*, user: User, announcement_id, at: datetime | None = None) -> Announcement:
    """One announcement on the user's board; Announcement.DoesNotExist (-> 404) otherwise."""
    return announcement_list(user=user, at=at).get(pk=announcement_id)


def announcement_unread_count(*, user: User) -> int:
    return announcement_list(user=user).filter(is_read=False).count()


def announcement_sources(*, user: User, community: Community) -> list[str]:
    """On whose behalf `user` may post to `community` (centre, company, committee)."""
    roles = community_roles(user=user, community=community)
    return [source for role, source in ANNOUNCEMENT_SOURCE_OF_ROLE.items() if role in roles]


# --- activities ---------------------------------------------------------------------------------


def activity_list(*, user: User) -> QuerySet[Activity]:
    """Activities of the communities the user sees, with the user's own sign-up and check-in
    (`my_signup`, `my_checkin`, `my_hours`) on every row: one query for a whole page."""
    if not user.is_authenticated:
        return Activity.objects.none()
    mine = ActivityCheckin.objects.filter(activity=OuterRef("pk"), user=user)
    return (
        Activity.objects.filter(community__in=_visible_community_ids(user))
        .select_related("community", "organiser")
        .annotate(
            my_signup=Exists(ActivitySignup.objects.filter(activity=OuterRef("pk"), user=user)),
            my_checkin=Exists(mine),
            my_hours=Subquery(mine.values("hours")[:1]),
        )
    )


def activity_get(*, user: User, activity_id) -> Activity:
    """One activity the user may see; Activity.DoesNotExist (-> 404) otherwise."""
    return activity_list(user=user).get(pk=activity_id)


UPCOMING, PAST = "upcoming", "past"


def activity_filter(
    qs: QuerySet[Activity],
    *,
    community_id: int | None = None,
    kind: str | None = None,
    when: str | None = None,
    at: datetime | None = None,
) -> QuerySet[Activity]:
    """Narrow and order a list: `upcoming` (not yet over, soonest first), `past` (over, latest
    first), or everything (latest start first)."""
    at = at or timezone.now()
    if community_id is not None:
        qs = qs.filter(community_id=community_id)
    if kind:
        qs = qs.filter(kind=kind)
    if when == UPCOMING:
        return qs.filter(ends_at__gt=at).order_by("starts_at", "pk")
    if when == PAST:
        return qs.filter(ends_at__lte=at).order_by("-starts_at", "-pk")
    return qs.order_by("-starts_at", "-pk")


def may_organise(*, user: User, community: Community) -> bool:
    """Centre admins and property staff organise (and check people in at) a community's
    activities; so does a superuser."""
    return bool(community_roles(user=user, community=community) & ACTIVITY_ORGANISER_ROLES)


def organiser_communities(*, user: User) -> QuerySet[Community]:
    return community_list(user=user, roles=ACTIVITY_ORGANISER_ROLES)


def is_resident_of(*, user: User, community: Community, on=None) -> bool:
    """Lives in (owner, tenant or family) a household of `community` on a date (today)."""
    return (
        Residency.objects.active(on)
        .filter(user=user, household__building__community=community)
        .exists()
    )


def activity_participants(*, activity: Activity) -> QuerySet[ActivitySignup]:
    """Who signed up, in order, with their check-in (`checked_in_at`, `checkin_hours`) and their
    homes in the activity's community (`homes`): for the organiser's page, in three queries."""
    checkin = ActivityCheckin.objects.filter(activity=activity, user=OuterRef("user"))
    homes = (
        Residency.objects.active()
        .filter(household__building__community_id=activity.community_id)
        .select_related("household__building")
    )
    return (
        ActivitySignup.objects.filter(activity=activity)
        .select_related("user")
        .prefetch_related(Prefetch("user__residencies", queryset=homes, to_attr="homes"))
        .annotate(
            checked_in_at=Subquery(checkin.values("checked_in_at")[:1]),
            checkin_hours=Subquery(checkin.values("hours")[:1]),
        )
        .order_by("created_at", "pk")
    )


def checkin_list_for_user(*, user: User) -> QuerySet[ActivityCheckin]:
    """The person's check-ins, latest first, with their activities: "my activities"."""
    return (
        ActivityCheckin.objects.filter(user=user)
        .select_related("activity__community")
        .order_by("-checked_in_at", "-pk")
    )


def volunteer_hours_total(*, user: User) -> Decimal:
    total = ActivityCheckin.objects.filter(user=user).aggregate(total=Sum("hours"))["total"]
    return total or Decimal("0.0")


# --- consultations ------------------------------------------------------------------------------


def owned_households(
    *, user: User, community: Community | int | None = None, on=None
) -> QuerySet[Household]:
    """The households `user` is an owner of record of on a date (today): the ones they vote for.
    Tenants and family members own none."""
    residencies = Residency.objects.active(on).filter(user=user, relation=Residency.Relation.OWNER)
    qs = Household.objects.filter(pk__in=residencies.values("household_id")).select_related(
        "building__community"
    )
    if community is not None:
        qs = qs.filter(building__community=community)
    return qs.order_by("building__name", "unit")


def consultation_list(*, user: User) -> QuerySet[Consultation]:
    """Consultations of the communities the user sees, with their options and the ballots of the
    households the user owns (`my_ballots`): a page in three queries however long."""
    if not user.is_authenticated:
        return Consultation.objects.none()
    my_ballots = Ballot.objects.filter(
        household__in=owned_households(user=user).values("pk")
    ).select_related("option", "household__building")
    return (
        Consultation.objects.filter(community__in=_visible_community_ids(user))
        .select_related("community__committee", "created_by")
        .prefetch_related(
            Prefetch("options", queryset=ConsultationOption.objects.order_by("position", "pk")),
            Prefetch("ballots", queryset=my_ballots, to_attr="my_ballots"),
        )
        .order_by("-opens_at", "-pk")
    )


def consultation_get(*, user: User, consultation_id) -> Consultation:
    """One consultation the user may see; Consultation.DoesNotExist (-> 404) otherwise."""
    return consultation_list(user=user).get(pk=consultation_id)


def consultation_filter(
    qs: QuerySet[Consultation],
    *,
    community_id: int | None = None,
    status: str | None = None,
    at: datetime | None = None,
) -> QuerySet[Consultation]:
    at = at or timezone.now()
    if community_id is not None:
        qs = qs.filter(community_id=community_id)
    if status == Consultation.Status.DRAFT:
        qs = qs.filter(opens_at__gt=at)
    elif status == Consultation.Status.OPEN:
        qs = qs.filter(opens_at__lte=at, closes_at__gt=at)
    elif status == Consultation.Status.CLOSED:
        qs = qs.filter(closes_at__lte=at)
    return qs


def may_create_consultation(*, user: User, community: Community) -> bool:
    return bool(community_roles(user=user, community=community) & CONSULTATION_CREATOR_ROLES)


def consultation_creator_communities(*, user: User) -> QuerySet[Community]:
    return community_list(user=user, roles=CONSULTATION_CREATOR_ROLES)


def consultation_result(*, consultation: Consultation) -> tally.Result | None:
    """The decision, from the counts frozen at the tally (None before it). Reads the options
    the caller prefetched, so a list of results costs no query per row."""
    if consultation.tallied_at is None:
        return None
    options = list(consultation.options.all())
    approving = next((option.pk for option in options if option.approves), None)
    return tally.tally(
        votes=[
            (option.pk, tally.Count(heads=option.head_votes or 0, area=option.area_votes or 0))
            for option in options
        ],
        total=tally.Count(
            heads=consultation.electorate_households or 0,
            area=consultation.electorate_area or Decimal("0"),
        ),
        rule=consultation.rule,
        approving=approving,
    )


def _shares(heads, area) -> dict:
    return {"heads": tally.shown(heads), "area": tally.shown(area)}


def consultation_result_table(*, consultation: Consultation) -> dict | None:
    """The frozen result as the API and the pages show it (None until tallied): counts, and
    shares rounded half up to 4 places (Decimal) or None where nobody took part."""
    result = consultation_result(consultation=consultation)
    if result is None:
        return None
    labels = {option.pk: option.label for option in consultation.options.all()}
    return {
        "options": [
            {
                "option": option.key,
                "label": labels[option.key],
                "heads": option.votes.heads,
                "area": option.votes.area,
                "share_of_participating": _shares(
                    option.share_of_participating_heads, option.share_of_participating_area
                ),
                "share_of_total": _shares(option.share_of_total_heads, option.share_of_total_area),
                "reached": option.approved,
            }
            for option in result.options
        ],
        "participating": {"heads": result.participating.heads, "area": result.participating.area},
        "total": {"heads": result.total.heads, "area": result.total.area},
        "turnout": _shares(result.turnout_heads, result.turnout_area),
        "participation_met": result.participation_met,
        "participation_met_by": {
            "heads": result.participation_met_by_heads,
            "area": result.participation_met_by_area,
        },
        "passed": result.passed,
        "adopted_option": result.adopted,
        "tallied_at": consultation.tallied_at,
    }


def may_see_ballots(*, user: User, consultation: Consultation, at: datetime | None = None) -> bool:
    """Who voted how: only the community's committee, only for an open (not secret) ballot, and
    only once it has closed."""
    return (
        not consultation.secret_ballot
        and consultation.status_at(at) == Consultation.Status.CLOSED
        and Role.COMMITTEE_MEMBER in roles_in_community(user=user, community=consultation.community)
    )


def ballot_list(*, user: User, consultation: Consultation) -> QuerySet[Ballot]:
    """Each household's ballot, for the committee (see may_see_ballots); PermissionDenied
    (-> 403) for anyone else who can see the consultation."""
    if not may_see_ballots(user=user, consultation=consultation):
        raise PermissionDenied(_("Only the committee sees the ballots, and only of an open vote."))
    return (
        Ballot.objects.filter(consultation=consultation)
        .select_related("household__building", "option", "cast_by")
        .order_by("household__building__name", "household__unit")
    )
