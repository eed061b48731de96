"""The default earning rules, in force from the pilot's start (2019-07-01). The centre changes
them in the admin: to change an amount from a date, end the rule the day before and add a new
one; entries already made keep the points they were given.

| event | holder | points | condition |
|---|---|---|---|
| on-time payment | resident | 10 reputation | every bill of the payment paid by its due date |
| prepayment | resident | 30 reputation | 12 or more future months in one payment |
| service rating | resident | 5 reputation | a monthly 三保两报 rating |
| ticket rating | resident | 2 reputation | rating a resolved ticket, any stars; at most 5 a month |
| volunteering | resident | 10 contribution per hour | rounded half-up |
| activity check-in | resident | 5 contribution | at most 3 a month |
| ticket within SLA | company | 2 reward points | first resolution, no deadline missed |
| 5-star ticket rating | company | 3 reward points | 5 stars |
| monthly scorecard | company | 100 reward points | score of at least 0.90 |
"""

from datetime import date
from decimal import Decimal

from django.db import migrations

PILOT_START = date(2019, 7, 1)

DEFAULTS = [
    # event, currency, amount, per_hour, threshold, cap_per_month
    ("payment_on_time", "reputation", 10, False, None, None),
    ("prepayment", "reputation", 30, False, Decimal("12"), None),
    ("service_rating", "reputation", 5, False, None, None),
    ("ticket_rating", "reputation", 2, False, None, 5),
    ("volunteer_hour", "contribution", 10, True, None, None),
    ("activity_checkin", "contribution", 5, False, None, 3),
    ("ticket_within_sla", "reward", 2, False, None, None),
    ("ticket_five_stars", "reward", 3, False, Decimal("5"), None),
    ("scorecard", "reward", 100, False, Decimal("0.90"), None),
]


def forwards(apps, schema_editor):
    Rule = apps.get_model("points", "Rule")
    for event, currency, amount, per_hour, threshold, cap in DEFAULTS:
        if Rule.objects.filter(event=event).exists():
            continue
        Rule.objects.create(
            event=event,
            currency=currency,
            amount=amount,
            per_hour=per_hour,
            threshold=threshold,
            cap_per_month=cap,
            active_from=PILOT_START,
        )


def backwards(apps, schema_editor):
    Rule = apps.get_model("points", "Rule")
    Rule.objects.filter(active_from=PILOT_START, entries__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("points", "0002_postgres_rules")]
    operations = [migrations.RunPython(forwards, backwards)]
