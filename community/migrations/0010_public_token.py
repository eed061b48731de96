import secrets

from django.db import migrations, models

import community.models


def fill_tokens(apps, schema_editor):
    """Give every existing estate its own token (a column default would give them all one)."""
    Community = apps.get_model("community", "Community")
    for estate in Community.objects.filter(public_token__isnull=True).only("pk"):
        estate.public_token = secrets.token_urlsafe(12)
        estate.save(update_fields=["public_token"])


class Migration(migrations.Migration):
    dependencies = [
        ("community", "0009_audit_late_fee_waived"),
    ]

    operations = [
        migrations.AddField(
            model_name="community",
            name="public_token",
            field=models.CharField(max_length=32, null=True, editable=False),
        ),
        migrations.RunPython(fill_tokens, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="community",
            name="public_token",
            field=models.CharField(
                default=community.models.new_public_token,
                editable=False,
                max_length=32,
                unique=True,
                verbose_name="public page token",
            ),
        ),
    ]
