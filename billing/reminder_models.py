"""The bill reminder schedule, held as data (billing/reminders.py sends by it).

Each step fires `offset_days` after the bill's due date (negative: before it), and again every
`repeat_every_days` up to `max_repeats` more times while the bill stays unpaid. The centre edits
the steps in the admin; the data migration seeds three: three days before, on the day, weekly
after (twelve weeks).
"""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class ReminderStep(models.Model):
    name = models.CharField(_("name"), max_length=60)
    offset_days = models.SmallIntegerField(
        _("days after the due date"),
        help_text=_("Negative for before the due date: -3 is three days before."),
    )
    repeat_every_days = models.PositiveSmallIntegerField(
        _("repeat every (days)"),
        null=True,
        blank=True,
        help_text=_("Empty: once. 7: weekly, while the bill stays unpaid."),
    )
    max_repeats = models.PositiveSmallIntegerField(
        _("repeats at most"), default=0, help_text=_("How many times after the first.")
    )
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("bill reminder step")
        verbose_name_plural = _("bill reminder steps")
        ordering = ["offset_days", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(offset_days__gte=-60) & Q(offset_days__lte=365),
                name="reminder_step_offset_in_range",
            ),
            models.CheckConstraint(
                condition=Q(repeat_every_days__isnull=True) | Q(repeat_every_days__gte=1),
                name="reminder_step_repeat_positive",
            ),
            # Repeats need an interval; an interval without repeats would never repeat.
            models.CheckConstraint(
                condition=Q(max_repeats=0) | Q(repeat_every_days__isnull=False),
                name="reminder_step_repeats_need_interval",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def occurrence_on(self, *, due_date, day) -> int | None:
        """Which firing of this step (0 = the first) falls on `day` for a bill due on
        `due_date`, or None if none does."""
        since_first = (day - due_date).days - self.offset_days
        if since_first < 0:
            return None
        if not self.repeat_every_days:
            return 0 if since_first == 0 else None
        n, rest = divmod(since_first, self.repeat_every_days)
        return n if rest == 0 and n <= self.max_repeats else None

    def due_dates_firing_on(self, day) -> list:
        """The due dates of bills for which this step fires on `day` (one per repeat)."""
        from datetime import timedelta

        first = day - timedelta(days=self.offset_days)
        if not self.repeat_every_days:
            return [first]
        return [
            first - timedelta(days=n * self.repeat_every_days) for n in range(self.max_repeats + 1)
        ]
