"""Bill reminders by the schedule held as data (billing/reminders.py, billing.ReminderStep),
through the notifications layer: before due, on the day, weekly after; once per step and
firing; opt-out and quiet hours respected; residents texted through Alibaba Cloud SMS with a
request signed as the provider's published example is (community/tests/test_notifications.py
pins the signer to those examples)."""

import json
from datetime import date, datetime
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from django.db import IntegrityError, transaction
from django.db.models import F
from django.test import override_settings

from billing import reminders, services, tasks
from billing.models import Bill
from billing.reminder_models import ReminderStep
from billing.tests.factories import BillFactory, estate
from community import channels, notifications
from community.models import Notice
from community.notification_models import Channel, Delivery
from community.tests.factories import resident

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
DUE = date(2026, 3, 15)
SMS_ON = {
    "LINLI_SMS_PROVIDER": "aliyun",
    "ALIYUN_SMS_ACCESS_KEY_ID": "testId",
    "ALIYUN_SMS_ACCESS_KEY_SECRET": "testSecret",
    "ALIYUN_SMS_SIGN_NAME": "阿里云短信测试专用",
    "ALIYUN_SMS_ENDPOINT": "https://dysmsapi.aliyuncs.com/",
    "ALIYUN_SMS_TEMPLATES": {"bill_reminder": "SMS_71390007", "ticket_update": ""},
}


def noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, 0, tzinfo=SHANGHAI)


@pytest.fixture
def sms_requests(monkeypatch):
    """Alibaba Cloud's side of the HTTP boundary: every request, answered OK."""
    seen: list[httpx.Request] = []

    def answer(request):
        seen.append(request)
        return httpx.Response(200, json={"Code": "OK", "Message": "OK", "BizId": "biz-1"})

    monkeypatch.setattr(channels, "TRANSPORT", httpx.MockTransport(answer))
    return seen


def owed_bill(**kwargs):
    _, (home,) = estate(1)
    owner = resident(home, user__phone="13800138000", user__email="")
    bill = BillFactory(household=home, period="2026-03", due_date=DUE, **kwargs)
    return bill, owner


def test_the_seeded_schedule_is_before_due_on_due_and_weekly_after():
    assert list(
        ReminderStep.objects.values_list(
            "offset_days", "repeat_every_days", "max_repeats", "is_active"
        )
    ) == [(-3, None, 0, True), (0, None, 0, True), (7, 7, 11, True)]


@pytest.mark.parametrize(
    ("offset", "every", "repeats", "day", "expected"),
    [
        (-3, None, 0, date(2026, 3, 12), 0),
        (-3, None, 0, date(2026, 3, 13), None),
        (0, None, 0, DUE, 0),
        (7, 7, 11, date(2026, 3, 21), None),
        (7, 7, 11, date(2026, 3, 22), 0),
        (7, 7, 11, date(2026, 3, 29), 1),
        (7, 7, 11, date(2026, 3, 30), None),
        (7, 7, 11, date(2026, 6, 7), 11),
        (7, 7, 11, date(2026, 6, 14), None),  # past the last repeat
    ],
)
def test_which_firing_falls_on_a_day(offset, every, repeats, day, expected):
    step = ReminderStep(name="s", offset_days=offset, repeat_every_days=every, max_repeats=repeats)
    assert step.occurrence_on(due_date=DUE, day=day) == expected
    assert (DUE in step.due_dates_firing_on(day)) == (expected is not None)


def test_reminders_follow_the_schedule_once_per_firing(django_capture_on_commit_callbacks):
    bill, owner = owed_bill()
    steps = {s.offset_days: s.pk for s in ReminderStep.objects.all()}
    sent = {}
    for day in [date(2026, 3, 11), date(2026, 3, 12), DUE, date(2026, 3, 22), date(2026, 3, 29)]:
        with django_capture_on_commit_callbacks(execute=True):
            sent[day] = reminders.bill_reminders_send(today=day, at=noon(day))
            # The same day again (a second beat, a retry): nothing more.
            assert reminders.bill_reminders_send(today=day, at=noon(day)) == 0
    assert sent == {
        date(2026, 3, 11): 0,
        date(2026, 3, 12): 1,
        DUE: 1,
        date(2026, 3, 22): 1,
        date(2026, 3, 29): 1,
    }
    assert list(
        Notice.objects.filter(user=owner).order_by("pk").values_list("dedupe_key", flat=True)
    ) == [
        f"bill-reminder:{bill.pk}:{steps[-3]}:0",
        f"bill-reminder:{bill.pk}:{steps[0]}:0",
        f"bill-reminder:{bill.pk}:{steps[7]}:0",
        f"bill-reminder:{bill.pk}:{steps[7]}:1",
    ]
    titles = list(Notice.objects.filter(user=owner).order_by("pk").values_list("title", flat=True))
    assert titles[0] != titles[1] != titles[2]  # before, on and after the due date read apart


@pytest.mark.summary_bypassed  # a bill marked paid in SQL
def test_paid_and_waived_bills_get_no_reminder():
    paid, owner = owed_bill()
    Bill.objects.filter(pk=paid.pk).update(status=Bill.Status.PAID, paid_amount=F("amount"))
    BillFactory(household=paid.household, period="2026-02", due_date=DUE, status="waived")
    assert reminders.bill_reminders_send(today=DUE, at=noon(DUE)) == 0
    assert Notice.objects.filter(user=owner).count() == 0
    assert Delivery.objects.count() == 0


def test_an_inactive_step_sends_nothing():
    owed_bill()
    ReminderStep.objects.filter(offset_days=0).update(is_active=False)
    assert reminders.bill_reminders_send(today=DUE, at=noon(DUE)) == 0
    assert Delivery.objects.count() == 0


@override_settings(**SMS_ON, NOTIFY_QUIET_HOURS="21:00-08:00")
def test_residents_get_sms_reminders_signed_as_alibaba_clouds_example(
    sms_requests, monkeypatch, django_capture_on_commit_callbacks
):
    # The published example's nonce and time, so the request is signed from the same inputs
    # the document uses (only the phone, template variables and OutId are ours).
    monkeypatch.setattr(channels, "_nonce", lambda: "45e25e9b-0a6f-4070-8c85-2956eda1b466")
    monkeypatch.setattr(channels, "_timestamp", lambda: "2017-07-12T02:42:19Z")
    # The messages go out after the commit, at the clock's time, not the run's `at`: at noon,
    # whatever time of day the tests run (inside the quiet hours they would wait, rightly).
    monkeypatch.setattr(notifications.timezone, "now", lambda: noon(DUE))
    bill, owner = owed_bill()
    housemate = resident(bill.household, user__phone="13900139000", user__email="")
    with django_capture_on_commit_callbacks(execute=True):
        assert reminders.bill_reminders_send(today=DUE, at=noon(DUE)) == 2

    assert len(sms_requests) == 2
    phones = []
    for request in sms_requests:
        assert request.method == "GET"
        assert str(request.url).startswith("https://dysmsapi.aliyuncs.com/?Signature=")
        query = dict(parse_qsl(urlsplit(str(request.url)).query))
        signature = query.pop("Signature")
        assert signature == channels.aliyun_signature("GET", query, "testSecret")
        assert {k: query[k] for k in ("AccessKeyId", "Action", "Version", "SignName")} == {
            "AccessKeyId": "testId",
            "Action": "SendSms",
            "Version": "2017-05-25",
            "SignName": "阿里云短信测试专用",
        }
        assert query["SignatureNonce"] == "45e25e9b-0a6f-4070-8c85-2956eda1b466"
        assert query["TemplateCode"] == "SMS_71390007"
        assert json.loads(query["TemplateParam"]) == {
            "period": "2026-03",
            "amount": str(bill.amount),
            "due": "2026-03-15",
        }
        phones.append(query["PhoneNumbers"])
    assert sorted(phones) == ["13800138000", "13900139000"]
    assert set(Delivery.objects.filter(channel=Channel.SMS).values_list("user_id", "status")) == {
        (owner.pk, "sent"),
        (housemate.pk, "sent"),
    }


@override_settings(**SMS_ON, NOTIFY_QUIET_HOURS="21:00-08:00")
def test_an_opted_out_resident_gets_no_text_but_keeps_the_notice(
    sms_requests, django_capture_on_commit_callbacks
):
    _, owner = owed_bill()
    notifications.preference_set(user=owner, bill_reminders=False)
    with django_capture_on_commit_callbacks(execute=True):
        reminders.bill_reminders_send(today=DUE, at=noon(DUE))
    assert sms_requests == []
    assert Delivery.objects.get(user=owner, channel=Channel.SMS).status == "opted_out"
    assert Notice.objects.filter(user=owner).count() == 1


@override_settings(**SMS_ON, NOTIFY_QUIET_HOURS="21:00-08:00")
def test_a_run_in_the_quiet_hours_holds_the_texts_until_morning(
    sms_requests, django_capture_on_commit_callbacks
):
    _, owner = owed_bill()
    late = datetime(2026, 3, 15, 22, 0, tzinfo=SHANGHAI)
    with django_capture_on_commit_callbacks(execute=True):
        reminders.bill_reminders_send(today=DUE, at=late)
    sms = Delivery.objects.get(user=owner, channel=Channel.SMS)
    assert (sms.status, sms.not_before) == (
        "deferred",
        datetime(2026, 3, 16, 8, 0, tzinfo=SHANGHAI),
    )
    assert sms_requests == []
    assert Notice.objects.filter(user=owner).count() == 1


def test_the_overdue_reminder_goes_through_the_layer_once(django_capture_on_commit_callbacks):
    bill, owner = owed_bill()
    with django_capture_on_commit_callbacks(execute=True):
        assert services.bill_mark_overdue(today=date(2026, 3, 20)) == 1
        assert services.bill_mark_overdue(today=date(2026, 3, 21)) == 0
    assert list(
        Delivery.objects.filter(user=owner)
        .order_by("channel")
        .values_list("channel", "kind", "key", "status")
    ) == [
        ("email", "bill_reminder", f"bill-overdue:{bill.pk}", "unreachable"),  # no address
        ("in_app", "bill_reminder", f"bill-overdue:{bill.pk}", "sent"),
    ]
    assert Delivery.objects.get(user=owner, channel="in_app").params == {
        "period": "2026-03",
        "amount": str(bill.amount),
        "due": "2026-03-15",
    }


def test_the_daily_task_sends_todays_reminders(monkeypatch):
    owed_bill()
    monkeypatch.setattr(
        reminders.timezone, "now", lambda: datetime(2026, 3, 15, 9, 10, tzinfo=SHANGHAI)
    )
    assert tasks.send_bill_reminders.delay().get() == 1
    assert tasks.send_bill_reminders.delay().get() == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"offset_days": 7, "max_repeats": 3},  # repeats without an interval
        {"offset_days": 7, "repeat_every_days": 0},
        {"offset_days": -61},
    ],
)
def test_the_schedule_refuses_steps_that_make_no_sense(fields):
    before = ReminderStep.objects.count()
    with pytest.raises(IntegrityError), transaction.atomic():
        ReminderStep.objects.create(name="bad", **fields)
    assert ReminderStep.objects.count() == before
