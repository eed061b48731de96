"""PostgreSQL enforcement of two points rules (SQLite has neither; there the Entry model refuses
save-after-create and delete, and Rule.clean plus the services' "rule in force" lookup keep to
one rule per event and day):

1. Entries are append-only: UPDATE and DELETE on points_entry raise. A mistake is corrected by a
   reversing entry.
2. At most one earning rule per event is in force on any day: an exclusion constraint over
   (event, [active_from, active_to]) (btree_gist for the equality part).
"""

from django.db import migrations

CREATE = r"""
CREATE OR REPLACE FUNCTION points_refuse_entry_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'points entries are append-only: add a reversing entry'
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER points_entry_append_only
    BEFORE UPDATE OR DELETE ON points_entry
    FOR EACH ROW EXECUTE FUNCTION points_refuse_entry_change();

CREATE EXTENSION IF NOT EXISTS btree_gist;
ALTER TABLE points_rule ADD CONSTRAINT points_rule_no_overlap EXCLUDE USING gist (
    event WITH =,
    daterange(active_from, active_to, '[]') WITH &&
);
"""

DROP = """
ALTER TABLE points_rule DROP CONSTRAINT IF EXISTS points_rule_no_overlap;
DROP TRIGGER IF EXISTS points_entry_append_only ON points_entry;
DROP FUNCTION IF EXISTS points_refuse_entry_change();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("points", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
