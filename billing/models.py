"""Bills, payments, the escrow ledger, payouts and refunds.

Design overview of the ledger (after django-hordak and TigerBeetle):
- Money is Decimal yuan with 2 places (billing.money). Postings are signed: debit positive,
  credit negative. Every LedgerTransaction's postings sum to zero; on PostgreSQL a deferred
  constraint trigger refuses to commit one that does not (migration 0002), and
  billing.ledger.post checks the same before writing, which is what protects SQLite.
- Postings are never updated or deleted (a trigger on PostgreSQL, and the model refuses); a
  mistake is corrected by a new, reversing transaction.
- Each account keeps its balance on its row, updated with F() inside the posting transaction
  after the account rows are locked in primary-key order (billing.locks). A check constraint
  keeps liability accounts (escrow, company payable, public fund) from being overdrawn.
- Accounts and what their balance means:
    gateway_clearing (per gateway)  asset: residents' money at the gateway       (debit, >= any)
    escrow (per community)          liability: held for the community             (credit, <= 0)
    company_payable (per community) liability: released to the property company   (credit, <= 0)
    public_fund (per community)     liability: forfeited hold-back, the estate's  (credit, <= 0)
  A payment: Dr clearing, Cr escrow. A payout: Dr escrow, Cr company payable. A hold-back
  release: Dr escrow, Cr company payable (score share) and Cr public fund (the rest). A refund:
  Dr escrow (while held) or Dr company payable (once paid out), Cr clearing.
- Each transaction has a unique idempotency key ("payment:42", "payout:7:2019-08"), so the same
  business event can never be posted twice, whatever retries or races happen.
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from community.models import Community, Household, PropertyCompany

MONEY = {"max_digits": 14, "decimal_places": 2}


class Bill(models.Model):
    """One household's property fee for one month (period "YYYY-MM").

    The area and rate are copied in when the bill is made, so a later change of agreement or a
    corrected area never changes a bill already issued. Status follows from paid_amount; a check
    constraint keeps the two consistent.
    """

    class Status(models.TextChoices):
        UNPAID = "unpaid", _("unpaid")
        PARTIALLY_PAID = "partially_paid", _("partially paid")
        PAID = "paid", _("paid")
        WAIVED = "waived", _("waived")

    household = models.ForeignKey(
        Household, on_delete=models.PROTECT, related_name="bills", verbose_name=_("household")
    )
    # Copied from the household's building: bills are listed and summed per community at scale.
    community = models.ForeignKey(
        Community, on_delete=models.PROTECT, related_name="bills", verbose_name=_("community")
    )
    period = models.CharField(_("period"), max_length=7, help_text=_("YYYY-MM"))
    area = models.DecimalField(_("floor area (m²)"), max_digits=8, decimal_places=2)
    rate = models.DecimalField(_("rate (yuan/m²/month)"), max_digits=8, decimal_places=4)
    amount = models.DecimalField(_("amount"), **MONEY)
    paid_amount = models.DecimalField(_("paid"), default=0, **MONEY)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.UNPAID
    )
    due_date = models.DateField(_("due date"))
    is_prepaid = models.BooleanField(_("prepaid"), default=False)
    overdue_since = models.DateField(_("overdue since"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("bill")
        verbose_name_plural = _("bills")
        ordering = ["-period", "household"]
        constraints = [
            models.UniqueConstraint(fields=["household", "period"], name="bill_once_per_period"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="bill_amount_positive"),
            models.CheckConstraint(
                condition=Q(paid_amount__gte=0) & Q(paid_amount__lte=F("amount")),
                name="bill_paid_within_amount",
            ),
            models.CheckConstraint(
                condition=(
                    Q(status="waived")
                    | (Q(status="paid") & Q(paid_amount=F("amount")))
                    | (Q(status="partially_paid") & Q(paid_amount__gt=0))
                    | (Q(status="unpaid") & Q(paid_amount=0))
                ),
                name="bill_status_follows_paid_amount",
            ),
        ]
        indexes = [
            models.Index(fields=["community", "period", "status"], name="bill_community_period"),
            models.Index(fields=["status", "due_date"], name="bill_status_due"),
        ]

    def __str__(self) -> str:
        return f"{self.household} {self.period}"

    @property
    def outstanding(self):
        return self.amount - self.paid_amount

    @property
    def rate_display(self) -> str:
        """The rate as people write it: at least two decimals, no trailing zeros past them."""
        text = f"{self.rate:.4f}".rstrip("0")
        whole, _, decimals = text.partition(".")
        return f"{whole}.{decimals.ljust(2, '0')}"

    @staticmethod
    def status_for(*, amount, paid_amount) -> str:
        if paid_amount <= 0:
            return Bill.Status.UNPAID
        if paid_amount >= amount:
            return Bill.Status.PAID
        return Bill.Status.PARTIALLY_PAID


class Payment(models.Model):
    """A resident paying one or more bills through a gateway, in one trade."""

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        SUCCEEDED = "succeeded", _("succeeded")
        FAILED = "failed", _("failed")
        REFUNDED = "refunded", _("refunded")

    payer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="payments",
        verbose_name=_("payer"),
    )
    gateway = models.CharField(_("gateway"), max_length=16)
    out_trade_no = models.CharField(_("trade number"), max_length=32, unique=True)
    trade_no = models.CharField(_("gateway trade number"), max_length=64, blank=True)
    amount = models.DecimalField(_("amount"), **MONEY)
    refunded_amount = models.DecimalField(_("refunded"), default=0, **MONEY)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING
    )
    failure_reason = models.CharField(_("failure reason"), max_length=100, blank=True)
    pay_url = models.TextField(_("pay URL"), blank=True)  # signed gateway URLs run long
    idempotency_key = models.CharField(max_length=100)
    request_fingerprint = models.CharField(max_length=64)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    expires_at = models.DateTimeField(_("expires at"))
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["payer", "idempotency_key"], name="payment_idempotency_key"
            ),
            # A gateway's notification is deduplicated by its own trade number.
            models.UniqueConstraint(
                fields=["gateway", "trade_no"],
                condition=~Q(trade_no=""),
                name="payment_gateway_trade_no",
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0) & Q(refunded_amount__lte=F("amount")),
                name="payment_refund_within_amount",
            ),
        ]
        indexes = [models.Index(fields=["status", "expires_at"], name="payment_status_expiry")]

    def __str__(self) -> str:
        return self.out_trade_no

    @property
    def receipt_number(self) -> str:
        """Printed on the receipt; derived from the trade number, so it never changes."""
        return f"LL{self.out_trade_no}"


class PaymentItem(models.Model):
    """The part of a payment that pays one bill, and where that money has gone since.

    `is_open` is true while the payment is pending: a partial unique index on it means a bill can
    be inside at most one pending payment, even when two requests race. Once the month is paid
    out, `payout` records it and the split (to the company now / held back) is kept per item so a
    later refund knows which accounts to take the money back from.
    """

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="items")
    bill = models.ForeignKey(Bill, on_delete=models.PROTECT, related_name="payment_items")
    amount = models.DecimalField(_("amount"), **MONEY)
    is_open = models.BooleanField(default=True)
    refunded_amount = models.DecimalField(_("refunded"), default=0, **MONEY)
    payout = models.ForeignKey(
        "Payout", on_delete=models.PROTECT, null=True, blank=True, related_name="items"
    )
    paid_out_to_company = models.DecimalField(default=0, **MONEY)
    held_back = models.DecimalField(default=0, **MONEY)  # remaining, until released
    released_to_company = models.DecimalField(default=0, **MONEY)
    forfeited_to_fund = models.DecimalField(default=0, **MONEY)
    refunded_from_company = models.DecimalField(default=0, **MONEY)

    class Meta:
        verbose_name = _("payment item")
        verbose_name_plural = _("payment items")
        constraints = [
            models.UniqueConstraint(
                fields=["bill"], condition=Q(is_open=True), name="bill_in_one_pending_payment"
            ),
            models.UniqueConstraint(fields=["payment", "bill"], name="payment_item_once"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_item_positive"),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0) & Q(refunded_amount__lte=F("amount")),
                name="payment_item_refund_within_amount",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.payment} · {self.bill}"


class Account(models.Model):
    class Kind(models.TextChoices):
        GATEWAY_CLEARING = "gateway_clearing", _("gateway clearing")
        ESCROW = "escrow", _("centre escrow")
        COMPANY_PAYABLE = "company_payable", _("property company payable")
        PUBLIC_FUND = "public_fund", _("community public fund")

    # Credit-normal accounts: their balance may never turn positive (that would be an overdraft).
    LIABILITIES = (Kind.ESCROW, Kind.COMPANY_PAYABLE, Kind.PUBLIC_FUND)

    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    key = models.CharField(_("key"), max_length=64, unique=True, help_text=_("e.g. escrow:12"))
    community = models.ForeignKey(
        Community, on_delete=models.PROTECT, null=True, blank=True, related_name="accounts"
    )
    company = models.ForeignKey(
        PropertyCompany, on_delete=models.PROTECT, null=True, blank=True, related_name="accounts"
    )
    gateway = models.CharField(max_length=16, blank=True)
    balance = models.DecimalField(_("balance"), default=0, **MONEY)

    class Meta:
        verbose_name = _("ledger account")
        verbose_name_plural = _("ledger accounts")
        ordering = ["kind", "key"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind__in=["escrow", "company_payable", "public_fund"])
                | Q(balance__lte=0),
                name="account_liability_not_overdrawn",
            ),
        ]

    def __str__(self) -> str:
        return self.key


class LedgerTransaction(models.Model):
    class Kind(models.TextChoices):
        PAYMENT = "payment", _("payment received")
        PAYOUT = "payout", _("payout to company")
        HOLDBACK_RELEASE = "holdback_release", _("hold-back release")
        REFUND = "refund", _("refund")

    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    idempotency_key = models.CharField(max_length=100, unique=True)
    memo = models.CharField(_("memo"), max_length=200, blank=True)
    payment = models.ForeignKey(
        Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="transactions"
    )
    payout = models.ForeignKey(
        "Payout", on_delete=models.PROTECT, null=True, blank=True, related_name="transactions"
    )
    refund = models.ForeignKey(
        "Refund", on_delete=models.PROTECT, null=True, blank=True, related_name="transactions"
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("ledger transaction")
        verbose_name_plural = _("ledger transactions")
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return self.idempotency_key


class Posting(models.Model):
    transaction = models.ForeignKey(
        LedgerTransaction, on_delete=models.PROTECT, related_name="postings"
    )
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="postings")
    amount = models.DecimalField(_("amount (debit +, credit −)"), **MONEY)
    # The bill this leg concerns, when it concerns one: lets a resident's "where is my money"
    # follow each bill through the ledger.
    bill = models.ForeignKey(
        Bill, on_delete=models.PROTECT, null=True, blank=True, related_name="postings"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("posting")
        verbose_name_plural = _("postings")
        ordering = ["pk"]
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="posting_not_zero"),
        ]

    def __str__(self) -> str:
        return f"{self.account} {self.amount}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValidationError(_("Postings are append-only: post a reversing transaction."))
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValidationError(_("Postings are append-only: post a reversing transaction."))


class Payout(models.Model):
    """Money moved from a community's escrow to its property company for a service month.

    kind=regular: after the month, (1 − hold-back share) of what was collected up to then for
    that month and earlier months not yet paid out. kind=holdback_release: when the month's
    scorecard is final, score × the held-back part to the company and the rest to the public
    fund. One of each per community and month, whatever retries or double clicks happen.
    """

    class Kind(models.TextChoices):
        REGULAR = "regular", _("regular payout")
        HOLDBACK_RELEASE = "holdback_release", _("hold-back release")

    community = models.ForeignKey(
        Community, on_delete=models.PROTECT, related_name="payouts", verbose_name=_("community")
    )
    period = models.CharField(_("period"), max_length=7)
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    collected = models.DecimalField(_("collected"), default=0, **MONEY)
    to_company = models.DecimalField(_("to the company"), default=0, **MONEY)
    held_back = models.DecimalField(_("held back"), default=0, **MONEY)
    to_public_fund = models.DecimalField(_("to the public fund"), default=0, **MONEY)
    holdback_share = models.DecimalField(max_digits=5, decimal_places=4, default=0)
    score = models.DecimalField(_("score"), max_digits=5, decimal_places=4, null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("payout")
        verbose_name_plural = _("payouts")
        ordering = ["-period", "community", "kind"]
        constraints = [
            models.UniqueConstraint(
                fields=["community", "period", "kind"], name="payout_once_per_month_and_kind"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.community} {self.period} {self.kind}"


class Refund(models.Model):
    class Status(models.TextChoices):
        SUCCEEDED = "succeeded", _("succeeded")
        FAILED = "failed", _("failed")

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    refund_no = models.CharField(_("refund number"), max_length=32, unique=True)
    amount = models.DecimalField(_("amount"), **MONEY)
    reason = models.CharField(_("reason"), max_length=200)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices)
    gateway_refund_id = models.CharField(max_length=64, blank=True)
    from_escrow = models.DecimalField(_("from escrow"), default=0, **MONEY)
    from_company = models.DecimalField(_("from the company"), default=0, **MONEY)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="refunds_made"
    )
    idempotency_key = models.CharField(max_length=100)
    request_fingerprint = models.CharField(max_length=64)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("refund")
        verbose_name_plural = _("refunds")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive"),
            models.UniqueConstraint(
                fields=["created_by", "idempotency_key"], name="refund_idempotency_key"
            ),
        ]

    def __str__(self) -> str:
        return self.refund_no


class SandboxTrade(models.Model):
    """The built-in sandbox gateway's own book: what a real gateway would keep on its servers.
    The portal never reads it except through the gateway interface (query, settlement)."""

    out_trade_no = models.CharField(max_length=32, unique=True)
    trade_no = models.CharField(max_length=64, unique=True)
    amount = models.DecimalField(**MONEY)
    refunded = models.DecimalField(default=0, **MONEY)
    status = models.CharField(max_length=16, default="WAIT_BUYER_PAY")
    notify_url = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("sandbox gateway trade")
        verbose_name_plural = _("sandbox gateway trades")

    def __str__(self) -> str:
        return self.out_trade_no
