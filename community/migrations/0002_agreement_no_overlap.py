"""At most one tri-party agreement in force per community on any date, enforced by PostgreSQL.

An exclusion constraint over (community, [effective_from, effective_to]) needs btree_gist for the
equality part. SQLite has no such constraint; there community.services.agreement_create checks the
same rule under a row lock (and so does Agreement.clean for the admin form).
"""

from django.db import migrations

CREATE = """
CREATE EXTENSION IF NOT EXISTS btree_gist;
ALTER TABLE community_agreement ADD CONSTRAINT agreement_no_overlap EXCLUDE USING gist (
    community_id WITH =,
    daterange(effective_from, effective_to, '[]') WITH &&
);
"""
DROP = "ALTER TABLE community_agreement DROP CONSTRAINT IF EXISTS agreement_no_overlap;"


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("community", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
