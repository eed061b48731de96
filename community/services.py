"""Writes for the community app. Each service runs in one transaction and locks what it checks."""

from datetime import date
from decimal import Decimal

from django.core import mail
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from community.models import Agreement, Community, Household, Notice, Residency, User


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
