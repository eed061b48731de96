"""A spending of the community public fund, as the owners decided it (billing/public_fund.py)."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from community.models import Community, Consultation

MONEY = {"max_digits": 14, "decimal_places": 2}


class PublicFundSpend(models.Model):
    """A proposal to pay `amount` out of a community's public fund to a payee, put to the owners
    as a consultation (民法典 第278条). Only a passed one is ever posted, once: the ledger
    transaction "fund-spend:<id>" moves it out of `public_fund:<community>`.

    Status: proposed (the vote is open or not yet decided) → approved (the vote passed; set in
    the posting's own transaction, just before the ledger posting, which the database trigger
    of migration 0007 asks for) → spent. Cancelled: withdrawn, or the vote failed.
    """

    class Status(models.TextChoices):
        PROPOSED = "proposed", _("proposed")
        APPROVED = "approved", _("approved")
        SPENT = "spent", _("spent")
        CANCELLED = "cancelled", _("cancelled")

    community = models.ForeignKey(
        Community,
        on_delete=models.PROTECT,
        related_name="public_fund_spends",
        verbose_name=_("community"),
    )
    consultation = models.OneToOneField(
        Consultation,
        on_delete=models.PROTECT,
        related_name="public_fund_spend",
        verbose_name=_("consultation"),
    )
    amount = models.DecimalField(_("amount"), **MONEY)
    payee_name = models.CharField(_("payee"), max_length=100)
    payee_account = models.CharField(
        _("payee's account"), max_length=100, help_text=_("Bank and account number, or similar.")
    )
    purpose = models.CharField(_("purpose"), max_length=200)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PROPOSED
    )
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="public_fund_spends_proposed",
        verbose_name=_("proposed by"),
    )
    posted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="public_fund_spends_posted",
        verbose_name=_("posted by"),
    )
    ledger_transaction = models.OneToOneField(
        to="billing.LedgerTransaction",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="public_fund_spend",
    )
    posted_at = models.DateTimeField(_("posted at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("public fund spending")
        verbose_name_plural = _("public fund spendings")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="fund_spend_amount_positive"),
            models.CheckConstraint(
                condition=(Q(status="spent") & Q(ledger_transaction__isnull=False))
                | (~Q(status="spent") & Q(ledger_transaction__isnull=True)),
                name="fund_spend_posted_iff_spent",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.community} {self.amount} → {self.payee_name}"
