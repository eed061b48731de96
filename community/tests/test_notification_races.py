"""The notifications layer under real concurrency (PostgreSQL, threads): the same reminder
notified at once from several workers is sent once; several workers claiming one held message
send it once."""

import threading

import httpx
import pytest
from django.test import override_settings

from billing.tests.test_races import run_together
from community import channels, notifications
from community.notification_models import Channel, Delivery, Kind
from community.tests.factories import UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

SMS_ON = {
    "LINLI_SMS_PROVIDER": "aliyun",
    "ALIYUN_SMS_ACCESS_KEY_ID": "testId",
    "ALIYUN_SMS_ACCESS_KEY_SECRET": "testSecret",
    "ALIYUN_SMS_SIGN_NAME": "Linli",
    "ALIYUN_SMS_TEMPLATES": {"bill_reminder": "SMS_71390007", "ticket_update": ""},
    "NOTIFY_QUIET_HOURS": "",
}


@pytest.fixture
def sms_requests(monkeypatch):
    seen = []
    lock = threading.Lock()

    def answer(request):
        with lock:
            seen.append(request)
        return httpx.Response(200, json={"Code": "OK", "BizId": "b"})

    monkeypatch.setattr(channels, "TRANSPORT", httpx.MockTransport(answer))
    return seen


@override_settings(**SMS_ON)
def test_the_same_reminder_from_six_workers_at_once_is_sent_once(sms_requests):
    user = UserFactory(phone="13800138000", email="owner@example.org")

    def remind(i):
        return len(
            notifications.notify(
                user=user, kind=Kind.BILL_REMINDER, title="Fee due", key="bill-reminder:1:1:0"
            )
        )

    outcomes = run_together(6, remind)
    assert sorted(outcomes) == [0, 0, 0, 0, 0, 3]
    assert sorted(Delivery.objects.filter(user=user).values_list("channel", "status")) == [
        ("email", "sent"),
        ("in_app", "sent"),
        ("sms", "sent"),
    ]
    assert user.notices.count() == 1
    assert len(sms_requests) == 1


@override_settings(**{**SMS_ON, "NOTIFY_QUIET_HOURS": "00:00-23:59"})
def test_a_held_message_claimed_by_four_sweeps_at_once_is_sent_once(sms_requests):
    user = UserFactory(phone="13800138000", email="")
    notifications.notify(user=user, kind=Kind.BILL_REMINDER, title="x", key="k")
    sms = Delivery.objects.get(user=user, channel=Channel.SMS)
    assert sms.status == "deferred"
    Delivery.objects.filter(pk=sms.pk).update(not_before=None)

    with override_settings(NOTIFY_QUIET_HOURS=""):
        outcomes = run_together(4, lambda i: notifications.delivery_send(delivery_id=sms.pk))
    assert sorted(outcomes, key=str) == [None, None, None, "sent"]
    assert len(sms_requests) == 1
