"""Writes for the alliance app: ratings, inspections, and the scorecard's draft, finalization and
revisions. Each runs in one transaction and announces its events after commit.

The month's current scorecard row is the lock everything about that month goes through: a rating
or an inspection locks it (creating the draft if need be) to check the month is still open and
recomputes the draft with it, and finalizing locks it before freezing the figures, so nothing
slips into a month while it is being finalized.

Money: finalizing revision 1 calls billing.services.release_holdback(score) in the same
transaction; if billing refuses (the month has not been paid out yet) nothing is finalized.
Billing releases a month's hold-back once, so a later revision moves no money: the centre's
admins are told the old and new score and settle any difference by agreement.
"""

import logging
from datetime import datetime

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.dispatch import Signal
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from alliance import events, selectors
from alliance.models import DIMENSIONS, Inspection, Scorecard, ServiceRating
from billing import selectors as billing_selectors
from billing import services as billing_services
from billing.money import money_text
from community import selectors as community_selectors
from community.models import Community, User
from community.periods import Period
from community.services import notice_send
from config.api import Conflict

logger = logging.getLogger(__name__)

COMMENT_LENGTH = 500
NOTE_LENGTH = 1000


def _announce(signal: Signal, sender, **payload) -> None:
    """Send `signal` once the transaction commits. A receiver that fails is logged; it does not
    undo the write or disturb the other receivers."""

    def send() -> None:
        for receiver, result in signal.send_robust(sender=sender, **payload):
            if isinstance(result, Exception):
                logger.error(
                    "receiver %r of an alliance event failed",
                    receiver,
                    exc_info=(type(result), result, result.__traceback__),
                )

    transaction.on_commit(send)


def _check_period_begun(period: Period, at: datetime) -> None:
    if period > Period.containing(timezone.localtime(at).date()):
        raise ValidationError({"period": _("That month has not begun yet.")})


def _current_for_update(community: Community, period: Period) -> Scorecard | None:
    return (
        Scorecard.objects.select_for_update(of=("self",))
        .filter(community=community, period=str(period), is_current=True)
        .first()
    )


def _draft_for_update(community: Community, period: Period, now: datetime) -> Scorecard:
    """The month's current row, locked; a new draft (revision 1) when there is none yet. Always
    a row to lock, so a rating or a check and the month's finalization never interleave (two
    first rows at once: the unique revision makes one wait for the other and take its row)."""
    card = _current_for_update(community, period)
    if card is not None:
        return card
    try:
        with transaction.atomic():
            return Scorecard.objects.create(
                community=community, period=str(period), revision=1, computed_at=now
            )
    except IntegrityError:
        return _current_for_update(community, period)


def _open_month_for_update(
    community: Community, period: Period, now: datetime, message: str
) -> Scorecard:
    """Lock the month's draft before adding to it; Conflict once its scorecard is final."""
    card = _draft_for_update(community, period, now)
    if card.finalized:
        raise Conflict(message)
    return card


def _recompute(card: Scorecard, community: Community, period: Period, now: datetime) -> None:
    _apply(card, selectors.scorecard_figures(community=community, period=period), now)
    card.save()


# --- ratings ----------------------------------------------------------------------------------


def rating_create(
    *,
    user: User,
    household_id: int,
    period: Period,
    stars: dict[str, int],
    comment: str = "",
    at: datetime | None = None,
) -> ServiceRating:
    """A resident rates a month's service for their household, once per household and month.

    Any resident of the household today (owner, tenant or family member) may rate on its behalf;
    the first rating counts. Raises ValidationError (→ 400) for stars outside 1..5, an overlong
    comment or a month not begun; Household.DoesNotExist (→ 404) for a household the user cannot
    see; PermissionDenied (→ 403) for someone who does not live there, or when the household has
    not paid its bill for the month; Conflict (→ 409) for a second rating or a month whose
    scorecard is final.
    """
    at = at or timezone.now()
    errors = {}
    for dimension in DIMENSIONS:
        value = stars.get(dimension)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 5:
            errors[dimension] = _("Give 1 to 5 stars.")
    comment = (comment or "").strip()
    if len(comment) > COMMENT_LENGTH:
        errors["comment"] = _("At most 500 characters.")
    if errors:
        raise ValidationError(errors)
    _check_period_begun(period, at)
    household = community_selectors.household_get(user=user, household_id=household_id)
    lives_there = (
        community_selectors.residency_list_for_user(user=user).filter(household=household).exists()
    )
    if not lives_there:
        raise PermissionDenied(_("Only a resident of this household can rate its service."))
    if not billing_selectors.household_paid_for_period(household=household, period=period):
        raise PermissionDenied(
            _(
                "Only households that have paid their bill for %(period)s can rate that month's "
                "service, and this household's bill for it is not paid yet."
            )
            % {"period": period}
        )
    community = household.building.community
    with transaction.atomic():
        card = _open_month_for_update(
            community,
            period,
            timezone.now(),
            _("The scorecard for %(period)s is final: that month can no longer be rated.")
            % {"period": period},
        )
        already = _("This household has already rated %(period)s.") % {"period": period}
        if ServiceRating.objects.filter(household=household, period=str(period)).exists():
            raise Conflict(already)
        try:
            with transaction.atomic():
                rating = ServiceRating.objects.create(
                    household=household,
                    community=community,
                    period=str(period),
                    rated_by=user,
                    comment=comment,
                    created_at=at,
                    **{dimension: stars[dimension] for dimension in DIMENSIONS},
                )
        except IntegrityError:
            raise Conflict(already) from None
        _recompute(card, community, period, timezone.now())
        _announce(
            events.service_rated,
            ServiceRating,
            rating_id=rating.pk,
            household_id=household.pk,
            community_id=community.pk,
            user_id=user.pk,
            period=str(period),
            stars=rating.stars,
        )
    return rating


# --- inspections ------------------------------------------------------------------------------


def inspection_create(
    *,
    user: User,
    community_id: int,
    period: Period,
    staff_on_duty: int,
    staff_rostered: int,
    grid_cooperation: int,
    major_matter_cooperation: int,
    note: str = "",
    at: datetime | None = None,
) -> Inspection:
    """An alliance inspector records a spot check of a community for a month.

    Only inspectors of a member organisation of the community's centre may (PermissionDenied →
    403; a community they cannot see at all → 404). Bad figures or a month not begun →
    ValidationError (400); a month whose scorecard is final → Conflict (409).
    """
    at = at or timezone.now()
    errors = {}
    if staff_rostered is None or staff_rostered < 1:
        errors["staff_rostered"] = _("At least one member of staff must be rostered.")
    if staff_on_duty is None or staff_on_duty < 0:
        errors["staff_on_duty"] = _("Cannot be negative.")
    elif "staff_rostered" not in errors and staff_on_duty > staff_rostered:
        errors["staff_on_duty"] = _("Cannot be more than the staff rostered.")
    for field, value in (
        ("grid_cooperation", grid_cooperation),
        ("major_matter_cooperation", major_matter_cooperation),
    ):
        if value is None or not 0 <= value <= 100:
            errors[field] = _("Give a mark from 0 to 100.")
    note = (note or "").strip()
    if len(note) > NOTE_LENGTH:
        errors["note"] = _("At most 1000 characters.")
    if errors:
        raise ValidationError(errors)
    _check_period_begun(period, at)
    community = community_selectors.community_get(user=user, community_id=community_id)
    organisation = selectors.inspector_organisation(user=user, community=community)
    if organisation is None:
        raise PermissionDenied(
            _("Only inspectors of the centre's alliance organisations can record spot checks.")
        )
    with transaction.atomic():
        card = _open_month_for_update(
            community,
            period,
            timezone.now(),
            _("The scorecard for %(period)s is final: record no more checks for that month.")
            % {"period": period},
        )
        inspection = Inspection.objects.create(
            community=community,
            period=str(period),
            inspector=user,
            organisation=organisation,
            staff_on_duty=staff_on_duty,
            staff_rostered=staff_rostered,
            grid_cooperation=grid_cooperation,
            major_matter_cooperation=major_matter_cooperation,
            note=note,
            created_at=at,
        )
        _recompute(card, community, period, timezone.now())
    return inspection


# --- scorecards -------------------------------------------------------------------------------


def _apply(card: Scorecard, figures: selectors.Figures, now: datetime) -> None:
    for component, value in figures.rates().items():
        setattr(card, component, value)
    card.score = figures.score
    card.weights = {component: f"{weight:.4f}" for component, weight in figures.weights.items()}
    card.rating_count = figures.rating_count
    card.average_stars = figures.average_stars
    card.inspection_count = figures.inspection_count
    card.ticket_count = figures.ticket_count
    card.tickets_within_sla = figures.tickets_within_sla
    card.computed_at = now


def scorecard_refresh(
    *, community: Community, period: Period, now: datetime | None = None
) -> Scorecard:
    """Compute the month's draft from the data as it is now (the daily job; also on demand).
    A finalized scorecard is returned unchanged: it is never recomputed."""
    now = now or timezone.now()
    _check_period_begun(period, now)
    with transaction.atomic():
        card = _draft_for_update(community, period, now)
        if not card.finalized:
            _recompute(card, community, period, now)
    return card


def _announce_final(card: Scorecard, community: Community) -> None:
    _announce(
        events.scorecard_finalized,
        Scorecard,
        scorecard_id=card.pk,
        community_id=community.pk,
        company_id=community.company_id,
        period=card.period,
        score=f"{card.score:.4f}",
        revision=card.revision,
    )


def scorecard_finalize(
    *,
    community: Community,
    period: Period,
    by: User | None = None,
    now: datetime | None = None,
) -> tuple[Scorecard, bool]:
    """Freeze the month's figures, once, and release its payout hold-back by the score.

    Returns (scorecard, created): finalizing again returns the finalized scorecard and changes
    nothing (the current row is locked and revision 1 is unique per community and month; billing
    releases a month once as well). The month must be over (ValidationError). Conflict when
    there is nothing to score (no rating, no inspection, no ticket) or when billing cannot
    release yet (the month has not been paid out): then nothing is finalized.
    """
    now = now or timezone.now()
    if period.last_day >= timezone.localtime(now).date():
        raise ValidationError({"period": _("The month is not over yet.")})
    with transaction.atomic():
        card = _draft_for_update(community, period, now)
        if card.finalized:
            return card, False
        figures = selectors.scorecard_figures(community=community, period=period)
        if figures.score is None:
            raise Conflict(
                _(
                    "There is nothing to score for %(period)s: no rating, no inspection and no "
                    "ticket. Record a spot check first."
                )
                % {"period": period}
            )
        _apply(card, figures, now)
        card.finalized_at, card.finalized_by = now, by
        release, released_now = billing_services.release_holdback(
            community=community, period=period, score=card.score
        )
        card.holdback_release = release
        card.released_to_company = release.to_company
        card.forfeited_to_fund = release.to_public_fund
        card.save()
        if not released_now and release.score != card.score:
            # Released before this scorecard existed (by hand): the money followed that score.
            logger.warning(
                "scorecard %s: hold-back was already released at score %s, not %s",
                card.pk,
                release.score,
                card.score,
            )
        _announce_final(card, community)
    return card, True


def scorecard_revise(
    *,
    community: Community,
    period: Period,
    reason: str,
    by: User | None,
    now: datetime | None = None,
) -> Scorecard:
    """Correct a finalized scorecard: a new revision, computed from the data as it is now,
    finalized at once with its reason, and published in place of the previous one (which is
    kept). No money moves: billing released the month's hold-back once, at the first score; the
    centre's admins are told both scores so any difference is settled by agreement.

    ValidationError without a reason; Conflict when the month is not finalized yet (its draft is
    simply recomputed) or there is nothing to score."""
    now = now or timezone.now()
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": _("Say why the scorecard is revised.")})
    if len(reason) > NOTE_LENGTH:
        raise ValidationError({"reason": _("At most 1000 characters.")})
    with transaction.atomic():
        previous = _current_for_update(community, period)
        if previous is None or not previous.finalized:
            raise Conflict(
                _("Only a finalized scorecard can be revised; a draft is recomputed every day.")
            )
        figures = selectors.scorecard_figures(community=community, period=period)
        if figures.score is None:
            raise Conflict(_("There is nothing to score for %(period)s.") % {"period": period})
        previous.is_current = False
        previous.save(update_fields=["is_current"])
        card = Scorecard(
            community=community,
            period=str(period),
            revision=previous.revision + 1,
            is_current=True,
            reason=reason,
            finalized_at=now,
            finalized_by=by,
        )
        _apply(card, figures, now)
        card.save()
        first = selectors.scorecard_revisions(community=community, period=period).first()
        _notify_centre_admins(
            community,
            title=_("Scorecard revised: %(community)s %(period)s")
            % {"community": community.name, "period": period},
            body=_(
                "Revision %(revision)s changes the score from %(old)s to %(new)s. Reason: "
                "%(reason)s\nThe month's hold-back was released once, at score %(released)s "
                "(%(to_company)s to the company, %(to_fund)s to the public fund); "
                "this revision moves no money. Settle any difference with the company by "
                "agreement."
            )
            % {
                "revision": card.revision,
                "old": previous.score,
                "new": card.score,
                "reason": reason,
                "released": first.score,
                "to_company": money_text(first.released_to_company),
                "to_fund": money_text(first.forfeited_to_fund),
            },
            key=f"scorecard-revised:{card.pk}",
            link=reverse("alliance-scorecard", args=[community.pk]) + f"?period={period}",
        )
        _announce_final(card, community)
    return card


def _notify_centre_admins(community: Community, *, title: str, body: str, key: str, link=""):
    for admin in selectors.centre_admins(community=community):
        notice_send(user=admin, title=title, body=body, link=link, dedupe_key=key)


def scorecard_blocked_notify(*, community: Community, period: Period, problem: str) -> None:
    """Tell the centre's admins, once per community and month, that the monthly job could not
    finalize a scorecard, and why (no payout yet, nothing to score)."""
    with transaction.atomic():
        _notify_centre_admins(
            community,
            title=_("Scorecard not finalized: %(community)s %(period)s")
            % {"community": community.name, "period": period},
            body=problem,
            key=f"scorecard-blocked:{community.pk}:{period}",
            link=reverse("alliance-scorecard", args=[community.pk]) + f"?period={period}",
        )
