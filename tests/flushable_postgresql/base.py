"""The test database's PostgreSQL backend: Django's own, except that flushing the database
between transactional tests may TRUNCATE the ledger's tables, which billing migration 0004
refuses to everyone else. The flush runs with session_replication_role = replica, which a
superuser (the test database's owner here) may set for its own transaction and which keeps
ordinary triggers from firing, the ledger's guards among them. Production never uses this
backend: there TRUNCATE of the ledger stays refused (docs/operations.md)."""

from django.db import transaction
from django.db.backends.postgresql import base


class DatabaseOperations(base.DatabaseOperations):
    def execute_sql_flush(self, sql_list):
        with transaction.atomic(using=self.connection.alias), self.connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = replica")
            for sql in sql_list:
                cursor.execute(sql)


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
