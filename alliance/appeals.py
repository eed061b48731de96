"""Writes for scorecard appeals (申诉): the property company's manager files one against a
finalized scorecard, a mediator of the centre's alliance decides it. Kept beside services.py
(which owns the scorecard's own writes) so the appeal rules read in one place; an upheld appeal
revises the scorecard through services.scorecard_revise, the one way a final month changes.

Locks: the month's current scorecard row first (as every write about a month does), then the
appeal. One open appeal per month: checked under that lock, and the partial unique index on
(scorecard, status=filed) backs it up.

Money: a revision moves no money (services.py): billing released the month's hold-back once, at
the first final score; the centre's admins are told both scores and settle any difference with
the company by agreement.
"""

from datetime import datetime

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from alliance import selectors, services, trust
from alliance.models import Scorecard, ScorecardAppeal
from community import selectors as community_selectors
from community.models import AllianceOrganisation, Community, Role, User
from community.periods import Period
from community.services import notice_send
from config.api import Conflict

GROUNDS_LENGTH = 2000
DECISION_LENGTH = 1000


def scorecard_get(*, user: User, scorecard_id: int) -> Scorecard:
    """A scorecard (any revision) of a community the user sees; Scorecard.DoesNotExist (→ 404)
    otherwise."""
    communities = community_selectors.community_list(user=user)
    return Scorecard.objects.select_related("community").get(
        pk=scorecard_id, community__in=communities.values("pk")
    )


def _link(card: Scorecard) -> str:
    return reverse("alliance-appeal", args=[card.pk])


def _notify(users, *, title: str, body: str, key: str, link: str) -> None:
    for user in users:
        notice_send(user=user, title=title, body=body, link=link, dedupe_key=key)


def _mediators(community: Community):
    return (
        User.objects.filter(
            is_active=True,
            memberships__role=Role.ALLIANCE_INSPECTOR,
            memberships__organisation__centre_id=community.centre_id,
            memberships__organisation__kind=AllianceOrganisation.Kind.MEDIATOR,
        )
        .distinct()
        .order_by("pk")
    )


def _company_managers(community: Community):
    return (
        User.objects.filter(
            is_active=True,
            memberships__role=Role.PROPERTY_STAFF,
            memberships__company_id=community.company_id,
            memberships__is_manager=True,
        )
        .distinct()
        .order_by("pk")
    )


def appeal_file(
    *, user: User, scorecard_id: int, grounds: str, now: datetime | None = None
) -> ScorecardAppeal:
    """The company's manager appeals the published, finalized scorecard of a month.

    Scorecard.DoesNotExist (→ 404) outside the user's scope; PermissionDenied (→ 403) for anyone
    but a manager of the community's property company; ValidationError (→ 400) without grounds;
    Conflict (→ 409) when the scorecard is a draft or no longer the published revision, or an
    appeal of that month is still open."""
    now = now or timezone.now()
    card = scorecard_get(user=user, scorecard_id=scorecard_id)
    community = card.community
    if not trust.is_company_manager(user=user, community=community):
        raise PermissionDenied(_("Only the property company's manager can appeal a scorecard."))
    grounds = (grounds or "").strip()
    if not grounds:
        raise ValidationError({"grounds": _("Say why the scorecard is wrong.")})
    if len(grounds) > GROUNDS_LENGTH:
        raise ValidationError({"grounds": _("At most 2000 characters.")})
    period = Period.parse(card.period)
    with transaction.atomic():
        current = services._current_for_update(community, period)
        if current is None or current.pk != card.pk or not current.finalized:
            raise Conflict(_("Only the published, finalized scorecard of a month can be appealed."))
        if ScorecardAppeal.objects.filter(
            scorecard__community=community,
            scorecard__period=card.period,
            status=ScorecardAppeal.Status.FILED,
        ).exists():
            raise Conflict(_("An appeal against this month's scorecard is already open."))
        try:
            with transaction.atomic():
                appeal = ScorecardAppeal.objects.create(
                    scorecard=card, filed_by=user, grounds=grounds, filed_at=now
                )
        except IntegrityError:
            raise Conflict(_("An appeal against this month's scorecard is already open.")) from None
        title = _("Scorecard appealed: %(community)s %(period)s") % {
            "community": community.name,
            "period": period,
        }
        recipients = {u.pk: u for u in _mediators(community)}
        recipients.update({u.pk: u for u in selectors.centre_admins(community=community)})
        _notify(
            recipients.values(),
            title=title,
            body=grounds,
            key=f"scorecard-appeal:{appeal.pk}",
            link=_link(card),
        )
    return appeal


def appeal_decide(
    *,
    user: User,
    scorecard_id: int,
    appeal_id: int,
    upheld: bool,
    decision: str,
    revise: bool = False,
    now: datetime | None = None,
) -> ScorecardAppeal:
    """A mediator of the centre's alliance decides an open appeal of the scorecard's month.

    Upheld with `revise`, the scorecard gets a new revision (services.scorecard_revise: the
    figures recomputed from the data as corrected, the decision as its reason, no money moved).

    Scorecard/ScorecardAppeal.DoesNotExist (→ 404) outside the scope or for an appeal of another
    month; PermissionDenied (→ 403) for anyone but a mediator; ValidationError (→ 400) without a
    decision, or a revision asked for a rejected appeal; Conflict (→ 409) when the appeal is
    already decided (or the revision cannot be made)."""
    now = now or timezone.now()
    card = scorecard_get(user=user, scorecard_id=scorecard_id)
    community = card.community
    organisation = trust.mediator_organisations(user=user, community=community).first()
    if organisation is None:
        raise PermissionDenied(_("Only a mediator of the centre's alliance decides appeals."))
    decision = (decision or "").strip()
    errors = {}
    if not decision:
        errors["decision"] = _("Write the decision and its reasons.")
    elif len(decision) > DECISION_LENGTH:
        errors["decision"] = _("At most 1000 characters.")
    if revise and not upheld:
        errors["revise"] = _("Only an upheld appeal revises the scorecard.")
    if errors:
        raise ValidationError(errors)
    period = Period.parse(card.period)
    with transaction.atomic():
        services._current_for_update(community, period)
        appeal = (
            ScorecardAppeal.objects.select_for_update(of=("self",))
            .select_related("scorecard")
            .get(pk=appeal_id, scorecard__community=community, scorecard__period=card.period)
        )
        if not appeal.is_open:
            raise Conflict(_("This appeal has already been decided."))
        if revise:
            reason = _("Appeal upheld: %(decision)s") % {"decision": decision}
            appeal.revision = services.scorecard_revise(
                community=community,
                period=period,
                reason=reason[: services.NOTE_LENGTH],
                by=user,
                now=now,
            )
        appeal.status = ScorecardAppeal.Status.UPHELD if upheld else ScorecardAppeal.Status.REJECTED
        appeal.decision = decision
        appeal.decided_by = user
        appeal.organisation = organisation
        appeal.decided_at = now
        appeal.save()
        recipients = {u.pk: u for u in _company_managers(community)}
        recipients.update({u.pk: u for u in selectors.centre_admins(community=community)})
        _notify(
            recipients.values(),
            title=_("Appeal decided: %(community)s %(period)s")
            % {"community": community.name, "period": period},
            body=f"{appeal.get_status_display()}: {decision}",
            key=f"scorecard-appeal-decided:{appeal.pk}",
            link=_link(card),
        )
    return appeal
