"""Bill reminders by the schedule held as data (billing.reminder_models.ReminderStep), sent
through the notifications layer (community/notifications.py) to each resident of the household.

Each reminder's key is "bill-reminder:<bill>:<step>:<n>" (n: the step's n-th firing), so a run
repeated on the same day, or two runs at once, send nothing twice: the layer's unique
constraint on (person, channel, key) refuses the second. Opt-out and quiet hours are the layer's.
"""

from datetime import date, datetime

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import formats, timezone, translation
from django.utils.translation import gettext as _

from billing.models import Bill
from billing.money import money_text
from billing.reminder_models import ReminderStep
from community import notifications
from community.models import Residency
from community.notification_models import Kind

OWED = [Bill.Status.UNPAID, Bill.Status.PARTIALLY_PAID]


def bill_reminder_params(bill: Bill) -> dict:
    """The SMS / WeChat template variables of a bill reminder: ${period}, ${amount}, ${due}."""
    return {
        "period": bill.period,
        "amount": str(bill.outstanding),
        "due": bill.due_date.isoformat(),
    }


def _message(bill: Bill, *, today: date) -> tuple[str, str]:
    period = bill.period
    due = formats.date_format(bill.due_date, "DATE_FORMAT")
    if today < bill.due_date:
        title = _("Property fee for %(period)s is due on %(due)s") % {"period": period, "due": due}
    elif today == bill.due_date:
        title = _("Property fee for %(period)s is due today") % {"period": period}
    else:
        title = _("Property fee for %(period)s is overdue") % {"period": period}
    body = _("%(household)s: %(amount)s to pay, due on %(due)s.") % {
        "household": bill.household,
        "amount": money_text(bill.outstanding),
        "due": due,
    }
    return title, body


def residents_by_household(household_ids, *, on: date) -> dict[int, list]:
    """The people living in each household on a day (owners, tenants, family): one query."""
    found: dict[int, list] = {}
    residencies = (
        Residency.objects.active(on=on)
        .filter(household_id__in=household_ids)
        .select_related("user")
        .order_by("household_id", "user_id")
    )
    for residency in residencies:
        people = found.setdefault(residency.household_id, [])
        if residency.user not in people:
            people.append(residency.user)
    return found


def bill_reminders_send(*, today: date | None = None, at: datetime | None = None) -> int:
    """Send the reminders the schedule has for today; returns how many people were told (a
    person reminded of two bills counts twice). Safe to run again: nothing goes twice. `at`
    (default: now) decides the quiet hours."""
    at = at or timezone.now()
    today = today or timezone.localdate(at)
    told = 0
    for step in ReminderStep.objects.filter(is_active=True):
        bills = list(
            Bill.objects.filter(
                status__in=OWED, due_date__in=step.due_dates_firing_on(today)
            ).select_related("household__building__community")
        )
        people = residents_by_household({bill.household_id for bill in bills}, on=today)
        for bill in bills:
            n = step.occurrence_on(due_date=bill.due_date, day=today)
            if n is None:  # pragma: no cover - due_dates_firing_on chose it
                continue
            with translation.override(settings.LANGUAGE_CODE):
                title, body = _message(bill, today=today)
            # One transaction per bill: a failure halfway leaves earlier bills' reminders sent
            # and recorded, and the re-run sends only the rest.
            with transaction.atomic():
                for user in people.get(bill.household_id, []):
                    created = notifications.notify(
                        user=user,
                        kind=Kind.BILL_REMINDER,
                        title=title,
                        body=body,
                        link=reverse("bill-list"),
                        key=f"bill-reminder:{bill.pk}:{step.pk}:{n}",
                        params=bill_reminder_params(bill),
                        at=at,
                    )
                    told += bool(created)
    return told
