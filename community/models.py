"""Who is who in an estate, and who answers for what.

The organisations: a Linli centre (邻礼中心) holds residents' fees in escrow for the communities it
serves; a property company (物业公司) manages them; each community may have an owners' committee
(业委会); alliance member organisations (联盟成员单位) belong to a centre and inspect the company.

The places: community (小区) -> building -> household (户), each household with an exact floor area.

The people: a user lives in a household through a residency (owner / tenant / family, dated), and
holds staff roles through role memberships, each scoped to exactly one organisation or community.
What a user may see follows from these two tables alone: see community/selectors.py.

The money arrangement: a tri-party agreement (centre + committee + company) per community fixes the
fee rate, the performance hold-back and the payout day. At most one is in force on any date.
"""

from datetime import date
from decimal import Decimal

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class User(AbstractUser):
    """A person who signs in: resident, staff member, inspector or committee member (or several)."""

    display_name = models.CharField(_("display name"), max_length=64, blank=True)
    phone = models.CharField(_("mobile phone"), max_length=20, blank=True)

    class Meta(AbstractUser.Meta):
        verbose_name = _("user")
        verbose_name_plural = _("users")

    def get_display_name(self) -> str:
        return self.display_name or self.get_full_name() or self.username


class Centre(models.Model):
    """A neighbourhood service centre (邻礼中心): holds fees in escrow, pays the company."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    address = models.CharField(_("address"), max_length=200, blank=True)
    phone = models.CharField(_("phone"), max_length=30, blank=True)

    class Meta:
        verbose_name = _("centre")
        verbose_name_plural = _("centres")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class PropertyCompany(models.Model):
    """A property-management company (物业公司) that serves one or more communities."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    credit_code = models.CharField(
        _("unified social credit code"),
        max_length=18,
        blank=True,
        help_text=_("The 18-character 统一社会信用代码, for invoices and payouts."),
    )
    phone = models.CharField(_("phone"), max_length=30, blank=True)

    class Meta:
        verbose_name = _("property company")
        verbose_name_plural = _("property companies")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class OwnersCommittee(models.Model):
    """An owners' committee (业委会), elected by one community's owners."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    elected_on = models.DateField(_("elected on"), null=True, blank=True)

    class Meta:
        verbose_name = _("owners' committee")
        verbose_name_plural = _("owners' committees")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AllianceOrganisation(models.Model):
    """A member organisation of a centre's alliance (联盟成员单位): it inspects the company."""

    class Kind(models.TextChoices):
        HOTLINE = "hotline", _("public-service hotline")
        BANK = "bank", _("bank")
        MEDIATOR = "mediator", _("mediator")
        LAW_FIRM = "law_firm", _("law firm")
        OTHER = "other", _("other")

    centre = models.ForeignKey(
        Centre, on_delete=models.PROTECT, related_name="organisations", verbose_name=_("centre")
    )
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)

    class Meta:
        verbose_name = _("alliance organisation")
        verbose_name_plural = _("alliance organisations")
        ordering = ["centre", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["centre", "name"], name="organisation_unique_per_centre"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Community(models.Model):
    """A residential estate (小区), served by one centre and one company."""

    name = models.CharField(_("name"), max_length=100)
    address = models.CharField(_("address"), max_length=200, blank=True)
    centre = models.ForeignKey(
        Centre, on_delete=models.PROTECT, related_name="communities", verbose_name=_("centre")
    )
    company = models.ForeignKey(
        PropertyCompany,
        on_delete=models.PROTECT,
        related_name="communities",
        verbose_name=_("property company"),
    )
    committee = models.OneToOneField(
        OwnersCommittee,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="community",
        verbose_name=_("owners' committee"),
    )

    class Meta:
        verbose_name = _("community")
        verbose_name_plural = _("communities")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["centre", "name"], name="community_unique_per_centre"),
        ]

    def __str__(self) -> str:
        return self.name


class Building(models.Model):
    community = models.ForeignKey(
        Community, on_delete=models.PROTECT, related_name="buildings", verbose_name=_("community")
    )
    name = models.CharField(_("name"), max_length=50, help_text=_("For example “3幢” or “3”."))

    class Meta:
        verbose_name = _("building")
        verbose_name_plural = _("buildings")
        ordering = ["community", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["community", "name"], name="building_unique_per_community"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.community} {self.name}"


class Household(models.Model):
    """A flat (户). Its floor area is what the property fee is charged on, so it is exact."""

    building = models.ForeignKey(
        Building, on_delete=models.PROTECT, related_name="households", verbose_name=_("building")
    )
    unit = models.CharField(_("unit"), max_length=20, help_text=_("Unit label, e.g. “1-302”."))
    area = models.DecimalField(
        _("floor area (m²)"),
        max_digits=8,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0.01"))],
    )

    class Meta:
        verbose_name = _("household")
        verbose_name_plural = _("households")
        ordering = ["building", "unit"]
        constraints = [
            models.UniqueConstraint(
                fields=["building", "unit"], name="household_unique_unit_per_building"
            ),
            models.CheckConstraint(condition=Q(area__gt=0), name="household_area_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.building} {self.unit}"


class ResidencyQuerySet(models.QuerySet):
    def active(self, on=None):
        """Residencies in force on a date (today in the project's time zone by default)."""
        on = on or timezone.localdate()
        return self.filter(Q(start_date__lte=on) & (Q(end_date__isnull=True) | Q(end_date__gte=on)))


class Residency(models.Model):
    """A user living in (or owning) a household over a period of time."""

    class Relation(models.TextChoices):
        OWNER = "owner", _("owner")
        TENANT = "tenant", _("tenant")
        FAMILY = "family", _("family member")

    user = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="residencies", verbose_name=_("user")
    )
    household = models.ForeignKey(
        Household, on_delete=models.PROTECT, related_name="residencies", verbose_name=_("household")
    )
    relation = models.CharField(_("relation"), max_length=10, choices=Relation.choices)
    start_date = models.DateField(_("from"), default=timezone.localdate)
    end_date = models.DateField(_("until"), null=True, blank=True)

    objects = ResidencyQuerySet.as_manager()

    class Meta:
        verbose_name = _("residency")
        verbose_name_plural = _("residencies")
        ordering = ["household", "user"]
        constraints = [
            models.CheckConstraint(
                condition=Q(end_date__isnull=True) | Q(end_date__gte=models.F("start_date")),
                name="residency_ends_after_start",
            ),
            # One open-ended residency per person and household; past ones stay as history.
            models.UniqueConstraint(
                fields=["user", "household"],
                condition=Q(end_date__isnull=True),
                name="residency_one_open_per_user_household",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.household} ({self.get_relation_display()})"


class Role(models.TextChoices):
    CENTRE_ADMIN = "centre_admin", _("centre admin")
    PROPERTY_STAFF = "property_staff", _("property staff")
    ALLIANCE_INSPECTOR = "alliance_inspector", _("alliance inspector")
    COMMITTEE_MEMBER = "committee_member", _("committee member")


# Each role is scoped to exactly one kind of thing; the check constraint below enforces it.
ROLE_SCOPE_FIELD = {
    Role.CENTRE_ADMIN: "centre",
    Role.PROPERTY_STAFF: "company",
    Role.ALLIANCE_INSPECTOR: "organisation",
    Role.COMMITTEE_MEMBER: "community",
}


def _scope_is(field: str) -> Q:
    others = [f for f in ROLE_SCOPE_FIELD.values() if f != field]
    q = Q(**{f"{field}__isnull": False})
    for other in others:
        q &= Q(**{f"{other}__isnull": True})
    return q


class RoleMembership(models.Model):
    """A staff role a user holds, scoped to a centre, a company, an organisation or a community."""

    user = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("user")
    )
    role = models.CharField(_("role"), max_length=20, choices=Role.choices)
    centre = models.ForeignKey(
        Centre,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="memberships",
        verbose_name=_("centre"),
    )
    company = models.ForeignKey(
        PropertyCompany,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="memberships",
        verbose_name=_("property company"),
    )
    organisation = models.ForeignKey(
        AllianceOrganisation,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="memberships",
        verbose_name=_("alliance organisation"),
    )
    community = models.ForeignKey(
        Community,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="memberships",
        verbose_name=_("community"),
    )
    is_manager = models.BooleanField(
        _("manager"),
        default=False,
        help_text=_(
            "The person in charge for this scope (e.g. the company's manager, 负责人): "
            "escalations go to them."
        ),
    )
    created_at = models.DateTimeField(_("granted at"), auto_now_add=True)

    class Meta:
        verbose_name = _("role membership")
        verbose_name_plural = _("role memberships")
        ordering = ["user", "role"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    (Q(role=Role.CENTRE_ADMIN) & _scope_is("centre"))
                    | (Q(role=Role.PROPERTY_STAFF) & _scope_is("company"))
                    | (Q(role=Role.ALLIANCE_INSPECTOR) & _scope_is("organisation"))
                    | (Q(role=Role.COMMITTEE_MEMBER) & _scope_is("community"))
                ),
                name="membership_scope_matches_role",
            ),
            *[
                models.UniqueConstraint(
                    fields=["user", field],
                    condition=Q(role=role),
                    name=f"membership_unique_{role}",
                )
                for role, field in ROLE_SCOPE_FIELD.items()
            ],
        ]
        indexes = [models.Index(fields=["user", "role"], name="membership_user_role")]

    def __str__(self) -> str:
        return f"{self.user} · {self.get_role_display()} · {self.scope}"

    @property
    def scope_type(self) -> str:
        return ROLE_SCOPE_FIELD[Role(self.role)]

    @property
    def scope_id(self) -> int:
        return getattr(self, f"{self.scope_type}_id")

    @property
    def scope(self):
        return getattr(self, self.scope_type)

    def clean(self) -> None:
        field = ROLE_SCOPE_FIELD.get(self.role)
        if field is None:
            return
        errors = {}
        if getattr(self, f"{field}_id") is None:
            errors[field] = _("This role needs this scope filled in.")
        for other in ROLE_SCOPE_FIELD.values():
            if other != field and getattr(self, f"{other}_id") is not None:
                errors[other] = _("Leave empty for this role.")
        if errors:
            raise ValidationError(errors)


class Agreement(models.Model):
    """The tri-party agreement (三方协议) of a community: centre, committee and company.

    It fixes the property fee (yuan per m² of floor area per month), the share of each month's
    collection held back until the alliance's scorecard is final, and the day of the month the
    centre pays the company. On PostgreSQL an exclusion constraint (migration 0002) keeps two
    agreements of one community from overlapping; services.agreement_create checks the same rule
    under a row lock so SQLite refuses it too.
    """

    community = models.ForeignKey(
        Community, on_delete=models.PROTECT, related_name="agreements", verbose_name=_("community")
    )
    effective_from = models.DateField(_("effective from"))
    effective_to = models.DateField(
        _("effective to"),
        null=True,
        blank=True,
        help_text=_("Last day in force; empty = open-ended."),
    )
    fee_rate = models.DecimalField(
        _("fee rate (yuan/m²/month)"),
        max_digits=8,
        decimal_places=4,
        validators=[MinValueValidator(Decimal("0.0001"))],
    )
    holdback_share = models.DecimalField(
        _("performance hold-back share"),
        max_digits=5,
        decimal_places=4,
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("1"))],
        help_text=_("0–1: the part of each month's collection held until the scorecard is final."),
    )
    payout_day = models.PositiveSmallIntegerField(
        _("payout day"),
        validators=[MinValueValidator(1), MaxValueValidator(28)],
        help_text=_("Day of the month (1–28) the previous month is paid out."),
    )
    bill_due_day = models.PositiveSmallIntegerField(
        _("bill due day"),
        default=15,
        validators=[MinValueValidator(1), MaxValueValidator(28)],
        help_text=_("Day of the service month (1–28) by which its bill is due."),
    )
    signed_on = models.DateField(_("signed on"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("tri-party agreement")
        verbose_name_plural = _("tri-party agreements")
        ordering = ["community", "-effective_from"]
        constraints = [
            models.CheckConstraint(
                condition=Q(effective_to__isnull=True)
                | Q(effective_to__gte=models.F("effective_from")),
                name="agreement_ends_after_start",
            ),
            models.CheckConstraint(condition=Q(fee_rate__gt=0), name="agreement_fee_rate_positive"),
            models.CheckConstraint(
                condition=Q(holdback_share__gte=0) & Q(holdback_share__lte=1),
                name="agreement_holdback_share_0_1",
            ),
            models.CheckConstraint(
                condition=Q(payout_day__gte=1) & Q(payout_day__lte=28),
                name="agreement_payout_day_1_28",
            ),
            models.CheckConstraint(
                condition=Q(bill_due_day__gte=1) & Q(bill_due_day__lte=28),
                name="agreement_bill_due_day_1_28",
            ),
        ]

    def __str__(self) -> str:
        until = self.effective_to or "…"
        return f"{self.community} {self.effective_from}–{until}"

    def clean(self) -> None:
        if self.community_id is None or self.effective_from is None:
            return
        if self.effective_to is not None and self.effective_to < self.effective_from:
            raise ValidationError({"effective_to": _("The agreement cannot end before it starts.")})
        others = Agreement.objects.filter(community_id=self.community_id).exclude(pk=self.pk)
        if any(self.overlaps(other) for other in others):
            raise ValidationError(
                _("Another agreement of this community is in force during these dates.")
            )

    def overlaps(self, other: "Agreement") -> bool:
        far = date.max
        return self.effective_from <= (other.effective_to or far) and other.effective_from <= (
            self.effective_to or far
        )


class Notice(models.Model):
    """An in-app notice to one user: a bill reminder, an escalated ticket, a reply.

    `dedupe_key` makes a notice that must be sent once (one reminder per overdue bill, one
    escalation per ticket deadline) safe to send again: the database refuses the second row.
    """

    user = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="notices", verbose_name=_("user")
    )
    title = models.CharField(_("title"), max_length=200)
    body = models.TextField(_("message"), blank=True)
    link = models.CharField(_("link"), max_length=300, blank=True)
    # NULL (not ""): notices without a key never collide in the unique constraint.
    dedupe_key = models.CharField(max_length=120, null=True, blank=True, editable=False)  # noqa: DJ001
    created_at = models.DateTimeField(_("sent at"), auto_now_add=True, db_index=True)
    read_at = models.DateTimeField(_("read at"), null=True, blank=True)

    class Meta:
        verbose_name = _("notice")
        verbose_name_plural = _("notices")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["user", "dedupe_key"], name="notice_once_per_key"),
        ]
        indexes = [models.Index(fields=["user", "read_at"], name="notice_user_unread")]

    def __str__(self) -> str:
        return self.title
