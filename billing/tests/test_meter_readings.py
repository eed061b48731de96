"""Meter readings and opening arrears: imported with the estate workbook (billing/imports.py)
and entered by staff on the meter-reading page (billing/meter_views.py)."""

import io
from decimal import Decimal

import pytest
from django.conf import settings
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import translation
from openpyxl import Workbook

from billing.models import Bill, BillLine, ChargeItem, MeterReading
from billing.tests.factories import estate
from community import import_format as fmt
from community.imports import estate_workbook_export, estate_workbook_import
from community.models import Role
from community.periods import Period
from community.tests.factories import HouseholdFactory, PropertyCompanyFactory, member, resident

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def in_english(client):
    """These tests read the import's messages in English, their msgids: the services run in
    the active language, and the pages in the language of the cookie (Chinese first)."""
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    with translation.override("en"):
        yield


ARREARS = [fmt.COMMUNITY, fmt.BUILDING, fmt.UNIT, fmt.ARREARS_PERIOD, fmt.ARREARS_AMOUNT]
READINGS = [
    fmt.COMMUNITY,
    fmt.BUILDING,
    fmt.UNIT,
    fmt.METER,
    fmt.PERIOD,
    fmt.PREVIOUS_READING,
    fmt.READING,
]


def workbook(arrears: list[list] | None = None, readings: list[list] | None = None) -> bytes:
    book = Workbook()
    book.remove(book.active)
    for name, columns, rows in (
        (fmt.SHEET_ARREARS, ARREARS, arrears),
        (fmt.SHEET_METER_READINGS, READINGS, readings),
    ):
        if rows is None:
            continue
        sheet = book.create_sheet(name)
        sheet.append(columns)
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@pytest.fixture
def metered():
    """An estate of two households whose agreement charges water by the m³."""
    community, homes = estate(2, name="翰林苑")
    ChargeItem.objects.create(
        agreement=community.agreements.get(),
        code="water",
        name="水费",
        method=ChargeItem.Method.METERED,
        unit_price=Decimal("3.50"),
        unit="m³",
    )
    return community, homes


def key(household) -> list[str]:
    return [household.building.community.name, household.building.name, household.unit]


def written() -> tuple[int, int, int]:
    return MeterReading.objects.count(), Bill.objects.count(), BillLine.objects.count()


# --- import ---------------------------------------------------------------------------------


def test_arrears_and_readings_are_imported_once_and_a_rerun_is_unchanged(metered):
    community, (h1, h2) = metered
    data = workbook(
        arrears=[[*key(h1), "2026-06", "356.40"]],
        readings=[
            [*key(h1), "water", "2026-11", 120.5, 131],
            [*key(h2), "water", "2026-11", "10", "10"],
        ],
    )
    report = estate_workbook_import(data=data, centre=community.centre, dry_run=False)
    assert report.ok and report.committed
    assert [s.totals["new"] for s in report.sheets] == [1, 2]
    bill = Bill.objects.get(household=h1, period="2026-06")
    assert bill.amount == Decimal("356.40")
    assert list(bill.lines.values_list("kind", "amount")) == [
        (BillLine.Kind.OPENING_ARREARS, Decimal("356.40"))
    ]
    reading = MeterReading.objects.get(household=h1, meter="water", period="2026-11")
    assert (reading.previous_reading, reading.reading, reading.source) == (
        Decimal("120.50"),
        Decimal("131.00"),
        MeterReading.Source.IMPORT,
    )
    before = written()

    again = estate_workbook_import(data=data, centre=community.centre, dry_run=False)
    assert again.ok
    assert [s.totals["skip"] for s in again.sheets] == [1, 2]
    assert written() == before

    exported = estate_workbook_export(centre=community.centre)
    report = estate_workbook_import(data=exported, centre=community.centre, dry_run=False)
    assert report.ok and report.total("new") == report.total("update") == 0
    assert written() == before


def test_a_dry_run_of_readings_writes_nothing(metered):
    community, (h1, _h2) = metered
    data = workbook(readings=[[*key(h1), "water", "2026-11", "1", "2"]])
    report = estate_workbook_import(data=data, centre=community.centre, dry_run=True)
    assert report.ok and not report.committed
    assert [row.action for row in report.sheets[0].rows] == ["new"]
    assert written() == (0, 0, 0)


def test_bad_rows_are_refused_with_the_services_reasons_and_nothing_is_written(metered):
    community, (h1, h2) = metered
    estate_workbook_import(
        data=workbook(arrears=[[*key(h2), "2026-06", "100.00"]]),
        centre=community.centre,
        dry_run=False,
    )
    before = written()
    data = workbook(
        arrears=[
            [*key(h1), "2026-06", "0"],
            [*key(h1), "June", "10"],
            [*key(h2), "2026-06", "120.00"],  # another amount for a month already there
            [*key(h1), "2026-07", "12.345"],
        ],
        readings=[
            [*key(h1), "water", "2026-11", "20", "10"],  # below the previous reading
            [*key(h1), "gas", "2026-11", "1", "2"],  # no such metered item
            [*key(h2), "water", "2026-11", "", "5"],  # first reading without a previous one
            [*key(h2), "water", "2026-12", "5", "abc"],
            [community.name, "9幢", "101", "water", "2026-11", "1", "2"],
            [*key(h1), "water", "2026-12", "1", "2"],  # good, but the file is refused
        ],
    )
    report = estate_workbook_import(data=data, centre=community.centre, dry_run=False)
    assert not report.ok and not report.committed
    arrears = {row.number: row.messages for row in report.sheets[0].rows}
    assert arrears == {
        2: ["“0” is not an amount: yuan above 0, at most two decimals."],
        3: ["“June” is not a month: write it as YYYY-MM, e.g. 2026-06."],
        4: [f"{h2} already has a bill for 2026-06 of 100.00."],
        5: ["“12.345” is not an amount: yuan above 0, at most two decimals."],
    }
    readings = {row.number: row.messages for row in report.sheets[1].refused}
    assert readings == {
        2: ["The reading 10.00 is below the previous one, 20.00."],
        3: ["This estate has no metered charge “gas” in 2026-11."],
        4: ["This meter has no earlier reading: give the previous one."],
        5: ["“abc” is not a meter reading: a number from 0, at most two decimals."],
        6: [f"Unknown building “9幢” in “{community.name}”."],
    }
    assert [row.action for row in report.sheets[1].rows][-1] == "new"
    assert written() == before


# --- the staff page -------------------------------------------------------------------------


def entry_url(community, **query) -> str:
    url = reverse("meter-reading-entry", args=[community.pk])
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def staff_of(community):
    return member(Role.PROPERTY_STAFF, company=community.company)


def test_staff_see_the_buildings_households_with_their_last_reading(client, metered):
    community, (h1, _h2) = metered
    MeterReading.objects.create(
        household=h1, meter="water", period="2026-10", previous_reading=0, reading=Decimal("88")
    )
    client.force_login(staff_of(community))
    response = client.get(
        entry_url(community, building=h1.building.pk, meter="water", period="2026-11")
    )
    assert response.status_code == 200
    rows = response.context["rows"]
    assert [(r["household"], r["last"] and r["last"].reading) for r in rows] == [
        (h1, Decimal("88.00"))
    ]
    page = response.content.decode()
    assert f'name="reading-{h1.pk}"' in page and 'inputmode="decimal"' in page
    assert f'name="previous-{h1.pk}"' not in page  # it has an earlier reading


def test_staff_save_readings_and_a_refused_one_is_shown_beside_its_household(client, metered):
    community, (h1, _h2) = metered
    h3 = HouseholdFactory(building=h1.building, unit="ZZ")
    MeterReading.objects.create(
        household=h1, meter="water", period="2026-10", previous_reading=0, reading=Decimal("88")
    )
    staff = staff_of(community)
    client.force_login(staff)
    url = entry_url(community)
    body = {"building": h1.building.pk, "meter": "water", "period": "2026-11"}
    response = client.post(url, {**body, f"reading-{h1.pk}": "80", f"reading-{h3.pk}": "7.5"})
    assert response.status_code == 200
    assert response.context["rows"][0]["error"] == (
        "The reading 80 is below the previous one, 88.00."
    )
    assert response.context["rows"][0]["typed"] == "80"
    # h3 has no earlier reading and none was given: refused too.
    assert response.context["rows"][1]["error"] == (
        "This meter has no earlier reading: give the previous one."
    )
    assert MeterReading.objects.filter(period="2026-11").count() == 0

    response = client.post(
        url,
        {**body, f"reading-{h1.pk}": "95.5", f"reading-{h3.pk}": "7.5", f"previous-{h3.pk}": "1"},
    )
    assert response.status_code == 302
    assert response["Location"] == entry_url(
        community, building=h1.building.pk, meter="water", period="2026-11"
    )
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["2 readings saved."]
    saved = MeterReading.objects.get(household=h1, period="2026-11")
    assert (saved.previous_reading, saved.reading, saved.recorded_by, saved.source) == (
        Decimal("88.00"),
        Decimal("95.50"),
        staff,
        MeterReading.Source.STAFF,
    )
    assert MeterReading.objects.get(household=h3, period="2026-11").reading == Decimal("7.50")


def test_the_centre_admin_enters_readings_and_others_are_refused(client, metered):
    community, (h1, _h2) = metered
    admin = member(Role.CENTRE_ADMIN, centre=community.centre)
    client.force_login(admin)
    assert client.get(entry_url(community)).status_code == 200
    assert client.get(reverse("meter-reading-estates")).status_code == 200

    # Staff of another company: the estate is not theirs to see at all.
    client.force_login(member(Role.PROPERTY_STAFF, company=PropertyCompanyFactory()))
    assert client.get(entry_url(community)).status_code == 404
    assert client.get(reverse("meter-reading-estates")).status_code == 403
    body = {"building": h1.building.pk, "meter": "water", "period": "2026-11"}
    assert client.post(entry_url(community), {**body, f"reading-{h1.pk}": "1"}).status_code == 404

    # A resident sees the estate, but readings are not theirs to enter.
    client.force_login(resident(h1))
    assert client.get(entry_url(community)).status_code == 403
    assert client.post(entry_url(community), {**body, f"reading-{h1.pk}": "1"}).status_code == 403
    assert MeterReading.objects.count() == 0


def test_an_estate_without_metered_items_says_so(client):
    community, _homes = estate(1)
    client.force_login(staff_of(community))
    response = client.get(entry_url(community, period=str(Period.current())))
    assert response.status_code == 200
    assert "data-no-meters" in response.content.decode()
    assert response.context["form"].errors == {}
    assert response.context["rows"] == []
