"""Bill generation and overdue reminders (prepayment: test_prepay.py)."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from billing import services
from billing.models import Bill
from billing.money import fee
from billing.tests.factories import BillFactory, estate
from community.models import Notice
from community.periods import Period
from community.tests.factories import CommunityFactory, HouseholdFactory, resident

pytestmark = pytest.mark.django_db


def test_generation_bills_every_household_of_communities_under_an_agreement():
    community, homes = estate(3, rate="1.35")
    HouseholdFactory(building__community=CommunityFactory())  # no agreement: no bill

    created = services.bill_generate_for_period(period=Period(2019, 8))

    assert created == 3
    bills = Bill.objects.order_by("household_id")
    assert [b.household_id for b in bills] == [h.pk for h in homes]
    for bill, home in zip(bills, homes, strict=True):
        assert bill.amount == fee(area=home.area, rate=Decimal("1.35"))
        assert (bill.period, bill.status, bill.paid_amount) == ("2019-08", "unpaid", 0)
        assert bill.due_date == date(2019, 8, 15)
        assert bill.community_id == community.pk


def test_generating_a_period_twice_creates_nothing_new():
    estate(2)
    assert services.bill_generate_for_period(period=Period(2019, 8)) == 2
    amounts = list(Bill.objects.values_list("pk", "amount"))
    assert services.bill_generate_for_period(period=Period(2019, 8)) == 0
    assert list(Bill.objects.values_list("pk", "amount")) == amounts


def test_database_refuses_a_second_bill_for_the_same_month():
    bill = BillFactory()
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        BillFactory(household=bill.household, period=bill.period)
    assert Bill.objects.count() == 1


def test_no_bills_before_the_agreement_starts():
    estate(2)
    assert services.bill_generate_for_period(period=Period(2019, 6)) == 0


@pytest.mark.postgres
def test_set_based_sql_matches_the_python_arithmetic():
    """On PostgreSQL bills come from one INSERT … SELECT; its rounding must equal fee()."""
    assert connection.vendor == "postgresql"
    community, _ = estate(0, rate="1.2345")
    homes = [
        HouseholdFactory(building__community=community, area=Decimal(a))
        for a in ["70.01", "89.99", "100.04", "139.99", "0.41"]
    ]
    services.bill_generate_for_period(period=Period(2019, 9))
    for home in homes:
        bill = Bill.objects.get(household=home)
        assert bill.amount == fee(area=home.area, rate=Decimal("1.2345")), home.area


def test_overdue_bills_are_marked_and_residents_reminded_once(django_capture_on_commit_callbacks):
    _, (home, other) = estate(2)
    user = resident(home, user__email="owner@example.org")
    late = BillFactory(household=home, due_date=date(2019, 8, 15))
    BillFactory(household=other, due_date=date(2019, 8, 15), paid_amount=Decimal("0"))
    on_time = BillFactory(household=home, period="2019-09", due_date=date(2019, 9, 15))

    with django_capture_on_commit_callbacks(execute=True):
        assert services.bill_mark_overdue(today=date(2019, 8, 20)) == 2
        assert services.bill_mark_overdue(today=date(2019, 8, 21)) == 0

    late.refresh_from_db()
    on_time.refresh_from_db()
    assert late.overdue_since == date(2019, 8, 16)
    assert on_time.overdue_since is None
    assert Notice.objects.filter(user=user).count() == 1


def test_resident_lists_only_their_own_bills_with_filters(as_user):
    _, (mine, theirs) = estate(2)
    user = resident(mine)
    BillFactory(household=mine, period="2019-08")
    BillFactory(household=mine, period="2019-09")
    BillFactory(household=theirs, period="2019-08")

    body = as_user(user).get("/api/v1/bills/?period=2019-08").json()
    assert body["count"] == 1
    assert body["results"][0]["household"] == mine.pk
    assert set(body["results"][0]) >= {
        "id",
        "household",
        "period",
        "amount",
        "paid_amount",
        "status",
        "due_date",
    }
    assert as_user(user).get("/api/v1/bills/?status=unpaid").json()["count"] == 2
    assert as_user(user).get("/api/v1/bills/?period=2019-8").status_code == 400
    assert as_user(user).get("/api/v1/bills/?status=owed").status_code == 400


def test_bill_list_query_count_does_not_grow(as_user, django_assert_max_num_queries):
    _, (home,) = estate(1)
    user = resident(home)
    for month in range(1, 13):
        BillFactory(household=home, period=f"2020-{month:02d}")
    with django_assert_max_num_queries(6):
        assert as_user(user).get("/api/v1/bills/?page_size=50").json()["count"] == 12


def test_timezone_is_shanghai():
    assert str(timezone.get_current_timezone()) == "Asia/Shanghai"
