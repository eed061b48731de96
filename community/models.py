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

import secrets
from datetime import date
from decimal import Decimal
from fractions import Fraction

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext, pgettext_lazy

from community import tally


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


def new_public_token() -> str:
    """An unguessable, URL-safe name for an estate's public page (16 characters, 96 bits): the
    page is reachable without signing in, so its address must not be a sequential id that
    invites walking through every estate."""
    return secrets.token_urlsafe(12)


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
    # The estate's public transparency page is /estates/<public_token>/ (alliance/public.py).
    public_token = models.CharField(
        _("public page token"),
        max_length=32,
        unique=True,
        default=new_public_token,
        editable=False,
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
    start_date = models.DateField(pgettext_lazy("start date", "from"), default=timezone.localdate)
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


# ==============================================================================================
# Community life (issue 7): announcements, activities and volunteering, consultations.
# Who may post, organise, sign up and vote is decided in community.services; what each person
# sees comes from community.selectors, like everything else in this app.
# ==============================================================================================

# --- Announcements (公告) ------------------------------------------------------------------------


class Announcement(models.Model):
    """A notice on the residents' board: from the centre, the company or the committee, to one
    community or to every community of a centre. Pinned ones come first, then the newest; one
    past its expiry leaves the board (admin keeps it). `centre` is always set (for a single
    community it is that community's centre), so "which announcements may I see" is one query."""

    class Source(models.TextChoices):
        CENTRE = "centre", _("Linli centre")
        COMPANY = "company", _("property company")
        COMMITTEE = "committee", _("owners' committee")

    centre = models.ForeignKey(
        Centre, on_delete=models.PROTECT, related_name="announcements", verbose_name=_("centre")
    )
    community = models.ForeignKey(
        Community,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="announcements",
        verbose_name=_("community"),
        help_text=_("Empty: every community of the centre."),
    )
    source = models.CharField(
        pgettext_lazy("announcement source", "from"), max_length=10, choices=Source.choices
    )
    author = models.ForeignKey(
        User,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="announcements_posted",
        verbose_name=_("posted by"),
    )
    title = models.CharField(_("title"), max_length=120)
    body = models.TextField(_("text"), max_length=5000)
    pinned = models.BooleanField(_("pinned"), default=False)
    published_at = models.DateTimeField(_("published at"), default=timezone.now)
    expires_at = models.DateTimeField(
        _("expires at"), null=True, blank=True, help_text=_("Empty: stays until removed.")
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("announcement")
        verbose_name_plural = _("announcements")
        ordering = ["-pinned", "-published_at", "-pk"]
        constraints = [
            # Only the centre speaks to all of its communities at once.
            models.CheckConstraint(
                condition=Q(community__isnull=False) | Q(source="centre"),
                name="announcement_centre_wide_only_from_centre",
            ),
            models.CheckConstraint(
                condition=Q(expires_at__isnull=True) | Q(expires_at__gt=models.F("published_at")),
                name="announcement_expires_after_publishing",
            ),
        ]
        indexes = [
            models.Index(fields=["community", "published_at"], name="announcement_community"),
            models.Index(fields=["centre", "published_at"], name="announcement_centre"),
        ]

    def __str__(self) -> str:
        return self.title

    def clean(self) -> None:
        if self.community_id and self.centre_id and self.community.centre_id != self.centre_id:
            raise ValidationError({"community": _("This community belongs to another centre.")})
        if self.community_id is None and self.source and self.source != self.Source.CENTRE:
            raise ValidationError(
                {"community": _("Only the centre posts to all of its communities.")}
            )
        if self.expires_at and self.published_at and self.expires_at <= self.published_at:
            raise ValidationError({"expires_at": _("It must expire after it is published.")})

    @property
    def publisher_name(self) -> str:
        """Who speaks: the centre's, the company's or the committee's name."""
        if self.source == self.Source.COMPANY and self.community_id:
            return self.community.company.name
        if self.source == self.Source.COMMITTEE and self.community_id:
            committee = self.community.committee
            return committee.name if committee else self.get_source_display()
        return self.centre.name


class AnnouncementRead(models.Model):
    """That one person has read one announcement: the board marks the others as new."""

    announcement = models.ForeignKey(
        Announcement, on_delete=models.CASCADE, related_name="reads", verbose_name=_("announcement")
    )
    user = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="announcement_reads", verbose_name=_("user")
    )
    read_at = models.DateTimeField(_("read at"), default=timezone.now)

    class Meta:
        verbose_name = _("announcement read")
        verbose_name_plural = _("announcements read")
        constraints = [
            models.UniqueConstraint(fields=["user", "announcement"], name="announcement_read_once"),
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.announcement}"


# --- Activities and volunteering (社区活动, 公益活动) -------------------------------------------

CHECKIN_CODE_DIGITS = 6


def new_checkin_code() -> str:
    """A random 6-digit code shown at the door (and in the organiser's QR code)."""
    return f"{secrets.randbelow(10**CHECKIN_CODE_DIGITS):0{CHECKIN_CODE_DIGITS}d}"


class Activity(models.Model):
    """An event or a volunteering session in one community, organised by the centre or the
    company. `signed_up` counts the places taken: only the sign-up services change it, under the
    activity's row lock, and a check constraint keeps it within `capacity` whatever happens."""

    class Kind(models.TextChoices):
        EVENT = "event", _("community event")
        VOLUNTEERING = "volunteering", _("volunteering")

    community = models.ForeignKey(
        Community, on_delete=models.PROTECT, related_name="activities", verbose_name=_("community")
    )
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    title = models.CharField(_("title"), max_length=120)
    description = models.TextField(_("description"), max_length=5000, blank=True)
    place = models.CharField(_("place"), max_length=120)
    starts_at = models.DateTimeField(_("starts at"))
    ends_at = models.DateTimeField(_("ends at"))
    capacity = models.PositiveIntegerField(
        _("places"), validators=[MinValueValidator(1), MaxValueValidator(10000)]
    )
    signed_up = models.PositiveIntegerField(_("signed up"), default=0, editable=False)
    hours = models.DecimalField(
        _("hours per volunteer"),
        max_digits=3,
        decimal_places=1,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("24"))],
        help_text=_(
            "Volunteering: the hours credited to each volunteer who checks in with the code "
            "(the organiser may record other hours). Events: 0."
        ),
    )
    organiser = models.ForeignKey(
        User,
        on_delete=models.PROTECT,
        related_name="activities_organised",
        verbose_name=_("organiser"),
    )
    checkin_code = models.CharField(
        _("check-in code"), max_length=CHECKIN_CODE_DIGITS, default=new_checkin_code
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("activity")
        verbose_name_plural = _("activities")
        ordering = ["-starts_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=models.F("starts_at")), name="activity_ends_after_start"
            ),
            models.CheckConstraint(
                condition=Q(capacity__gte=1) & Q(capacity__lte=10000),
                name="activity_capacity_1_10000",
            ),
            # The backstop against overbooking, whatever a service or an admin does.
            models.CheckConstraint(
                condition=Q(signed_up__gte=0) & Q(signed_up__lte=models.F("capacity")),
                name="activity_signed_up_within_capacity",
            ),
            models.CheckConstraint(
                condition=(Q(hours__gte=0) & Q(hours__lte=24))
                & (Q(kind="volunteering") | Q(hours=0)),
                name="activity_hours_0_24_volunteering_only",
            ),
        ]
        indexes = [models.Index(fields=["community", "starts_at"], name="activity_community")]

    def __str__(self) -> str:
        return self.title

    def clean(self) -> None:
        errors = {}
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            errors["ends_at"] = _("It must end after it starts.")
        if self.capacity is not None and self.capacity < self.signed_up:
            errors["capacity"] = ngettext(
                "%(count)d person has signed up already.",
                "%(count)d people have signed up already.",
                self.signed_up,
            ) % {"count": self.signed_up}
        if self.kind == self.Kind.EVENT and self.hours:
            errors["hours"] = _("Events record attendance, not hours.")
        if errors:
            raise ValidationError(errors)

    @property
    def places_left(self) -> int:
        return max(self.capacity - self.signed_up, 0)


class ActivitySignup(models.Model):
    """A resident holds a place at an activity. Cancelling deletes the row (and frees the place)."""

    activity = models.ForeignKey(
        Activity, on_delete=models.CASCADE, related_name="signups", verbose_name=_("activity")
    )
    user = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="activity_signups", verbose_name=_("user")
    )
    created_at = models.DateTimeField(_("signed up at"), default=timezone.now)

    class Meta:
        verbose_name = _("sign-up")
        verbose_name_plural = _("sign-ups")
        ordering = ["activity", "created_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["activity", "user"], name="activity_signup_once"),
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.activity}"


class ActivityCheckin(models.Model):
    """A person was there: checked in once per activity, by the door code or by the organiser,
    with the hours volunteered (0 for an event). Announced as `activity_checked_in`
    (community/events.py); its id is the reference points/ awards against."""

    class Method(models.TextChoices):
        CODE = "code", _("check-in code")
        ORGANISER = "organiser", _("by the organiser")

    activity = models.ForeignKey(
        Activity, on_delete=models.PROTECT, related_name="checkins", verbose_name=_("activity")
    )
    user = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="activity_checkins", verbose_name=_("user")
    )
    method = models.CharField(_("how"), max_length=10, choices=Method.choices)
    hours = models.DecimalField(_("hours"), max_digits=3, decimal_places=1, default=Decimal("0"))
    checked_in_at = models.DateTimeField(_("checked in at"), default=timezone.now)
    recorded_by = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", verbose_name=_("recorded by")
    )

    class Meta:
        verbose_name = _("check-in")
        verbose_name_plural = _("check-ins")
        ordering = ["activity", "checked_in_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["activity", "user"], name="activity_checkin_once"),
            models.CheckConstraint(
                condition=Q(hours__gte=0) & Q(hours__lte=24), name="activity_checkin_hours_0_24"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.activity}"


# --- Consultations (协商共建) --------------------------------------------------------------------


class Consultation(models.Model):
    """A question put to one community's owners: a proposal with options, open between two times,
    decided by a rule held on the row (shares as exact fractions; see community/tally.py).

    The rule's defaults are the ordinary matters of 民法典 第278条: at least two thirds of the
    owners by head and by floor area take part, and more than half of those taking part agree,
    by head and by area. Each household is one head (one 专有部分) and votes once.

    The result is frozen the first time it is read after closing (`tallied_at`): the option
    counts and the electorate (every household of the community and their area) are stored, so a
    later change to the register does not move a published result.
    """

    class Status(models.TextChoices):
        DRAFT = "draft", _("not open yet")
        OPEN = "open", _("open")
        CLOSED = "closed", _("closed")

    community = models.ForeignKey(
        Community,
        on_delete=models.PROTECT,
        related_name="consultations",
        verbose_name=_("community"),
    )
    title = models.CharField(_("title"), max_length=200)
    description = models.TextField(_("proposal"), max_length=10000)
    opens_at = models.DateTimeField(_("opens at"))
    closes_at = models.DateTimeField(_("closes at"))
    created_by = models.ForeignKey(
        User,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="consultations_created",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    # The rule. Approval is counted over the owners who took part; participation over all.
    approval_numerator = models.PositiveSmallIntegerField(_("approval share: numerator"), default=1)
    approval_denominator = models.PositiveSmallIntegerField(
        _("approval share: denominator"),
        default=2,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
    )
    approval_inclusive = models.BooleanField(
        _("approval: the share itself is enough"),
        default=False,
        help_text=_("Ticked: “at least” (以上); unticked: “more than” (过半数)."),
    )
    participation_numerator = models.PositiveSmallIntegerField(
        _("participation share: numerator"), default=2
    )
    participation_denominator = models.PositiveSmallIntegerField(
        _("participation share: denominator"),
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
    )
    participation_inclusive = models.BooleanField(
        _("participation: the share itself is enough"), default=True
    )
    secret_ballot = models.BooleanField(
        _("secret ballot"),
        default=True,
        help_text=_("Unticked: the committee may see how each household voted, after closing."),
    )
    # Frozen result (see above).
    tallied_at = models.DateTimeField(_("tallied at"), null=True, blank=True, editable=False)
    electorate_households = models.PositiveIntegerField(
        _("households in the community"), null=True, blank=True, editable=False
    )
    electorate_area = models.DecimalField(
        _("floor area of the community (m²)"),
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        editable=False,
    )

    class Meta:
        verbose_name = _("consultation")
        verbose_name_plural = _("consultations")
        ordering = ["-opens_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(closes_at__gt=models.F("opens_at")),
                name="consultation_closes_after_opening",
            ),
            # Approval: a share of at least one half, and exactly one half only as "more than",
            # so that at most one option can ever reach it.
            models.CheckConstraint(
                condition=Q(approval_numerator__lte=models.F("approval_denominator"))
                & (
                    Q(approval_denominator__lt=models.F("approval_numerator") * 2)
                    | Q(
                        approval_denominator=models.F("approval_numerator") * 2,
                        approval_inclusive=False,
                    )
                ),
                name="consultation_approval_share_half_to_one",
            ),
            models.CheckConstraint(
                condition=Q(participation_numerator__lte=models.F("participation_denominator"))
                & Q(participation_denominator__gte=1),
                name="consultation_participation_share_0_1",
            ),
        ]
        indexes = [models.Index(fields=["community", "opens_at"], name="consultation_community")]

    def __str__(self) -> str:
        return self.title

    def status_at(self, now=None) -> "Consultation.Status":
        now = now or timezone.now()
        if now < self.opens_at:
            return self.Status.DRAFT
        if now < self.closes_at:
            return self.Status.OPEN
        return self.Status.CLOSED

    @property
    def status(self) -> "Consultation.Status":
        return self.status_at()

    def get_status_label(self, now=None) -> str:
        return self.Status(self.status_at(now)).label

    @property
    def rule(self) -> tally.Rule:
        return tally.Rule(
            approval=tally.Threshold(
                Fraction(self.approval_numerator, self.approval_denominator),
                inclusive=self.approval_inclusive,
            ),
            participation=tally.Threshold(
                Fraction(self.participation_numerator, self.participation_denominator),
                inclusive=self.participation_inclusive,
            ),
        )

    def clean(self) -> None:
        errors = {}
        if self.opens_at and self.closes_at and self.closes_at <= self.opens_at:
            errors["closes_at"] = _("It must close after it opens.")
        num, den = self.approval_numerator, self.approval_denominator
        if (
            num is not None
            and den
            and not (
                num <= den and (2 * num > den or (2 * num == den and not self.approval_inclusive))
            )
        ):
            errors["approval_numerator"] = _(
                "Approval needs more than half, or a larger share, of those who took part."
            )
        num, den = self.participation_numerator, self.participation_denominator
        if num is not None and den and num > den:
            errors["participation_numerator"] = _("A share cannot be more than the whole.")
        if errors:
            raise ValidationError(errors)


class ConsultationOption(models.Model):
    """One answer on the ballot. At most one option `approves` the proposal (e.g. 同意): with one,
    the proposal passes when that option reaches the rule; without (a choice between
    alternatives), the option that reaches it is adopted. Counts are filled in at the tally."""

    consultation = models.ForeignKey(
        Consultation,
        on_delete=models.CASCADE,
        related_name="options",
        verbose_name=_("consultation"),
    )
    label = models.CharField(_("option"), max_length=100)
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    approves = models.BooleanField(
        _("approves the proposal"),
        default=False,
        help_text=_("Tick the option that means “agree” (同意), if there is one."),
    )
    head_votes = models.PositiveIntegerField(_("households"), null=True, blank=True, editable=False)
    area_votes = models.DecimalField(
        _("floor area (m²)"),
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        editable=False,
    )

    class Meta:
        verbose_name = _("option")
        verbose_name_plural = _("options")
        ordering = ["consultation", "position", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["consultation", "label"], name="consultation_option_label_unique"
            ),
            models.UniqueConstraint(
                fields=["consultation"],
                condition=Q(approves=True),
                name="consultation_one_approving_option",
            ),
        ]

    def __str__(self) -> str:
        return self.label


class Ballot(models.Model):
    """A household's vote: one per household and consultation, cast by one of its owners of
    record and changeable by any of them until closing (the change replaces the choice)."""

    consultation = models.ForeignKey(
        Consultation,
        on_delete=models.PROTECT,
        related_name="ballots",
        verbose_name=_("consultation"),
    )
    household = models.ForeignKey(
        Household, on_delete=models.PROTECT, related_name="ballots", verbose_name=_("household")
    )
    option = models.ForeignKey(
        ConsultationOption,
        on_delete=models.PROTECT,
        related_name="ballots",
        verbose_name=_("option"),
    )
    cast_by = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="ballots_cast", verbose_name=_("cast by")
    )
    cast_at = models.DateTimeField(_("cast at"), default=timezone.now)
    changed_at = models.DateTimeField(_("changed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("ballot")
        verbose_name_plural = _("ballots")
        ordering = ["consultation", "household"]
        constraints = [
            models.UniqueConstraint(
                fields=["consultation", "household"], name="ballot_one_per_household"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.household} · {self.option}"


class AuditEntryQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise ValidationError(_("Audit entries are append-only."))

    def delete(self):
        raise ValidationError(_("Audit entries are append-only."))


class AuditEntry(models.Model):
    """One line of the append-only audit log (community.audit writes it): money actions, role
    changes and admin edits, with who, what, when and from where.

    Never updated or deleted: the model refuses save-after-create and delete, and on PostgreSQL a
    trigger (migration 0006) refuses UPDATE and DELETE. Nothing in it depends on other rows
    staying put: the actor's name, the target's label and the details are copied in, and the
    actor's and the centre's ids are kept without a foreign-key constraint, so deleting an
    account (or a centre) keeps its history.
    """

    class Action(models.TextChoices):
        PAYOUT = "payout", _("payout to the company")
        HOLDBACK_RELEASE = "holdback_release", _("hold-back released")
        REFUND = "refund", _("refund")
        BILL_WAIVED = "bill_waived", _("bill waived")
        LATE_FEE_WAIVED = "late_fee_waived", _("late fee waived")
        SETTLEMENT_DIFFERENCE = "settlement_difference", _("settlement differences")
        CAPTURE_UNBOOKED = "capture_unbooked", _("money captured but not booked to bills")
        PUBLIC_FUND_SPEND = "public_fund_spend", _("public fund spent")
        DESK_PAYMENT = "desk_payment", _("payment at the centre's desk")
        DESK_DAY_CLOSED = "desk_day_closed", _("cashier's day closed")
        ROLE_GRANTED = "role_granted", _("role granted")
        ROLE_CHANGED = "role_changed", _("role changed")
        ROLE_REVOKED = "role_revoked", _("role revoked")
        ADMIN_ADDED = "admin_added", _("added in the admin")
        ADMIN_CHANGED = "admin_changed", _("changed in the admin")
        ADMIN_DELETED = "admin_deleted", _("deleted in the admin")

    created_at = models.DateTimeField(_("when"), default=timezone.now, editable=False)
    action = models.CharField(_("action"), max_length=24, choices=Action.choices)
    actor = models.ForeignKey(
        User,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("who"),
        help_text=_("Empty for the system (a scheduled job)."),
    )
    actor_name = models.CharField(_("who (name)"), max_length=150, blank=True)
    ip_address = models.GenericIPAddressField(_("from address"), null=True, blank=True)
    centre = models.ForeignKey(
        Centre,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("centre"),
        help_text=_("The centre the action concerns; empty when it concerns the whole site."),
    )
    target_type = models.CharField(_("what (kind)"), max_length=100, blank=True)
    target_id = models.CharField(_("what (id)"), max_length=64, blank=True)
    target_repr = models.CharField(_("what"), max_length=200, blank=True)
    details = models.JSONField(_("details"), default=dict, blank=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit log")
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["centre", "-created_at"], name="auditentry_centre_time"),
            models.Index(fields=["action", "-created_at"], name="auditentry_action_time"),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} · {self.target_repr}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValidationError(_("Audit entries are append-only."))
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValidationError(_("Audit entries are append-only."))


# The notifications layer's models live in their own module (community/notification_models.py).
from community.notification_models import Delivery, NotificationPreference  # noqa: E402,F401

# The dashboards' per-estate, per-month summary (community/summary_models.py).
from community.summary_models import EstateMonth  # noqa: E402,F401
