"""Spending the community public fund: only as its owners decide (Transparency, part 2).

The public fund (`public_fund:<community>`) holds the hold-back the property company did not
earn. It is the owners' common money, so spending it is put to them as a consultation with the
thresholds of 民法典 第278条 for using common funds (第二款: at least two thirds of the area and
of the heads take part, and at least three quarters of the participating area and heads agree,
as for the maintenance fund; community.tally.SPECIAL). Then:

1. `public_fund_spend_propose`: the owners' committee or a centre admin names the amount, the
   payee and the purpose; the consultation (同意 / 反对 / 弃权) is opened with it.
2. Residents vote on the existing consultation pages.
3. `public_fund_spend_post`: after closing, a centre admin of the estate's centre posts the
   transfer, once: Dr public_fund, Cr fund_paid_out (billing.models' ledger overview), key
   "fund-spend:<id>". Not passed, not closed, spent already, more than the fund holds: 409.

On PostgreSQL a trigger (migration 0007) refuses any other debit of a public fund but a
refund's; on SQLite the checks here are all that guard it.
"""

from datetime import datetime
from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from billing import ledger
from billing.locks import accounts_for_update
from billing.models import Account, LedgerTransaction, PublicFundSpend
from billing.money import fen, money_text
from community import audit
from community import selectors as community_selectors
from community import services as community_services
from community.models import Community, Role, User
from community.tally import SPECIAL
from config.api import Conflict


def fund_paid_out_account(community: Community) -> Account:
    return ledger._account(
        Account.Kind.FUND_PAID_OUT, f"fund_paid_out:{community.pk}", community=community
    )


def _is_centre_admin(user: User, community: Community) -> bool:
    return Role.CENTRE_ADMIN in community_selectors.community_roles(user=user, community=community)


@transaction.atomic
def public_fund_spend_propose(
    *,
    creator: User,
    community: Community,
    amount: Decimal,
    payee_name: str,
    payee_account: str,
    purpose: str,
    opens_at: datetime,
    closes_at: datetime,
    at: datetime | None = None,
) -> PublicFundSpend:
    """Put a spending of the public fund to the owners: the consultation and the proposal, in one
    transaction. Only the committee and the centre (consultation_create's rule)."""
    amount = fen(amount)
    if amount <= 0:
        raise ValidationError({"amount": _("The amount must be positive.")})
    payee_name, payee_account, purpose = (
        (payee_name or "").strip(),
        (payee_account or "").strip(),
        (purpose or "").strip(),
    )
    errors = {
        field: _("This field is required.")
        for field, value in (
            ("payee_name", payee_name),
            ("payee_account", payee_account),
            ("purpose", purpose),
        )
        if not value
    }
    if errors:
        raise ValidationError(errors)
    values = {"amount": money_text(amount), "payee": payee_name, "purpose": purpose}
    consultation = community_services.consultation_create(
        creator=creator,
        community=community,
        title=_("Spend %(amount)s of the public fund: %(purpose)s") % values,
        description=_(
            "Pay %(amount)s out of the community public fund to %(payee)s, for: %(purpose)s. "
            "Owners of at least two thirds of the floor area and of the households must take "
            "part, and at least three quarters of them, by area and by households, must agree."
        )
        % values,
        opens_at=opens_at,
        closes_at=closes_at,
        options=[
            {"label": _("Agree"), "approves": True},
            {"label": _("Disagree")},
            {"label": _("Abstain")},
        ],
        approval=(SPECIAL.approval.share.numerator, SPECIAL.approval.share.denominator),
        approval_inclusive=SPECIAL.approval.inclusive,
        participation=(
            SPECIAL.participation.share.numerator,
            SPECIAL.participation.share.denominator,
        ),
        participation_inclusive=SPECIAL.participation.inclusive,
        at=at,
    )
    return PublicFundSpend.objects.create(
        community=community,
        consultation=consultation,
        amount=amount,
        payee_name=payee_name[:100],
        payee_account=payee_account[:100],
        purpose=purpose[:200],
        proposed_by=creator,
    )


def public_fund_spend_post(
    *, spend: PublicFundSpend, by: User, at: datetime | None = None
) -> PublicFundSpend:
    """Pay a passed spending out of the public fund: one ledger transaction, once, audited.

    PermissionDenied unless `by` is a centre admin of the estate. Conflict (nothing written) if
    the vote has not closed, did not pass, the spending was posted or cancelled, or the fund
    holds less than the amount. The spending's row lock serialises two posts of it; the fund
    account's lock, two spendings of one fund."""
    at = at or timezone.now()
    community = spend.community
    if not _is_centre_admin(by, community):
        raise PermissionDenied(_("Only the centre admin pays out of the public fund."))
    with transaction.atomic():
        fund = ledger.public_fund_account(community)
        paid_out = fund_paid_out_account(community)
        spend = (
            PublicFundSpend.objects.select_for_update(of=("self",))
            .select_related("consultation", "community")
            .get(pk=spend.pk)
        )
        if spend.status == PublicFundSpend.Status.SPENT:
            raise Conflict(_("This spending has been paid already."))
        if spend.status == PublicFundSpend.Status.CANCELLED:
            raise Conflict(_("This spending was cancelled."))
        consultation = spend.consultation
        community_services.consultation_tally(consultation=consultation, at=at)
        result = community_selectors.consultation_result(consultation=consultation)
        if result is None:
            raise Conflict(_("The owners have not finished voting on this spending."))
        if not result.passed:
            raise Conflict(_("The owners did not approve this spending."))
        balance = accounts_for_update([fund.pk])[fund.pk].balance
        if spend.amount > -balance:
            raise Conflict(
                _("The public fund holds %(balance)s, less than %(amount)s.")
                % {"balance": money_text(-balance), "amount": money_text(spend.amount)}
            )
        # The trigger of migration 0007 lets the posting debit the fund only for an approved,
        # unposted spending of this amount.
        PublicFundSpend.objects.filter(pk=spend.pk).update(status=PublicFundSpend.Status.APPROVED)
        entry = ledger.post(
            kind=LedgerTransaction.Kind.PUBLIC_FUND_SPEND,
            idempotency_key=f"fund-spend:{spend.pk}",
            legs=[ledger.Leg(fund, spend.amount), ledger.Leg(paid_out, -spend.amount)],
            memo=f"{spend.payee_name}: {spend.purpose}",
        )
        spend.status = PublicFundSpend.Status.SPENT
        spend.ledger_transaction = entry
        spend.posted_by = by
        spend.posted_at = at
        spend.save(update_fields=["status", "ledger_transaction", "posted_by", "posted_at"])
        audit.record(
            action=audit.Action.PUBLIC_FUND_SPEND,
            actor=by,
            target=spend,
            centre_id=community.centre_id,
            details={
                "community": community.name,
                "amount": spend.amount,
                "payee": spend.payee_name,
                "payee_account": spend.payee_account,
                "purpose": spend.purpose,
                "consultation": consultation.pk,
            },
        )
    return spend
