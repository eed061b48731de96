"""PostgreSQL enforcement of the ledger's two rules (after django-hordak's check_leg):

1. Every transaction balances: a DEFERRABLE INITIALLY DEFERRED constraint trigger sums the
   postings of each touched transaction at commit and refuses a total other than zero.
2. Postings are append-only: UPDATE and DELETE on billing_posting raise.

SQLite has neither; there billing.ledger.post checks the balance before writing and the Posting
model refuses save-after-create and delete.
"""

from django.db import migrations

CREATE = r"""
CREATE OR REPLACE FUNCTION billing_check_transaction_balances() RETURNS trigger AS $$
DECLARE
    total numeric;
BEGIN
    SELECT COALESCE(SUM(amount), 0) INTO total
      FROM billing_posting WHERE transaction_id = NEW.transaction_id;
    IF total <> 0 THEN
        RAISE EXCEPTION 'ledger transaction % does not balance: %', NEW.transaction_id, total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE CONSTRAINT TRIGGER billing_posting_balanced
    AFTER INSERT ON billing_posting
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION billing_check_transaction_balances();

CREATE OR REPLACE FUNCTION billing_refuse_posting_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'postings are append-only: post a reversing transaction'
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER billing_posting_append_only
    BEFORE UPDATE OR DELETE ON billing_posting
    FOR EACH ROW EXECUTE FUNCTION billing_refuse_posting_change();
"""

DROP = """
DROP TRIGGER IF EXISTS billing_posting_append_only ON billing_posting;
DROP FUNCTION IF EXISTS billing_refuse_posting_change();
DROP TRIGGER IF EXISTS billing_posting_balanced ON billing_posting;
DROP FUNCTION IF EXISTS billing_check_transaction_balances();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
