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

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from community.models import (
    Agreement,
    Community,
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
