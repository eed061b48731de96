"""billing.selectors.household_paid_for_period: what alliance asks before a household rates."""

from decimal import Decimal

import pytest

from billing import selectors, services
from billing.models import Bill
from billing.tests.factories import BillFactory, estate, pay
from community.periods import Period
from community.tests.factories import resident

pytestmark = pytest.mark.django_db

AUGUST = Period(2019, 8)


def test_paid_or_waived_counts_as_paid_and_nothing_else_does():
    _, (paid, waived, partly, unpaid, no_bill) = estate(5)
    pay(resident(paid), [BillFactory(household=paid, period="2019-08")])
    services.bill_waive(bill=BillFactory(household=waived, period="2019-08"))
    bill = BillFactory(household=partly, period="2019-08")
    Bill.objects.filter(pk=bill.pk).update(paid_amount=Decimal("1.00"), status="partially_paid")
    BillFactory(household=unpaid, period="2019-08")

    answers = {
        home: selectors.household_paid_for_period(household=home, period=AUGUST)
        for home in (paid, waived, partly, unpaid, no_bill)
    }
    assert answers == {paid: True, waived: True, partly: False, unpaid: False, no_bill: False}


def test_another_months_payment_does_not_count():
    _, (home,) = estate(1)
    pay(resident(home), [BillFactory(household=home, period="2019-09")])
    assert not selectors.household_paid_for_period(household=home, period=AUGUST)
    assert selectors.household_paid_for_period(household=home, period=Period(2019, 9))
    # The period may be given as text too, as it is stored.
    assert selectors.household_paid_for_period(household=home, period="2019-09")
