"""Backup and restore as docs/operations.md describes them: pg_dump (custom format) of a
database with money in it, pg_restore into a fresh database, then `manage.py check_ledger`
against the restored copy. It finds the ledger consistent, with the same balances, and the
guards come back too: a restored posting still cannot be changed."""

import os
import subprocess
import sys

import psycopg2
import pytest
from django.db import connection

from billing import services
from billing.models import Account, LedgerTransaction
from billing.tests.factories import BillFactory, estate, pay
from community.periods import Period
from community.tests.factories import resident
from tests.faults.conftest import ROOT, database_url, require_binary

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _connect(dbname: str):
    db = connection.settings_dict
    return psycopg2.connect(
        dbname=dbname,
        user=db["USER"],
        password=db["PASSWORD"] or None,
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
    )


def _pg_env() -> dict:
    db = connection.settings_dict
    env = {
        **os.environ,
        "PGHOST": db["HOST"] or "127.0.0.1",
        "PGPORT": str(db["PORT"] or 5432),
        "PGUSER": db["USER"],
    }
    if db["PASSWORD"]:
        env["PGPASSWORD"] = db["PASSWORD"]
    return env


def _balances(dbname: str) -> dict[str, str]:
    with _connect(dbname) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT key, balance::text FROM billing_account ORDER BY key")
        return dict(cursor.fetchall())


@pytest.fixture
def restored_name():
    name = connection.settings_dict["NAME"] + "_restored"
    admin = _connect("postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'CREATE DATABASE "{name}"')
    yield name
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def test_a_restored_dump_has_a_clean_ledger_with_the_same_totals(tmp_path, restored_name):
    require_binary("pg_dump")
    require_binary("pg_restore")
    # Money in every state: paid, paid out to the company (with a hold-back), refunded.
    community, homes = estate(3)
    payments = [pay(resident(home), [BillFactory(household=home)]) for home in homes]
    services.payout_run(community=community, period=Period.parse("2019-08"))
    admin = payments[0].payer
    admin.is_superuser = True
    admin.save()
    services.payment_refund(
        payment=payments[1],
        amount=payments[1].amount,
        reason="moved out",
        by=admin,
        idempotency_key="backup-refund",
        fingerprint="f",
    )
    source = connection.settings_dict["NAME"]
    before = _balances(source)
    assert len(before) == Account.objects.count() == 3  # clearing, escrow, company payable
    transactions = LedgerTransaction.objects.count()

    dump = tmp_path / "linli.dump"
    env = _pg_env()
    subprocess.run(
        ["pg_dump", "--format=custom", "--no-owner", f"--file={dump}", source],
        env=env,
        check=True,
    )
    subprocess.run(
        ["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={restored_name}", str(dump)],
        env=env,
        check=True,
    )

    check = subprocess.run(
        [sys.executable, "manage.py", "check_ledger"],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": database_url(restored_name),
        },
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    assert "Ledger is consistent." in check.stdout
    assert _balances(restored_name) == before
    with _connect(restored_name) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM billing_ledgertransaction")
        assert cursor.fetchone() == (transactions,)
        # The append-only trigger came back with the data.
        with pytest.raises(psycopg2.Error):
            cursor.execute("UPDATE billing_posting SET amount = amount + 1")
    # And the guards of migration 0004: no TRUNCATE, no posting into a restored (closed)
    # ledger transaction.
    for sql in (
        "TRUNCATE billing_posting CASCADE",
        "INSERT INTO billing_posting (transaction_id, account_id, amount, created_at) "
        "SELECT transaction_id, account_id, 1, now() FROM billing_posting LIMIT 1",
    ):
        with (
            _connect(restored_name) as conn,
            conn.cursor() as cursor,
            pytest.raises(psycopg2.Error),
        ):
            cursor.execute(sql)
