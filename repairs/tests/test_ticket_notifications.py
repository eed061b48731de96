"""Ticket updates go through the notifications layer (community/notifications.py): the filer
is told of the resolution in-app and, as they chose, by text message; the escalation to the
manager once per deadline. Only Alibaba Cloud's HTTP side is replaced."""

import json
from datetime import timedelta
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from django.test import override_settings

from community import channels, notifications
from community.notification_models import Channel, Delivery
from repairs import services
from repairs.tests.factories import Estate

pytestmark = pytest.mark.django_db

SMS_ON = {
    "LINLI_SMS_PROVIDER": "aliyun",
    "ALIYUN_SMS_ACCESS_KEY_ID": "testId",
    "ALIYUN_SMS_ACCESS_KEY_SECRET": "testSecret",
    "ALIYUN_SMS_SIGN_NAME": "Linli",
    "ALIYUN_SMS_TEMPLATES": {"bill_reminder": "", "ticket_update": "SMS_71390008"},
    "NOTIFY_QUIET_HOURS": "",
}


@pytest.fixture
def sms_requests(monkeypatch):
    seen: list[httpx.Request] = []

    def answer(request):
        seen.append(request)
        return httpx.Response(200, json={"Code": "OK", "BizId": "b"})

    monkeypatch.setattr(channels, "TRANSPORT", httpx.MockTransport(answer))
    return seen


@override_settings(**SMS_ON)
def test_the_filer_is_texted_when_the_ticket_is_resolved(
    sms_requests, django_capture_on_commit_callbacks
):
    estate = Estate()
    estate.filer.phone = "13800138000"
    estate.filer.save(update_fields=["phone"])
    ticket = estate.repair()
    services.ticket_transition(ticket=ticket, actor=estate.staff, action="accept")
    with django_capture_on_commit_callbacks(execute=True):
        services.ticket_transition(ticket=ticket, actor=estate.staff, action="resolve")
    assert set(
        Delivery.objects.filter(user=estate.filer).values_list("channel", "kind", "status")
    ) == {
        ("in_app", "ticket_update", "sent"),
        ("email", "ticket_update", "unreachable"),
        ("sms", "ticket_update", "sent"),
    }
    (request,) = sms_requests
    query = dict(parse_qsl(urlsplit(str(request.url)).query))
    assert query.pop("Signature") == channels.aliyun_signature("GET", query, "testSecret")
    assert query["PhoneNumbers"] == "13800138000"
    assert query["TemplateCode"] == "SMS_71390008"
    assert json.loads(query["TemplateParam"]) == {"ticket": str(ticket.pk), "title": ticket.title}


@override_settings(**SMS_ON)
def test_a_filer_who_switched_ticket_updates_off_gets_the_notice_only(
    sms_requests, django_capture_on_commit_callbacks
):
    estate = Estate()
    estate.filer.phone = "13800138000"
    estate.filer.save(update_fields=["phone"])
    notifications.preference_set(user=estate.filer, ticket_updates=False)
    ticket = estate.repair()
    services.ticket_transition(ticket=ticket, actor=estate.staff, action="accept")
    with django_capture_on_commit_callbacks(execute=True):
        services.ticket_transition(ticket=ticket, actor=estate.staff, action="resolve")
    assert sms_requests == []
    assert Delivery.objects.get(user=estate.filer, channel=Channel.SMS).status == "opted_out"
    assert estate.filer.notices.filter(link=f"/repairs/{ticket.pk}/").count() == 1


def test_an_escalation_goes_through_the_layer_once_per_deadline():
    estate = Estate()
    ticket = estate.report()
    late = ticket.response_due + timedelta(minutes=1)
    assert services.ticket_escalate_overdue(now=late) == 1
    assert services.ticket_escalate_overdue(now=late + timedelta(minutes=5)) == 0
    keys = set(
        Delivery.objects.filter(user=estate.manager, channel=Channel.IN_APP).values_list(
            "key", flat=True
        )
    )
    assert len(keys) == 1
    assert keys.pop().startswith(f"repairs:ticket:{ticket.pk}:")
