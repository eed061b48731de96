"""Writes of a few columns of one row, for the payment's hot path.

`save_fields(obj, "status", ...)` writes what `obj.save(update_fields=[...])` writes, the same
values prepared by the same fields (auto_now included), as one `UPDATE ... WHERE id = %s`.
What it leaves out is the ORM building and compiling an UpdateQuery, which took more CPU than
PostgreSQL took to run the statement: a payment's create and its notification make four such
writes on every payment of the due-day rush (bench/profile_payment_cycle.py). It sends no
pre_save/post_save signals; none is connected to the models it is used on (Bill, Payment), and
the tests of billing would see one that was. Everywhere else, save(update_fields=...) is the
way."""

from django.db import DatabaseError, transaction


def save_fields(obj, *names: str) -> None:
    """UPDATE `obj`'s row, setting the named fields to their values on `obj`."""
    connection = transaction.get_connection()
    quote = connection.ops.quote_name
    meta = obj._meta
    fields = [meta.get_field(name) for name in names]
    values = [f.get_db_prep_save(f.pre_save(obj, add=False), connection) for f in fields]
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s",
            [*values, obj.pk],
        )
        if cursor.rowcount != 1:  # as save(update_fields=...) refuses a row that is not there
            raise DatabaseError("Save with update_fields did not affect any rows.")
