"""The WeChat Pay adapter against notifications and answers signed here, with keys made here,
exactly as WeChat Pay APIv3 documents them: Wechatpay-Signature is SHA256withRSA over
"timestamp\\nnonce\\nbody\\n" in base64, and the notification's resource is AEAD_AES_256_GCM with
the APIv3 key, its nonce and associated_data. The SDK's own verification and decryption run; only
the HTTP layer (requests, as the SDK uses it) is replaced."""

import base64
import gzip
import hashlib
import json
import re
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from unittest import mock

import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from requests.structures import CaseInsensitiveDict

from billing.gateways.base import (
    GatewayError,
    NotificationRejected,
    PaymentRequest,
    SettlementLine,
    TradeStatus,
)
from billing.gateways.wechat import WechatPayGateway
from billing.tests.keys import new_key, private_pem, public_pem

MERCHANT_KEY = new_key()  # ours: the merchant API key that signs requests
PLATFORM_KEY = new_key()  # WeChat Pay's: the private half of the WeChat Pay public key
OTHER_KEY = new_key()
MCHID = "1900000109"
APPID = "wxd678efh567hg6787"
APIV3_KEY = "a12d3924fd499edac8a5efc8a1b2c3d4"  # 32 characters
PUBLIC_KEY_ID = "PUB_KEY_ID_0119000001092024101100000000000001"
CERT_SERIAL_NO = "444F4864EA9B34415C3A3E4B2A5D8D0A1234ABCD"
GATEWAY = "https://api.mch.weixin.qq.com"
SETTINGS = {
    "WECHATPAY_MCHID": MCHID,
    "WECHATPAY_APPID": APPID,
    "WECHATPAY_PRIVATE_KEY": private_pem(MERCHANT_KEY),
    "WECHATPAY_CERT_SERIAL_NO": CERT_SERIAL_NO,
    "WECHATPAY_APIV3_KEY": APIV3_KEY,
    "WECHATPAY_PUBLIC_KEY": public_pem(PLATFORM_KEY),
    "WECHATPAY_PUBLIC_KEY_ID": PUBLIC_KEY_ID,
    "WECHATPAY_TRADE_TYPE": "native",
    "PAYMENT_PENDING_MINUTES": 30,
}
BEIJING = timedelta(hours=8)


@pytest.fixture(autouse=True)
def wechat_settings():
    with override_settings(**SETTINGS):
        yield


@pytest.fixture
def gateway() -> WechatPayGateway:
    return WechatPayGateway()


def sign(message: str, key: rsa.RSAPrivateKey) -> str:
    signature = key.sign(message.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode()


def signature_valid(message: str, signature: str, key: rsa.RSAPrivateKey) -> bool:
    try:
        key.public_key().verify(
            base64.b64decode(signature), message.encode(), padding.PKCS1v15(), hashes.SHA256()
        )
    except Exception:
        return False
    return True


def wechat_headers(body: str, *, key=PLATFORM_KEY, timestamp=None, serial=PUBLIC_KEY_ID) -> dict:
    stamp = str(int(time.time())) if timestamp is None else str(timestamp)
    nonce = "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"
    return {
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature": sign(f"{stamp}\n{nonce}\n{body}\n", key),
        "Wechatpay-Timestamp": stamp,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
    }


def transaction(**changes) -> dict:
    resource = {
        "mchid": MCHID,
        "appid": APPID,
        "out_trade_no": "LL201908000123",
        "transaction_id": "4200000420201908011234567890",
        "trade_type": "NATIVE",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "CMC",
        "attach": "",
        "success_time": "2019-08-01T10:34:56+08:00",
        "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
        "amount": {
            "total": 12345,
            "payer_total": 12345,
            "currency": "CNY",
            "payer_currency": "CNY",
        },
    }
    resource.update(changes)
    return {k: v for k, v in resource.items() if v is not None}


def notification(
    resource: dict,
    *,
    key=PLATFORM_KEY,
    apiv3_key=APIV3_KEY,
    associated_data="transaction",
    declared_associated_data=None,
    **header_options,
) -> tuple[bytes, dict]:
    """The POST WeChat Pay sends: the resource encrypted AEAD_AES_256_GCM, the body signed."""
    nonce = "fdasflkja484"  # 12 bytes
    ciphertext = AESGCM(apiv3_key.encode()).encrypt(
        nonce.encode(),
        json.dumps(resource, ensure_ascii=False).encode(),
        associated_data.encode(),
    )
    body = json.dumps(
        {
            "id": "EV-2018022511223320873",
            "create_time": "2019-08-01T10:34:58+08:00",
            "resource_type": "encrypt-resource",
            "event_type": "TRANSACTION.SUCCESS",
            "summary": "支付成功",
            "resource": {
                "original_type": "transaction",
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": base64.b64encode(ciphertext).decode(),
                "associated_data": declared_associated_data or associated_data,
                "nonce": nonce,
            },
        },
        ensure_ascii=False,
    )
    return body.encode(), wechat_headers(body, key=key, **header_options)


# --- notifications ----------------------------------------------------------------------------


def test_a_good_notification_parses_exactly(gateway):
    body, headers = notification(transaction())
    parsed = gateway.parse_notification(body=body, headers=headers)

    assert parsed.out_trade_no == "LL201908000123"
    assert parsed.trade_no == "4200000420201908011234567890"
    assert parsed.amount == Decimal("123.45")
    assert str(parsed.amount) == "123.45"
    assert parsed.succeeded is True
    assert parsed.paid_at == datetime(2019, 8, 1, 2, 34, 56, tzinfo=UTC)
    assert parsed.paid_at.utcoffset() == BEIJING
    assert parsed.raw["resource"]["trade_state_desc"] == "支付成功"


@pytest.mark.parametrize(
    ("total", "expected"),
    [(1, "0.01"), (10, "0.10"), (100, "1.00"), (999999999, "9999999.99")],
)
def test_fen_become_exact_yuan(gateway, total, expected):
    body, headers = notification(transaction(amount={"total": total, "currency": "CNY"}))
    amount = gateway.parse_notification(body=body, headers=headers).amount
    assert isinstance(amount, Decimal)
    assert str(amount) == expected


def test_a_closed_trade_parses_as_not_succeeded(gateway):
    body, headers = notification(
        transaction(trade_state="CLOSED", trade_state_desc="已关闭", success_time=None)
    )
    parsed = gateway.parse_notification(body=body, headers=headers)
    assert parsed.succeeded is False
    assert parsed.paid_at is None
    assert parsed.amount == Decimal("123.45")


@pytest.mark.parametrize(
    "style",
    [
        lambda h: {k.lower(): v for k, v in h.items()},  # as some frameworks pass them
        lambda h: {"HTTP_" + k.upper().replace("-", "_"): v for k, v in h.items()},  # request.META
    ],
)
def test_headers_in_other_spellings(gateway, style):
    body, headers = notification(transaction())
    assert gateway.parse_notification(body=body, headers=style(headers)).amount == Decimal("123.45")


def test_a_tampered_body_is_rejected(gateway):
    body, headers = notification(transaction())
    tampered = body.replace(b'"summary": "', b'"summary": "x', 1)
    assert tampered != body
    with pytest.raises(NotificationRejected):
        gateway.parse_notification(body=tampered, headers=headers)


def test_a_swapped_ciphertext_is_rejected(gateway):
    """The signed body carries another (validly encrypted) resource than the one signed."""
    _, headers = notification(transaction())
    other, _ = notification(transaction(amount={"total": 1, "currency": "CNY"}))
    with pytest.raises(NotificationRejected):
        gateway.parse_notification(body=other, headers=headers)


def test_a_wrong_signature_is_rejected(gateway):
    body, headers = notification(transaction())
    for signature in (
        base64.b64encode(b"\x01" * 256).decode(),
        "%%% not base64",
        sign("1565000000\nnonce\n{}\n", PLATFORM_KEY),
        "WECHATPAY/SIGNTEST/" + headers["Wechatpay-Signature"],  # WeChat Pay's probe
    ):
        with pytest.raises(NotificationRejected):
            gateway.parse_notification(
                body=body, headers={**headers, "Wechatpay-Signature": signature}
            )


def test_a_signature_by_another_key_is_rejected(gateway):
    for key in (OTHER_KEY, MERCHANT_KEY):
        body, headers = notification(transaction(), key=key)
        with pytest.raises(NotificationRejected):
            gateway.parse_notification(body=body, headers=headers)


def test_another_merchants_notification_is_rejected_even_if_signed(gateway):
    body, headers = notification(transaction(mchid="1900000110"))
    with pytest.raises(NotificationRejected, match="mchid"):
        gateway.parse_notification(body=body, headers=headers)
    body, headers = notification(transaction(appid="wx0000000000000000"))
    with pytest.raises(NotificationRejected, match="appid"):
        gateway.parse_notification(body=body, headers=headers)


@pytest.mark.parametrize(
    "header",
    [
        "Wechatpay-Signature",
        "Wechatpay-Timestamp",
        "Wechatpay-Nonce",
        "Wechatpay-Serial",
        "Wechatpay-Signature-Type",
    ],
)
def test_a_missing_signature_header_is_rejected(gateway, header):
    body, headers = notification(transaction())
    del headers[header]
    with pytest.raises(NotificationRejected, match=header):
        gateway.parse_notification(body=body, headers=headers)


def test_an_unknown_key_serial_is_rejected_without_the_network(gateway):
    body, headers = notification(transaction(), serial="5157F09EFDC096DE15EBE81A47057A7232F1B8E1")
    with (
        mock.patch("wechatpayv3.core.requests") as http,
        pytest.raises(NotificationRejected),
    ):
        gateway.parse_notification(body=body, headers=headers)
    assert not http.mock_calls  # the SDK would have fetched platform certificates


@pytest.mark.parametrize("skew", [-301, 301, -86400])
def test_a_stale_or_future_timestamp_is_rejected(gateway, skew):
    body, headers = notification(transaction(), timestamp=int(time.time()) + skew)
    with pytest.raises(NotificationRejected, match="stale"):
        gateway.parse_notification(body=body, headers=headers)


def test_a_resource_encrypted_with_another_key_is_rejected(gateway):
    body, headers = notification(transaction(), apiv3_key="b" * 32)
    with pytest.raises(NotificationRejected):
        gateway.parse_notification(body=body, headers=headers)


def test_the_associated_data_is_authenticated(gateway):
    body, headers = notification(
        transaction(), associated_data="transaction", declared_associated_data="refund"
    )
    with pytest.raises(NotificationRejected):
        gateway.parse_notification(body=body, headers=headers)


@pytest.mark.parametrize(
    "changes",
    [
        {"amount": {"total": "12345", "currency": "CNY"}},
        {"amount": {"total": 123.45, "currency": "CNY"}},
        {"amount": {"total": -1, "currency": "CNY"}},
        {"amount": {"total": True, "currency": "CNY"}},
        {"amount": {"total": 100, "currency": "USD"}},
        {"amount": 12345},
        {"amount": None},
        {"success_time": "2019-08-01 10:34:56"},
        {"success_time": None},
        {"trade_state": "NOTPAY"},
        {"trade_state": None},
        {"transaction_id": None},
        {"out_trade_no": 123},
    ],
)
def test_signed_but_malformed_resources_are_rejected(gateway, changes):
    body, headers = notification(transaction(**changes))
    with pytest.raises(NotificationRejected):
        gateway.parse_notification(body=body, headers=headers)


def test_signed_garbage_is_rejected(gateway):
    for text in ("not json", "[]", '{"resource_type": "encrypt-resource"}', "{}"):
        with pytest.raises(NotificationRejected):
            gateway.parse_notification(body=text.encode(), headers=wechat_headers(text))
    headers = wechat_headers("x")
    with pytest.raises(NotificationRejected):
        gateway.parse_notification(body=b"\xff\xfe", headers=headers)


def test_acknowledgement(gateway):
    status, body, content_type = gateway.acknowledgement()
    assert status == 200
    assert content_type == "application/json"
    assert json.loads(body) == {"code": "SUCCESS", "message": "成功"}


# --- configuration ------------------------------------------------------------------------------


def test_building_the_gateway_makes_no_network_call():
    with mock.patch("wechatpayv3.core.requests") as http:
        WechatPayGateway()
    assert not http.mock_calls


@pytest.mark.parametrize(
    "missing",
    [
        "WECHATPAY_MCHID",
        "WECHATPAY_APPID",
        "WECHATPAY_PRIVATE_KEY",
        "WECHATPAY_CERT_SERIAL_NO",
        "WECHATPAY_APIV3_KEY",
        "WECHATPAY_PUBLIC_KEY",
        "WECHATPAY_PUBLIC_KEY_ID",
    ],
)
def test_missing_settings_are_improperly_configured(missing):
    with override_settings(**{missing: ""}), pytest.raises(ImproperlyConfigured, match=missing):
        WechatPayGateway()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WECHATPAY_APIV3_KEY", "too short"),
        ("WECHATPAY_TRADE_TYPE", "jsapi"),
        ("WECHATPAY_PUBLIC_KEY", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"),
        ("WECHATPAY_PRIVATE_KEY", "/nonexistent/apiclient_key.pem"),
    ],
)
def test_bad_settings_are_improperly_configured(name, value):
    with override_settings(**{name: value}), pytest.raises(ImproperlyConfigured, match=name):
        WechatPayGateway()


def test_keys_may_be_files(tmp_path):
    (tmp_path / "apiclient_key.pem").write_text(private_pem(MERCHANT_KEY))
    (tmp_path / "pub_key.pem").write_text(public_pem(PLATFORM_KEY))
    with override_settings(
        WECHATPAY_PRIVATE_KEY=str(tmp_path / "apiclient_key.pem"),
        WECHATPAY_PUBLIC_KEY=str(tmp_path / "pub_key.pem"),
    ):
        gateway = WechatPayGateway()
    body, headers = notification(transaction())
    assert gateway.parse_notification(body=body, headers=headers).trade_no.startswith("42000")


# --- server calls, with requests answering as WeChat Pay would ----------------------------------


def answer(
    status: int, payload, *, key=PLATFORM_KEY, content_type="application/json"
) -> requests.Response:
    """A response as WeChat Pay sends it: JSON (or bytes) and, when 2xx, signed headers."""
    response = requests.Response()
    response.status_code = status
    if isinstance(payload, bytes):
        response._content = payload
        text = ""
    else:
        text = json.dumps(payload, ensure_ascii=False)
        response._content = text.encode()
    response.encoding = "utf-8"
    headers = {"Content-Type": content_type, "Request-ID": "08F5B8C2B506102C18FDDFEEA30620BE"}
    if 200 <= status < 300 and not isinstance(payload, bytes):
        headers.update(wechat_headers(text, key=key))
    response.headers = CaseInsensitiveDict(headers)
    return response


AUTHORIZATION = re.compile(
    r'WECHATPAY2-SHA256-RSA2048 mchid="(?P<mchid>[^"]+)",nonce_str="(?P<nonce>[^"]+)",'
    r'signature="(?P<signature>[^"]+)",timestamp="(?P<timestamp>\d+)",serial_no="(?P<serial>[^"]+)"'
)


class FakeWechatPay:
    """Stands in for the `requests` module the SDK calls: checks that every request is signed
    with our merchant key as APIv3 requires, records it, and answers from a script."""

    def __init__(self, *answers: requests.Response):
        self.answers, self.requests = list(answers), []

    def _handle(self, method: str, url: str, **kwargs) -> requests.Response:
        assert url.startswith(GATEWAY)
        prepared = requests.Request(method, url, json=kwargs.get("json")).prepare()
        body = prepared.body.decode() if prepared.body else ""
        path = url[len(GATEWAY) :]
        auth = AUTHORIZATION.fullmatch(kwargs["headers"]["Authorization"])
        assert auth, kwargs["headers"]["Authorization"]
        assert auth["mchid"] == MCHID
        assert auth["serial"] == CERT_SERIAL_NO
        message = f"{method}\n{path}\n{auth['timestamp']}\n{auth['nonce']}\n{body}\n"
        assert signature_valid(message, auth["signature"], MERCHANT_KEY), "request not signed"
        assert kwargs["headers"]["Wechatpay-Serial"] == PUBLIC_KEY_ID
        assert kwargs.get("timeout")
        self.requests.append({"method": method, "path": path, "json": kwargs.get("json")})
        return self.answers.pop(0)

    def get(self, url, **kwargs):
        return self._handle("GET", url, **kwargs)

    def post(self, url, **kwargs):
        return self._handle("POST", url, **kwargs)


REQUEST = PaymentRequest(
    out_trade_no="LL201908000123",
    amount=Decimal("123.45"),
    subject="翰林苑 物业费 2019-08",
    notify_url="https://linli.example.org/api/v1/payments/notify/wechat/",
    return_url="https://linli.example.org/pay/done/?p=1",
)


def test_create_registers_a_native_order(gateway):
    fake = FakeWechatPay(answer(200, {"code_url": "weixin://wxpay/bizpayurl?pr=p4lpSuKzz"}))
    before = datetime.now(UTC)
    with mock.patch("wechatpayv3.core.requests", fake):
        url = gateway.create(REQUEST)
    assert url == "weixin://wxpay/bizpayurl?pr=p4lpSuKzz"
    [sent] = fake.requests
    assert (sent["method"], sent["path"]) == ("POST", "/v3/pay/transactions/native")
    order = sent["json"]
    expires = datetime.fromisoformat(order.pop("time_expire"))
    assert expires.utcoffset() == BEIJING
    assert timedelta(minutes=29) < expires - before < timedelta(minutes=31)
    assert order == {
        "appid": APPID,
        "mchid": MCHID,
        "description": "翰林苑 物业费 2019-08",
        "out_trade_no": "LL201908000123",
        "amount": {"total": 12345, "currency": "CNY"},
        "notify_url": REQUEST.notify_url,
    }


def test_create_h5_needs_and_sends_the_payers_ip():
    with override_settings(WECHATPAY_TRADE_TYPE="h5"):
        gateway = WechatPayGateway()
    h5_url = "https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx2016&package=1"
    fake = FakeWechatPay(answer(200, {"h5_url": h5_url}))

    class WithIp(PaymentRequest):
        client_ip = "203.0.113.7"

    with mock.patch("wechatpayv3.core.requests", fake):
        url = gateway.create(
            WithIp(
                REQUEST.out_trade_no,
                REQUEST.amount,
                REQUEST.subject,
                REQUEST.notify_url,
                REQUEST.return_url,
            )
        )
        with pytest.raises(GatewayError, match="IP"):
            gateway.create(REQUEST)
    assert url == h5_url + "&redirect_url=https%3A%2F%2Flinli.example.org%2Fpay%2Fdone%2F%3Fp%3D1"
    [sent] = fake.requests
    assert sent["path"] == "/v3/pay/transactions/h5"
    assert sent["json"]["scene_info"] == {
        "payer_client_ip": "203.0.113.7",
        "h5_info": {"type": "Wap"},
    }


def test_create_refuses_an_answer_signed_by_another_key(gateway):
    fake = FakeWechatPay(answer(200, {"code_url": "weixin://wxpay/x"}, key=OTHER_KEY))
    with mock.patch("wechatpayv3.core.requests", fake), pytest.raises(GatewayError):
        gateway.create(REQUEST)


def test_create_failures_are_gateway_errors(gateway):
    refused = answer(400, {"code": "PARAM_ERROR", "message": "参数错误"})
    with (
        mock.patch("wechatpayv3.core.requests", FakeWechatPay(refused)),
        pytest.raises(GatewayError, match="PARAM_ERROR"),
    ):
        gateway.create(REQUEST)
    with mock.patch("wechatpayv3.core.requests") as http, pytest.raises(GatewayError):
        http.post.side_effect = requests.ConnectionError("unreachable")
        gateway.create(REQUEST)
    with pytest.raises(ValueError):
        gateway.create(PaymentRequest("LL1", Decimal("1.001"), "s", "https://x/n", "https://x/r"))


QUERY_PAID = {
    "appid": APPID,
    "mchid": MCHID,
    "out_trade_no": "LL201908000123",
    "transaction_id": "4200000420201908011234567890",
    "trade_type": "NATIVE",
    "trade_state": "SUCCESS",
    "trade_state_desc": "支付成功",
    "success_time": "2019-08-01T10:34:56+08:00",
    "amount": {"total": 12345, "payer_total": 12345, "currency": "CNY"},
}


def test_query_a_paid_trade(gateway):
    fake = FakeWechatPay(answer(200, QUERY_PAID))
    with mock.patch("wechatpayv3.core.requests", fake):
        status = gateway.query("LL201908000123")
    assert status == TradeStatus(
        status="succeeded",
        trade_no="4200000420201908011234567890",
        amount=Decimal("123.45"),
        paid_at=datetime(2019, 8, 1, 2, 34, 56, tzinfo=UTC),
    )
    assert (
        fake.requests[0]["path"]
        == f"/v3/pay/transactions/out-trade-no/LL201908000123?mchid={MCHID}"
    )


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (answer(200, {**QUERY_PAID, "trade_state": "NOTPAY", "success_time": None}), "pending"),
        (answer(200, {**QUERY_PAID, "trade_state": "USERPAYING"}), "pending"),
        (answer(200, {**QUERY_PAID, "trade_state": "CLOSED"}), "closed"),
        (answer(200, {**QUERY_PAID, "trade_state": "REFUND"}), "succeeded"),
        (answer(404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"}), "pending"),
    ],
)
def test_query_other_states(gateway, response, expected):
    with mock.patch("wechatpayv3.core.requests", FakeWechatPay(response)):
        assert gateway.query("LL201908000123").status == expected


def test_query_failures_are_gateway_errors(gateway):
    for response in (
        answer(500, {"code": "SYSTEM_ERROR", "message": "系统错误"}),
        answer(200, QUERY_PAID, key=OTHER_KEY),
    ):
        with (
            mock.patch("wechatpayv3.core.requests", FakeWechatPay(response)),
            pytest.raises(GatewayError),
        ):
            gateway.query("LL201908000123")


@pytest.mark.parametrize(("status", "succeeded"), [("SUCCESS", True), ("PROCESSING", False)])
def test_refund(gateway, status, succeeded):
    response = answer(
        200,
        {
            "refund_id": "50000000382019052709732678859",
            "out_refund_no": "RF1",
            "transaction_id": "4200000420201908011234567890",
            "out_trade_no": "LL201908000123",
            "status": status,
            "amount": {"refund": 2345, "total": 12345, "currency": "CNY"},
        },
    )
    fake = FakeWechatPay(response)
    with mock.patch("wechatpayv3.core.requests", fake):
        result = gateway.refund(
            out_trade_no="LL201908000123",
            refund_no="RF1",
            amount=Decimal("23.45"),
            total=Decimal("123.45"),
        )
    assert (result.refund_no, result.gateway_refund_id, result.succeeded) == (
        "RF1",
        "50000000382019052709732678859",
        succeeded,
    )
    [sent] = fake.requests
    assert sent["path"] == "/v3/refund/domestic/refunds"
    assert sent["json"] == {
        "out_refund_no": "RF1",
        "out_trade_no": "LL201908000123",
        "amount": {"refund": 2345, "total": 12345, "currency": "CNY"},
    }  # no notify_url: refund notices must not reach the payment notification endpoint


def test_failed_refunds_are_gateway_errors(gateway):
    for response in (
        answer(200, {"refund_id": "5", "out_refund_no": "RF1", "status": "ABNORMAL"}),
        answer(403, {"code": "NOT_ENOUGH", "message": "基本账户余额不足"}),
    ):
        with (
            mock.patch("wechatpayv3.core.requests", FakeWechatPay(response)),
            pytest.raises(GatewayError),
        ):
            gateway.refund(
                out_trade_no="LL1", refund_no="RF1", amount=Decimal("1"), total=Decimal("1")
            )


BILL = "\n".join(
    [
        "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
        "交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,"
        "充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注",
        f"`2019-08-01 10:34:56,`{APPID},`{MCHID},`0,`,`4200000420201908011234567890,"
        "`LL201908000123,`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`NATIVE,`SUCCESS,`CMC,`CNY,`123.45,`0.00,"
        "`0,`0,`0.00,`0.00,`,`,`翰林苑 物业费 2019-08,`,`0.74000,`0.60%,`123.45,`0.00,`",
        f"`2019-08-01 15:00:00,`{APPID},`{MCHID},`0,`,`4200000420201908011234567890,"
        "`LL201908000123,`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`NATIVE,`REFUND,`CMC,`CNY,`0.00,`0.00,"
        "`50000000382019052709732678859,`RF1,`23.45,`0.00,`ORIGINAL,`SUCCESS,"
        "`翰林苑 物业费 2019-08,`,`-0.14000,`0.60%,`0.00,`23.45,`",
        "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额",
        "`2,`123.45,`23.45,`0.00,`0.60000,`123.45,`23.45",
    ]
)


def bill_answers(bill: str, *, hash_value: str | None = None) -> FakeWechatPay:
    raw = bill.encode("utf-8")
    download_url = (
        f"{GATEWAY}/v3/billdownload/file?token=6XIv5TUPto7pByrTQKhd6kwvyKLG2uY2wMMR8cNXqaA"
    )
    return FakeWechatPay(
        answer(
            200,
            {
                "download_url": download_url,
                "hash_type": "SHA1",
                "hash_value": hash_value or hashlib.sha1(raw).hexdigest(),
            },
        ),
        answer(200, gzip.compress(raw), content_type="application/octet-stream"),
    )


def test_settlement_reads_the_days_bill(gateway):
    fake = bill_answers(BILL)
    with mock.patch("wechatpayv3.core.requests", fake):
        lines = gateway.settlement(date(2019, 8, 1))
    assert lines == [
        SettlementLine("LL201908000123", "4200000420201908011234567890", Decimal("123.45")),
        SettlementLine(
            "LL201908000123", "4200000420201908011234567890", Decimal("-23.45"), refund_no="RF1"
        ),
    ]
    assert [r["path"] for r in fake.requests] == [
        "/v3/bill/tradebill?bill_date=2019-08-01&bill_type=ALL&tar_type=GZIP",
        "/v3/billdownload/file?token=6XIv5TUPto7pByrTQKhd6kwvyKLG2uY2wMMR8cNXqaA",
    ]


def test_a_day_without_trades_has_no_bill(gateway):
    response = answer(400, {"code": "NO_STATEMENT_EXIST", "message": "账单文件不存在"})
    with mock.patch("wechatpayv3.core.requests", FakeWechatPay(response)):
        assert gateway.settlement(date(2019, 8, 1)) == []


def test_settlement_failures_are_gateway_errors(gateway):
    with (
        mock.patch("wechatpayv3.core.requests", bill_answers(BILL, hash_value="0" * 40)),
        pytest.raises(GatewayError, match="hash"),
    ):
        gateway.settlement(date(2019, 8, 1))
    response = answer(400, {"code": "STATEMENT_CREATING", "message": "账单生成中"})
    with (
        mock.patch("wechatpayv3.core.requests", FakeWechatPay(response)),
        pytest.raises(GatewayError),
    ):
        gateway.settlement(date(2019, 8, 1))
