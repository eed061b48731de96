"""A resident pays through Alipay end to end: the payment is created with the real Alipay
adapter (a signed URL, no network), Alipay's RSA2-signed notification reaches the portal's
notify endpoint, and the bills are paid. Only Alipay's servers are missing."""

from decimal import Decimal

import pytest
from django.test import override_settings

from billing.models import Bill, Payment, Posting
from billing.tests.factories import BillFactory, estate
from billing.tests.test_gateway_alipay import (
    OTHER_KEY,
    SETTINGS,
    notification_params,
    signed_body,
)
from community.tests.factories import resident

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def alipay_on():
    with override_settings(**SETTINGS, PAYMENT_GATEWAYS=["sandbox", "alipay"]):
        yield


def test_paying_through_alipay(as_user, client):
    _, (home,) = estate(1)
    bill = BillFactory(household=home, amount=Decimal("123.45"))
    created = as_user(resident(home)).post(
        "/api/v1/payments/",
        {"bill_ids": [bill.pk], "gateway": "alipay"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="ali-1",
    )
    assert created.status_code == 201
    assert created.json()["pay_url"].startswith("https://openapi.alipay.com/gateway.do?")
    out_trade_no = created.json()["out_trade_no"]

    forged = signed_body(notification_params(out_trade_no=out_trade_no), key=OTHER_KEY)
    response = client.post(
        "/api/v1/payments/notify/alipay/", forged, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400
    assert Posting.objects.count() == 0

    genuine = signed_body(notification_params(out_trade_no=out_trade_no))
    for _ in range(3):
        response = client.post(
            "/api/v1/payments/notify/alipay/",
            genuine,
            content_type="application/x-www-form-urlencoded",
        )
        assert (response.status_code, response.content) == (200, b"success")

    assert Payment.objects.get().status == "succeeded"
    assert Bill.objects.get().status == "paid"
    assert Posting.objects.count() == 2


def test_a_gateway_that_is_not_on_is_refused(client):
    response = client.post(
        "/api/v1/payments/notify/wechat/", b"{}", content_type="application/json"
    )
    assert response.status_code == 400
