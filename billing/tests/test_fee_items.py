"""Fee items beyond area × rate: a bill's lines per item (per m², fixed, by subscription,
metered with tiers), readings that come in after the bill, opening arrears, and pass-through
items paid to the company whole at the payout (billing/charges.py)."""

from datetime import date
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from billing import charges, services
from billing.models import (
    Bill,
    BillLine,
    ChargeItem,
    ChargeSubscription,
    ChargeTier,
    MeterReading,
    PaymentItem,
)
from billing.tests.factories import estate, pay
from community.models import Role
from community.periods import Period
from community.tests.factories import member, resident
from config.api import Conflict

pytestmark = pytest.mark.django_db

AUGUST = Period(2019, 8)


@pytest.fixture
def items():
    """An estate of two households (100 m² and 101 m²) at 2.00 a m², 20% held back, with
    garbage (10.00 a household), parking (150.00 a space, by subscription: the first household
    rents one) and water (metered, passed through, 3.50 a m³ up to 10 m³ and 5.25 above)."""
    community, homes = estate(2, rate="2.00", holdback="0.20")
    agreement = community.agreements.get()
    ChargeItem.objects.create(
        agreement=agreement,
        code="garbage",
        name="Garbage",
        method="fixed",
        unit_price=Decimal("10.00"),
        position=1,
    )
    parking = ChargeItem.objects.create(
        agreement=agreement,
        code="parking",
        name="Parking",
        method="fixed",
        unit_price=Decimal("150.00"),
        by_subscription=True,
        position=2,
    )
    water = ChargeItem.objects.create(
        agreement=agreement,
        code="water",
        name="Water",
        method="metered",
        unit_price=Decimal("3.50"),
        unit="m³",
        settlement="passthrough",
        position=3,
    )
    ChargeTier.objects.create(item=water, up_to=Decimal("10"), unit_price=Decimal("3.50"))
    ChargeTier.objects.create(item=water, up_to=None, unit_price=Decimal("5.25"))
    ChargeSubscription.objects.create(household=homes[0], item=parking)
    return community, homes


def read(household, period, previous, reading):
    return charges.meter_reading_record(
        household=household,
        meter="water",
        period=period,
        previous_reading=Decimal(previous),
        reading=Decimal(reading),
    )


def lines(bill):
    return [(line.name, line.quantity, line.amount) for line in bill.lines.order_by("position")]


def test_the_bill_run_gives_each_household_a_line_per_item(items):
    _community, (home, other) = items
    read(home, AUGUST, "100", "115")  # 15 m³: 10 × 3.50 + 5 × 5.25 = 61.25
    read(other, AUGUST, "50", "53.33")  # 3.33 m³ × 3.50 = 11.655 → 11.66

    assert services.bill_generate_for_period(period=AUGUST) == 2

    bill = Bill.objects.get(household=home, period="2019-08")
    assert lines(bill) == [
        ("物业费", Decimal("100.00"), Decimal("200.00")),
        ("Garbage", Decimal("1.00"), Decimal("10.00")),
        ("Parking", Decimal("1.00"), Decimal("150.00")),
        ("Water", Decimal("15.00"), Decimal("61.25")),
    ]
    assert (bill.amount, bill.passthrough_amount) == (Decimal("421.25"), Decimal("61.25"))
    other_bill = Bill.objects.get(household=other, period="2019-08")
    assert lines(other_bill) == [
        ("物业费", Decimal("101.00"), Decimal("202.00")),
        ("Garbage", Decimal("1.00"), Decimal("10.00")),
        ("Water", Decimal("3.33"), Decimal("11.66")),
    ]
    assert (other_bill.amount, other_bill.passthrough_amount) == (
        Decimal("223.66"),
        Decimal("11.66"),
    )
    # The same month again creates nothing, on either path.
    assert services.bill_generate_for_period(period=AUGUST) == 0
    assert BillLine.objects.count() == 7


def test_the_bill_run_and_the_python_computation_agree_line_for_line(items):
    """On PostgreSQL the bill run is one SQL statement; it must price every line as
    monthly_charges does in Python (the prepayment's and SQLite's path)."""
    community, homes = items
    read(homes[0], AUGUST, "0", "10")  # exactly the first tier's limit
    read(homes[1], AUGUST, "7.77", "31.01")
    services.bill_generate_for_period(period=AUGUST)
    agreement = community.agreements.get()
    expected = charges.monthly_charges(agreement, [(h.pk, h.area) for h in homes], AUGUST)
    for home in homes:
        bill = Bill.objects.get(household=home, period="2019-08")
        assert lines(bill) == [(c.name, c.quantity, c.amount) for c in expected[home.pk]]
        assert bill.amount == charges.totals(expected[home.pk])[0]


@pytest.mark.parametrize(
    ("usage", "amount"),
    [("0", "0.00"), ("9.99", "34.97"), ("10", "35.00"), ("10.01", "35.05"), ("100", "507.50")],
)
def test_tiers_price_each_part_of_the_usage_at_its_own_price(usage, amount):
    tiers = [(Decimal("10"), Decimal("3.50")), (None, Decimal("5.25"))]
    assert charges.tiered_amount(Decimal(usage), Decimal("3.50"), tiers) == Decimal(amount)
    assert charges.tiered_amount(Decimal("3"), Decimal("0.333"), []) == Decimal("1.00")


def test_a_reading_after_the_bill_run_is_put_on_the_bill_it_missed(items):
    _community, (home, _) = items
    services.bill_generate_for_period(period=AUGUST)
    bill = Bill.objects.get(household=home, period="2019-08")
    assert bill.amount == Decimal("360.00")

    _reading, what = read(home, AUGUST, "100", "102")

    assert what == "created"
    bill.refresh_from_db()
    assert (bill.amount, bill.passthrough_amount) == (Decimal("367.00"), Decimal("7.00"))
    assert lines(bill)[-1] == ("Water", Decimal("2.00"), Decimal("7.00"))
    # Billed now: the same reading again changes nothing, another one is refused.
    assert read(home, AUGUST, "100", "102")[1] == "unchanged"
    with pytest.raises(Conflict):
        read(home, AUGUST, "100", "103")
    assert MeterReading.objects.get().reading == Decimal("102.00")
    assert bill.lines.count() == 4


def test_a_paid_bill_that_gets_its_water_owes_the_water(items):
    _community, (home, _) = items
    services.bill_generate_for_period(period=AUGUST)
    bill = Bill.objects.get(household=home, period="2019-08")
    pay(resident(home), [bill])

    read(home, AUGUST, "100", "104")

    bill.refresh_from_db()
    assert (bill.status, bill.paid_amount, bill.outstanding) == (
        "partially_paid",
        Decimal("360.00"),
        Decimal("14.00"),
    )


def test_readings_are_checked_and_a_bad_one_writes_nothing(items):
    _community, (home, _) = items
    with pytest.raises(ValidationError) as below:
        read(home, AUGUST, "100", "99.99")
    assert "reading" in below.value.message_dict
    with pytest.raises(ValidationError) as unknown:
        charges.meter_reading_record(
            household=home,
            meter="gas",
            period=AUGUST,
            reading=Decimal("5"),
            previous_reading=Decimal("1"),
        )
    assert "meter" in unknown.value.message_dict
    with pytest.raises(ValidationError) as first:
        charges.meter_reading_record(
            household=home, meter="water", period=AUGUST, reading=Decimal("5")
        )
    assert "previous_reading" in first.value.message_dict
    for bad in ("abc", "-1", "1.234", "NaN", "Infinity", None):
        with pytest.raises(ValidationError):
            charges.meter_reading_record(
                household=home, meter="water", period=AUGUST, reading=bad, previous_reading="0"
            )
    assert MeterReading.objects.count() == 0


def test_the_previous_reading_defaults_to_the_last_one(items):
    _community, (home, _) = items
    read(home, Period(2019, 7), "10", "20")
    reading, what = charges.meter_reading_record(
        household=home, meter="water", period=AUGUST, reading=Decimal("26.5")
    )
    assert (what, reading.previous_reading, reading.usage) == (
        "created",
        Decimal("20.00"),
        Decimal("6.50"),
    )
    assert read(home, AUGUST, "20", "27")[1] == "updated"


def test_opening_arrears_are_a_bill_of_their_own_passed_through(items):
    _community, (home, _) = items
    bill, what = charges.opening_arrears_record(
        household=home, period=Period(2019, 6), amount=Decimal("1234.50")
    )
    assert what == "created"
    assert (bill.amount, bill.passthrough_amount, bill.status, bill.due_date) == (
        Decimal("1234.50"),
        Decimal("1234.50"),
        "unpaid",
        date(2019, 6, 30),
    )
    assert lines(bill) == [("期初欠费", Decimal("1.00"), Decimal("1234.50"))]
    # An import run again: unchanged. Another amount for the month: 409, nothing written.
    assert charges.opening_arrears_record(
        household=home, period=Period(2019, 6), amount="1234.50"
    ) == (bill, "unchanged")
    with pytest.raises(Conflict):
        charges.opening_arrears_record(household=home, period=Period(2019, 6), amount="1000")
    for bad in ("0", "-5", "1.001", "x", "NaN"):
        with pytest.raises(ValidationError):
            charges.opening_arrears_record(household=home, period=Period(2019, 5), amount=bad)
    assert Bill.objects.count() == 1


def test_the_payout_pays_pass_through_items_whole_and_holds_back_the_rest(items):
    community, (home, _) = items
    read(home, AUGUST, "100", "115")
    services.bill_generate_for_period(period=AUGUST)
    bill = Bill.objects.get(household=home, period="2019-08")
    payment = pay(resident(home), [bill])
    assert PaymentItem.objects.get(payment=payment).passthrough_amount == Decimal("61.25")

    payout, created = services.payout_run(community=community, period=AUGUST)

    # 421.25 collected: water's 61.25 to the company whole, 80% of the other 360.00.
    assert created
    assert (payout.collected, payout.to_company, payout.held_back) == (
        Decimal("421.25"),
        Decimal("349.25"),
        Decimal("72.00"),
    )
    release, _ = services.release_holdback(
        community=community, period=AUGUST, score=Decimal("0.50")
    )
    assert (release.held_back, release.to_company, release.to_public_fund) == (
        Decimal("72.00"),
        Decimal("36.00"),
        Decimal("36.00"),
    )


def test_a_refund_before_the_payout_comes_out_of_the_escrowed_part_first(items, as_user):
    community, (home, _) = items
    read(home, AUGUST, "100", "115")
    services.bill_generate_for_period(period=AUGUST)
    payment = pay(resident(home), [Bill.objects.get(household=home, period="2019-08")])
    admin = member(Role.CENTRE_ADMIN, centre=community.centre)
    response = as_user(admin).post(
        f"/api/v1/payments/{payment.pk}/refund/",
        {"amount": "400.00", "reason": "moved out"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="r1",
    )
    assert response.status_code == 201

    payout, _ = services.payout_run(community=community, period=AUGUST)

    # 21.25 left: all of it within the 61.25 of water, so all of it to the company.
    assert (payout.collected, payout.to_company, payout.held_back) == (
        Decimal("21.25"),
        Decimal("21.25"),
        Decimal("0.00"),
    )


def test_the_api_lists_each_bills_lines(items, as_user, django_assert_max_num_queries):
    _community, (home, _other) = items
    read(home, AUGUST, "100", "101")
    services.bill_generate_for_period(period=AUGUST)
    services.bill_generate_for_period(period=Period(2019, 9))
    client = as_user(resident(home))

    with django_assert_max_num_queries(8):
        body = client.get("/api/v1/bills/?period=2019-08").json()

    assert body["count"] == 1
    assert body["results"][0]["amount"] == "363.50"
    assert body["results"][0]["lines"] == [
        {
            "kind": "charge",
            "name": "物业费",
            "quantity": "100.00",
            "unit": "m²",
            "unit_price": "2.0000",
            "amount": "200.00",
            "settlement": "escrow",
            "waived": False,
        },
        {
            "kind": "charge",
            "name": "Garbage",
            "quantity": "1.00",
            "unit": "",
            "unit_price": "10.0000",
            "amount": "10.00",
            "settlement": "escrow",
            "waived": False,
        },
        {
            "kind": "charge",
            "name": "Parking",
            "quantity": "1.00",
            "unit": "",
            "unit_price": "150.0000",
            "amount": "150.00",
            "settlement": "escrow",
            "waived": False,
        },
        {
            "kind": "charge",
            "name": "Water",
            "quantity": "1.00",
            "unit": "m³",
            "unit_price": "3.5000",
            "amount": "3.50",
            "settlement": "passthrough",
            "waived": False,
        },
    ]
    assert client.get("/api/v1/bills/").json()["count"] == 2
