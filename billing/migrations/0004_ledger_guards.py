"""PostgreSQL guards of the ledger, beyond migration 0002's balance check and append-only rows:

1. TRUNCATE of the postings (or of the transactions, which would take the postings with it) is
   refused, as UPDATE and DELETE already are: a row trigger never sees a TRUNCATE.
2. Ledger transactions are append-only too (no UPDATE, DELETE or TRUNCATE).
3. A posting can only be added to a ledger transaction opened in the same database transaction:
   once a ledger transaction has committed it is closed, and a later posting into it (which
   would change a balanced, audited entry after the fact) is refused. Each ledger transaction
   row records the database transaction that created it (`opened_in_xact`, txid_current(), the
   top-level id even inside a savepoint), a column only the database knows about; the posting
   trigger compares it with the inserting transaction's.

None of this holds against a role that may disable triggers (the table owner or a superuser):
docs/operations.md says how to run the portal as a role that cannot. pg_dump writes triggers
after the data, so a restore loads the rows before these checks exist.
"""

from django.db import migrations

CREATE = r"""
CREATE TRIGGER billing_posting_no_truncate
    BEFORE TRUNCATE ON billing_posting
    FOR EACH STATEMENT EXECUTE FUNCTION billing_refuse_posting_change();

CREATE OR REPLACE FUNCTION billing_refuse_transaction_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'ledger transactions are append-only: post a reversing transaction'
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER billing_ledgertransaction_append_only
    BEFORE UPDATE OR DELETE ON billing_ledgertransaction
    FOR EACH ROW EXECUTE FUNCTION billing_refuse_transaction_change();

CREATE TRIGGER billing_ledgertransaction_no_truncate
    BEFORE TRUNCATE ON billing_ledgertransaction
    FOR EACH STATEMENT EXECUTE FUNCTION billing_refuse_transaction_change();

ALTER TABLE billing_ledgertransaction
    ADD COLUMN opened_in_xact bigint NOT NULL DEFAULT txid_current();

CREATE OR REPLACE FUNCTION billing_refuse_posting_to_closed_transaction() RETURNS trigger AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM billing_ledgertransaction
         WHERE id = NEW.transaction_id AND opened_in_xact = txid_current()
    ) THEN
        RAISE EXCEPTION 'ledger transaction % is closed: post a new transaction',
            NEW.transaction_id USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER billing_posting_into_open_transaction
    BEFORE INSERT ON billing_posting
    FOR EACH ROW EXECUTE FUNCTION billing_refuse_posting_to_closed_transaction();
"""

DROP = """
DROP TRIGGER IF EXISTS billing_posting_into_open_transaction ON billing_posting;
DROP FUNCTION IF EXISTS billing_refuse_posting_to_closed_transaction();
ALTER TABLE billing_ledgertransaction DROP COLUMN IF EXISTS opened_in_xact;
DROP TRIGGER IF EXISTS billing_ledgertransaction_no_truncate ON billing_ledgertransaction;
DROP TRIGGER IF EXISTS billing_ledgertransaction_append_only ON billing_ledgertransaction;
DROP FUNCTION IF EXISTS billing_refuse_transaction_change();
DROP TRIGGER IF EXISTS billing_posting_no_truncate ON billing_posting;
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0003_desk_suspense_reconciliation_void")]
    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
