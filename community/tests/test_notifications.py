"""The notifications layer (community/notifications.py, community/channels.py): the Aliyun SMS
signer against Alibaba Cloud's published examples, once per key, opt-out, quiet hours, retries
only for retryable errors, the settings page and API. Only the HTTP boundary is replaced
(channels.TRANSPORT, an httpx.MockTransport)."""

import json
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from django.core import mail
from django.core.cache import cache
from django.test import override_settings

from community import channels, notifications
from community.models import Notice
from community.notification_models import Channel, Delivery, Kind, NotificationPreference
from community.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOON = datetime(2026, 3, 2, 12, 0, tzinfo=SHANGHAI)
NIGHT = datetime(2026, 3, 2, 23, 30, tzinfo=SHANGHAI)

# The example of Alibaba Cloud's SMS signature document (短信服务 "签名机制",
# https://help.aliyun.com/document_detail/101343.htm): AccessKey testId / testSecret.
SMS_EXAMPLE_URL = (
    "http://dysmsapi.aliyuncs.com/?Signature=zJDF%2BLrzhj%2FThnlvIToysFRq6t4%3D"
    "&AccessKeyId=testId&Action=SendSms&Format=XML&OutId=123&PhoneNumbers=15300000001"
    "&RegionId=cn-hangzhou&SignName=%E9%98%BF%E9%87%8C%E4%BA%91%E7%9F%AD%E4%BF%A1%E6%B5%8B"
    "%E8%AF%95%E4%B8%93%E7%94%A8&SignatureMethod=HMAC-SHA1"
    "&SignatureNonce=45e25e9b-0a6f-4070-8c85-2956eda1b466&SignatureVersion=1.0"
    "&TemplateCode=SMS_71390007&TemplateParam=%7B%22customer%22%3A%22test%22%7D"
    "&Timestamp=2017-07-12T02%3A42%3A19Z&Version=2017-05-25"
)
SMS_ON = {
    "LINLI_SMS_PROVIDER": "aliyun",
    "ALIYUN_SMS_ACCESS_KEY_ID": "testId",
    "ALIYUN_SMS_ACCESS_KEY_SECRET": "testSecret",
    "ALIYUN_SMS_SIGN_NAME": "阿里云短信测试专用",
    "ALIYUN_SMS_ENDPOINT": "https://dysmsapi.aliyuncs.com/",
    "ALIYUN_SMS_TEMPLATES": {"bill_reminder": "SMS_71390007", "ticket_update": "SMS_71390008"},
}
WECHAT_ON = {
    "WECHAT_MP_APPID": "wx-test-app",
    "WECHAT_MP_SECRET": "wx-test-secret",
    "WECHAT_MP_TEMPLATES": {"bill_reminder": "tmpl-bill", "ticket_update": ""},
    "WECHAT_MP_FIELDS": {"bill_reminder": {"period": "thing1", "amount": "amount2"}},
}


class Provider:
    """The far side of the HTTP boundary: records each request, answers from a queue (the last
    answer repeats)."""

    def __init__(self):
        self.requests: list[httpx.Request] = []
        self.answers: list[httpx.Response] = [
            httpx.Response(200, json={"Code": "OK", "Message": "OK", "BizId": "900619746936498440"})
        ]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def query(self, index: int = -1) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(str(self.requests[index].url)).query))


@pytest.fixture
def provider(monkeypatch):
    far_side = Provider()
    monkeypatch.setattr(channels, "TRANSPORT", httpx.MockTransport(far_side))
    cache.delete(channels.WECHAT_TOKEN_CACHE_KEY)
    return far_side


# --- the signer, against Alibaba Cloud's published examples --------------------------------------


def test_signer_reproduces_alibaba_clouds_published_rpc_example():
    # Alibaba Cloud's RPC signature document (签名机制, DescribeRegions with testid / testsecret).
    params = {
        "TimeStamp": "2016-02-23T12:46:24Z",
        "Format": "XML",
        "AccessKeyId": "testid",
        "Action": "DescribeRegions",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
        "Version": "2014-05-26",
        "SignatureVersion": "1.0",
    }
    assert channels.aliyun_string_to_sign("GET", params) == (
        "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML"
        "%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"
        "%26SignatureVersion%3D1.0%26TimeStamp%3D2016-02-23T12%253A46%253A24Z"
        "%26Version%3D2014-05-26"
    )
    assert channels.aliyun_signature("GET", params, "testsecret") == "CT9X0VtwR86fNWSnsc6v8YGOjuE="


def test_signer_reproduces_the_published_sendsms_example():
    params = {
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
        "AccessKeyId": "testId",
        "SignatureVersion": "1.0",
        "Timestamp": "2017-07-12T02:42:19Z",
        "Format": "XML",
        "Action": "SendSms",
        "Version": "2017-05-25",
        "RegionId": "cn-hangzhou",
        "PhoneNumbers": "15300000001",
        "SignName": "阿里云短信测试专用",
        "TemplateParam": '{"customer":"test"}',
        "TemplateCode": "SMS_71390007",
        "OutId": "123",
    }
    assert channels.aliyun_signature("GET", params, "testSecret") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="
    assert (
        channels.aliyun_signed_url("http://dysmsapi.aliyuncs.com/", params, "testSecret")
        == SMS_EXAMPLE_URL
    )


def test_percent_encoding_is_alibaba_clouds_not_form_encoding():
    assert channels.percent_encode("a b*c~d+e/f") == "a%20b%2Ac~d%2Be%2Ff"
    assert channels.percent_encode("物业") == "%E7%89%A9%E4%B8%9A"


def test_the_sms_adapter_sends_exactly_the_published_example_request(provider, monkeypatch):
    """The adapter, given the example's inputs (nonce, time, format, OutId), puts on the wire
    the very URL Alibaba Cloud's document shows, signature included."""
    monkeypatch.setattr(channels, "_nonce", lambda: "45e25e9b-0a6f-4070-8c85-2956eda1b466")
    monkeypatch.setattr(channels, "_timestamp", lambda: "2017-07-12T02:42:19Z")
    monkeypatch.setattr(channels.AliyunSms, "response_format", "XML")
    user = UserFactory(phone="15300000001")
    delivery = Delivery(pk=123, user=user, channel=Channel.SMS, kind=Kind.BILL_REMINDER, title="t")
    delivery.params = {"customer": "test"}
    with override_settings(**{**SMS_ON, "ALIYUN_SMS_ENDPOINT": "http://dysmsapi.aliyuncs.com/"}):
        assert channels.AliyunSms.from_settings().send(delivery) == "900619746936498440"
    assert [str(request.url) for request in provider.requests] == [SMS_EXAMPLE_URL]
    assert provider.requests[0].method == "GET"


# --- notify: once per key, channels, opt-out -----------------------------------------------------


def test_notify_writes_the_notice_and_mails_once_per_key(django_capture_on_commit_callbacks):
    user = UserFactory(email="owner@example.org", phone="")
    with django_capture_on_commit_callbacks(execute=True):
        first = notifications.notify(
            user=user, kind=Kind.BILL_REMINDER, title="Fee due", body="Pay", key="k:1", at=NOON
        )
        again = notifications.notify(
            user=user, kind=Kind.BILL_REMINDER, title="Fee due", body="Pay", key="k:1", at=NOON
        )
    assert [d.channel for d in first] == [Channel.IN_APP, Channel.EMAIL]
    assert again == []
    assert Notice.objects.filter(user=user, dedupe_key="k:1").count() == 1
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["owner@example.org"]
    assert dict(Delivery.objects.filter(user=user).values_list("channel", "status")) == {
        "in_app": "sent",
        "email": "sent",
    }


def test_a_notice_sent_before_the_layer_is_not_sent_again(django_capture_on_commit_callbacks):
    user = UserFactory(email="")
    Notice.objects.create(user=user, title="old", dedupe_key="bill-overdue:7")
    notifications.notify(user=user, kind=Kind.BILL_REMINDER, title="new", key="bill-overdue:7")
    assert list(Notice.objects.filter(user=user).values_list("title", flat=True)) == ["old"]


def test_unknown_kind_is_refused_and_writes_nothing():
    user = UserFactory()
    with pytest.raises(ValueError):
        notifications.notify(user=user, kind="spam", title="x", key="k")
    assert Delivery.objects.count() == 0
    assert Notice.objects.count() == 0


@override_settings(**SMS_ON, NOTIFY_QUIET_HOURS="")
def test_resident_gets_an_sms_signed_with_the_verified_signer(
    provider, django_capture_on_commit_callbacks
):
    user = UserFactory(phone="13800138000", email="")
    with django_capture_on_commit_callbacks(execute=True):
        notifications.notify(
            user=user,
            kind=Kind.BILL_REMINDER,
            title="Fee due",
            key="bill-reminder:1:1:0",
            params={"period": "2026-03", "amount": "123.45", "due": "2026-03-15"},
        )
    sms = Delivery.objects.get(user=user, channel=Channel.SMS)
    assert (sms.status, sms.provider_reference, sms.attempts) == ("sent", "900619746936498440", 1)
    assert len(provider.requests) == 1
    query = provider.query()
    signature = query.pop("Signature")
    assert signature == channels.aliyun_signature("GET", query, "testSecret")
    assert query["PhoneNumbers"] == "13800138000"
    assert query["TemplateCode"] == "SMS_71390007"
    assert query["SignName"] == "阿里云短信测试专用"
    assert query["OutId"] == str(sms.pk)
    assert json.loads(query["TemplateParam"]) == {
        "period": "2026-03",
        "amount": "123.45",
        "due": "2026-03-15",
    }


@override_settings(**SMS_ON, NOTIFY_QUIET_HOURS="")
def test_sms_off_until_configured_and_without_a_template_per_kind(provider):
    user = UserFactory(phone="13800138000")
    with override_settings(LINLI_SMS_PROVIDER=""):
        notifications.notify(user=user, kind=Kind.BILL_REMINDER, title="x", key="a")
    with override_settings(ALIYUN_SMS_TEMPLATES={"bill_reminder": ""}):
        notifications.notify(user=user, kind=Kind.BILL_REMINDER, title="x", key="b")
    notifications.notify(user=user, kind=Kind.GENERAL, title="x", key="c")
    assert not Delivery.objects.filter(channel=Channel.SMS).exists()
    assert provider.requests == []


@override_settings(**SMS_ON, NOTIFY_QUIET_HOURS="")
def test_opt_out_per_kind_and_per_channel_is_recorded_and_nothing_is_sent(
    provider, django_capture_on_commit_callbacks
):
    user = UserFactory(phone="13800138000", email="a@example.org")
    notifications.preference_set(user=user, bill_reminders=False)
    other = UserFactory(phone="13900139000", email="")
    notifications.preference_set(user=other, sms=False)
    with django_capture_on_commit_callbacks(execute=True):
        notifications.notify(user=user, kind=Kind.BILL_REMINDER, title="x", key="k")
        notifications.notify(user=other, kind=Kind.TICKET_UPDATE, title="y", key="k")
    assert dict(Delivery.objects.filter(user=user).values_list("channel", "status")) == {
        "in_app": "sent",
        "email": "opted_out",
        "sms": "opted_out",
    }
    assert Delivery.objects.get(user=other, channel=Channel.SMS).status == "opted_out"
    assert provider.requests == []
    assert mail.outbox == []
    # The in-app notice is kept whatever the switches say.
    assert Notice.objects.filter(user__in=[user, other]).count() == 2


@override_settings(**SMS_ON, NOTIFY_QUIET_HOURS="")
def test_no_phone_number_is_recorded_as_unreachable(provider):
    user = UserFactory(phone=" ")
    notifications.notify(user=user, kind=Kind.BILL_REMINDER, title="x", key="k")
    assert Delivery.objects.get(user=user, channel=Channel.SMS).status == "unreachable"
    assert provider.requests == []


# --- quiet hours ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "at", "until"),
    [
        ("21:00-08:00", datetime(2026, 3, 2, 23, 30), datetime(2026, 3, 3, 8, 0)),
        ("21:00-08:00", datetime(2026, 3, 3, 7, 59), datetime(2026, 3, 3, 8, 0)),
        ("21:00-08:00", datetime(2026, 3, 3, 8, 0), None),
        ("21:00-08:00", datetime(2026, 3, 2, 20, 59), None),
        ("12:00-14:00", datetime(2026, 3, 2, 13, 0), datetime(2026, 3, 2, 14, 0)),
        ("", datetime(2026, 3, 2, 23, 30), None),
    ],
)
def test_quiet_hours_window(window, at, until):
    with override_settings(NOTIFY_QUIET_HOURS=window):
        found = notifications.quiet_until(at.replace(tzinfo=SHANGHAI))
    assert found == (until.replace(tzinfo=SHANGHAI) if until else None)


@override_settings(**SMS_ON, NOTIFY_QUIET_HOURS="21:00-08:00")
def test_sms_at_night_is_held_until_the_quiet_hours_end_not_dropped(
    provider, django_capture_on_commit_callbacks
):
    user = UserFactory(phone="13800138000", email="a@example.org")
    with django_capture_on_commit_callbacks(execute=True):
        notifications.notify(user=user, kind=Kind.BILL_REMINDER, title="x", key="k", at=NIGHT)
    sms = Delivery.objects.get(user=user, channel=Channel.SMS)
    assert sms.status == "deferred"
    assert sms.not_before == datetime(2026, 3, 3, 8, 0, tzinfo=SHANGHAI)
    assert provider.requests == []
    assert len(mail.outbox) == 1  # e-mail rings no phone: not held
    # Before the end nothing is due; from 08:00 the sweep sends it, once.
    assert notifications.deliveries_due(now=datetime(2026, 3, 3, 7, 59, tzinfo=SHANGHAI)) == []
    morning = datetime(2026, 3, 3, 8, 0, tzinfo=SHANGHAI)
    assert notifications.deliveries_due(now=morning) == [sms.pk]
    assert notifications.delivery_send(delivery_id=sms.pk, now=morning) == "sent"
    assert notifications.delivery_send(delivery_id=sms.pk, now=morning) is None
    assert len(provider.requests) == 1


@override_settings(**SMS_ON, NOTIFY_QUIET_HOURS="21:00-08:00")
def test_a_queued_sms_that_reaches_the_worker_at_night_is_held_again(provider):
    user = UserFactory(phone="13800138000")
    notifications.notify(user=user, kind=Kind.BILL_REMINDER, title="x", key="k", at=NOON)
    sms = Delivery.objects.get(user=user, channel=Channel.SMS)
    assert notifications.delivery_send(delivery_id=sms.pk, now=NIGHT) == "deferred"
    sms.refresh_from_db()
    assert sms.not_before == datetime(2026, 3, 3, 8, 0, tzinfo=SHANGHAI)
    assert provider.requests == []


# --- failures and retries ------------------------------------------------------------------------


@override_settings(**SMS_ON, NOTIFY_QUIET_HOURS="")
def test_throttled_sms_is_retried_later_and_then_sent(provider, django_capture_on_commit_callbacks):
    provider.answers = [
        httpx.Response(200, json={"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "limit"}),
        httpx.Response(200, json={"Code": "OK", "BizId": "42"}),
    ]
    user = UserFactory(phone="13800138000")
    with django_capture_on_commit_callbacks(execute=True):
        notifications.notify(user=user, kind=Kind.BILL_REMINDER, title="x", key="k", at=NOON)
    sms = Delivery.objects.get(user=user, channel=Channel.SMS)
    assert (sms.status, sms.attempts) == ("pending", 1)
    assert "isv.BUSINESS_LIMIT_CONTROL" in sms.error
    assert notifications.delivery_send(delivery_id=sms.pk, now=sms.not_before) == "sent"
    sms.refresh_from_db()
    assert (sms.status, sms.attempts, sms.provider_reference) == ("sent", 2, "42")


@override_settings(**SMS_ON, NOTIFY_QUIET_HOURS="")
def test_a_bad_number_fails_at_once_and_is_not_retried(
    provider, django_capture_on_commit_callbacks
):
    provider.answers = [
        httpx.Response(200, json={"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "bad"})
    ]
    user = UserFactory(phone="123")
    with django_capture_on_commit_callbacks(execute=True):
        notifications.notify(user=user, kind=Kind.BILL_REMINDER, title="x", key="k", at=NOON)
    sms = Delivery.objects.get(user=user, channel=Channel.SMS)
    assert (sms.status, sms.attempts, sms.not_before) == ("failed", 1, None)
    assert notifications.deliveries_due(now=NOON.replace(year=2027)) == []


@override_settings(**SMS_ON, NOTIFY_QUIET_HOURS="")
def test_network_errors_are_retried_until_the_last_attempt(provider):
    provider.answers = [httpx.ConnectError("down")]
    user = UserFactory(phone="13800138000")
    notifications.notify(user=user, kind=Kind.BILL_REMINDER, title="x", key="k", at=NOON)
    sms = Delivery.objects.get(user=user, channel=Channel.SMS)
    statuses = []
    for day in range(1, notifications.MAX_ATTEMPTS + 1):  # each try after the previous backoff
        later = NOON.replace(day=day + 2)
        statuses.append(notifications.delivery_send(delivery_id=sms.pk, now=later))
    assert statuses == ["pending"] * (notifications.MAX_ATTEMPTS - 1) + ["failed"]
    assert len(provider.requests) == notifications.MAX_ATTEMPTS


def test_an_address_removed_after_queueing_fails_without_sending():
    user = UserFactory(email="owner@example.org")
    notifications.notify(user=user, kind=Kind.TICKET_UPDATE, title="x", key="k", at=NOON)
    user.email = ""
    user.save(update_fields=["email"])
    email = Delivery.objects.get(user=user, channel=Channel.EMAIL)
    assert notifications.delivery_send(delivery_id=email.pk, now=NOON) == "failed"
    assert mail.outbox == []


# --- WeChat subscription messages ----------------------------------------------------------------


@override_settings(**WECHAT_ON, NOTIFY_QUIET_HOURS="")
def test_wechat_subscription_message_with_a_cached_access_token(
    provider, django_capture_on_commit_callbacks
):
    provider.answers = [
        httpx.Response(200, json={"access_token": "TOKEN", "expires_in": 7200}),
        httpx.Response(200, json={"errcode": 0, "errmsg": "ok", "msgid": 7}),
    ]
    user = UserFactory()
    notifications.preference_set(user=user)
    NotificationPreference.objects.filter(user=user).update(wechat_openid="o-openid")
    with django_capture_on_commit_callbacks(execute=True):
        notifications.notify(
            user=user,
            kind=Kind.BILL_REMINDER,
            title="x",
            key="k",
            params={"period": "2026-03", "amount": "12.00"},
            at=NOON,
        )
    wechat = Delivery.objects.get(user=user, channel=Channel.WECHAT)
    assert (wechat.status, wechat.provider_reference) == ("sent", "7")
    token_request, send_request = provider.requests
    assert dict(token_request.url.params) == {
        "grant_type": "client_credential",
        "appid": "wx-test-app",
        "secret": "wx-test-secret",
    }
    assert send_request.url.params["access_token"] == "TOKEN"
    assert json.loads(send_request.content) == {
        "touser": "o-openid",
        "template_id": "tmpl-bill",
        "data": {"thing1": {"value": "2026-03"}, "amount2": {"value": "12.00"}},
    }
    assert cache.get(channels.WECHAT_TOKEN_CACHE_KEY) == "TOKEN"


@override_settings(**WECHAT_ON, NOTIFY_QUIET_HOURS="")
def test_wechat_without_openid_or_template_sends_nothing(provider):
    user = UserFactory()
    notifications.notify(user=user, kind=Kind.BILL_REMINDER, title="x", key="k")
    notifications.notify(user=user, kind=Kind.TICKET_UPDATE, title="x", key="t")
    assert list(Delivery.objects.filter(channel=Channel.WECHAT).values_list("key", "status")) == [
        ("k", "unreachable")
    ]
    assert provider.requests == []


@override_settings(**WECHAT_ON, NOTIFY_QUIET_HOURS="")
def test_wechat_refusal_by_the_person_is_final(provider, django_capture_on_commit_callbacks):
    cache.set(channels.WECHAT_TOKEN_CACHE_KEY, "TOKEN")
    provider.answers = [httpx.Response(200, json={"errcode": 43101, "errmsg": "user refuse"})]
    user = UserFactory()
    NotificationPreference.objects.create(user=user, wechat_openid="o-openid")
    with django_capture_on_commit_callbacks(execute=True):
        notifications.notify(user=user, kind=Kind.BILL_REMINDER, title="x", key="k", at=NOON)
    wechat = Delivery.objects.get(user=user, channel=Channel.WECHAT)
    assert wechat.status == "failed"
    assert "43101" in wechat.error


# --- preferences: service, page, API -------------------------------------------------------------


def test_preference_set_refuses_unknown_names_and_non_booleans_and_changes_nothing():
    from django.core.exceptions import ValidationError

    user = UserFactory()
    with pytest.raises(ValidationError):
        notifications.preference_set(user=user, wechat_openid="x")
    with pytest.raises(ValidationError):
        notifications.preference_set(user=user, sms="no")
    assert not NotificationPreference.objects.filter(user=user).exists()


def test_settings_page_shows_and_saves_the_switches(client):
    user = UserFactory()
    client.force_login(user)
    page = client.get("/notices/settings/")
    assert page.status_code == 200
    assert b'name="bill_reminders"' in page.content
    assert b'name="sms"' not in page.content  # SMS not configured: not offered
    response = client.post("/notices/settings/", {"ticket_updates": "on", "email": "on"})
    assert response.status_code == 302
    preference = NotificationPreference.objects.get(user=user)
    assert (preference.bill_reminders, preference.ticket_updates, preference.email) == (
        False,
        True,
        True,
    )


@override_settings(**SMS_ON)
def test_settings_page_offers_sms_once_configured(client):
    client.force_login(UserFactory())
    assert b'name="sms"' in client.get("/notices/settings/").content


def test_api_reads_and_patches_the_callers_switches(as_user):
    user = UserFactory()
    body = as_user(user).get("/api/v1/me/notifications/").json()
    assert body == {
        "bill_reminders": True,
        "ticket_updates": True,
        "email": True,
        "sms": True,
        "wechat": True,
        "channels": ["in_app", "email"],
        "quiet_hours": "21:00\u201308:00",
    }
    response = as_user(user).patch("/api/v1/me/notifications/", {"sms": False}, format="json")
    assert response.status_code == 200
    assert response.json()["sms"] is False
    assert NotificationPreference.objects.get(user=user).sms is False


@pytest.mark.parametrize(
    "payload", [{"sms": "perhaps"}, {"openid": "x"}, {"wechat_openid": "x"}, {"sms": None}]
)
def test_api_refuses_bad_input_with_400_and_changes_nothing(as_user, payload):
    user = UserFactory()
    response = as_user(user).patch("/api/v1/me/notifications/", payload, format="json")
    assert response.status_code == 400
    assert not NotificationPreference.objects.filter(user=user).exists()


def test_api_needs_sign_in(api_client):
    assert api_client.get("/api/v1/me/notifications/").status_code == 401
    assert api_client.patch("/api/v1/me/notifications/", {"sms": False}).status_code == 401
    assert NotificationPreference.objects.count() == 0


# --- settings: off until configured ---------------------------------------------------------------


def test_sms_settings_are_off_by_default_and_refuse_half_a_configuration():
    from tests.test_settings import run_django

    show = (
        "import django; django.setup(); from community import channels;"
        "print(*channels.enabled_channels())"
    )
    off = run_django(["-c", show], {"DEBUG": "true"})
    assert off.returncode == 0, off.stderr
    assert off.stdout.split() == ["in_app", "email"]
    half = run_django(["-c", show], {"DEBUG": "true", "LINLI_SMS_PROVIDER": "aliyun"})
    assert half.returncode != 0
    assert (
        "ALIYUN_SMS_ACCESS_KEY_ID, ALIYUN_SMS_ACCESS_KEY_SECRET, ALIYUN_SMS_SIGN_NAME required"
        in half.stderr
    )
    on = run_django(
        ["-c", show],
        {
            "DEBUG": "true",
            "LINLI_SMS_PROVIDER": "aliyun",
            "ALIYUN_SMS_ACCESS_KEY_ID": "id",
            "ALIYUN_SMS_ACCESS_KEY_SECRET": "secret",
            "ALIYUN_SMS_SIGN_NAME": "Linli",
            "WECHAT_MP_APPID": "wx",
            "WECHAT_MP_SECRET": "s",
        },
    )
    assert on.returncode == 0, on.stderr
    assert on.stdout.split() == ["in_app", "email", "sms", "wechat"]


# --- beat ---------------------------------------------------------------------------------------


def test_the_beat_names_registered_tasks():
    from django.conf import settings

    from config.celery import app

    app.loader.import_default_modules()
    for entry in ["billing-send-bill-reminders", "community-send-due-deliveries"]:
        assert settings.CELERY_BEAT_SCHEDULE[entry]["task"] in app.tasks


@override_settings(**SMS_ON, NOTIFY_QUIET_HOURS="21:00-08:00")
def test_the_sweep_task_sends_what_the_quiet_hours_held(provider, monkeypatch):
    from community import tasks

    user = UserFactory(phone="13800138000", email="")
    notifications.notify(user=user, kind=Kind.BILL_REMINDER, title="x", key="k", at=NIGHT)
    clock = {"now": datetime(2026, 3, 3, 7, 55, tzinfo=SHANGHAI)}
    monkeypatch.setattr(notifications.timezone, "now", lambda: clock["now"])
    assert tasks.send_due_deliveries.delay().get() == 0
    assert provider.requests == []
    clock["now"] = datetime(2026, 3, 3, 8, 5, tzinfo=SHANGHAI)
    assert tasks.send_due_deliveries.delay().get() == 1
    assert Delivery.objects.get(user=user, channel=Channel.SMS).status == "sent"
    assert len(provider.requests) == 1


def test_a_broker_outage_leaves_the_message_for_the_sweep(
    monkeypatch, django_capture_on_commit_callbacks
):
    from kombu.exceptions import OperationalError

    from community import tasks

    def down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(tasks.send_delivery, "delay", down)
    user = UserFactory(email="owner@example.org")
    with django_capture_on_commit_callbacks(execute=True):
        notifications.notify(user=user, kind=Kind.TICKET_UPDATE, title="x", key="k", at=NOON)
    email = Delivery.objects.get(user=user, channel=Channel.EMAIL)
    assert email.status == "pending"
    assert mail.outbox == []
    later = email.created_at + timedelta(minutes=notifications.ORPHAN_MINUTES)
    assert notifications.deliveries_due(now=later) == [email.pk]
