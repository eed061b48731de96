"""The default scorecard weights (alliance.models.DEFAULT_WEIGHTS, written out here so a later
change of the default does not rewrite history): residents' satisfaction 0.30, the staff
attendance and incident handling rates 0.20 each, grid and major-matter cooperation 0.15 each.
Existing rows (edited in admin) are left alone."""

from decimal import Decimal

from django.db import migrations

DEFAULTS = {
    "attendance_rate": Decimal("0.2000"),
    "handling_rate": Decimal("0.2000"),
    "grid_cooperation": Decimal("0.1500"),
    "major_matter_cooperation": Decimal("0.1500"),
    "resident_satisfaction": Decimal("0.3000"),
}


def create_defaults(apps, schema_editor):
    ScoreWeight = apps.get_model("alliance", "ScoreWeight")
    for component, weight in DEFAULTS.items():
        ScoreWeight.objects.get_or_create(component=component, defaults={"weight": weight})


class Migration(migrations.Migration):
    dependencies = [("alliance", "0001_initial")]

    operations = [migrations.RunPython(create_defaults, migrations.RunPython.noop)]
