"""Writes for the community app. Each service runs in one transaction and locks what it checks."""

from datetime import date
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from community.models import Agreement, Community, Household, Residency, User


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
