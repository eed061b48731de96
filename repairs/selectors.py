"""Reads for the repairs app: which tickets a person may see and in which role, the staff queue,
and the handling figures that alliance/ and the KPI endpoint use.

Who sees which tickets (objects outside this answer 404):
- a resident: every ticket of a household they live in today, and the common-area tickets they
  filed themselves (not their neighbours' flats);
- property staff: every ticket of the communities their company manages;
- a centre admin: every ticket of their centre's communities;
- a superuser: everything.
Owners' committee members and alliance inspectors see the figures, not the tickets.

The sets behind this come from community.selectors (the one scoping module). They are small (a
person's households, a company's communities), so TicketViewer reads them once into Python sets:
a ticket list then filters on plain indexed columns (`household_id IN (...)`,
`community_id IN (...)`) that the database can combine with BitmapOr on a million rows, and
the roles on each row of a page are worked out without another query.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db.models import Avg, Count, F, Prefetch, Q, QuerySet
from django.utils import timezone

from community import selectors as community_selectors
from community.models import Community, Role, User
from community.periods import Period
from repairs import transitions
from repairs.models import (
    FINISHED_STATUSES,
    HANDLED_STATUSES,
    Status,
    Ticket,
    TicketCategory,
    TicketEvent,
    TicketPhoto,
)

OPEN = "open"  # a status filter value: every status that still needs the company's work


@dataclass(frozen=True)
class TicketViewer:
    """What one user is towards tickets, read once per request (three small queries)."""

    user_id: int | None
    is_superuser: bool
    household_ids: frozenset[int]
    staff_community_ids: frozenset[int]
    admin_community_ids: frozenset[int]

    @property
    def is_staff_somewhere(self) -> bool:
        return bool(self.staff_community_ids)

    @property
    def watches_tickets(self) -> bool:
        """Has a staff console: property staff or centre admin somewhere."""
        return bool(self.staff_community_ids or self.admin_community_ids)

    def roles_on(self, ticket: Ticket) -> frozenset[str]:
        roles = set()
        if ticket.filed_by_id == self.user_id:
            roles.add(transitions.FILER)
        if ticket.community_id in self.staff_community_ids:
            roles.add(transitions.STAFF)
            if ticket.assignee_id == self.user_id:
                roles.add(transitions.ASSIGNEE)
        if ticket.community_id in self.admin_community_ids:
            roles.add(transitions.CENTRE_ADMIN)
        return frozenset(roles)

    def allowed_actions(self, ticket: Ticket) -> list[str]:
        return transitions.allowed_actions(ticket.status, self.roles_on(ticket))

    def visible_q(self) -> Q:
        if self.is_superuser:
            return Q()
        q = Q(household_id__in=self.household_ids)
        q |= Q(household__isnull=True, filed_by_id=self.user_id)
        q |= Q(community_id__in=self.staff_community_ids | self.admin_community_ids)
        return q


def ticket_viewer(*, user: User) -> TicketViewer:
    if not user.is_authenticated or not user.is_active:
        return TicketViewer(None, False, frozenset(), frozenset(), frozenset())

    def community_ids(role: str) -> frozenset[int]:
        return frozenset(
            community_selectors.community_list(user=user, roles=[role]).values_list("pk", flat=True)
        )

    # The households the person lives in today (for a superuser too: not every household).
    residencies = community_selectors.residency_list_for_user(user=user)
    return TicketViewer(
        user_id=user.pk,
        is_superuser=user.is_superuser,
        household_ids=frozenset(residencies.values_list("household_id", flat=True)),
        staff_community_ids=community_ids(Role.PROPERTY_STAFF),
        admin_community_ids=community_ids(Role.CENTRE_ADMIN),
    )


def ticket_available_actions(
    *, viewer: TicketViewer, ticket: Ticket, now: datetime | None = None
) -> list[str]:
    """The actions `viewer` may take on `ticket` now: the transitions table, and the reopen
    window (REPAIRS_REOPEN_DAYS after the resolution)."""
    actions = viewer.allowed_actions(ticket)
    if "reopen" in actions:
        window = timedelta(days=settings.REPAIRS_REOPEN_DAYS)
        if ticket.resolved_at is None or (now or timezone.now()) > ticket.resolved_at + window:
            actions.remove("reopen")
    return actions


def may_file_tickets(*, user: User) -> bool:
    """Only residents file reports and repairs (for their households and communities)."""
    return community_selectors.residency_list_for_user(user=user).exists()


def ticket_category_list(*, kind: str | None = None) -> QuerySet[TicketCategory]:
    qs = TicketCategory.objects.filter(is_active=True)
    return qs.filter(kind=kind) if kind else qs


def ticket_list(
    *,
    user: User | None = None,
    viewer: TicketViewer | None = None,
    community_ids: Iterable[int] | None = None,
) -> QuerySet[Ticket]:
    """The tickets the user may see, with what a list row shows already joined; with
    community_ids, only those estates' tickets."""
    viewer = viewer or ticket_viewer(user=user)
    if viewer.user_id is None:
        return Ticket.objects.none()
    qs = Ticket.objects.select_related(
        "category", "community", "household__building", "filed_by", "assignee"
    )
    if community_ids is None:
        return qs.filter(viewer.visible_q())
    community_ids = frozenset(community_ids)
    if viewer.is_superuser or community_ids <= (
        viewer.staff_community_ids | viewer.admin_community_ids
    ):
        # Every ticket of an estate the viewer watches is visible to them, so the estate filter
        # is the whole condition. Without visible_q's OR, PostgreSQL counts a queue of open
        # tickets from the partial index ticket_queue_by_due alone (a million-ticket table
        # then pages as fast as a small one).
        return qs.filter(community_id__in=community_ids)
    return qs.filter(viewer.visible_q(), community_id__in=community_ids)


def ticket_get(
    *,
    user: User | None = None,
    viewer: TicketViewer | None = None,
    ticket_id,
    qs: QuerySet[Ticket] | None = None,
) -> Ticket:
    """One visible ticket; raises Ticket.DoesNotExist (-> 404) outside the user's scope."""
    try:
        pk = int(ticket_id)
    except (TypeError, ValueError):
        raise Ticket.DoesNotExist from None
    if qs is None:
        qs = ticket_list(user=user, viewer=viewer)
    return qs.get(pk=pk)


def ticket_detail_get(*, viewer: TicketViewer, ticket_id) -> Ticket:
    """A visible ticket with its timeline, photos and rating, for the detail page and API."""
    timeline = TicketEvent.objects.select_related("actor", "assignee").order_by("created_at", "pk")
    qs = (
        ticket_list(viewer=viewer)
        .select_related("rating")
        .prefetch_related(Prefetch("events", queryset=timeline), "photos")
    )
    return ticket_get(qs=qs, viewer=viewer, ticket_id=ticket_id)


def ticket_photo_get(*, viewer: TicketViewer, ticket_id, photo_id) -> TicketPhoto:
    ticket = ticket_get(viewer=viewer, ticket_id=ticket_id)
    try:
        pk = int(photo_id)
    except (TypeError, ValueError):
        raise TicketPhoto.DoesNotExist from None
    return TicketPhoto.objects.get(ticket=ticket, pk=pk)


def ticket_filter(
    qs: QuerySet[Ticket],
    *,
    status: str | None = None,
    kind: str | None = None,
    category_id: int | None = None,
    community_id: int | None = None,
    household_id: int | None = None,
    assignee_id: int | None = None,
    overdue: bool | None = None,
    now: datetime | None = None,
) -> QuerySet[Ticket]:
    """The queue's and the API's filters, in one place. Every one of them is served by an index
    (see Ticket.Meta.indexes): `open` and `overdue` are conditions on next_due, which is NULL
    exactly for finished tickets."""
    if status == OPEN:
        qs = qs.filter(next_due__isnull=False)
    elif status:
        qs = qs.filter(status=status)
    if kind:
        qs = qs.filter(kind=kind)
    if category_id:
        qs = qs.filter(category_id=category_id)
    if community_id:
        qs = qs.filter(community_id=community_id)
    if household_id:
        qs = qs.filter(household_id=household_id)
    if assignee_id:
        qs = qs.filter(assignee_id=assignee_id)
    if overdue is True:
        qs = qs.filter(next_due__lt=now or timezone.now())
    elif overdue is False:
        qs = qs.exclude(next_due__lt=now or timezone.now())
    return qs


def ticket_order_by_deadline(
    qs: QuerySet[Ticket], *, status: str | None = None
) -> QuerySet[Ticket]:
    """Most urgent first: open tickets by their next deadline, then finished ones, newest first.
    A list of finished tickets only (no deadline left) is simply newest first, which the
    (community, status, created_at) index serves."""
    if status in FINISHED_STATUSES:
        return qs.order_by("-created_at", "-pk")
    return qs.order_by(F("next_due").asc(nulls_last=True), "-created_at", "-pk")


def assignee_choices(*, community_ids) -> dict[int, list[User]]:
    """Who a ticket of each community may be assigned to: active property staff of the company
    that manages it. One query for any number of communities."""
    communities = Community.objects.filter(pk__in=community_ids).values_list("pk", "company_id")
    company_of = dict(communities)
    staff = (
        User.objects.filter(
            is_active=True,
            memberships__role=Role.PROPERTY_STAFF,
            memberships__company_id__in=set(company_of.values()),
        )
        .annotate(company_id=F("memberships__company_id"))
        .order_by("display_name", "username")
    )
    by_company: dict[int, list[User]] = {}
    for user in staff:
        by_company.setdefault(user.company_id, []).append(user)
    return {pk: by_company.get(company_id, []) for pk, company_id in company_of.items()}


def is_assignable(*, user: User, community: Community) -> bool:
    """May tickets of `community` be assigned to `user`: active property staff of its company."""
    if not user.is_active:
        return False
    return (
        community_selectors.community_list(user=user, roles=[Role.PROPERTY_STAFF])
        .filter(pk=community.pk)
        .exists()
    )


def escalation_recipients(*, community: Community) -> QuerySet[User]:
    """Who hears of a missed deadline: the admins of the community's centre and the managers
    (is_manager) of its property company. community.selectors has no "people in charge of"
    query yet, so the rule is written here against the role memberships."""
    return (
        User.objects.filter(is_active=True)
        .filter(
            Q(memberships__role=Role.CENTRE_ADMIN, memberships__centre_id=community.centre_id)
            | Q(
                memberships__role=Role.PROPERTY_STAFF,
                memberships__company_id=community.company_id,
                memberships__is_manager=True,
            )
        )
        .distinct()
        .order_by("pk")
    )


# --- Handling figures -----------------------------------------------------------------------


@dataclass(frozen=True)
class HandlingFigures:
    """How one community's tickets filed in one month were handled, as of now.

    - total: tickets filed in the month, except those the filer cancelled;
    - handled: of those, resolved or closed (rejected ones count as not handled);
    - handled_within_sla: handled, and no deadline of the ticket was ever missed;
    - rated / satisfied: how many were rated, and rated 4 or 5 stars;
    - average_stars: the mean rating (2 decimals), None when nothing was rated.
    """

    community_id: int
    period: Period
    total: int
    handled: int
    handled_within_sla: int
    rated: int
    satisfied: int
    average_stars: Decimal | None

    @staticmethod
    def _rate(part: int, whole: int) -> Decimal | None:
        if not whole:
            return None
        return (Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001"), ROUND_HALF_UP)

    @property
    def handling_rate(self) -> Decimal | None:
        """handled / total, 4 decimals (the 事件处理率); None for a month without tickets."""
        return self._rate(self.handled, self.total)

    @property
    def within_sla_rate(self) -> Decimal | None:
        return self._rate(self.handled_within_sla, self.total)

    @property
    def satisfaction_rate(self) -> Decimal | None:
        """satisfied / rated, 4 decimals; None when nothing was rated."""
        return self._rate(self.satisfied, self.rated)


def period_bounds(period: Period) -> tuple[datetime, datetime]:
    """The month as [start, end) instants in the project's time zone."""
    tz = timezone.get_default_timezone()
    start = datetime.combine(period.first_day, time.min, tzinfo=tz)
    end = datetime.combine(period.next().first_day, time.min, tzinfo=tz)
    return start, end


def handling_figures(*, community: Community | int, period: Period) -> HandlingFigures:
    """The handling figures of one community for one month: one aggregate query."""
    community_id = community if isinstance(community, int) else community.pk
    start, end = period_bounds(period)
    handled = Q(status__in=HANDLED_STATUSES)
    row = (
        Ticket.objects.filter(community_id=community_id, created_at__gte=start, created_at__lt=end)
        .exclude(status=Status.CANCELLED)
        .aggregate(
            total=Count("pk"),
            handled=Count("pk", filter=handled),
            handled_within_sla=Count("pk", filter=handled & Q(sla_breached=False)),
            rated=Count("rating"),
            satisfied=Count("rating", filter=Q(rating__stars__gte=4)),
            average_stars=Avg("rating__stars"),
        )
    )
    average = row["average_stars"]
    return HandlingFigures(
        community_id=community_id,
        period=period,
        total=row["total"],
        handled=row["handled"],
        handled_within_sla=row["handled_within_sla"],
        rated=row["rated"],
        satisfied=row["satisfied"],
        average_stars=None
        if average is None
        else Decimal(str(average)).quantize(Decimal("0.01"), ROUND_HALF_UP),
    )
