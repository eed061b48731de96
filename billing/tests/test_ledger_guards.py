"""The database's own guards of the ledger on PostgreSQL (billing migrations 0002 and 0004), tried
with raw SQL as a careless script or an intruder with the app's credentials would: no TRUNCATE of
the postings or transactions, no change to a ledger transaction, no posting added to a ledger
transaction that has committed; and a role set up as docs/operations.md says cannot switch the
guards off."""

import psycopg2
import pytest
from django.db import DatabaseError, connection, transaction

from billing import ledger
from billing.models import LedgerTransaction, Posting
from billing.tests.factories import BillFactory, estate, pay
from community.tests.factories import resident

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

APP_ROLE = "linli_guard_test_app"


@pytest.fixture
def booked():
    """One payment on the books: a committed ledger transaction with two postings."""
    _, (home,) = estate(1)
    payment = pay(resident(home), [BillFactory(household=home)])
    return LedgerTransaction.objects.get(payment=payment)


def _refused(sql, params=None) -> str:
    with (
        pytest.raises(DatabaseError) as caught,
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, params)
    return str(caught.value)


@pytest.mark.parametrize(
    "sql",
    [
        "TRUNCATE billing_posting",
        "TRUNCATE billing_posting CASCADE",
        "TRUNCATE billing_ledgertransaction CASCADE",
    ],
)
def test_truncating_the_ledger_is_refused(booked, sql):
    assert "append-only" in _refused(sql)
    assert Posting.objects.count() == 2
    assert LedgerTransaction.objects.count() == 1


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE billing_ledgertransaction SET memo = 'edited'",
        "UPDATE billing_ledgertransaction SET kind = 'refund'",
        "DELETE FROM billing_ledgertransaction",
    ],
)
def test_a_ledger_transaction_cannot_be_changed_or_deleted(booked, sql):
    assert "append-only" in _refused(sql)
    booked.refresh_from_db()
    assert (booked.kind, booked.memo.startswith("sandbox")) == ("payment", True)


def test_no_posting_can_be_added_to_a_committed_transaction(booked):
    posting = booked.postings.order_by("pk").first()

    # A balanced pair, so only the "closed" guard can refuse it.
    message = _refused(
        "INSERT INTO billing_posting (transaction_id, account_id, amount, created_at) "
        "VALUES (%s, %s, 1, now()), (%s, %s, -1, now())",
        [booked.pk, posting.account_id, booked.pk, posting.account_id],
    )

    assert "is closed" in message
    assert booked.postings.count() == 2


def test_postings_still_go_into_the_transaction_being_written(booked):
    """The guard does not stand in the way of ledger.post (even inside a savepoint)."""
    account = booked.postings.order_by("pk").first().account
    other = booked.postings.order_by("pk").last().account
    with transaction.atomic(), transaction.atomic():
        entry = ledger.post(
            kind=LedgerTransaction.Kind.PAYOUT,
            idempotency_key="guard-test",
            legs=[ledger.Leg(account, booked.postings.get(account=account).amount * -1),
                  ledger.Leg(other, booked.postings.get(account=other).amount * -1)],
        )  # fmt: skip
    assert entry.postings.count() == 2


@pytest.fixture
def app_role():
    """A login role with the grants docs/operations.md gives the portal: data, not schema."""
    db = connection.settings_dict
    with connection.cursor() as cursor:
        cursor.execute(f"DROP OWNED BY {APP_ROLE}" if _role_exists() else "SELECT 1")
        cursor.execute(f"DROP ROLE IF EXISTS {APP_ROLE}")
        cursor.execute(f"CREATE ROLE {APP_ROLE} LOGIN PASSWORD 'guard' NOSUPERUSER NOBYPASSRLS")
        cursor.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
        cursor.execute(
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE}"
        )
        cursor.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}")
    conn = psycopg2.connect(
        dbname=db["NAME"],
        user=APP_ROLE,
        password="guard",
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
    )
    conn.autocommit = True
    yield conn
    conn.close()
    with connection.cursor() as cursor:
        cursor.execute(f"DROP OWNED BY {APP_ROLE}")
        cursor.execute(f"DROP ROLE {APP_ROLE}")


def _role_exists() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [APP_ROLE])
        return cursor.fetchone() is not None


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE billing_posting DISABLE TRIGGER ALL",
        "ALTER TABLE billing_posting DISABLE TRIGGER billing_posting_append_only",
        "DROP TRIGGER billing_posting_append_only ON billing_posting",
        "SET session_replication_role = replica",
        "TRUNCATE billing_posting",
        "DELETE FROM billing_posting",
        "DELETE FROM billing_ledgertransaction",
    ],
)
def test_the_app_role_cannot_switch_the_guards_off(booked, app_role, sql):
    with pytest.raises(psycopg2.Error), app_role.cursor() as cursor:
        cursor.execute(sql)
    assert Posting.objects.count() == 2
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'billing_posting'::regclass "
            "AND NOT tgisinternal AND tgenabled = 'O'"
        )
        # 0002's two, 0004's two, 0007's public-fund debit guard.
        assert cursor.fetchone()[0] == 5


def test_the_app_role_still_does_its_work(booked, app_role):
    with app_role.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM billing_posting")
        assert cursor.fetchone()[0] == 2
        cursor.execute("UPDATE billing_bill SET overdue_since = NULL")
