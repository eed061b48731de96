"""Writes for the repairs app. Each service runs in one transaction, locks the ticket row it
changes, writes the ticket's timeline row in that same transaction, and announces what happened
(repairs.events, notices) only after the commit.

Errors, mapped to HTTP by config.api: ValidationError -> 400, PermissionDenied -> 403,
Conflict -> 409 (the ticket's state forbids it). Finding the ticket in the caller's scope (404)
is the caller's job, through repairs.selectors.

Every service takes `at` (default: now), the moment the thing happens: the demo replays a past
month with it, and tests use it instead of sleeping.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import formats, timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from community import notifications
from community import selectors as community_selectors
from community.models import Community, Household, User
from community.notification_models import Kind as NotificationKind
from config.api import Conflict
from repairs import events, selectors, transitions
from repairs import summary as ticket_summary
from repairs.models import (
    MAX_PHOTOS,
    OPEN_STATUSES,
    Status,
    Ticket,
    TicketCategory,
    TicketEvent,
    TicketPhoto,
    TicketRating,
)
from repairs.photos import CleanPhoto, clean_photo

logger = logging.getLogger(__name__)

RESPONSE = "response"
RESOLVE = "resolve"
NOTE_LENGTH = TicketEvent._meta.get_field("note").max_length  # 500, as for rating comments


def _next_due(ticket: Ticket) -> datetime | None:
    if ticket.status == Status.SUBMITTED:
        return ticket.response_due
    if ticket.status in OPEN_STATUSES:
        return ticket.resolve_due
    return None


def _set_deadlines(ticket: Ticket, start: datetime) -> None:
    """Deadlines counted from `start` (filing or reopening), by the ticket's category."""
    category = ticket.category
    ticket.response_due = start + timedelta(hours=category.response_hours)
    ticket.resolve_due = start + timedelta(hours=category.resolve_hours)
    ticket.response_escalated_at = None
    ticket.resolve_escalated_at = None


def _figures(ticket: Ticket, stars: int | None = None) -> dict[str, int]:
    """What the ticket counts for in the dashboards' summary (repairs.summary), with `stars`
    its rating if it has one and the caller needs it counted."""
    return ticket_summary.figures(
        status=ticket.status, sla_breached=ticket.sla_breached, stars=stars
    )


def _lock(ticket: Ticket | int) -> Ticket:
    pk = ticket if isinstance(ticket, int) else ticket.pk
    # of=("self",): only the ticket row, never the category or users it points to.
    return (
        Ticket.objects.select_for_update(of=("self",))
        .select_related("category", "community")
        .get(pk=pk)
    )


def _store_photo(*, ticket: Ticket, photo: CleanPhoto, user: User, at: datetime) -> TicketPhoto:
    stored = TicketPhoto(
        ticket=ticket,
        content_type=photo.content_type,
        width=photo.width,
        height=photo.height,
        size=photo.size,
        uploaded_by=user,
        created_at=at,
    )
    stored.image.save(photo.content.name, photo.content, save=False)
    try:
        stored.save()
    except Exception:
        stored.image.delete(save=False)  # no row, no file
        raise
    return stored


def _resident_household(*, user: User, household: Household) -> Household:
    try:
        return community_selectors.household_get(
            user=user, household_id=household.pk, roles=[community_selectors.RESIDENT]
        )
    except Household.DoesNotExist:
        raise ValidationError(
            {"household": _("You can only file for a household you live in.")}
        ) from None


def _resident_community(*, user: User, community: Community | None) -> Community:
    communities = community_selectors.community_list(
        user=user, roles=[community_selectors.RESIDENT]
    )
    if community is not None:
        try:
            return communities.get(pk=community.pk)
        except Community.DoesNotExist:
            raise ValidationError(
                {"community": _("You can only file for a community you live in.")}
            ) from None
    found = list(communities[:2])
    if len(found) != 1:
        raise ValidationError({"community": _("Choose the community this is about.")})
    return found[0]


def ticket_create(
    *,
    filed_by: User,
    kind: str,
    category: TicketCategory,
    title: str,
    description: str = "",
    household: Household | None = None,
    community: Community | None = None,
    location: str = "",
    photos: list | tuple = (),
    at: datetime | None = None,
) -> Ticket:
    """A resident files a report or repair: for one of their own households, or for a common-area
    `location` of a community they live in. `photos` are uploaded files, checked before anything
    is written. PermissionDenied if `filed_by` lives nowhere."""
    at = at or timezone.now()
    if not selectors.may_file_tickets(user=filed_by):
        raise PermissionDenied(_("Only residents can file reports and repairs."))
    errors = {}
    if category.kind != kind:
        errors["category"] = _("This category belongs to the other kind of ticket.")
    elif not category.is_active:
        errors["category"] = _("This category is no longer offered.")
    location = (location or "").strip()
    title = (title or "").strip()
    if not title:
        errors["title"] = _("Say in a few words what is wrong.")
    if household is None and not location:
        errors["location"] = _("Say where the problem is, or choose your flat.")
    if len(photos) > MAX_PHOTOS:
        errors["photos"] = ngettext(
            "At most %(count)d photo.", "At most %(count)d photos.", MAX_PHOTOS
        ) % {"count": MAX_PHOTOS}
    if errors:
        raise ValidationError(errors)
    if household is not None:
        household = _resident_household(user=filed_by, household=household)
        place = household.building.community
        if community is not None and community.pk != place.pk:
            raise ValidationError({"community": _("The household is in another community.")})
        community = place
    else:
        community = _resident_community(user=filed_by, community=community)
    cleaned = _clean_photos(photos)

    with transaction.atomic():
        ticket = Ticket(
            kind=kind,
            category=category,
            community=community,
            household=household,
            location=location,
            title=title,
            description=(description or "").strip(),
            filed_by=filed_by,
            status=Status.SUBMITTED,
            created_at=at,
            updated_at=at,
        )
        _set_deadlines(ticket, at)
        ticket.next_due = _next_due(ticket)
        # Lengths and choices (no queries); the relations were checked above.
        ticket.clean_fields(exclude=["category", "community", "household", "filed_by"])
        ticket.save()
        ticket_summary.ticket_moved(ticket, before={}, after=_figures(ticket))
        TicketEvent.objects.create(
            ticket=ticket,
            kind=TicketEvent.Kind.FILED,
            actor=filed_by,
            to_status=Status.SUBMITTED,
            created_at=at,
        )
        stored: list[TicketPhoto] = []
        try:
            for photo in cleaned:
                stored.append(_store_photo(ticket=ticket, photo=photo, user=filed_by, at=at))
        except Exception:
            for done in stored:  # the rows roll back; their files must go too
                done.image.delete(save=False)
            raise
    return ticket


def _clean_photos(photos) -> list[CleanPhoto]:
    cleaned, errors = [], []
    for upload in photos:
        try:
            cleaned.append(clean_photo(upload))
        except ValidationError as exc:
            name = getattr(upload, "name", "") or "?"
            errors.extend(f"{name}: {message}" for message in exc.messages)
    if errors:
        raise ValidationError({"photos": errors})
    return cleaned


def _transition_error(action: str, ticket: Ticket) -> Conflict:
    if ticket.status == transitions.TRANSITIONS[action].target:
        # Typically the loser of a race: someone else did the same a moment ago.
        return Conflict(
            _("This ticket is already %(status)s.") % {"status": ticket.get_status_display()}
        )
    return Conflict(
        _("A ticket that is %(status)s cannot be %(action)s.")
        % {"status": ticket.get_status_display(), "action": _action_label(action)}
    )


def _action_label(action: str) -> str:
    labels = {
        "accept": _("accepted"),
        "assign": _("assigned"),
        "start": _("started"),
        "resolve": _("resolved"),
        "close": _("closed"),
        "reopen": _("reopened"),
        "reject": _("rejected"),
        "cancel": _("cancelled"),
    }
    return labels[action]


def ticket_transition(
    *,
    ticket: Ticket | int,
    actor: User,
    action: str,
    assignee: User | None = None,
    note: str = "",
    at: datetime | None = None,
) -> Ticket:
    """Move a ticket by `action` (see repairs.transitions for the table).

    The ticket row is locked and its state read under the lock, so of two people acting at once
    one wins and the other gets Conflict. PermissionDenied if `actor` may never take `action` on
    this ticket; Conflict if the ticket's state does not allow it now; ValidationError for a bad
    assignee or a missing rejection note."""
    at = at or timezone.now()
    rule = transitions.TRANSITIONS.get(action)
    if rule is None:
        raise ValidationError({"action": _("Unknown action.")})
    note = (note or "").strip()
    if len(note) > NOTE_LENGTH:
        raise ValidationError({"note": _("At most 500 characters.")})
    if assignee is not None and action != "assign":
        raise ValidationError({"assignee": _("Only the assign action takes an assignee.")})
    if action == "reject" and not note:
        raise ValidationError({"note": _("Say why the ticket is rejected.")})
    viewer = selectors.ticket_viewer(user=actor)

    with transaction.atomic():
        ticket = _lock(ticket)
        roles = viewer.roles_on(ticket)
        if not transitions.may_take(action, roles):
            raise PermissionDenied(_("You may not do this to this ticket."))
        if ticket.status not in rule.sources:
            raise _transition_error(action, ticket)
        if action == "assign":
            assignee = assignee or actor
            if not selectors.is_assignable(user=assignee, community=ticket.community):
                raise ValidationError(
                    {"assignee": _("Assign the ticket to property staff of this estate.")}
                )
        if action == "reopen":
            window = timedelta(days=settings.REPAIRS_REOPEN_DAYS)
            if ticket.resolved_at is None or at > ticket.resolved_at + window:
                raise Conflict(
                    _("A ticket can be reopened within %(days)d days of its resolution.")
                    % {"days": settings.REPAIRS_REOPEN_DAYS}
                )

        source, breached = ticket.status, ticket.sla_breached
        _apply(ticket, action, actor=actor, assignee=assignee, at=at)
        ticket.status = rule.target
        ticket.next_due = _next_due(ticket)
        ticket.updated_at = at
        ticket.save()
        # The rating counts only while the ticket is not cancelled: read it only when that
        # changes (a reopened, rated ticket the filer then cancels).
        stars = (
            TicketRating.objects.filter(ticket=ticket).values_list("stars", flat=True).first()
            if Status.CANCELLED in (source, ticket.status)
            else None
        )
        ticket_summary.ticket_moved(
            ticket,
            before=ticket_summary.figures(status=source, sla_breached=breached, stars=stars),
            after=_figures(ticket, stars),
        )
        TicketEvent.objects.create(
            ticket=ticket,
            kind=rule.event,
            actor=actor,
            from_status=source,
            to_status=ticket.status,
            assignee=ticket.assignee if action == "assign" else None,
            note=note,
            created_at=at,
        )
        if action == "resolve":
            _after_resolve(ticket, actor=actor)
    return ticket


def _apply(ticket: Ticket, action: str, *, actor: User, assignee: User | None, at) -> None:
    """The side effects of one action on the ticket's fields (the status is set by the caller)."""
    if action in ("accept", "reject") and ticket.response_due < at:
        ticket.sla_breached = True
    if action == "accept":
        ticket.accepted_at = at
    elif action == "assign":
        ticket.assignee = assignee
    elif action == "resolve":
        if ticket.resolve_due < at:
            ticket.sla_breached = True
        ticket.resolved_at = at
        ticket.resolution_count += 1
        if ticket.assignee_id is None:
            ticket.assignee = actor  # resolved straight after accepting: they did the work
    elif action == "close":
        ticket.closed_at = at
    elif action == "reopen":
        # Back in the queue, with fresh deadlines counted from now and a new assignment.
        _set_deadlines(ticket, at)
        ticket.assignee = None
        ticket.accepted_at = None
        ticket.resolved_at = None
        ticket.closed_at = None


def _after_resolve(ticket: Ticket, *, actor: User) -> None:
    payload = {
        "ticket_id": ticket.pk,
        "community_id": ticket.community_id,
        "kind": ticket.kind,
        "category_id": ticket.category_id,
        "household_id": ticket.household_id,
        "filed_by_id": ticket.filed_by_id,
        "assignee_id": ticket.assignee_id,
        "resolved_by_id": actor.pk,
        "resolved_at": ticket.resolved_at,
        "within_sla": not ticket.sla_breached,
        "first_resolution": ticket.resolution_count == 1,
    }
    events.announce(events.ticket_resolved, **payload)
    _notify(
        ticket.filed_by,
        title=lambda: _("Your ticket is resolved: %(title)s") % {"title": ticket.title},
        body=lambda: _(
            "Please confirm the fix and rate it, or reopen the ticket if it is not fixed."
        ),
        link=reverse("repairs-detail", args=[ticket.pk]),
        ticket=ticket,
    )


def _notify(
    user: User, *, title, body, link: str, dedupe_key: str | None = None, ticket: Ticket
) -> None:
    """A ticket update through the notifications layer (in-app, and e-mail / SMS / WeChat as the
    person chose), in the portal's language (Chinese first) whatever language the person who
    caused it reads: `title` and `body` are callables run with that language active. The SMS /
    WeChat template variables are ${ticket} (its number) and ${title} (cut to 20 characters,
    the providers' limit for a variable)."""
    with translation.override(settings.LANGUAGE_CODE):
        notifications.notify(
            user=user,
            kind=NotificationKind.TICKET_UPDATE,
            title=title(),
            body=body(),
            link=link,
            key=dedupe_key,
            params={"ticket": str(ticket.pk), "title": ticket.title[:20]},
        )


def ticket_rate(
    *,
    ticket: Ticket | int,
    user: User,
    stars: int,
    comment: str = "",
    at: datetime | None = None,
) -> TicketRating:
    """The filer rates a resolved (or closed) ticket, once. PermissionDenied for anyone else,
    Conflict before the resolution or for a second rating, ValidationError for stars outside
    1..5."""
    at = at or timezone.now()
    if not isinstance(stars, int) or isinstance(stars, bool) or not 1 <= stars <= 5:
        raise ValidationError({"stars": _("Give 1 to 5 stars.")})
    comment = (comment or "").strip()
    if len(comment) > NOTE_LENGTH:
        raise ValidationError({"comment": _("At most 500 characters.")})
    with transaction.atomic():
        ticket = _lock(ticket)
        if ticket.filed_by_id != user.pk:
            raise PermissionDenied(_("Only the resident who filed the ticket can rate it."))
        if ticket.status not in (Status.RESOLVED, Status.CLOSED):
            raise Conflict(_("A ticket can be rated once it is resolved."))
        if TicketRating.objects.filter(ticket=ticket).exists():
            raise Conflict(_("This ticket has already been rated."))
        try:
            with transaction.atomic():
                rating = TicketRating.objects.create(
                    ticket=ticket, rated_by=user, stars=stars, comment=comment, created_at=at
                )
        except IntegrityError:
            raise Conflict(_("This ticket has already been rated.")) from None
        ticket_summary.ticket_moved(ticket, before=_figures(ticket), after=_figures(ticket, stars))
        TicketEvent.objects.create(
            ticket=ticket,
            kind=TicketEvent.Kind.RATED,
            actor=user,
            note=("★" * stars + (f" {comment}" if comment else ""))[:NOTE_LENGTH],
            created_at=at,
        )
        Ticket.objects.filter(pk=ticket.pk).update(updated_at=at)
        events.announce(
            events.ticket_rated,
            ticket_id=ticket.pk,
            community_id=ticket.community_id,
            kind=ticket.kind,
            household_id=ticket.household_id,
            rated_by_id=user.pk,
            stars=stars,
            rated_at=at,
        )
    return rating


# Photos may be added until the ticket is finished (a resolved one still takes a photo of the fix).
PHOTO_STATUSES = (*OPEN_STATUSES, Status.RESOLVED)


def ticket_photo_add(
    *, ticket: Ticket | int, user: User, upload, at: datetime | None = None
) -> TicketPhoto:
    """Add a photo to a ticket: the filer or the company's staff, up to MAX_PHOTOS per ticket.
    The file is checked and re-encoded (repairs.photos) before the ticket is locked."""
    at = at or timezone.now()
    photo = clean_photo(upload)
    viewer = selectors.ticket_viewer(user=user)
    with transaction.atomic():
        ticket = _lock(ticket)
        roles = viewer.roles_on(ticket)
        if not roles & {transitions.FILER, transitions.STAFF}:
            raise PermissionDenied(_("Only the filer and the property staff add photos."))
        if ticket.status not in PHOTO_STATUSES:
            raise Conflict(_("This ticket is finished: no more photos."))
        if TicketPhoto.objects.filter(ticket=ticket).count() >= MAX_PHOTOS:
            raise Conflict(
                ngettext(
                    "A ticket has at most %(count)d photo.",
                    "A ticket has at most %(count)d photos.",
                    MAX_PHOTOS,
                )
                % {"count": MAX_PHOTOS}
            )
        stored = _store_photo(ticket=ticket, photo=photo, user=user, at=at)
        TicketEvent.objects.create(
            ticket=ticket, kind=TicketEvent.Kind.PHOTO_ADDED, actor=user, created_at=at
        )
        Ticket.objects.filter(pk=ticket.pk).update(updated_at=at)
    return stored


# --- SLA escalation -------------------------------------------------------------------------


def _overdue_filter(deadline: str, now: datetime) -> dict:
    if deadline == RESPONSE:
        return {
            "status": Status.SUBMITTED,
            "response_escalated_at__isnull": True,
            "response_due__lte": now,
        }
    return {
        "status__in": OPEN_STATUSES,
        "resolve_escalated_at__isnull": True,
        "resolve_due__lte": now,
    }


def ticket_escalate_overdue(*, now: datetime | None = None, batch_size: int = 200) -> int:
    """Find open tickets past a deadline that was not escalated yet, mark them and notify the
    centre's admins and the company's managers. Returns how many deadlines were escalated.

    Safe to run often and from two workers at once: each ticket is escalated in its own
    transaction under its row lock (locked ones are skipped, the other worker has them), the
    escalated_at mark is checked again under the lock, and each notice carries a dedupe key
    made of the ticket and the deadline, so a deadline is escalated once."""
    now = now or timezone.now()
    escalated = 0
    for deadline in (RESPONSE, RESOLVE):
        due_field = f"{deadline}_due"
        seen: set[int] = set()
        while True:
            ids = list(
                Ticket.objects.filter(**_overdue_filter(deadline, now))
                .exclude(pk__in=seen)
                .order_by(due_field, "pk")
                .values_list("pk", flat=True)[:batch_size]
            )
            if not ids:
                break
            seen.update(ids)
            for pk in ids:
                escalated += _escalate_one(pk, deadline=deadline, now=now)
    return escalated


@transaction.atomic
def _escalate_one(pk: int, *, deadline: str, now: datetime) -> bool:
    ticket = (
        Ticket.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("community", "category")
        .filter(pk=pk, **_overdue_filter(deadline, now))
        .first()
    )
    if ticket is None:
        return False  # handled meanwhile, or another worker holds it
    due = getattr(ticket, f"{deadline}_due")
    setattr(ticket, f"{deadline}_escalated_at", now)
    before = _figures(ticket)
    ticket.sla_breached = True
    ticket.save(update_fields=[f"{deadline}_escalated_at", "sla_breached"])
    # An open ticket is not handled, so this changes no count today; reported all the same,
    # so the summary never depends on which statuses the escalation job picks.
    ticket_summary.ticket_moved(ticket, before=before, after=_figures(ticket))
    local_due = timezone.localtime(due)
    with translation.override(settings.LANGUAGE_CODE):  # written by the system: the site language
        note = _("%(what)s (due %(due)s)") % {
            "what": _what(deadline),
            "due": formats.date_format(local_due, "SHORT_DATETIME_FORMAT"),
        }
    TicketEvent.objects.create(
        ticket=ticket, kind=TicketEvent.Kind.ESCALATED, note=note, created_at=now
    )
    recipients = list(selectors.escalation_recipients(community=ticket.community))
    if not recipients:
        logger.warning(
            "ticket %s is overdue but %s has nobody to escalate to", pk, ticket.community
        )
    for user in recipients:
        _notify(
            user,
            title=lambda: (
                _("Overdue: ticket #%(id)s %(title)s") % {"id": ticket.pk, "title": ticket.title}
            ),
            body=lambda: (
                _("%(what)s. %(community)s · %(category)s · due %(due)s.")
                % {
                    "what": _what(deadline),
                    "community": ticket.community.name,
                    "category": ticket.category.name,
                    "due": formats.date_format(local_due, "SHORT_DATETIME_FORMAT"),
                }
            ),
            link=reverse("repairs-detail", args=[ticket.pk]),
            dedupe_key=f"repairs:ticket:{ticket.pk}:{deadline}:{due.isoformat()}",
            ticket=ticket,
        )
    return True


def _what(deadline: str) -> str:
    return _("Not accepted in time") if deadline == RESPONSE else _("Not resolved in time")
