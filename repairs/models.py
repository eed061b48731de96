"""Work orders: incident reports (报事) and repair requests (报修).

Design overview
- A Ticket is filed by a resident, either for one of their households (a leak in the flat) or for
  a common-area location of their community (a street lamp, the lift). `community` is stored on
  every ticket, so scoping and the staff queue filter one indexed column.
- Its category (admin-editable) fixes the SLA: the response deadline (someone accepts it) and the
  resolution deadline, counted from filing (or from reopening).
- The status moves only through repairs.services.ticket_transition, which follows the one table of
  allowed transitions in repairs/transitions.py; every move writes a TicketEvent (the timeline)
  in the same transaction.
- `next_due` is the deadline the ticket is working against now (the response deadline while
  submitted, the resolution deadline while open, NULL once finished). The queue sorts and filters
  on it through its indexes (see Meta.indexes), so it stays fast whatever the number of finished
  tickets.
- `sla_breached` records that some deadline of this ticket was missed (late accept, late
  resolution, or the escalation job found it overdue); it never goes back to False.
- The escalation job marks `response_escalated_at` / `resolve_escalated_at` so each deadline is
  escalated once; a reopened ticket gets new deadlines and clears both marks.
"""

import uuid
from pathlib import PurePosixPath

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from community.models import Community, Household

MAX_PHOTOS = 6


class Kind(models.TextChoices):
    REPORT = "report", _("incident report")
    REPAIR = "repair", _("repair request")


class Status(models.TextChoices):
    SUBMITTED = "submitted", _("submitted")
    ACCEPTED = "accepted", _("accepted")
    ASSIGNED = "assigned", _("assigned")
    IN_PROGRESS = "in_progress", _("in progress")
    RESOLVED = "resolved", _("resolved")
    CLOSED = "closed", _("closed")
    REJECTED = "rejected", _("rejected")
    CANCELLED = "cancelled", _("cancelled")


# The ticket still needs the property company's work.
OPEN_STATUSES = (Status.SUBMITTED, Status.ACCEPTED, Status.ASSIGNED, Status.IN_PROGRESS)
# Counted as handled in the handling figures.
HANDLED_STATUSES = (Status.RESOLVED, Status.CLOSED)
FINISHED_STATUSES = (Status.RESOLVED, Status.CLOSED, Status.REJECTED, Status.CANCELLED)


class TicketCategory(models.Model):
    """What a ticket is about, and how fast the company must answer and fix it."""

    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    name = models.CharField(_("name"), max_length=60)
    response_hours = models.PositiveIntegerField(
        _("response within (hours)"),
        help_text=_("Hours from filing by which the company must accept the ticket."),
    )
    resolve_hours = models.PositiveIntegerField(
        _("resolve within (hours)"),
        help_text=_("Hours from filing by which the ticket must be resolved."),
    )
    is_active = models.BooleanField(
        _("offered"),
        default=True,
        help_text=_("Untick to stop offering this category; existing tickets keep it."),
    )
    position = models.PositiveSmallIntegerField(_("position"), default=0)

    class Meta:
        verbose_name = _("ticket category")
        verbose_name_plural = _("ticket categories")
        ordering = ["kind", "position", "name"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "name"], name="ticketcategory_unique_name"),
            models.CheckConstraint(
                condition=Q(response_hours__gt=0), name="ticketcategory_response_positive"
            ),
            models.CheckConstraint(
                condition=Q(resolve_hours__gte=models.F("response_hours")),
                name="ticketcategory_resolve_after_response",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} · {self.name}"


class Ticket(models.Model):
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    category = models.ForeignKey(
        TicketCategory,
        on_delete=models.PROTECT,
        related_name="tickets",
        verbose_name=_("category"),
    )
    community = models.ForeignKey(
        Community, on_delete=models.PROTECT, related_name="tickets", verbose_name=_("community")
    )
    household = models.ForeignKey(
        Household,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="tickets",
        verbose_name=_("household"),
        help_text=_("For a repair inside a flat; empty for a common area."),
    )
    location = models.CharField(
        _("location"),
        max_length=120,
        blank=True,
        help_text=_("Where in the estate, for a common area (e.g. “3幢 east entrance”)."),
    )
    title = models.CharField(_("title"), max_length=100)
    description = models.TextField(_("description"), max_length=2000, blank=True)
    filed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="tickets_filed",
        verbose_name=_("filed by"),
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="tickets_assigned",
        verbose_name=_("assignee"),
    )
    status = models.CharField(
        _("status"), max_length=12, choices=Status.choices, default=Status.SUBMITTED
    )
    # Set explicitly by the services (not auto_now): the demo and the SLA need exact times.
    created_at = models.DateTimeField(_("filed at"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated at"), default=timezone.now)
    accepted_at = models.DateTimeField(_("accepted at"), null=True, blank=True)
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    response_due = models.DateTimeField(_("response due"))
    resolve_due = models.DateTimeField(_("resolution due"))
    next_due = models.DateTimeField(_("next deadline"), null=True, blank=True, editable=False)
    sla_breached = models.BooleanField(_("SLA missed"), default=False, editable=False)
    response_escalated_at = models.DateTimeField(null=True, blank=True, editable=False)
    resolve_escalated_at = models.DateTimeField(null=True, blank=True, editable=False)
    resolution_count = models.PositiveSmallIntegerField(default=0, editable=False)

    class Meta:
        verbose_name = _("ticket")
        verbose_name_plural = _("tickets")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=Status.values), name="ticket_status_valid"
            ),
            models.CheckConstraint(condition=Q(kind__in=Kind.values), name="ticket_kind_valid"),
            models.CheckConstraint(
                condition=Q(household__isnull=False) | ~Q(location=""),
                name="ticket_household_or_location",
            ),
            models.CheckConstraint(
                condition=Q(resolve_due__gte=models.F("response_due")),
                name="ticket_resolve_due_after_response_due",
            ),
            models.CheckConstraint(
                condition=Q(next_due__isnull=True, status__in=FINISHED_STATUSES)
                | Q(next_due__isnull=False, status__in=OPEN_STATUSES),
                name="ticket_next_due_iff_open",
            ),
        ]
        indexes = [
            # The staff queue of one estate: its open tickets by deadline.
            models.Index(
                fields=["community", "next_due"],
                condition=Q(next_due__isnull=False),
                name="ticket_queue_by_due",
            ),
            # The queue across communities, in exactly the order of
            # selectors.ticket_order_by_deadline: open ones by deadline ("overdue" is the start
            # of it), then finished ones newest first. (PostgreSQL puts NULLs last in an
            # ascending index, as that ordering asks.)
            models.Index(fields=["next_due", "-created_at", "-id"], name="ticket_by_deadline"),
            # Lists by status, and the handling figures of one community and month.
            models.Index(fields=["community", "status", "created_at"], name="ticket_comm_status"),
            models.Index(fields=["community", "created_at"], name="ticket_comm_created"),
            # Newest first over many communities (a company's or a centre's whole list): walked
            # backwards until a page is full, instead of sorting every visible row.
            models.Index(fields=["created_at", "id"], name="ticket_created"),
            # The escalation job: only tickets that still owe an escalation are in these.
            models.Index(
                fields=["response_due"],
                condition=Q(status=Status.SUBMITTED, response_escalated_at__isnull=True),
                name="ticket_response_escalation",
            ),
            models.Index(
                fields=["resolve_due"],
                condition=Q(status__in=OPEN_STATUSES, resolve_escalated_at__isnull=True),
                name="ticket_resolve_escalation",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def is_overdue(self, now=None) -> bool:
        return self.next_due is not None and self.next_due < (now or timezone.now())

    @property
    def place(self) -> str:
        """Where the problem is, for people: the flat, the common-area location, or both."""
        if self.household_id is None:
            return self.location
        flat = f"{self.household.building.name} {self.household.unit}"
        return f"{flat} · {self.location}" if self.location else flat


class TicketEvent(models.Model):
    """One line of a ticket's timeline: who did what, when, with an optional note."""

    class Kind(models.TextChoices):
        FILED = "filed", _("filed")
        ACCEPTED = "accepted", _("accepted")
        ASSIGNED = "assigned", _("assigned")
        STARTED = "started", _("work started")
        RESOLVED = "resolved", _("resolved")
        CLOSED = "closed", _("confirmed and closed")
        REOPENED = "reopened", _("reopened")
        REJECTED = "rejected", _("rejected")
        CANCELLED = "cancelled", _("cancelled")
        PHOTO_ADDED = "photo_added", _("photo added")
        RATED = "rated", _("rated")
        ESCALATED = "escalated", _("escalated: deadline missed")

    ticket = models.ForeignKey(
        Ticket, on_delete=models.CASCADE, related_name="events", verbose_name=_("ticket")
    )
    kind = models.CharField(_("event"), max_length=12, choices=Kind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("by"),
        help_text=_("Empty for the system (the SLA job)."),
    )
    from_status = models.CharField(
        pgettext_lazy("previous status", "from"), max_length=12, choices=Status.choices, blank=True
    )
    to_status = models.CharField(
        pgettext_lazy("new status", "to"), max_length=12, choices=Status.choices, blank=True
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("assignee"),
    )
    note = models.CharField(_("note"), max_length=500, blank=True)
    created_at = models.DateTimeField(_("at"), default=timezone.now)

    class Meta:
        verbose_name = _("ticket event")
        verbose_name_plural = _("ticket events")
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["ticket", "created_at"], name="ticketevent_timeline")]

    def __str__(self) -> str:
        return f"#{self.ticket_id} {self.get_kind_display()}"


def photo_path(instance: "TicketPhoto", filename: str) -> str:
    # A random name, and no ticket number in the path: nothing of the uploader's file name
    # reaches the storage, and should the media folder ever be served directly, no photo can be
    # found by counting. (Photos are served only through the scoped view.)
    suffix = PurePosixPath(filename).suffix.lower()
    return f"repairs/photos/{uuid.uuid4().hex}{suffix}"


class TicketPhoto(models.Model):
    """A photo of the problem or of the fix. Stored through Django's storage API, re-encoded by
    repairs.photos (so only a real image, without its EXIF location, is kept), and served only
    through a scoped view."""

    ticket = models.ForeignKey(
        Ticket, on_delete=models.CASCADE, related_name="photos", verbose_name=_("ticket")
    )
    image = models.FileField(_("image"), upload_to=photo_path, max_length=200)
    content_type = models.CharField(max_length=30, editable=False)
    width = models.PositiveIntegerField(editable=False)
    height = models.PositiveIntegerField(editable=False)
    size = models.PositiveIntegerField(_("bytes"), editable=False)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("uploaded by"),
    )
    created_at = models.DateTimeField(_("uploaded at"), default=timezone.now)

    class Meta:
        verbose_name = _("ticket photo")
        verbose_name_plural = _("ticket photos")
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"#{self.ticket_id} {self.image.name}"


class TicketRating(models.Model):
    """The filer's verdict on a resolved ticket: 1–5 stars, once."""

    ticket = models.OneToOneField(
        Ticket, on_delete=models.CASCADE, related_name="rating", verbose_name=_("ticket")
    )
    rated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("rated by"),
    )
    stars = models.PositiveSmallIntegerField(_("stars"))
    comment = models.CharField(_("comment"), max_length=500, blank=True)
    created_at = models.DateTimeField(_("rated at"), default=timezone.now)

    class Meta:
        verbose_name = _("ticket rating")
        verbose_name_plural = _("ticket ratings")
        constraints = [
            models.CheckConstraint(
                condition=Q(stars__gte=1) & Q(stars__lte=5), name="ticketrating_stars_1_5"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.ticket_id} {self.star_text}"

    @property
    def star_text(self) -> str:
        return "★" * self.stars
