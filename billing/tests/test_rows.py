"""billing.rows.save_fields: what save(update_fields=...) writes, as one UPDATE."""

from decimal import Decimal

import pytest
from django.db import DatabaseError

from billing import rows
from billing.models import Bill
from billing.tests.factories import BillFactory

pytestmark = pytest.mark.django_db


def test_only_the_named_fields_are_written_with_their_exact_values():
    bill = BillFactory(amount=Decimal("108.01"))
    bill.paid_amount = Decimal("54.01")
    bill.status = Bill.Status.PARTIALLY_PAID
    bill.period = "2031-01"  # changed in memory, not named: stays as it is in the database
    rows.save_fields(bill, "paid_amount", "status")
    stored = Bill.objects.get(pk=bill.pk)
    assert (stored.paid_amount, stored.status, stored.period) == (
        bill.paid_amount,
        Bill.Status.PARTIALLY_PAID,
        "2019-08",
    )


def test_a_row_that_is_gone_is_refused_as_save_refuses_it():
    BillFactory()
    bill = Bill(pk=987654321, status=Bill.Status.PAID)  # no such row
    with pytest.raises(DatabaseError, match="did not affect any rows"):
        rows.save_fields(bill, "status")
