"""Bringing a real estate in, end to end: a centre admin imports the estate from one workbook
(dry run, then for real), sets three fee items and a late-fee rule, imports the month's meter
readings, bills the month, and the residents who have not paid get an SMS reminder signed as
Alibaba Cloud's published example is, showing what they owe with the late fee.

Each step goes through the same services the admin pages and the commands use; only the SMS
provider's servers are replaced (httpx.MockTransport at the HTTP boundary). The import's speed
at 5,000 households is measured in bench/ (estate_import), not here."""

import json
from datetime import date, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import pytest
from django.test import override_settings
from django.utils import timezone

from bench.scenarios.estate_import import ESTATE, estate_workbook, readings_workbook
from billing import charges, reminders, services
from billing.models import Bill, BillLine, ChargeItem, ChargeSubscription, LateFeeRule
from billing.tests import test_reminders
from community import channels
from community.imports import estate_workbook_import
from community.models import Agreement, Centre, Community, Household, PropertyCompany
from community.notification_models import Channel, Delivery
from community.periods import Period

pytestmark = pytest.mark.django_db

# The SMS provider's side of the HTTP boundary (a fixture) and its settings, as the reminder
# tests have them.
sms_requests = test_reminders.sms_requests
SMS_ON = test_reminders.SMS_ON

HOUSEHOLDS = 40
# This month: the imported residents live there from today on. Due on the 15th; the reminder
# looked at is the first weekly one, a week after.
MONTH = Period.current()
DUE = MONTH.day(15)
WEEK_LATER = DUE + timedelta(days=7)


@override_settings(**SMS_ON, NOTIFY_QUIET_HOURS="21:00-08:00")
def test_an_estate_comes_in_from_a_workbook_is_billed_and_texted(
    sms_requests, django_capture_on_commit_callbacks, monkeypatch
):
    centre = Centre.objects.create(name="柯城区邻礼中心")
    company = PropertyCompany.objects.create(name="信安物业")
    # Arrears of a year ago: long past the reminders' weekly run, so only this month's bills
    # are reminded of below.
    workbook = estate_workbook(HOUSEHOLDS, company.name, str(MONTH.plus(-12)))

    # 1. The dry run reports every row and writes nothing; the import writes them all; the
    # same file again changes nothing.
    dry = estate_workbook_import(data=workbook, centre=centre, dry_run=True)
    assert dry.ok and not dry.committed
    assert not Community.objects.filter(name=ESTATE).exists()
    done = estate_workbook_import(data=workbook, centre=centre, dry_run=False)
    assert done.committed
    rows = sum(len(sheet.rows) for sheet in done.sheets)
    assert done.total("new") == rows == 1 + 1 + HOUSEHOLDS * 2 + HOUSEHOLDS // 10
    again = estate_workbook_import(data=workbook, centre=centre, dry_run=False)
    assert again.total("skip") == rows
    community = Community.objects.get(centre=centre, name=ESTATE)
    assert Household.objects.filter(building__community=community).count() == HOUSEHOLDS

    # 2. Three fee items besides the property fee, and a late-fee rule.
    agreement = Agreement.objects.create(
        community=community,
        effective_from=date(2026, 1, 1),
        fee_rate=Decimal("1.50"),
        holdback_share=Decimal("0.10"),
        payout_day=5,
    )
    ChargeItem.objects.create(
        agreement=agreement,
        code="garbage",
        name="垃圾清运费",
        method="fixed",
        unit_price=Decimal("10.00"),
    )
    parking = ChargeItem.objects.create(
        agreement=agreement,
        code="parking",
        name="车位管理费",
        method="fixed",
        unit_price=Decimal("150.00"),
        by_subscription=True,
    )
    ChargeItem.objects.create(
        agreement=agreement,
        code="water",
        name="水费",
        method="metered",
        unit_price=Decimal("3.00"),
        unit="m³",
        settlement="passthrough",
    )
    first = Household.objects.get(building__community=community, building__name="1幢", unit="1-101")
    ChargeSubscription.objects.create(household=first, item=parking)
    LateFeeRule.objects.create(
        community=community,
        name="滞纳金 0.05%/日",
        grace_days=5,
        daily_rate=Decimal("0.0005"),
        cap_rate=Decimal("0.1"),
    )
    readings = estate_workbook_import(
        data=readings_workbook(HOUSEHOLDS, str(MONTH)), centre=centre, dry_run=False
    )
    assert readings.committed and readings.total("new") == HOUSEHOLDS  # 12.5 m³ each

    # 3. The month's bills, a line per item.
    assert services.bill_generate_for_period(period=MONTH) == HOUSEHOLDS
    bill = Bill.objects.get(household=first, period=str(MONTH))
    assert [(line.name, line.amount) for line in bill.lines.order_by("position", "pk")] == [
        ("物业费", Decimal("90.75")),  # 60.5 m² × 1.50
        ("垃圾清运费", Decimal("10.00")),
        ("车位管理费", Decimal("150.00")),
        ("水费", Decimal("37.50")),
    ]
    assert (bill.amount, bill.passthrough_amount) == (Decimal("288.25"), Decimal("37.50"))
    month_lines = BillLine.objects.filter(bill__community=community, bill__period=str(MONTH))
    assert month_lines.count() == HOUSEHOLDS * 3 + 1

    # 4. A week after the due date: the late fee (2 days past the grace), then the weekly
    # reminder, texted to each resident who has not paid, at noon.
    day = WEEK_LATER
    assert charges.late_fees_assess(today=day) == HOUSEHOLDS
    bill.refresh_from_db()
    assert bill.amount == Decimal("288.54")  # + 288.25 × 0.0005 × 2 = 0.29
    noon = datetime(day.year, day.month, day.day, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    # The texts go out after the commit at the clock's time, not the run's `at`: noon too,
    # whatever time of day the tests run (inside the quiet hours they would wait, rightly).
    with monkeypatch.context() as clock:
        clock.setattr(timezone, "now", lambda: noon)
        with django_capture_on_commit_callbacks(execute=True):
            assert reminders.bill_reminders_send(today=day, at=noon) == HOUSEHOLDS

    assert len(sms_requests) == HOUSEHOLDS
    texted = {}
    for request in sms_requests:
        query = dict(parse_qsl(urlsplit(str(request.url)).query))
        assert query.pop("Signature") == channels.aliyun_signature("GET", query, "testSecret")
        texted[query["PhoneNumbers"]] = json.loads(query["TemplateParam"])
    assert len(texted) == HOUSEHOLDS
    assert texted["13900000000"] == {
        "period": str(MONTH),
        "amount": "288.54",
        "due": DUE.isoformat(),
    }
    assert Delivery.objects.filter(channel=Channel.SMS, status="sent").count() == HOUSEHOLDS
    # The same day's run again texts nobody twice.
    with django_capture_on_commit_callbacks(execute=True):
        reminders.bill_reminders_send(today=day, at=noon)
    assert len(sms_requests) == HOUSEHOLDS
