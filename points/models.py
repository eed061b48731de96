"""Points: residents' reputation (声望) and contribution (贡献), companies' reward points
(奖励积分), the earning rules, and the rewards catalogue.

Design overview of the points ledger (after STYLE.md "Money and ledgers"; points are integers):
- A Holder is whoever owns points: one resident user or one property company. It is also the
  resident's points profile (the leaderboard opt-out lives on it).
- Entries are append-only: amount (signed integer), currency, kind (award, clawback, redemption,
  redemption refund), the source that caused it (an event kind such as "payment_on_time", or
  "redemption") and the source's reference (a payment id, a ticket id...). A unique constraint on
  (source, reference, holder, currency, kind) means an event delivered twice awards once and is
  clawed back at most once, whatever retries or races happen. A mistake is corrected by a new,
  reversing entry, never by editing one: the model refuses, and on PostgreSQL so does a trigger
  (migration 0002).
- Each holder has one Balance row per currency, changed in the same transaction as the entry,
  after the rows are locked in primary-key order (points.locks). A check constraint keeps the
  spendable balance (contribution) from going below zero, even when two redemptions race.
  Reputation is a standing, never spent, and has no such floor: a clawback must always be
  possible (with today's rules every negative reputation entry reverses an earlier award of the
  same holder, so it stays >= 0 in practice). `manage.py check_points` recomputes every balance
  from the entries.
- Rules are data (admin-editable): an event kind maps to a currency and an amount, per hour for
  volunteering, with an optional threshold, an optional cap per holder per month and an active
  date range. An entry copies the amount it was given, so changing a rule never touches the past.
- Rewards (centre's or an alliance organisation's services) cost contribution points and have a
  stock; a Redemption takes points and stock in one transaction and carries a code the provider
  marks fulfilled, or the centre cancels (a reversing entry, and the stock comes back).
"""

import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from community.models import AllianceOrganisation, Centre, PropertyCompany
from points.labels import entry_reason


class Currency(models.TextChoices):
    REPUTATION = "reputation", _("reputation")
    CONTRIBUTION = "contribution", _("contribution")
    REWARD = "reward", _("reward points")


USER_CURRENCIES = (Currency.REPUTATION, Currency.CONTRIBUTION)
COMPANY_CURRENCIES = (Currency.REWARD,)
# Points that can be spent, and so must never go below zero.
SPENDABLE = (Currency.CONTRIBUTION,)


class Event(models.TextChoices):
    """What earns points. Each has one holder (the resident or the company) by its nature."""

    PAYMENT_ON_TIME = "payment_on_time", _("on-time payment")
    PREPAYMENT = "prepayment", _("prepayment")
    SERVICE_RATING = "service_rating", _("service rating")
    TICKET_RATING = "ticket_rating", _("ticket rating")
    VOLUNTEER_HOUR = "volunteer_hour", _("volunteering")
    ACTIVITY_CHECKIN = "activity_checkin", _("activity check-in")
    TICKET_WITHIN_SLA = "ticket_within_sla", _("ticket handled within SLA")
    TICKET_FIVE_STARS = "ticket_five_stars", _("5-star ticket rating")
    SCORECARD = "scorecard", _("monthly scorecard")


COMPANY_EVENTS = (Event.TICKET_WITHIN_SLA, Event.TICKET_FIVE_STARS, Event.SCORECARD)
USER_EVENTS = tuple(e for e in Event if e not in COMPANY_EVENTS)


class Holder(models.Model):
    """Who holds points: exactly one resident user or one property company."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="points_holder",
        verbose_name=_("user"),
    )
    company = models.OneToOneField(
        PropertyCompany,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="points_holder",
        verbose_name=_("property company"),
    )
    leaderboard_opt_out = models.BooleanField(
        _("hidden from the leaderboard"),
        default=False,
        help_text=_("The resident asked not to appear on the community's monthly leaderboard."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("points holder")
        verbose_name_plural = _("points holders")
        constraints = [
            models.CheckConstraint(
                condition=(Q(user__isnull=False) & Q(company__isnull=True))
                | (Q(user__isnull=True) & Q(company__isnull=False)),
                name="points_holder_user_or_company",
            ),
        ]

    def __str__(self) -> str:
        return str(self.user or self.company)

    @property
    def currencies(self) -> tuple[str, ...]:
        return USER_CURRENCIES if self.user_id else COMPANY_CURRENCIES


class Balance(models.Model):
    """A holder's balance in one currency: the sum of its entries, kept under a row lock."""

    holder = models.ForeignKey(
        Holder, on_delete=models.PROTECT, related_name="balances", verbose_name=_("holder")
    )
    currency = models.CharField(_("currency"), max_length=16, choices=Currency.choices)
    amount = models.BigIntegerField(_("balance"), default=0)

    class Meta:
        verbose_name = _("points balance")
        verbose_name_plural = _("points balances")
        ordering = ["holder", "currency"]
        constraints = [
            models.UniqueConstraint(fields=["holder", "currency"], name="points_balance_once"),
            models.CheckConstraint(
                condition=~Q(currency__in=SPENDABLE) | Q(amount__gte=0),
                name="points_spendable_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.holder} {self.currency} {self.amount}"


class Rule(models.Model):
    """How many points an event earns, from when to when. Only one rule per event is in force on
    any day (an exclusion constraint on PostgreSQL, `clean` for the admin form); the rule in
    force on the day the event happened applies, whenever it is delivered."""

    event = models.CharField(_("event"), max_length=32, choices=Event.choices)
    currency = models.CharField(_("currency"), max_length=16, choices=Currency.choices)
    amount = models.PositiveIntegerField(_("points"))
    per_hour = models.BooleanField(
        _("per hour"),
        default=False,
        help_text=_("Multiply the points by the hours volunteered (rounded half-up)."),
    )
    threshold = models.DecimalField(
        _("threshold"),
        max_digits=8,
        decimal_places=4,
        null=True,
        blank=True,
        help_text=_(
            "Award only when the event's measure reaches this: months prepaid for a prepayment, "
            "stars for a ticket rating, the score (0–1) for a scorecard."
        ),
    )
    cap_per_month = models.PositiveSmallIntegerField(
        _("cap per month"),
        null=True,
        blank=True,
        help_text=_("At most this many awards per holder per calendar month; empty: no cap."),
    )
    active_from = models.DateField(_("active from"))
    active_to = models.DateField(_("active until"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("earning rule")
        verbose_name_plural = _("earning rules")
        ordering = ["event", "-active_from"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="points_rule_amount_positive"),
            models.CheckConstraint(
                condition=Q(active_to__isnull=True) | Q(active_to__gte=models.F("active_from")),
                name="points_rule_dates_ordered",
            ),
            models.CheckConstraint(
                condition=(Q(event__in=COMPANY_EVENTS) & Q(currency__in=COMPANY_CURRENCIES))
                | (Q(event__in=USER_EVENTS) & Q(currency__in=USER_CURRENCIES)),
                name="points_rule_currency_fits_holder",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_event_display()}: {self.amount} {self.get_currency_display()}"

    def overlapping(self):
        rules = Rule.objects.filter(event=self.event).exclude(pk=self.pk)
        if self.active_to is not None:
            rules = rules.filter(active_from__lte=self.active_to)
        return rules.filter(Q(active_to__isnull=True) | Q(active_to__gte=self.active_from))

    def clean(self) -> None:
        errors = {}
        if self.event in COMPANY_EVENTS and self.currency not in COMPANY_CURRENCIES:
            errors["currency"] = _("Companies earn reward points.")
        if self.event in USER_EVENTS and self.currency not in USER_CURRENCIES:
            errors["currency"] = _("Residents earn reputation or contribution.")
        if self.active_to and self.active_from and self.active_to < self.active_from:
            errors["active_to"] = _("The end comes before the start.")
        if self.event and self.active_from and self.overlapping().exists():
            errors["active_from"] = _(
                "Another rule for this event is in force on some of these days: end it first."
            )
        if errors:
            raise ValidationError(errors)


class Entry(models.Model):
    """One change of one holder's points. Append-only."""

    class Kind(models.TextChoices):
        AWARD = "award", _("award")
        CLAWBACK = "clawback", _("clawback")
        REDEMPTION = "redemption", _("redemption")
        REDEMPTION_REFUND = "redemption_refund", _("redemption cancelled")

    holder = models.ForeignKey(
        Holder, on_delete=models.PROTECT, related_name="entries", verbose_name=_("holder")
    )
    currency = models.CharField(_("currency"), max_length=16, choices=Currency.choices)
    amount = models.BigIntegerField(_("points"))
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    # An Event value for awards and clawbacks, "redemption" for redemptions and their refunds.
    source = models.CharField(_("source"), max_length=32)
    reference = models.CharField(_("reference"), max_length=64)
    rule = models.ForeignKey(
        Rule,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="entries",
        verbose_name=_("rule"),
    )
    # Language-neutral particulars shown with the reason: a period, hours, a reward's name.
    detail = models.CharField(_("detail"), max_length=100, blank=True)
    occurred_at = models.DateTimeField(_("occurred at"))
    period = models.CharField(_("month"), max_length=7, help_text=_("YYYY-MM of occurred_at"))
    created_at = models.DateTimeField(_("recorded at"), auto_now_add=True)

    class Meta:
        verbose_name = _("points entry")
        verbose_name_plural = _("points entries")
        ordering = ["-occurred_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "reference", "holder", "currency", "kind"],
                name="points_entry_once_per_source",
            ),
            models.CheckConstraint(
                condition=(Q(kind__in=["award", "redemption_refund"]) & Q(amount__gt=0))
                | (Q(kind__in=["clawback", "redemption"]) & Q(amount__lt=0)),
                name="points_entry_sign_follows_kind",
            ),
        ]
        indexes = [
            models.Index(fields=["holder", "-occurred_at"], name="points_entry_history"),
            models.Index(fields=["period", "kind"], name="points_entry_period"),
            models.Index(
                fields=["holder", "currency", "source", "period"], name="points_entry_cap"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.holder} {self.amount:+d} {self.currency} ({self.source}:{self.reference})"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValidationError(_("Points entries are append-only: add a reversing entry."))
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValidationError(_("Points entries are append-only: add a reversing entry."))

    @property
    def reason(self) -> str:
        """Why the points moved, in the reader's language (not stored: a stored sentence would
        stay in whatever language it was written in)."""
        return entry_reason(kind=self.kind, source=self.source, detail=self.detail)


class Reward(models.Model):
    """A service residents may take in exchange for contribution points, offered by a centre or
    one of its alliance organisations."""

    centre = models.ForeignKey(
        Centre, on_delete=models.PROTECT, related_name="rewards", verbose_name=_("centre")
    )
    organisation = models.ForeignKey(
        AllianceOrganisation,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="rewards",
        verbose_name=_("offered by"),
        help_text=_("The alliance organisation that provides it; empty: the centre itself."),
    )
    name = models.CharField(_("name"), max_length=100)
    description = models.TextField(_("description"), blank=True)
    cost = models.PositiveIntegerField(_("cost (contribution points)"))
    min_reputation = models.PositiveIntegerField(_("minimum reputation"), default=0)
    stock = models.PositiveIntegerField(_("stock"), default=0)
    active_from = models.DateField(_("offered from"), default=timezone.localdate)
    active_to = models.DateField(_("offered until"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("reward")
        verbose_name_plural = _("rewards")
        ordering = ["cost", "name"]
        constraints = [
            models.UniqueConstraint(fields=["centre", "name"], name="points_reward_unique_name"),
            models.CheckConstraint(condition=Q(cost__gt=0), name="points_reward_cost_positive"),
            models.CheckConstraint(condition=Q(stock__gte=0), name="points_reward_stock_gte_0"),
            models.CheckConstraint(
                condition=Q(active_to__isnull=True) | Q(active_to__gte=models.F("active_from")),
                name="points_reward_dates_ordered",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def provider_name(self) -> str:
        return (self.organisation or self.centre).name

    def is_offered(self, on=None) -> bool:
        on = on or timezone.localdate()
        return self.active_from <= on and (self.active_to is None or on <= self.active_to)

    def clean(self) -> None:
        organisation = self.organisation if self.organisation_id else None
        if organisation and self.centre_id and organisation.centre_id != self.centre_id:
            raise ValidationError(
                {"organisation": _("Choose an organisation of this centre's alliance.")}
            )


def new_redemption_code() -> str:
    # 10 characters without look-alikes (0/O, 1/I/L): read out at a counter, typed by a provider.
    alphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
    return "".join(secrets.choice(alphabet) for _ in range(10))


class Redemption(models.Model):
    class Status(models.TextChoices):
        ISSUED = "issued", _("issued")
        FULFILLED = "fulfilled", _("fulfilled")
        CANCELLED = "cancelled", _("cancelled")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="redemptions",
        verbose_name=_("resident"),
    )
    reward = models.ForeignKey(
        Reward, on_delete=models.PROTECT, related_name="redemptions", verbose_name=_("reward")
    )
    cost = models.PositiveIntegerField(_("cost"))
    code = models.CharField(_("code"), max_length=16, unique=True, default=new_redemption_code)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.ISSUED
    )
    idempotency_key = models.CharField(max_length=100)
    request_fingerprint = models.CharField(max_length=64)
    created_at = models.DateTimeField(_("redeemed at"), default=timezone.now)
    fulfilled_at = models.DateTimeField(_("fulfilled at"), null=True, blank=True)
    fulfilled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("fulfilled by"),
    )
    cancelled_at = models.DateTimeField(_("cancelled at"), null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("cancelled by"),
    )
    cancel_reason = models.CharField(_("reason for cancelling"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("redemption")
        verbose_name_plural = _("redemptions")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "idempotency_key"], name="points_redemption_idempotency_key"
            ),
            models.CheckConstraint(condition=Q(cost__gt=0), name="points_redemption_cost_gt_0"),
            models.CheckConstraint(
                condition=(
                    Q(status="issued") & Q(fulfilled_at__isnull=True) & Q(cancelled_at__isnull=True)
                )
                | (
                    Q(status="fulfilled")
                    & Q(fulfilled_at__isnull=False)
                    & Q(cancelled_at__isnull=True)
                )
                | (
                    Q(status="cancelled")
                    & Q(cancelled_at__isnull=False)
                    & Q(fulfilled_at__isnull=True)
                ),
                name="points_redemption_status_dates",
            ),
        ]
        indexes = [models.Index(fields=["reward", "status"], name="points_redemption_reward")]

    def __str__(self) -> str:
        return f"{self.reward} · {self.code}"
