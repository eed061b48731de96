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
    gateway_suspense (per gateway)  liability: captured by a gateway, not booked  (credit, <= 0)
                                    to any bill (paid after its bills were settled
                                    otherwise); waits for a refund
    desk_clearing (per centre and   asset: money taken at the centre's desk        (debit, >= any)
      method: cash, transfer, card)   (the cash drawer, the bank, the card acquirer)
    fund_paid_out (per community)   asset side: the public fund's money paid out of  (credit, any)
                                    the centre's bank to payees the owners approved
                                    (billing/public_fund.py); its balance is minus
                                    what has left
  A payment: Dr clearing (a gateway's, or the desk's), Cr escrow. A payout: Dr escrow, Cr
  company payable. A hold-back release: Dr escrow, Cr company payable (score share) and Cr
  public fund (the rest). A refund takes each bill's share back from where its money is, in
  proportion (billing.money.allocate): Dr escrow (held, held-back), Dr company payable (paid or
  released to the company), Dr public fund (forfeited), Cr clearing. An unbookable capture: Dr
  clearing, Cr gateway suspense; its refund: Dr gateway suspense, Cr clearing. A spending of
  the public fund the owners voted for: Dr public fund, Cr fund paid out. Nothing else may
  debit the public fund but a refund (a trigger on PostgreSQL, migration 0007; on SQLite only
  billing.public_fund's checks stand guard).
- Each transaction has a unique idempotency key ("payment:42", "payout:7:2019-08"), so the same
  business event can never be posted twice, whatever retries or races happen.
- Each transaction is a link of a SHA-256 hash chain over the postings (billing/chain.py),
  appended by ledger.post; a receipt's check code comes from its payment's link.
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Round
from django.utils.translation import gettext_lazy as _

from community.models import Centre, Community, Household, PropertyCompany

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
        # A prepaid month nobody paid for: its payment failed or expired, or its money was
        # refunded before the month began. Kept for the payment's history, never shown as owed,
        # and out of the one-bill-per-month rule, so the month's regular bill is issued at the
        # rate then in force (billing.services._void_unpaid_prepaid_bills).
        VOID = "void", _("void")

    # What residents, the API and the figures see: a void bill was never owed.
    LIVE_STATUSES = (Status.UNPAID, Status.PARTIALLY_PAID, Status.PAID, Status.WAIVED)

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
    # The part of `amount` on pass-through lines (BillLine.Settlement.PASSTHROUGH): paid to the
    # company in full at the month's payout, never held back. Kept on the bill so a payment item
    # can take its pass-through share without reading the lines.
    # db_default too: rows inserted in SQL without the column (bench/, earlier tools) are whole
    # escrowed bills, as every bill was before pass-through lines.
    passthrough_amount = models.DecimalField(_("passed through"), default=0, db_default=0, **MONEY)
    overdue_since = models.DateField(_("overdue since"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("bill")
        verbose_name_plural = _("bills")
        ordering = ["-period", "household"]
        constraints = [
            models.UniqueConstraint(
                fields=["household", "period"],
                condition=~Q(status="void"),
                name="bill_once_per_period",
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="bill_amount_positive"),
            models.CheckConstraint(
                condition=Q(passthrough_amount__gte=0) & Q(passthrough_amount__lte=F("amount")),
                name="bill_passthrough_within_amount",
            ),
            models.CheckConstraint(
                condition=Q(paid_amount__gte=0) & Q(paid_amount__lte=F("amount")),
                name="bill_paid_within_amount",
            ),
            models.CheckConstraint(
                condition=(
                    Q(status="waived")
                    | (Q(status="void") & Q(paid_amount=0))
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
    def outstanding_passthrough(self):
        """The pass-through part still owed: a bill's money goes to its pass-through lines
        first (PaymentItem.passthrough_amount)."""
        return max(self.passthrough_amount - self.paid_amount, 0)

    @property
    def rate_display(self) -> str:
        """The rate as people write it: at least two decimals, no trailing zeros past them."""
        text = f"{self.rate:.4f}".rstrip("0")
        whole, _, decimals = text.partition(".")
        return f"{whole}.{decimals.ljust(2, '0')}"

    @classmethod
    def live_status_choices(cls) -> list[tuple[str, str]]:
        """The (value, label) choices of LIVE_STATUSES: the API's bill status enum."""
        return [choice for choice in cls.Status.choices if choice[0] in cls.LIVE_STATUSES]

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

    class Method(models.TextChoices):
        ONLINE = "online", _("online, through a gateway")
        CASH = "cash", _("cash at the desk")
        TRANSFER = "transfer", _("bank transfer")
        CARD = "card", _("card at the desk")

    DESK_METHODS = (Method.CASH, Method.TRANSFER, Method.CARD)
    DESK_GATEWAY = "desk"  # Payment.gateway of a payment taken at the centre's desk

    payer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="payments",
        verbose_name=_("payer"),
    )
    gateway = models.CharField(_("gateway"), max_length=16)
    method = models.CharField(
        _("method"), max_length=16, choices=Method.choices, default=Method.ONLINE
    )
    # A desk payment: the centre staff member who took it (the cash count is per cashier), and
    # the bank's or card terminal's reference for a transfer or card payment.
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="desk_payments_recorded",
        verbose_name=_("recorded by"),
    )
    reference = models.CharField(_("reference"), max_length=64, blank=True)
    out_trade_no = models.CharField(_("trade number"), max_length=32, unique=True)
    trade_no = models.CharField(_("gateway trade number"), max_length=64, blank=True)
    amount = models.DecimalField(_("amount"), **MONEY)
    refunded_amount = models.DecimalField(_("refunded"), default=0, **MONEY)
    # Money the gateway captured that could not settle this payment's bills (paid after they
    # were settled otherwise): booked to the gateway's suspense account until refunded.
    in_suspense = models.DecimalField(_("in suspense"), default=0, **MONEY)
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
            # A cashier's retry is the same desk payment, whichever resident they picked.
            models.UniqueConstraint(
                fields=["recorded_by", "idempotency_key"],
                condition=Q(recorded_by__isnull=False),
                name="desk_payment_idempotency_key",
            ),
            models.CheckConstraint(
                condition=(Q(method="online") & Q(recorded_by__isnull=True) & ~Q(gateway="desk"))
                | (~Q(method="online") & Q(recorded_by__isnull=False) & Q(gateway="desk")),
                name="payment_desk_fields_together",
            ),
            models.CheckConstraint(
                condition=Q(in_suspense__gte=0) & Q(in_suspense__lte=F("amount")),
                name="payment_suspense_within_amount",
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
        indexes = [
            models.Index(fields=["status", "expires_at"], name="payment_status_expiry"),
            models.Index(
                fields=["gateway"], condition=Q(in_suspense__gt=0), name="payment_in_suspense"
            ),
        ]

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

    # No index of its own: payment_item_once (payment, bill) leads with it and serves every
    # look-up by payment. One index fewer to write on each of the ~450 rows an estate's payout
    # and release each rewrite (issue 18).
    payment = models.ForeignKey(
        Payment, on_delete=models.PROTECT, related_name="items", db_index=False
    )
    bill = models.ForeignKey(Bill, on_delete=models.PROTECT, related_name="payment_items")
    amount = models.DecimalField(_("amount"), **MONEY)
    # The part of `amount` that pays pass-through lines: a bill's money goes to its pass-through
    # lines first. The payout pays it to the company whole; only the rest is held back.
    passthrough_amount = models.DecimalField(default=0, db_default=0, **MONEY)
    is_open = models.BooleanField(default=True)
    refunded_amount = models.DecimalField(_("refunded"), default=0, **MONEY)
    # No index: the payout and the release find an estate's items by its bills (the bill
    # index); an index here would be one more entry to write on each item both rewrite.
    payout = models.ForeignKey(
        "Payout",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="items",
        db_index=False,
    )
    paid_out_to_company = models.DecimalField(default=0, **MONEY)
    held_back = models.DecimalField(default=0, **MONEY)  # remaining, until released
    released_to_company = models.DecimalField(default=0, **MONEY)
    forfeited_to_fund = models.DecimalField(default=0, **MONEY)
    refunded_from_company = models.DecimalField(default=0, **MONEY)
    refunded_from_fund = models.DecimalField(default=0, **MONEY)

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
                condition=Q(passthrough_amount__gte=0) & Q(passthrough_amount__lte=F("amount")),
                name="payment_item_passthrough_within_amount",
            ),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0) & Q(refunded_amount__lte=F("amount")),
                name="payment_item_refund_within_amount",
            ),
            # A refund never takes more from the company or the fund than went there: the
            # trail never shows the company holding a negative share of a payment.
            models.CheckConstraint(
                condition=Q(refunded_from_company__gte=0)
                & Q(refunded_from_company__lte=F("paid_out_to_company") + F("released_to_company")),
                name="payment_item_company_refund_within_paid",
            ),
            models.CheckConstraint(
                condition=Q(refunded_from_fund__gte=0)
                & Q(refunded_from_fund__lte=F("forfeited_to_fund")),
                name="payment_item_fund_refund_within_forfeited",
            ),
            models.CheckConstraint(condition=Q(held_back__gte=0), name="payment_item_held_back"),
        ]

    def __str__(self) -> str:
        return f"{self.payment} · {self.bill}"


class Account(models.Model):
    class Kind(models.TextChoices):
        GATEWAY_CLEARING = "gateway_clearing", _("gateway clearing")
        ESCROW = "escrow", _("centre escrow")
        COMPANY_PAYABLE = "company_payable", _("property company payable")
        PUBLIC_FUND = "public_fund", _("community public fund")
        GATEWAY_SUSPENSE = "gateway_suspense", _("gateway suspense")
        DESK_CLEARING = "desk_clearing", _("desk clearing")
        FUND_PAID_OUT = "fund_paid_out", _("public fund paid out")

    # Credit-normal accounts: their balance may never turn positive (that would be an overdraft).
    LIABILITIES = (Kind.ESCROW, Kind.COMPANY_PAYABLE, Kind.PUBLIC_FUND, Kind.GATEWAY_SUSPENSE)

    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    key = models.CharField(_("key"), max_length=64, unique=True, help_text=_("e.g. escrow:12"))
    community = models.ForeignKey(
        Community, on_delete=models.PROTECT, null=True, blank=True, related_name="accounts"
    )
    company = models.ForeignKey(
        PropertyCompany, on_delete=models.PROTECT, null=True, blank=True, related_name="accounts"
    )
    centre = models.ForeignKey(
        Centre, on_delete=models.PROTECT, null=True, blank=True, related_name="accounts"
    )
    gateway = models.CharField(max_length=16, blank=True)
    # A desk clearing account's payment method (cash, transfer, card).
    method = models.CharField(max_length=16, blank=True)
    balance = models.DecimalField(_("balance"), default=0, **MONEY)

    class Meta:
        verbose_name = _("ledger account")
        verbose_name_plural = _("ledger accounts")
        ordering = ["kind", "key"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(
                    kind__in=["escrow", "company_payable", "public_fund", "gateway_suspense"]
                )
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
        CAPTURE_UNBOOKED = "capture_unbooked", _("captured, not booked (suspense)")
        PUBLIC_FUND_SPEND = "public_fund_spend", _("public fund spending")

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
    from_fund = models.DecimalField(_("from the public fund"), default=0, **MONEY)
    from_suspense = models.DecimalField(_("from gateway suspense"), default=0, **MONEY)
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
            # Rounded to the fen: exact numerics on PostgreSQL either way, but SQLite adds the
            # parts in binary floating point (121.20 + 59.10 + 0.90 is not 181.20 there).
            models.CheckConstraint(
                condition=Q(
                    amount=Round(
                        F("from_escrow") + F("from_company") + F("from_fund") + F("from_suspense"),
                        2,
                    )
                ),
                name="refund_sources_add_up",
            ),
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


class SandboxRefund(models.Model):
    """A refund on the sandbox gateway's side, keyed by our refund number as a real gateway keys
    it (Alipay's out_request_no, WeChat Pay's out_refund_no): the same number twice is the same
    refund. Its day puts it on that day's statement."""

    trade = models.ForeignKey(SandboxTrade, on_delete=models.PROTECT, related_name="refunds")
    refund_no = models.CharField(max_length=32, unique=True)
    gateway_refund_id = models.CharField(max_length=64, unique=True)
    amount = models.DecimalField(**MONEY)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("sandbox gateway refund")
        verbose_name_plural = _("sandbox gateway refunds")

    def __str__(self) -> str:
        return self.refund_no


class Reconciliation(models.Model):
    """One gateway's statement for one day, matched line by line with the ledger. Running it
    again for the same day replaces its lines (the statement may have been late or corrected)."""

    class Status(models.TextChoices):
        MATCHED = "matched", _("all lines match")
        DIFFERENCES = "differences", _("differences found")
        FAILED = "failed", _("statement not available")

    gateway = models.CharField(_("gateway"), max_length=16)
    day = models.DateField(_("day"))
    status = models.CharField(_("status"), max_length=16, choices=Status.choices)
    error = models.CharField(_("error"), max_length=300, blank=True)
    matched = models.PositiveIntegerField(_("matched"), default=0)
    missing_in_ledger = models.PositiveIntegerField(_("missing in the ledger"), default=0)
    missing_at_gateway = models.PositiveIntegerField(_("missing at the gateway"), default=0)
    amount_differs = models.PositiveIntegerField(_("amount differs"), default=0)
    ran_at = models.DateTimeField(_("ran at"), auto_now=True)

    class Meta:
        verbose_name = _("reconciliation")
        verbose_name_plural = _("reconciliations")
        ordering = ["-day", "gateway"]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "day"], name="reconciliation_once_a_day"),
        ]

    def __str__(self) -> str:
        return f"{self.gateway} {self.day.isoformat()}"

    @property
    def differences(self) -> int:
        return self.missing_in_ledger + self.missing_at_gateway + self.amount_differs


class ReconciliationLine(models.Model):
    """One trade or refund of the day, as the gateway's statement and the ledger see it."""

    class Kind(models.TextChoices):
        PAYMENT = "payment", _("payment")
        REFUND = "refund", _("refund")

    class Result(models.TextChoices):
        MATCHED = "matched", _("matched")
        MISSING_IN_LEDGER = "missing_in_ledger", _("missing in the ledger")
        MISSING_AT_GATEWAY = "missing_at_gateway", _("missing at the gateway")
        AMOUNT_DIFFERS = "amount_differs", _("amount differs")

    reconciliation = models.ForeignKey(
        Reconciliation, on_delete=models.CASCADE, related_name="lines"
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    result = models.CharField(_("result"), max_length=20, choices=Result.choices)
    out_trade_no = models.CharField(_("trade number"), max_length=64, blank=True)
    trade_no = models.CharField(_("gateway trade number"), max_length=64, blank=True)
    refund_no = models.CharField(_("refund number"), max_length=64, blank=True)
    gateway_amount = models.DecimalField(_("at the gateway"), null=True, blank=True, **MONEY)
    ledger_amount = models.DecimalField(_("in the ledger"), null=True, blank=True, **MONEY)
    payment = models.ForeignKey(
        Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    refund = models.ForeignKey(
        Refund, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # Whose admins see the line: the centre of the payment's estate; empty for a trade the
    # portal never issued (every centre admin and the superuser see those).
    centre = models.ForeignKey(
        Centre, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("reconciliation line")
        verbose_name_plural = _("reconciliation lines")
        ordering = ["reconciliation", "result", "pk"]
        indexes = [models.Index(fields=["centre", "result"], name="reconciliation_line_centre")]

    def __str__(self) -> str:
        return f"{self.out_trade_no or self.refund_no} {self.result}"


class DeskDayClose(models.Model):
    """A cashier's day at the centre's desk, closed with the cash counted in the drawer. The
    count must equal what the ledger says this cashier took in cash that day (payments less
    cash refunds); a check constraint holds it, and a closed day takes no more cash."""

    cashier = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="desk_days_closed",
        verbose_name=_("cashier"),
    )
    centre = models.ForeignKey(
        Centre, on_delete=models.PROTECT, related_name="desk_days", verbose_name=_("centre")
    )
    day = models.DateField(_("day"))
    expected_cash = models.DecimalField(_("cash in the ledger"), **MONEY)
    counted_cash = models.DecimalField(_("cash counted"), **MONEY)
    payments = models.PositiveIntegerField(_("desk payments"), default=0)
    note = models.CharField(_("note"), max_length=200, blank=True)
    closed_at = models.DateTimeField(_("closed at"), auto_now_add=True)

    class Meta:
        verbose_name = _("cashier's day")
        verbose_name_plural = _("cashiers' days")
        ordering = ["-day", "cashier"]
        constraints = [
            models.UniqueConstraint(
                fields=["cashier", "centre", "day"], name="desk_day_closed_once"
            ),
            models.CheckConstraint(
                condition=Q(counted_cash=F("expected_cash")), name="desk_day_count_matches"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.cashier} {self.day.isoformat()}"


# --- fee items, meter readings, bill lines, late-fee and discount rules ----------------------
#
# A tri-party agreement fixes the property fee per m² (Agreement.fee_rate, the first line of
# every bill) and may carry further charge items: per m² per month, fixed per household per
# month (for every household, or only those subscribed: a rented parking space), or metered
# (usage from the month's meter reading × unit price, optionally in tiers). The bill run gives
# each household one bill a month with one line per item; late fees and prepayment discounts
# are lines of their own, from rules held as data. Each line says how its money is settled:
# escrowed (paid out to the company with the performance hold-back, like the property fee) or
# passed through (collected for the company in full at the month's payout, never held back:
# water and electricity are the utility's money, not a reward for service).


class Settlement(models.TextChoices):
    ESCROW = "escrow", _("escrowed, paid out with the hold-back")
    PASSTHROUGH = "passthrough", _("passed through to the company in full")


class ChargeItem(models.Model):
    """One charge item of an agreement besides the property fee."""

    class Method(models.TextChoices):
        PER_AREA = "per_area", _("per m² per month")
        FIXED = "fixed", _("fixed per household per month")
        METERED = "metered", _("metered: reading × unit price")

    agreement = models.ForeignKey(
        "community.Agreement",
        on_delete=models.CASCADE,
        related_name="charge_items",
        verbose_name=_("agreement"),
    )
    code = models.SlugField(
        _("code"),
        max_length=32,
        help_text=_(
            "Short and stable, e.g. water, power, garbage, parking: meter readings and "
            "imports name the item by it."
        ),
    )
    name = models.CharField(_("name"), max_length=60)
    method = models.CharField(_("method"), max_length=16, choices=Method.choices)
    unit_price = models.DecimalField(
        _("unit price (yuan)"),
        max_digits=10,
        decimal_places=4,
        help_text=_("Per m², per household, or per unit used (the first tier's price if tiered)."),
    )
    unit = models.CharField(_("unit"), max_length=10, blank=True, help_text=_("e.g. m³, kWh"))
    settlement = models.CharField(
        _("settlement"), max_length=16, choices=Settlement.choices, default=Settlement.ESCROW
    )
    by_subscription = models.BooleanField(
        _("only subscribed households"),
        default=False,
        help_text=_(
            "Fixed items only: charged to the households subscribed to it (a rented "
            "parking space), not to every household."
        ),
    )
    position = models.PositiveSmallIntegerField(_("position"), default=10)

    class Meta:
        verbose_name = _("charge item")
        verbose_name_plural = _("charge items")
        ordering = ["agreement", "position", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["agreement", "code"], name="charge_item_code_once"),
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="charge_item_price"),
            models.CheckConstraint(
                condition=Q(by_subscription=False) | Q(method="fixed"),
                name="charge_item_subscription_fixed_only",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ChargeTier(models.Model):
    """A tier of a metered item's price: usage above the previous tier's limit and up to
    `up_to` (no limit when empty) costs `unit_price` a unit (阶梯水价/电价)."""

    item = models.ForeignKey(
        ChargeItem, on_delete=models.CASCADE, related_name="tiers", verbose_name=_("charge item")
    )
    up_to = models.DecimalField(
        _("up to (units a month)"), max_digits=12, decimal_places=2, null=True, blank=True
    )
    unit_price = models.DecimalField(_("unit price (yuan)"), max_digits=10, decimal_places=4)

    class Meta:
        verbose_name = _("price tier")
        verbose_name_plural = _("price tiers")
        ordering = ["item", models.F("up_to").asc(nulls_last=True)]
        constraints = [
            models.UniqueConstraint(
                fields=["item"], condition=Q(up_to__isnull=True), name="charge_tier_one_open"
            ),
            models.UniqueConstraint(fields=["item", "up_to"], name="charge_tier_limit_once"),
            models.CheckConstraint(
                condition=Q(up_to__isnull=True) | Q(up_to__gt=0), name="charge_tier_limit"
            ),
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="charge_tier_price"),
        ]

    def __str__(self) -> str:
        return f"{self.item} ≤ {self.up_to or '∞'}"


class ChargeSubscription(models.Model):
    """A household subscribed to a fixed item that is charged by subscription (a parking space
    rented: quantity = spaces)."""

    household = models.ForeignKey(
        Household,
        on_delete=models.CASCADE,
        related_name="charge_subscriptions",
        verbose_name=_("household"),
    )
    item = models.ForeignKey(
        ChargeItem,
        on_delete=models.CASCADE,
        related_name="subscriptions",
        verbose_name=_("charge item"),
    )
    quantity = models.PositiveSmallIntegerField(_("quantity"), default=1)

    class Meta:
        verbose_name = _("charge subscription")
        verbose_name_plural = _("charge subscriptions")
        constraints = [
            models.UniqueConstraint(fields=["household", "item"], name="charge_subscription_once"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="charge_subscription_qty"),
        ]

    def __str__(self) -> str:
        return f"{self.household} · {self.item}"


class MeterReading(models.Model):
    """A household meter's reading at the end of a month. Usage = reading − previous reading;
    the bill of the same month charges it on the metered item whose code is `meter`."""

    class Source(models.TextChoices):
        STAFF = "staff", _("entered by staff")
        IMPORT = "import", _("imported")

    household = models.ForeignKey(
        Household,
        on_delete=models.PROTECT,
        related_name="meter_readings",
        verbose_name=_("household"),
    )
    meter = models.SlugField(_("meter"), max_length=32)
    period = models.CharField(_("period"), max_length=7, help_text=_("YYYY-MM"))
    previous_reading = models.DecimalField(_("previous reading"), max_digits=12, decimal_places=2)
    reading = models.DecimalField(_("reading"), max_digits=12, decimal_places=2)
    source = models.CharField(
        _("source"), max_length=10, choices=Source.choices, default=Source.STAFF
    )
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("recorded by"),
    )
    recorded_at = models.DateTimeField(_("recorded at"), auto_now=True)

    class Meta:
        verbose_name = _("meter reading")
        verbose_name_plural = _("meter readings")
        ordering = ["household", "meter", "-period"]
        constraints = [
            models.UniqueConstraint(
                fields=["household", "meter", "period"], name="meter_reading_once_a_month"
            ),
            models.CheckConstraint(
                condition=Q(previous_reading__gte=0) & Q(reading__gte=F("previous_reading")),
                name="meter_reading_not_backwards",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.household} {self.meter} {self.period}"

    @property
    def usage(self):
        return self.reading - self.previous_reading


class LateFeeRule(models.Model):
    """A late fee (滞纳金) held as data: after `grace_days` past the due date, `daily_rate` of
    what is still owed on the bill's charges per day, at most `cap_rate` of it in all. One late
    fee line per bill, recomputed each day until the bill is paid; waiving it is an audited
    admin action. A rule of an estate wins over a rule for every estate (community empty)."""

    community = models.ForeignKey(
        Community,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="late_fee_rules",
        verbose_name=_("community"),
        help_text=_("Empty: every estate without a rule of its own."),
    )
    name = models.CharField(_("name"), max_length=60, help_text=_("Printed on the bill line."))
    grace_days = models.PositiveSmallIntegerField(_("grace days"), default=0)
    daily_rate = models.DecimalField(
        _("per day (share of what is owed)"),
        max_digits=6,
        decimal_places=5,
        help_text=_("0.0005: five ten-thousandths of it a day."),
    )
    cap_rate = models.DecimalField(
        _("cap (share of what is owed)"),
        max_digits=5,
        decimal_places=4,
        help_text=_("0.2: never more than a fifth of the charges."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("late fee rule")
        verbose_name_plural = _("late fee rules")
        ordering = ["community", "-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["community"],
                condition=Q(is_active=True) & Q(community__isnull=False),
                name="late_fee_rule_one_active_per_estate",
            ),
            models.UniqueConstraint(
                fields=["is_active"],
                condition=Q(is_active=True) & Q(community__isnull=True),
                name="late_fee_rule_one_active_default",
            ),
            models.CheckConstraint(
                condition=Q(daily_rate__gt=0) & Q(daily_rate__lte=1), name="late_fee_daily_rate"
            ),
            models.CheckConstraint(
                condition=Q(cap_rate__gt=0) & Q(cap_rate__lte=1), name="late_fee_cap_rate"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class PrepayDiscountRule(models.Model):
    """A prepayment discount held as data: prepaying `months_paid` months or more gives
    `months_free` months' charges off for each full block of `months_paid` ("pay 12 months,
    one free"). The discount is spread over the prepaid bills as a line on each, in proportion
    to their charges, so every month stays a bill with something to pay."""

    community = models.ForeignKey(
        Community,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="prepay_discount_rules",
        verbose_name=_("community"),
        help_text=_("Empty: every estate."),
    )
    name = models.CharField(_("name"), max_length=60, help_text=_("Printed on the bill line."))
    months_paid = models.PositiveSmallIntegerField(_("months prepaid"))
    months_free = models.PositiveSmallIntegerField(_("months free"))
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("prepayment discount rule")
        verbose_name_plural = _("prepayment discount rules")
        ordering = ["community", "months_paid"]
        constraints = [
            models.CheckConstraint(
                condition=Q(months_free__gt=0) & Q(months_paid__gt=F("months_free")),
                name="prepay_discount_less_than_paid",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class BillLine(models.Model):
    """One line of a bill: a charge item's amount for the month, the late fee, a prepayment
    discount (negative), or opening arrears brought in on import. The bill's amount is the sum
    of its lines that are not waived, and its passthrough_amount the sum of those settled by
    pass-through; the services that add, change or waive a line keep both in step in the same
    transaction (billing.charges)."""

    class Kind(models.TextChoices):
        CHARGE = "charge", _("charge")
        LATE_FEE = "late_fee", _("late fee")
        DISCOUNT = "discount", _("discount")
        OPENING_ARREARS = "opening_arrears", _("opening arrears")

    bill = models.ForeignKey(
        Bill, on_delete=models.PROTECT, related_name="lines", verbose_name=_("bill")
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    # The agreement's own property fee has no item; every other charge names its item.
    charge_item = models.ForeignKey(
        ChargeItem, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    late_fee_rule = models.ForeignKey(
        LateFeeRule, on_delete=models.PROTECT, null=True, blank=True, related_name="lines"
    )
    discount_rule = models.ForeignKey(
        PrepayDiscountRule, on_delete=models.PROTECT, null=True, blank=True, related_name="lines"
    )
    name = models.CharField(_("name"), max_length=60)
    quantity = models.DecimalField(_("quantity"), max_digits=12, decimal_places=2, default=1)
    unit = models.CharField(_("unit"), max_length=10, blank=True)
    unit_price = models.DecimalField(_("unit price"), max_digits=10, decimal_places=4, default=0)
    amount = models.DecimalField(_("amount"), **MONEY)
    settlement = models.CharField(
        _("settlement"), max_length=16, choices=Settlement.choices, default=Settlement.ESCROW
    )
    position = models.PositiveSmallIntegerField(default=0)
    waived_at = models.DateTimeField(_("waived at"), null=True, blank=True)
    waived_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("waived by"),
    )
    waive_reason = models.CharField(_("reason for waiving"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("bill line")
        verbose_name_plural = _("bill lines")
        ordering = ["bill", "position", "pk"]
        constraints = [
            # Each rule applies to a bill exactly once, and so does each charge item.
            models.UniqueConstraint(
                fields=["bill"], condition=Q(kind="late_fee"), name="bill_line_one_late_fee"
            ),
            models.UniqueConstraint(
                fields=["bill"], condition=Q(kind="discount"), name="bill_line_one_discount"
            ),
            models.UniqueConstraint(
                fields=["bill", "charge_item"],
                condition=Q(kind="charge") & Q(charge_item__isnull=False),
                name="bill_line_item_once",
            ),
            models.UniqueConstraint(
                fields=["bill"],
                condition=Q(kind="charge") & Q(charge_item__isnull=True),
                name="bill_line_one_property_fee",
            ),
            models.CheckConstraint(
                condition=(Q(kind="discount") & Q(amount__lt=0))
                | (~Q(kind="discount") & Q(amount__gte=0)),
                name="bill_line_sign_follows_kind",
            ),
            models.CheckConstraint(
                condition=Q(waived_at__isnull=True) | Q(kind="late_fee"),
                name="bill_line_only_late_fees_waived",
            ),
            models.CheckConstraint(
                condition=Q(kind="late_fee", late_fee_rule__isnull=False)
                | Q(kind="discount", discount_rule__isnull=False)
                | Q(kind__in=["charge", "opening_arrears"]),
                name="bill_line_rule_named",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.bill} · {self.name}"

    @property
    def is_waived(self) -> bool:
        return self.waived_at is not None


# The ledger's hash chain (billing/chain.py), spendings of the community public fund
# (billing/public_fund.py), and the bill reminder schedule (billing/reminder_models.py), live
# in their own modules.
from billing.chain_models import LedgerChainLink  # noqa: E402,F401
from billing.public_fund_models import PublicFundSpend  # noqa: E402,F401
from billing.reminder_models import ReminderStep  # noqa: E402,F401
