"""Fill the dashboards' summary from the bills and tickets already there (alliance.summary, on
the historical models: two grouped counts and one bulk insert)."""

from django.db import migrations


def fill(apps, schema_editor):
    from alliance.summary import summary_rebuild

    summary_rebuild(
        apps.get_model("billing", "Bill"),
        apps.get_model("repairs", "Ticket"),
        apps.get_model("community", "EstateMonth"),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("community", "0012_estate_month_summary"),
        ("billing", "0008_ledger_chain"),
        ("repairs", "0001_initial"),
    ]

    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
