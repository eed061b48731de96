"""Writes for the community app. Each service runs in one transaction and locks what it checks."""

import secrets
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from community import events, selectors
from community.models import (
    Activity,
    ActivityCheckin,
    ActivitySignup,
    Agreement,
    Announcement,
    AnnouncementRead,
    Ballot,
    Centre,
    Community,
    Consultation,
    ConsultationOption,
    Household,
    Notice,
    Residency,
    Role,
    User,
)
from config.api import Conflict


@transaction.atomic
def agreement_create(
    *,
    community: Community,
    effective_from: date,
    fee_rate: Decimal,
    holdback_share: Decimal,
    payout_day: int,
    effective_to: date | None = None,
    bill_due_day: int = 15,
    signed_on: date | None = None,
) -> Agreement:
    """Put a tri-party agreement in force for a community.

    The community row is locked first, so two agreements created at once for one community are
    checked one after the other; PostgreSQL's exclusion constraint is the backstop.
    """
    Community.objects.select_for_update().get(pk=community.pk)
    agreement = Agreement(
        community=community,
        effective_from=effective_from,
        effective_to=effective_to,
        fee_rate=fee_rate,
        holdback_share=holdback_share,
        payout_day=payout_day,
        bill_due_day=bill_due_day,
        signed_on=signed_on,
    )
    agreement.full_clean()
    try:
        with transaction.atomic():
            agreement.save()
    except IntegrityError as exc:
        raise ValidationError(_("Another agreement of this community is in force then.")) from exc
    return agreement


@transaction.atomic
def residency_start(
    *, user: User, household: Household, relation: str, start_date: date | None = None
) -> Residency:
    """Record that `user` lives in (or owns) `household` from `start_date` on."""
    residency = Residency(user=user, household=household, relation=relation)
    if start_date is not None:
        residency.start_date = start_date
    residency.full_clean()
    residency.save()
    return residency


@transaction.atomic
def residency_end(*, residency: Residency, end_date: date) -> Residency:
    """Close a residency (moving out, selling): history is kept, access ends after `end_date`."""
    residency = Residency.objects.select_for_update().get(pk=residency.pk)
    residency.end_date = end_date
    residency.full_clean()
    residency.save(update_fields=["end_date"])
    return residency


def notice_send(
    *, user: User, title: str, body: str = "", link: str = "", dedupe_key: str | None = None
) -> tuple[Notice, bool]:
    """Send an in-app notice, and an e-mail copy if the user has an address. With a
    `dedupe_key`, the same notice is sent at most once per user: returns (notice, created)."""
    try:
        with transaction.atomic():
            notice = Notice.objects.create(
                user=user, title=title, body=body, link=link, dedupe_key=dedupe_key
            )
    except IntegrityError:
        if dedupe_key is None:
            raise
        return Notice.objects.get(user=user, dedupe_key=dedupe_key), False
    if user.email:
        # After commit: a rolled-back notice must not have gone out by mail.
        transaction.on_commit(
            lambda: mail.send_mail(title, f"{body}\n\n{link}".strip(), None, [user.email])
        )
    return notice, True


@transaction.atomic
def notice_mark_read(*, user: User, notice_ids: list[int] | None = None) -> int:
    """Mark the user's notices read (all unread ones if no ids given); returns how many."""
    unread = Notice.objects.filter(user=user, read_at__isnull=True)
    if notice_ids is not None:
        unread = unread.filter(pk__in=notice_ids)
    return unread.update(read_at=timezone.now())


# ==============================================================================================
# Community life: announcements, activities and volunteering, consultations.
#
# Errors, mapped to HTTP by config.api: ValidationError -> 400, PermissionDenied -> 403 (the
# caller sees the community but may not do this), Conflict -> 409 (the state forbids it: full,
# closed, twice). Finding the object in the caller's scope (404) is the caller's job, through
# community.selectors. Services that record something at a moment take `at` (default: now):
# the demo replays a past month with it, and tests use it instead of waiting.
# ==============================================================================================

# --- announcements ------------------------------------------------------------------------------


@transaction.atomic
def announcement_publish(
    *,
    author: User,
    title: str,
    body: str,
    community: Community | None = None,
    centre: Centre | None = None,
    source: str | None = None,
    pinned: bool = False,
    published_at: datetime | None = None,
    expires_at: datetime | None = None,
) -> Announcement:
    """Post to one community (as its centre, company or committee: `source`, needed only when
    the author holds more than one of these roles there) or, with `centre` and no community, to
    every community of that centre (centre admins only)."""
    if community is not None:
        allowed = selectors.announcement_sources(user=author, community=community)
        centre = community.centre
    elif centre is not None:
        is_admin = author.is_superuser or (
            author.memberships.filter(role=Role.CENTRE_ADMIN, centre=centre).exists()
        )
        allowed = [Announcement.Source.CENTRE] if is_admin else []
    else:
        raise ValidationError({"community": _("Choose the community, or the whole centre.")})
    if not allowed:
        raise PermissionDenied(
            _("Only the centre, the property company or the committee post announcements here.")
        )
    if source is None:
        if len(allowed) > 1:
            raise ValidationError({"source": _("Say on whose behalf you post this.")})
        source = allowed[0]
    elif source not in allowed:
        raise PermissionDenied(_("You cannot post on behalf of this organisation."))
    announcement = Announcement(
        centre=centre,
        community=community,
        source=source,
        author=author,
        title=(title or "").strip(),
        body=(body or "").strip(),
        pinned=pinned,
        published_at=published_at or timezone.now(),
        expires_at=expires_at,
    )
    announcement.full_clean(exclude=["author"])
    announcement.save()
    return announcement


def announcement_mark_read(*, user: User, announcement: Announcement) -> bool:
    """Mark one announcement read for `user`; returns False if it already was."""
    try:
        with transaction.atomic():
            AnnouncementRead.objects.create(announcement=announcement, user=user)
    except IntegrityError:
        return False
    return True


@transaction.atomic
def announcement_mark_all_read(*, user: User) -> int:
    """Mark everything on the user's board read; returns how many were new."""
    unread = selectors.announcement_list(user=user).filter(is_read=False)
    rows = [
        AnnouncementRead(announcement_id=pk, user=user)
        for pk in unread.values_list("pk", flat=True)
    ]
    # ignore_conflicts: a read recorded meanwhile (another tab) is not an error.
    AnnouncementRead.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


# --- activities ---------------------------------------------------------------------------------

# A check-in code works from shortly before the start to shortly after the end; the organiser
# may record attendance from the same moment on, also afterwards.
CHECKIN_OPENS_BEFORE = timedelta(hours=1)
CODE_CHECKIN_CLOSES_AFTER = timedelta(hours=1)
MAX_HOURS = Decimal("24")
HOURS_STEP = Decimal("0.5")


def default_hours(starts_at: datetime, ends_at: datetime) -> Decimal:
    """The session's length, rounded down to the half hour, at most a day."""
    hours = Decimal((ends_at - starts_at).total_seconds()) / 3600
    halves = (hours / HOURS_STEP).to_integral_value(rounding=ROUND_FLOOR)
    return min(halves * HOURS_STEP, MAX_HOURS).quantize(Decimal("0.1"))


def _lock_activity(activity: Activity | int) -> Activity:
    pk = activity if isinstance(activity, int) else activity.pk
    return Activity.objects.select_for_update(of=("self",)).select_related("community").get(pk=pk)


@transaction.atomic
def activity_create(
    *,
    organiser: User,
    community: Community,
    kind: str,
    title: str,
    place: str,
    starts_at: datetime,
    ends_at: datetime,
    capacity: int,
    description: str = "",
    hours: Decimal | None = None,
    at: datetime | None = None,
) -> Activity:
    """A centre admin or property staff member of `community` announces an event or a
    volunteering session. Volunteering credits `hours` to each volunteer who checks in with the
    code (default: the session's length, rounded down to the half hour)."""
    at = at or timezone.now()
    if not selectors.may_organise(user=organiser, community=community):
        raise PermissionDenied(_("Only the centre and the property company organise activities."))
    if ends_at <= at:
        raise ValidationError({"ends_at": _("This activity would be over already.")})
    if kind == Activity.Kind.VOLUNTEERING and hours is None and ends_at > starts_at:
        hours = default_hours(starts_at, ends_at)
    activity = Activity(
        community=community,
        kind=kind,
        title=(title or "").strip(),
        place=(place or "").strip(),
        description=(description or "").strip(),
        starts_at=starts_at,
        ends_at=ends_at,
        capacity=capacity,
        hours=hours if hours is not None else Decimal("0"),
        organiser=organiser,
    )
    activity.full_clean(exclude=["community", "organiser"])
    activity.save()
    return activity


def _require_resident(*, user: User, activity: Activity, at: datetime) -> None:
    if not selectors.is_resident_of(
        user=user, community=activity.community, on=timezone.localdate(at)
    ):
        raise PermissionDenied(_("Only residents of this community sign up."))


def _take_place(*, activity: Activity, user: User, at: datetime) -> ActivitySignup:
    """Caller holds the activity's row lock: the count it checks cannot change under it."""
    if activity.signed_up >= activity.capacity:
        raise Conflict(_("This activity is full."))
    try:
        with transaction.atomic():
            signup = ActivitySignup.objects.create(activity=activity, user=user, created_at=at)
    except IntegrityError:
        raise Conflict(_("You have signed up already.")) from None
    Activity.objects.filter(pk=activity.pk).update(signed_up=F("signed_up") + 1)
    activity.signed_up += 1
    return signup


def activity_signup(
    *, activity: Activity, user: User, at: datetime | None = None
) -> ActivitySignup:
    """A resident of the activity's community takes a place. Full, over, or signed up already:
    Conflict. The activity's row lock makes sign-ups at the same moment queue, so the last
    place goes to exactly one of them."""
    at = at or timezone.now()
    _require_resident(user=user, activity=activity, at=at)
    with transaction.atomic():
        activity = _lock_activity(activity)
        if at >= activity.ends_at:
            raise Conflict(_("This activity is over."))
        if ActivitySignup.objects.filter(activity=activity, user=user).exists():
            raise Conflict(_("You have signed up already."))
        return _take_place(activity=activity, user=user, at=at)


def activity_signup_cancel(*, activity: Activity, user: User, at: datetime | None = None) -> None:
    """Give the place back. Not signed up: ActivitySignup.DoesNotExist (-> 404); checked in
    already, or the activity is over: Conflict."""
    at = at or timezone.now()
    with transaction.atomic():
        activity = _lock_activity(activity)
        signup = ActivitySignup.objects.get(activity=activity, user=user)
        if ActivityCheckin.objects.filter(activity=activity, user=user).exists():
            raise Conflict(_("You have checked in already."))
        if at >= activity.ends_at:
            raise Conflict(_("This activity is over."))
        signup.delete()
        Activity.objects.filter(pk=activity.pk).update(signed_up=F("signed_up") - 1)


def _hours_text(hours: Decimal) -> str:
    """The event payload's hours: "0", "2.5", "3" (no exponent, no trailing zeros)."""
    return format(hours.normalize(), "f") if hours else "0"


def activity_checkin(
    *,
    activity: Activity,
    user: User,
    recorded_by: User,
    code: str | None = None,
    hours: Decimal | None = None,
    at: datetime | None = None,
) -> ActivityCheckin:
    """Record that `user` was there, once per activity.

    - With `code`, the resident checks themself in (`recorded_by` is `user`): the code shown at
      the door, between CHECKIN_OPENS_BEFORE the start and CODE_CHECKIN_CLOSES_AFTER the end;
      a volunteer is credited the activity's hours.
    - Without, an organiser (centre admin or property staff of the community) checks a resident
      in, from CHECKIN_OPENS_BEFORE the start on, with `hours` for volunteering (default: the
      activity's).

    Someone who had not signed up takes a place now (409 if none is left). Twice: Conflict.
    Announces activity_checked_in after the commit.
    """
    at = at or timezone.now()
    by_code = code is not None
    if by_code:
        if recorded_by.pk != user.pk:
            raise PermissionDenied(_("Check in with the code for yourself only."))
        if not secrets.compare_digest(str(code).strip(), activity.checkin_code):
            raise ValidationError({"code": _("This is not the code shown at the door.")})
        if hours is not None:
            raise ValidationError({"hours": _("The organiser records hours.")})
    elif not selectors.may_organise(user=recorded_by, community=activity.community):
        raise PermissionDenied(_("Only the organisers check people in."))
    if not selectors.is_resident_of(
        user=user, community=activity.community, on=timezone.localdate(at)
    ):
        if by_code:
            raise PermissionDenied(_("Only residents of this community check in."))
        raise ValidationError({"user": _("This person does not live in this community.")})
    if hours is not None:
        if activity.kind == Activity.Kind.EVENT and hours != 0:
            raise ValidationError({"hours": _("Events record attendance, not hours.")})
        if not Decimal("0") <= hours <= MAX_HOURS:
            raise ValidationError({"hours": _("Between 0 and 24 hours.")})
        hours = hours.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)

    with transaction.atomic():
        activity = _lock_activity(activity)
        if at < activity.starts_at - CHECKIN_OPENS_BEFORE:
            raise Conflict(_("Check-in has not opened yet."))
        if by_code and at > activity.ends_at + CODE_CHECKIN_CLOSES_AFTER:
            raise Conflict(_("Check-in with the code has closed; ask the organiser."))
        if ActivityCheckin.objects.filter(activity=activity, user=user).exists():
            raise Conflict(_("Already checked in."))
        if not ActivitySignup.objects.filter(activity=activity, user=user).exists():
            _take_place(activity=activity, user=user, at=at)
        if hours is None:
            hours = activity.hours if activity.kind == Activity.Kind.VOLUNTEERING else Decimal("0")
        try:
            with transaction.atomic():
                checkin = ActivityCheckin.objects.create(
                    activity=activity,
                    user=user,
                    method=ActivityCheckin.Method.CODE
                    if by_code
                    else ActivityCheckin.Method.ORGANISER,
                    hours=hours,
                    checked_in_at=at,
                    recorded_by=recorded_by,
                )
        except IntegrityError:
            raise Conflict(_("Already checked in.")) from None
        events.announce(
            events.activity_checked_in,
            sender=ActivityCheckin,
            checkin_id=checkin.pk,
            activity_id=activity.pk,
            community_id=activity.community_id,
            user_id=user.pk,
            kind=activity.kind,
            hours=_hours_text(checkin.hours),
            checked_in_at=checkin.checked_in_at.isoformat(),
        )
    return checkin


# --- consultations ------------------------------------------------------------------------------

MIN_OPTIONS, MAX_OPTIONS = 2, 10


@transaction.atomic
def consultation_create(
    *,
    creator: User,
    community: Community,
    title: str,
    description: str,
    opens_at: datetime,
    closes_at: datetime,
    options: list[dict],
    approval: tuple[int, int] = (1, 2),
    approval_inclusive: bool = False,
    participation: tuple[int, int] = (2, 3),
    participation_inclusive: bool = True,
    secret_ballot: bool = True,
    at: datetime | None = None,
) -> Consultation:
    """The committee or the centre puts a question to a community's owners. `options`: dicts
    with a `label` and optionally `approves` (at most one). The rule's defaults are the
    ordinary matters of 民法典 第278条 (see community/tally.py)."""
    at = at or timezone.now()
    if not selectors.may_create_consultation(user=creator, community=community):
        raise PermissionDenied(_("Only the owners' committee and the centre open consultations."))
    if closes_at <= at:
        raise ValidationError({"closes_at": _("It would be closed already.")})
    labels = [(option.get("label") or "").strip() for option in options]
    errors = {}
    if not MIN_OPTIONS <= len(labels) <= MAX_OPTIONS:
        errors["options"] = _("Between %(min)d and %(max)d options.") % {
            "min": MIN_OPTIONS,
            "max": MAX_OPTIONS,
        }
    elif not all(labels) or len(set(labels)) != len(labels):
        errors["options"] = _("Each option needs its own label.")
    elif sum(bool(option.get("approves")) for option in options) > 1:
        errors["options"] = _("At most one option approves the proposal.")
    if errors:
        raise ValidationError(errors)
    consultation = Consultation(
        community=community,
        title=(title or "").strip(),
        description=(description or "").strip(),
        opens_at=opens_at,
        closes_at=closes_at,
        created_by=creator,
        approval_numerator=approval[0],
        approval_denominator=approval[1],
        approval_inclusive=approval_inclusive,
        participation_numerator=participation[0],
        participation_denominator=participation[1],
        participation_inclusive=participation_inclusive,
        secret_ballot=secret_ballot,
    )
    consultation.full_clean(exclude=["community", "created_by"])
    consultation.save()
    ConsultationOption.objects.bulk_create(
        ConsultationOption(
            consultation=consultation,
            label=label,
            position=position,
            approves=bool(option.get("approves")),
        )
        for position, (label, option) in enumerate(zip(labels, options, strict=True), start=1)
    )
    return consultation


def _lock_consultation(consultation: Consultation) -> Consultation:
    return Consultation.objects.select_for_update().get(pk=consultation.pk)


def consultation_vote(
    *,
    consultation: Consultation,
    user: User,
    option: ConsultationOption,
    household: Household | None = None,
    at: datetime | None = None,
) -> tuple[Ballot, bool]:
    """Cast or change the ballot of a household `user` owns (which one, if they own several in
    this community). Returns (ballot, created). One ballot per household: co-owners share it,
    and a later choice by any of them replaces the earlier one until closing.

    Not an owner of record here (a tenant, a family member, staff): PermissionDenied. Not open
    yet or closed: Conflict. The consultation's row lock orders the votes and the tally, so
    nothing is counted after the result is frozen.
    """
    at = at or timezone.now()
    owned = list(
        selectors.owned_households(
            user=user, community=consultation.community_id, on=timezone.localdate(at)
        )
    )
    if not owned:
        raise PermissionDenied(_("Only owners of record vote; tenants and family members do not."))
    if household is None:
        if len(owned) > 1:
            raise ValidationError({"household": _("Choose the household you vote for.")})
        household = owned[0]
    elif household.pk not in {h.pk for h in owned}:
        raise ValidationError({"household": _("You are not an owner of this household.")})
    if option.consultation_id != consultation.pk:
        raise ValidationError({"option": _("This option belongs to another consultation.")})

    with transaction.atomic():
        locked = _lock_consultation(consultation)
        status = locked.status_at(at)
        if status == Consultation.Status.DRAFT:
            raise Conflict(_("This consultation is not open yet."))
        if status == Consultation.Status.CLOSED or locked.tallied_at is not None:
            raise Conflict(_("This consultation has closed."))
        ballot = Ballot.objects.filter(consultation=locked, household=household).first()
        if ballot is not None:
            ballot.option = option
            ballot.cast_by = user
            ballot.changed_at = at
            ballot.save(update_fields=["option", "cast_by", "changed_at"])
            return ballot, False
        ballot = Ballot.objects.create(
            consultation=locked, household=household, option=option, cast_by=user, cast_at=at
        )
        return ballot, True


def consultation_tally(*, consultation: Consultation, at: datetime | None = None) -> bool:
    """Freeze the result of a closed consultation: each option's households and floor area, and
    the electorate (every household of the community, each one head, and their area). Once;
    returns True if it tallied now, False if it had been already or is not closed yet."""
    at = at or timezone.now()
    if (
        consultation.tallied_at is not None
        or consultation.status_at(at) != Consultation.Status.CLOSED
    ):
        return False
    with transaction.atomic():
        locked = _lock_consultation(consultation)
        if locked.tallied_at is not None:
            return False
        counts = {
            row["option"]: row
            for row in Ballot.objects.filter(consultation=locked)
            .values("option")
            .annotate(heads=Count("pk"), area=Sum("household__area"))
        }
        options = list(locked.options.all())
        for option in options:
            row = counts.get(option.pk, {})
            option.head_votes = row.get("heads", 0)
            option.area_votes = row.get("area") or Decimal("0.00")
        ConsultationOption.objects.bulk_update(options, ["head_votes", "area_votes"])
        electorate = Household.objects.filter(building__community_id=locked.community_id).aggregate(
            heads=Count("pk"), area=Sum("area")
        )
        locked.electorate_households = electorate["heads"]
        locked.electorate_area = electorate["area"] or Decimal("0.00")
        locked.tallied_at = at
        locked.save(update_fields=["electorate_households", "electorate_area", "tallied_at"])
    consultation.refresh_from_db()
    return True


def consultation_tally_due(*, consultations, at: datetime | None = None) -> int:
    """Tally every closed, untallied consultation among `consultations` (a list page calls this
    before reading results; usually none is due). Returns how many were tallied."""
    at = at or timezone.now()
    due = [
        c
        for c in consultations
        if c.tallied_at is None and c.status_at(at) == Consultation.Status.CLOSED
    ]
    return sum(consultation_tally(consultation=c, at=at) for c in due)
