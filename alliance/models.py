"""The alliance's evaluation of the property company: residents' monthly service ratings (三保两报),
inspectors' spot checks (两率两度) and the monthly scorecard that releases the payout hold-back.

Design overview
- ServiceRating: one per household and month (unique), 1–5 stars on five dimensions and an
  optional comment. Only a household that has paid its bill for the month may rate
  (billing.selectors.household_paid_for_period, checked by alliance.services).
- Inspection: one spot check of one community in one month by an alliance inspector: staff on
  duty against staff rostered (到岗率), grid cooperation and major-matter cooperation (0–100).
  Several checks in a month are averaged.
- ScoreWeight: how much each of the five scorecard components counts. Data, edited in admin; a
  data migration (0002) creates the default set (see DEFAULT_WEIGHTS).
- Scorecard: the figures of one community and month, and the score 0–1 that combines them.
  Rows are revisions: revision 1 is a draft, recomputed daily, until it is finalized (once: the
  row is locked and its revision is unique per community and month); finalizing freezes the
  figures and releases the hold-back in billing in the same transaction. A finalized scorecard
  is never recomputed; a correction is a new revision, finalized at once with its reason.
  Exactly one revision per community and month is `is_current` (a partial unique index): that is
  the one published.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from community.models import AllianceOrganisation, Community, Household

RATE = {"max_digits": 5, "decimal_places": 4}


class Dimension(models.TextChoices):
    """What residents rate: the three guarantees and two reports (三保两报)."""

    CLEANING = "cleaning", _("cleaning")
    GREENING = "greening", _("greening")
    SECURITY = "security", _("security")
    REPORTING = "reporting", _("incident handling")
    REPAIR = "repair", _("repairs")


DIMENSIONS = tuple(Dimension.values)


class ServiceRating(models.Model):
    """A household's rating of one month's service: 1–5 stars per dimension."""

    household = models.ForeignKey(
        Household,
        on_delete=models.PROTECT,
        related_name="service_ratings",
        verbose_name=_("household"),
    )
    # Copied from the household's building: ratings are read per community and month.
    community = models.ForeignKey(
        Community,
        on_delete=models.PROTECT,
        related_name="service_ratings",
        verbose_name=_("community"),
    )
    period = models.CharField(_("period"), max_length=7, help_text=_("YYYY-MM"))
    rated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="service_ratings",
        verbose_name=_("rated by"),
    )
    cleaning = models.PositiveSmallIntegerField(_("cleaning"))
    greening = models.PositiveSmallIntegerField(_("greening"))
    security = models.PositiveSmallIntegerField(_("security"))
    reporting = models.PositiveSmallIntegerField(_("incident handling"))
    repair = models.PositiveSmallIntegerField(_("repairs"))
    comment = models.TextField(_("comment"), max_length=500, blank=True)
    created_at = models.DateTimeField(_("rated at"), default=timezone.now)

    class Meta:
        verbose_name = _("service rating")
        verbose_name_plural = _("service ratings")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["household", "period"], name="service_rating_once_per_household_period"
            ),
            *[
                models.CheckConstraint(
                    condition=Q(**{f"{dimension}__gte": 1}) & Q(**{f"{dimension}__lte": 5}),
                    name=f"service_rating_{dimension}_1_5",
                )
                for dimension in DIMENSIONS
            ],
        ]
        indexes = [
            models.Index(fields=["community", "period"], name="service_rating_community_month")
        ]

    def __str__(self) -> str:
        return f"{self.household} {self.period}"

    @property
    def stars(self) -> dict[str, int]:
        return {dimension: getattr(self, dimension) for dimension in DIMENSIONS}


class Inspection(models.Model):
    """An alliance inspector's spot check (抽测) of one community in one month."""

    community = models.ForeignKey(
        Community, on_delete=models.PROTECT, related_name="inspections", verbose_name=_("community")
    )
    period = models.CharField(_("period"), max_length=7, help_text=_("YYYY-MM"))
    inspector = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="inspections",
        verbose_name=_("inspector"),
    )
    organisation = models.ForeignKey(
        AllianceOrganisation,
        on_delete=models.PROTECT,
        related_name="inspections",
        verbose_name=_("alliance organisation"),
    )
    staff_on_duty = models.PositiveIntegerField(_("staff on duty"))
    staff_rostered = models.PositiveIntegerField(_("staff rostered"))
    grid_cooperation = models.PositiveSmallIntegerField(_("grid cooperation (0–100)"))
    major_matter_cooperation = models.PositiveSmallIntegerField(
        _("major-matter cooperation (0–100)")
    )
    note = models.TextField(_("note"), max_length=1000, blank=True)
    created_at = models.DateTimeField(_("recorded at"), default=timezone.now)

    class Meta:
        verbose_name = _("inspection")
        verbose_name_plural = _("inspections")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(staff_rostered__gte=1), name="inspection_staff_rostered_positive"
            ),
            models.CheckConstraint(
                condition=Q(staff_on_duty__gte=0) & Q(staff_on_duty__lte=F("staff_rostered")),
                name="inspection_on_duty_within_roster",
            ),
            models.CheckConstraint(
                condition=Q(grid_cooperation__gte=0) & Q(grid_cooperation__lte=100),
                name="inspection_grid_cooperation_0_100",
            ),
            models.CheckConstraint(
                condition=Q(major_matter_cooperation__gte=0) & Q(major_matter_cooperation__lte=100),
                name="inspection_major_matter_cooperation_0_100",
            ),
        ]
        indexes = [models.Index(fields=["community", "period"], name="inspection_community_month")]

    def __str__(self) -> str:
        return f"{self.community} {self.period} #{self.pk}"

    @property
    def attendance_rate(self) -> Decimal:
        return Decimal(self.staff_on_duty) / Decimal(self.staff_rostered)


class Component(models.TextChoices):
    """The five figures a scorecard combines into its score."""

    ATTENDANCE = "attendance_rate", _("staff attendance rate")
    HANDLING = "handling_rate", _("incident handling rate")
    GRID = "grid_cooperation", _("grid cooperation")
    MAJOR_MATTER = "major_matter_cooperation", _("major-matter cooperation")
    SATISFACTION = "resident_satisfaction", _("resident satisfaction")


COMPONENTS = tuple(Component.values)

# The default weights (migration 0002 writes them; admin changes them). Residents' own verdict
# is the largest single part, the two measured rates (两率) come next, and the two cooperation
# degrees (两度) that the alliance judges count a little less. They sum to 1.
DEFAULT_WEIGHTS = {
    Component.ATTENDANCE: Decimal("0.2000"),
    Component.HANDLING: Decimal("0.2000"),
    Component.GRID: Decimal("0.1500"),
    Component.MAJOR_MATTER: Decimal("0.1500"),
    Component.SATISFACTION: Decimal("0.3000"),
}


class ScoreWeight(models.Model):
    """How much one component counts in the score. Weights need not sum to 1: the score divides by
    the sum of the weights of the components that have data that month."""

    component = models.CharField(
        _("component"), max_length=32, choices=Component.choices, unique=True
    )
    weight = models.DecimalField(
        _("weight"),
        **RATE,
        help_text=_("0–1. The score is the weighted mean of the components that have data."),
    )

    class Meta:
        verbose_name = _("scorecard weight")
        verbose_name_plural = _("scorecard weights")
        ordering = ["component"]
        constraints = [
            models.CheckConstraint(
                condition=Q(weight__gte=0) & Q(weight__lte=1), name="score_weight_0_1"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_component_display()}: {self.weight}"


class Scorecard(models.Model):
    """One revision of a community's scorecard for one month (see the module docstring)."""

    community = models.ForeignKey(
        Community, on_delete=models.PROTECT, related_name="scorecards", verbose_name=_("community")
    )
    period = models.CharField(_("period"), max_length=7, help_text=_("YYYY-MM"))
    revision = models.PositiveSmallIntegerField(_("revision"), default=1)
    is_current = models.BooleanField(_("current"), default=True)
    # The five components, 0–1 with 4 decimals; NULL when the month has no data for it.
    attendance_rate = models.DecimalField(_("staff attendance rate"), null=True, **RATE)
    handling_rate = models.DecimalField(_("incident handling rate"), null=True, **RATE)
    grid_cooperation = models.DecimalField(_("grid cooperation"), null=True, **RATE)
    major_matter_cooperation = models.DecimalField(_("major-matter cooperation"), null=True, **RATE)
    resident_satisfaction = models.DecimalField(_("resident satisfaction"), null=True, **RATE)
    # NULL only when no component has data (such a month cannot be finalized).
    score = models.DecimalField(_("score"), null=True, **RATE)
    weights = models.JSONField(_("weights used"), default=dict)
    # What the figures were computed from.
    rating_count = models.PositiveIntegerField(_("ratings"), default=0)
    average_stars = models.DecimalField(
        _("average stars"), max_digits=3, decimal_places=2, null=True
    )
    inspection_count = models.PositiveIntegerField(_("inspections"), default=0)
    ticket_count = models.PositiveIntegerField(_("tickets"), default=0)
    tickets_within_sla = models.PositiveIntegerField(_("handled within deadline"), default=0)
    computed_at = models.DateTimeField(_("computed at"), default=timezone.now)
    finalized_at = models.DateTimeField(_("finalized at"), null=True, blank=True)
    finalized_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("finalized by"),
        help_text=_("Empty when the monthly job finalized it."),
    )
    reason = models.TextField(
        _("reason for the revision"), max_length=1000, blank=True, help_text=_("Revisions only.")
    )
    # The hold-back release made when revision 1 was finalized (billing moves it once a month).
    holdback_release = models.ForeignKey(
        "billing.Payout",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("hold-back release"),
    )
    released_to_company = models.DecimalField(
        _("released to the company"), max_digits=14, decimal_places=2, null=True, blank=True
    )
    forfeited_to_fund = models.DecimalField(
        _("forfeited to the public fund"), max_digits=14, decimal_places=2, null=True, blank=True
    )

    class Meta:
        verbose_name = _("scorecard")
        verbose_name_plural = _("scorecards")
        ordering = ["-period", "community", "-revision"]
        constraints = [
            models.UniqueConstraint(
                fields=["community", "period", "revision"], name="scorecard_revision_once"
            ),
            models.UniqueConstraint(
                fields=["community", "period"],
                condition=Q(is_current=True),
                name="scorecard_one_current",
            ),
            # A draft is always the current revision, and only revision 1 is ever a draft.
            models.CheckConstraint(
                condition=Q(finalized_at__isnull=False) | (Q(is_current=True) & Q(revision=1)),
                name="scorecard_draft_is_current_first",
            ),
            # A correction says why.
            models.CheckConstraint(
                condition=Q(revision=1) | ~Q(reason=""), name="scorecard_revision_has_reason"
            ),
            models.CheckConstraint(
                condition=Q(finalized_at__isnull=True) | Q(score__isnull=False),
                name="scorecard_final_has_score",
            ),
            *[
                models.CheckConstraint(
                    condition=Q(**{f"{field}__isnull": True})
                    | (Q(**{f"{field}__gte": 0}) & Q(**{f"{field}__lte": 1})),
                    name=f"scorecard_{field}_0_1",
                )
                for field in (*COMPONENTS, "score")
            ],
        ]
        indexes = [
            models.Index(
                fields=["period", "community"],
                condition=Q(is_current=True),
                name="scorecard_current_by_month",
            ),
        ]

    def __str__(self) -> str:
        suffix = f" r{self.revision}" if self.revision > 1 else ""
        return f"{self.community} {self.period}{suffix}"

    @property
    def finalized(self) -> bool:
        return self.finalized_at is not None

    def figures(self) -> dict[str, Decimal | None]:
        return {component: getattr(self, component) for component in COMPONENTS}


class ScorecardAppeal(models.Model):
    """The property company's appeal (申诉) against a finalized scorecard, decided by a mediator
    of the centre's alliance (an inspector of an organisation of kind "mediator"). One open appeal
    per scorecard at a time. Upheld, it may make a revision of the scorecard (recomputed from the
    data as corrected, with the appeal as its reason); revisions move no money. The grounds, the
    decision and any revision are public with the scorecard."""

    class Status(models.TextChoices):
        FILED = "filed", _("filed")
        UPHELD = "upheld", _("upheld")
        REJECTED = "rejected", _("rejected")

    scorecard = models.ForeignKey(
        Scorecard, on_delete=models.PROTECT, related_name="appeals", verbose_name=_("scorecard")
    )
    filed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("filed by"),
    )
    grounds = models.TextField(_("grounds"), max_length=2000)
    filed_at = models.DateTimeField(_("filed at"), default=timezone.now)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.FILED
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("decided by"),
    )
    # The mediator organisation the decision was made for (published; the person is not).
    organisation = models.ForeignKey(
        AllianceOrganisation,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("mediator"),
    )
    decision = models.TextField(_("decision"), max_length=1000, blank=True)
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    revision = models.ForeignKey(
        Scorecard,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("revision made"),
    )

    class Meta:
        verbose_name = _("scorecard appeal")
        verbose_name_plural = _("scorecard appeals")
        ordering = ["-filed_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["scorecard"],
                condition=Q(status="filed"),
                name="scorecard_appeal_one_open",
            ),
            models.CheckConstraint(
                condition=(
                    Q(status="filed", decided_at__isnull=True, decided_by__isnull=True)
                    | (
                        Q(status__in=["upheld", "rejected"])
                        & Q(decided_at__isnull=False)
                        & Q(decided_by__isnull=False)
                        & ~Q(decision="")
                    )
                ),
                name="scorecard_appeal_decided_consistently",
            ),
            models.CheckConstraint(
                condition=Q(revision__isnull=True) | Q(status="upheld"),
                name="scorecard_appeal_revision_when_upheld",
            ),
            models.CheckConstraint(condition=~Q(grounds=""), name="scorecard_appeal_has_grounds"),
        ]

    def __str__(self) -> str:
        return f"{self.scorecard} #{self.pk}"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.FILED
