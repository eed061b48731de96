"""The Alipay adapter against notifications and answers signed here, with keys made here, exactly
as Alipay documents its signatures (sorted k=v pairs joined with &, SHA256withRSA, base64). The
SDK's own verification runs; only the network (urlopen) is replaced."""

import base64
import io
import json
import zipfile
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from unittest import mock
from urllib.error import URLError
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from billing.gateways.alipay import AlipayGateway
from billing.gateways.base import (
    GatewayError,
    NotificationRejected,
    PaymentRequest,
    SettlementLine,
    TradeStatus,
)
from billing.tests.keys import new_key, private_pem, public_pem

APP_KEY = new_key()  # ours: signs requests
ALIPAY_KEY = new_key()  # Alipay's: signs notifications and answers
OTHER_KEY = new_key()  # somebody else's
APP_ID = "2021000000000001"
SETTINGS = {
    "ALIPAY_APP_ID": APP_ID,
    "ALIPAY_APP_PRIVATE_KEY": private_pem(APP_KEY),
    "ALIPAY_PUBLIC_KEY": public_pem(ALIPAY_KEY),
    "ALIPAY_SANDBOX": False,
    "PAYMENT_PENDING_MINUTES": 30,
}


@pytest.fixture(autouse=True)
def alipay_settings():
    with override_settings(**SETTINGS):
        yield


@pytest.fixture
def gateway() -> AlipayGateway:
    return AlipayGateway()


def rsa2(content: str, key: rsa.RSAPrivateKey) -> str:
    signature = key.sign(content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode()


def rsa2_valid(content: str, signature: str, key: rsa.RSAPrivateKey) -> bool:
    try:
        key.public_key().verify(
            base64.b64decode(signature),
            content.encode("utf-8"),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except Exception:
        return False
    return True


def notification_params(**changes) -> dict[str, str]:
    params = {
        "notify_time": "2019-08-01 10:35:02",
        "notify_type": "trade_status_sync",
        "notify_id": "ac05099524730693a8b330c5ecf72da9786",
        "app_id": APP_ID,
        "charset": "utf-8",
        "version": "1.0",
        "trade_no": "2019080122001404500512345678",
        "out_trade_no": "LL201908000123",
        "buyer_id": "2088102122524333",
        "seller_id": "2088101106499364",
        "trade_status": "TRADE_SUCCESS",
        "total_amount": "123.45",
        "receipt_amount": "123.45",
        "subject": "翰林苑 物业费 2019-08",
        "gmt_create": "2019-08-01 10:34:50",
        "gmt_payment": "2019-08-01 10:34:56",
        "fund_bill_list": '[{"amount":"123.45","fundChannel":"ALIPAYACCOUNT"}]',
        "passback_params": "",
    }
    params.update(changes)
    return {k: v for k, v in params.items() if v is not None}


def signed_body(params: dict[str, str], key: rsa.RSAPrivateKey = ALIPAY_KEY) -> bytes:
    """The form Alipay POSTs: every parameter but sign and sign_type, sorted, k=v joined by &,
    signed SHA256withRSA, base64."""
    content = "&".join(f"{k}={params[k]}" for k in sorted(params) if k not in ("sign", "sign_type"))
    return urlencode({**params, "sign_type": "RSA2", "sign": rsa2(content, key)}).encode()


# --- notifications ----------------------------------------------------------------------------


def test_a_good_notification_parses_exactly(gateway):
    notification = gateway.parse_notification(body=signed_body(notification_params()), headers={})

    assert notification.out_trade_no == "LL201908000123"
    assert notification.trade_no == "2019080122001404500512345678"
    assert notification.amount == Decimal("123.45")
    assert isinstance(notification.amount, Decimal)
    assert str(notification.amount) == "123.45"
    assert notification.succeeded is True
    assert notification.paid_at == datetime(2019, 8, 1, 2, 34, 56, tzinfo=UTC)
    assert notification.paid_at.utcoffset() == timedelta(hours=8)
    assert notification.raw["subject"] == "翰林苑 物业费 2019-08"


def test_trade_finished_is_a_success_too(gateway):
    body = signed_body(notification_params(trade_status="TRADE_FINISHED", total_amount="0.01"))
    notification = gateway.parse_notification(body=body, headers={})
    assert notification.succeeded is True
    assert notification.amount == Decimal("0.01")


def test_a_closed_trade_parses_as_not_succeeded(gateway):
    params = notification_params(
        trade_status="TRADE_CLOSED", gmt_payment=None, gmt_close="2019-08-01 11:04:50"
    )
    notification = gateway.parse_notification(body=signed_body(params), headers={})
    assert notification.succeeded is False
    assert notification.paid_at is None
    assert notification.amount == Decimal("123.45")
    assert notification.trade_no == "2019080122001404500512345678"


def test_a_trade_closed_by_a_full_refund_was_paid(gateway):
    params = notification_params(
        trade_status="TRADE_CLOSED",
        refund_fee="123.45",
        gmt_refund="2019-08-02 09:00:00.123",
        gmt_close="2019-08-02 09:00:00",
    )
    notification = gateway.parse_notification(body=signed_body(params), headers={})
    assert notification.succeeded is True
    assert notification.paid_at == datetime(2019, 8, 1, 2, 34, 56, tzinfo=UTC)


def test_a_tampered_body_is_rejected(gateway):
    body = signed_body(notification_params())
    assert b"total_amount=123.45" in body
    with pytest.raises(NotificationRejected):
        gateway.parse_notification(
            body=body.replace(b"total_amount=123.45", b"total_amount=1234.5"), headers={}
        )


def test_a_parameter_added_after_signing_is_rejected(gateway):
    body = signed_body(notification_params()) + b"&refund_fee=1.00"
    with pytest.raises(NotificationRejected):
        gateway.parse_notification(body=body, headers={})


@pytest.mark.parametrize(
    "sign",
    [
        base64.b64encode(b"\x00" * 256).decode(),  # well formed, wrong
        "not base64 at all!",
        rsa2("app_id=" + APP_ID, ALIPAY_KEY),  # Alipay's key, other content
    ],
)
def test_a_wrong_signature_is_rejected(gateway, sign):
    params = dict(parse_qsl(signed_body(notification_params()).decode()))
    params["sign"] = sign
    with pytest.raises(NotificationRejected):
        gateway.parse_notification(body=urlencode(params).encode(), headers={})


def test_a_signature_by_another_key_is_rejected(gateway):
    for key in (OTHER_KEY, APP_KEY):
        with pytest.raises(NotificationRejected):
            gateway.parse_notification(body=signed_body(notification_params(), key=key), headers={})


def test_another_apps_notification_is_rejected_even_if_signed_by_alipay(gateway):
    body = signed_body(notification_params(app_id="2021000000009999"))
    with pytest.raises(NotificationRejected, match="app_id"):
        gateway.parse_notification(body=body, headers={})


def test_a_missing_signature_is_rejected(gateway):
    params = dict(parse_qsl(signed_body(notification_params()).decode()))
    del params["sign"]
    with pytest.raises(NotificationRejected, match="sign"):
        gateway.parse_notification(body=urlencode(params).encode(), headers={})


def test_a_weaker_sign_type_is_rejected(gateway):
    params = dict(parse_qsl(signed_body(notification_params()).decode()))
    params["sign_type"] = "RSA"
    with pytest.raises(NotificationRejected):
        gateway.parse_notification(body=urlencode(params).encode(), headers={})


@pytest.mark.parametrize(
    "changes",
    [
        {"total_amount": "1e3"},
        {"total_amount": "-1.00"},
        {"total_amount": "12.345"},
        {"total_amount": "NaN"},
        {"total_amount": None},
        {"gmt_payment": "yesterday"},
        {"trade_status": "WAIT_BUYER_PAY"},
        {"trade_status": None},
        {"out_trade_no": ""},
        {"trade_no": None},
    ],
)
def test_signed_but_malformed_notifications_are_rejected(gateway, changes):
    with pytest.raises(NotificationRejected):
        gateway.parse_notification(body=signed_body(notification_params(**changes)), headers={})


@pytest.mark.parametrize("body", [b"", b"\xff\xfe", b"sign", b"sign=a&sign=b"])
def test_garbage_bodies_are_rejected(gateway, body):
    with pytest.raises(NotificationRejected):
        gateway.parse_notification(body=body, headers={})


def test_a_duplicated_parameter_is_rejected(gateway):
    body = signed_body(notification_params()) + b"&app_id=" + APP_ID.encode()
    with pytest.raises(NotificationRejected):
        gateway.parse_notification(body=body, headers={})


def test_acknowledgement_is_plain_success(gateway):
    assert gateway.acknowledgement() == (200, "success", "text/plain")


# --- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "missing", ["ALIPAY_APP_ID", "ALIPAY_APP_PRIVATE_KEY", "ALIPAY_PUBLIC_KEY"]
)
def test_missing_settings_are_improperly_configured(missing):
    with override_settings(**{missing: ""}), pytest.raises(ImproperlyConfigured, match=missing):
        AlipayGateway()


def test_a_key_that_is_no_key_is_improperly_configured():
    with (
        override_settings(
            ALIPAY_PUBLIC_KEY="-----BEGIN PUBLIC KEY-----\nxx\n-----END PUBLIC KEY-----"
        ),
        pytest.raises(ImproperlyConfigured, match="ALIPAY_PUBLIC_KEY"),
    ):
        AlipayGateway()
    with (
        override_settings(ALIPAY_APP_PRIVATE_KEY=public_pem(APP_KEY)),
        pytest.raises(ImproperlyConfigured, match="ALIPAY_APP_PRIVATE_KEY"),
    ):
        AlipayGateway()


def test_keys_may_be_files_or_bare_base64(tmp_path):
    key_file = tmp_path / "app_private_key.pem"
    key_file.write_text(private_pem(APP_KEY))
    bare = "".join(public_pem(ALIPAY_KEY).splitlines()[1:-1])  # as the open platform shows it
    with override_settings(ALIPAY_APP_PRIVATE_KEY=str(key_file), ALIPAY_PUBLIC_KEY=bare):
        gateway = AlipayGateway()
    notification = gateway.parse_notification(body=signed_body(notification_params()), headers={})
    assert notification.amount == Decimal("123.45")


# --- creating a payment -------------------------------------------------------------------------

REQUEST = PaymentRequest(
    out_trade_no="LL201908000123",
    amount=Decimal("123.45"),
    subject="翰林苑 物业费 2019-08",
    notify_url="https://linli.example.org/api/v1/payments/notify/alipay/",
    return_url="https://linli.example.org/pay/done/",
)


def test_create_builds_a_signed_wap_pay_url_without_the_network(gateway):
    with mock.patch("alipay.urlopen", side_effect=AssertionError("no network")) as urlopen:
        url = gateway.create(REQUEST)
    urlopen.assert_not_called()

    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://openapi.alipay.com/gateway.do"
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    assert params["method"] == "alipay.trade.wap.pay"
    assert params["app_id"] == APP_ID
    assert params["sign_type"] == "RSA2"
    assert params["charset"] == "utf-8"
    assert params["notify_url"] == REQUEST.notify_url
    assert params["return_url"] == REQUEST.return_url
    assert json.loads(params["biz_content"]) == {
        "subject": "翰林苑 物业费 2019-08",
        "out_trade_no": "LL201908000123",
        "total_amount": "123.45",
        "product_code": "QUICK_WAP_PAY",
        "timeout_express": "30m",
    }
    # Requests are signed over every parameter but sign (sign_type included), with our key.
    sign = params.pop("sign")
    content = "&".join(f"{k}={params[k]}" for k in sorted(params))
    assert rsa2_valid(content, sign, APP_KEY)
    assert not rsa2_valid(content, sign, OTHER_KEY)


def test_create_uses_the_sandbox_when_asked():
    with override_settings(ALIPAY_SANDBOX=True):
        url = AlipayGateway().create(REQUEST)
    assert url.startswith("https://openapi-sandbox.dl.alipaydev.com/gateway.do?")


@pytest.mark.parametrize("amount", [Decimal("0"), Decimal("-1"), Decimal("1.005")])
def test_create_refuses_amounts_alipay_cannot_take(gateway, amount):
    request = PaymentRequest("LL1", amount, "s", "https://x/n", "https://x/r")
    with pytest.raises(ValueError):
        gateway.create(request)


# --- server calls, with urlopen answering as Alipay would ----------------------------------------


class FakeAlipay:
    """Stands in for urlopen: checks each request is signed with our key, answers signed with
    Alipay's key (or the given one), exactly as the gateway does (sign over the response object's
    JSON text)."""

    def __init__(self, answers: dict[str, dict], key: rsa.RSAPrivateKey = ALIPAY_KEY):
        self.answers, self.key, self.requests = answers, key, []

    def __call__(self, url, timeout=None):
        params = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
        sign = params.pop("sign")
        content = "&".join(f"{k}={params[k]}" for k in sorted(params))
        assert rsa2_valid(content, sign, APP_KEY), "request not signed with our key"
        assert timeout
        params["biz_content"] = json.loads(params["biz_content"])
        self.requests.append(params)
        method = params["method"]
        inner = json.dumps(self.answers[method], ensure_ascii=False, separators=(",", ":"))
        response_type = method.replace(".", "_") + "_response"
        raw = f'{{"{response_type}":{inner},"sign":"{rsa2(inner, self.key)}"}}'
        return io.BytesIO(raw.encode())


def ok(**fields) -> dict:
    return {"code": "10000", "msg": "Success", **fields}


def business_failed(sub_code: str) -> dict:
    return {"code": "40004", "msg": "Business Failed", "sub_code": sub_code, "sub_msg": "x"}


QUERY_PAID = ok(
    trade_no="2019080122001404500512345678",
    out_trade_no="LL201908000123",
    trade_status="TRADE_SUCCESS",
    total_amount="123.45",
    send_pay_date="2019-08-01 10:34:56",
)


def test_query_a_paid_trade(gateway):
    fake = FakeAlipay({"alipay.trade.query": QUERY_PAID})
    with mock.patch("alipay.urlopen", fake):
        status = gateway.query("LL201908000123")
    assert status == TradeStatus(
        status="succeeded",
        trade_no="2019080122001404500512345678",
        amount=Decimal("123.45"),
        paid_at=datetime(2019, 8, 1, 2, 34, 56, tzinfo=UTC),
    )
    assert fake.requests[0]["method"] == "alipay.trade.query"
    assert fake.requests[0]["biz_content"] == {"out_trade_no": "LL201908000123"}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (ok(trade_no="T1", trade_status="WAIT_BUYER_PAY", total_amount="1.00"), "pending"),
        (ok(trade_no="T1", trade_status="TRADE_CLOSED", total_amount="1.00"), "closed"),
        (business_failed("ACQ.TRADE_NOT_EXIST"), "pending"),
    ],
)
def test_query_other_states(gateway, answer, expected):
    with mock.patch("alipay.urlopen", FakeAlipay({"alipay.trade.query": answer})):
        assert gateway.query("LL1").status == expected


def test_query_refuses_an_answer_signed_by_another_key(gateway):
    with (
        mock.patch("alipay.urlopen", FakeAlipay({"alipay.trade.query": QUERY_PAID}, OTHER_KEY)),
        pytest.raises(GatewayError),
    ):
        gateway.query("LL201908000123")


def test_query_failures_are_gateway_errors(gateway):
    with (
        mock.patch("alipay.urlopen", side_effect=URLError("unreachable")),
        pytest.raises(GatewayError),
    ):
        gateway.query("LL1")
    unsigned = b'{"error_response":{"code":"40002","msg":"Invalid Arguments"}}'
    with (
        mock.patch("alipay.urlopen", return_value=io.BytesIO(unsigned)),
        pytest.raises(GatewayError),
    ):
        gateway.query("LL1")
    answers = {"alipay.trade.query": business_failed("ACQ.SYSTEM_ERROR")}
    with mock.patch("alipay.urlopen", FakeAlipay(answers)), pytest.raises(GatewayError):
        gateway.query("LL1")


def test_refund_with_money_moved(gateway):
    answer = ok(trade_no="2019080122001404500512345678", fund_change="Y", refund_fee="23.45")
    fake = FakeAlipay({"alipay.trade.refund": answer})
    with mock.patch("alipay.urlopen", fake):
        result = gateway.refund(
            out_trade_no="LL201908000123",
            refund_no="RF1",
            amount=Decimal("23.45"),
            total=Decimal("123.45"),
        )
    assert (result.refund_no, result.gateway_refund_id, result.succeeded) == (
        "RF1",
        "2019080122001404500512345678",
        True,
    )
    assert fake.requests[0]["biz_content"] == {
        "out_trade_no": "LL201908000123",
        "refund_amount": "23.45",
        "out_request_no": "RF1",
    }


@pytest.mark.parametrize(("refund_status", "succeeded"), [("REFUND_SUCCESS", True), ("", False)])
def test_a_repeated_refund_asks_whether_it_went_through(gateway, refund_status, succeeded):
    fake = FakeAlipay(
        {
            "alipay.trade.refund": ok(trade_no="T9", fund_change="N"),
            "alipay.trade.fastpay.refund.query": ok(
                trade_no="T9", out_request_no="RF1", refund_status=refund_status
            ),
        }
    )
    with mock.patch("alipay.urlopen", fake):
        result = gateway.refund(
            out_trade_no="LL1", refund_no="RF1", amount=Decimal("1.00"), total=Decimal("1.00")
        )
    assert result.succeeded is succeeded
    assert [r["method"] for r in fake.requests] == [
        "alipay.trade.refund",
        "alipay.trade.fastpay.refund.query",
    ]


def test_a_refused_refund_is_a_gateway_error(gateway):
    answers = {"alipay.trade.refund": business_failed("ACQ.TRADE_HAS_CLOSE")}
    with mock.patch("alipay.urlopen", FakeAlipay(answers)), pytest.raises(GatewayError):
        gateway.refund(out_trade_no="LL1", refund_no="RF1", amount=Decimal("1"), total=Decimal("1"))


def bill_archive() -> bytes:
    header = (
        "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,"
        "终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,"
        "支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,"
        "卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注"
    )
    tail = "\t,\t,\t,\t,**业主(138****0000)\t"
    detail = "\n".join(
        [
            "#支付宝业务明细查询",
            "#账号：[20880000000000000156]",
            "#起始日期：[2019年08月01日 00:00:00]   终止日期：[2019年08月02日 00:00:00]",
            "#-----------------------------------------业务明细列表----------------------------------------",
            header,
            "2019080122001404500512345678\t,LL201908000123\t,交易\t,翰林苑 物业费,"
            f"2019-08-01 10:34:50,2019-08-01 10:34:56,{tail},123.45,123.45,0.00,0.00,0.00,"
            "0.00,0.00,,0.00\t,0.00,\t,-0.74,0.00,",
            "2019080122001404500512345679\t,LL201908000124\t,交易\t,翰林苑 物业费,"
            f"2019-08-01 11:00:00,2019-08-01 11:00:09,{tail},0.10,0.10,0.00,0.00,0.00,"
            "0.00,0.00,,0.00\t,0.00,\t,0.00,0.00,",
            "2019080122001404500512345678\t,LL201908000123\t,退款\t,翰林苑 物业费,"
            f"2019-08-01 10:34:50,2019-08-01 15:00:00,{tail},-23.45,-23.45,0.00,0.00,0.00,"
            "0.00,0.00,,0.00\t,0.00,RF1\t,0.14,0.00,",
            "#-----------------------------------------业务明细列表结束------------------------------------",
            "#交易合计：2笔，商家实收：123.55元，商家实收（优惠）：0.00元",
            "#退款合计：1笔，商家实收：-23.45元，商家实收（优惠）：0.00元",
            "#导出时间：[2019年08月02日 09:11:38]",
        ]
    )
    summary = "#支付宝业务汇总查询\n门店编号,门店名称,交易订单总笔数,退款订单总笔数\n合计,,2,1\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("20880000000000000156_20190801_业务明细(汇总).csv", summary.encode("gbk"))
        archive.writestr("20880000000000000156_20190801_业务明细.csv", detail.encode("gbk"))
    return buffer.getvalue()


def test_settlement_reads_the_days_bill(gateway):
    url = "http://dwbillcenter.alipay.com/downloadBillFile.resource?bizType=trade&fileType=csv.zip"
    fake = FakeAlipay({"alipay.data.dataservice.bill.downloadurl.query": ok(bill_download_url=url)})
    with (
        mock.patch("alipay.urlopen", fake),
        mock.patch(
            "billing.gateways.alipay.urlopen", return_value=io.BytesIO(bill_archive())
        ) as download,
    ):
        lines = gateway.settlement(date(2019, 8, 1))
    assert fake.requests[0]["biz_content"] == {"bill_type": "trade", "bill_date": "2019-08-01"}
    assert download.call_args.args[0] == url
    assert lines == [
        SettlementLine("LL201908000123", "2019080122001404500512345678", Decimal("123.45")),
        SettlementLine("LL201908000124", "2019080122001404500512345679", Decimal("0.10")),
        SettlementLine(
            "LL201908000123", "2019080122001404500512345678", Decimal("-23.45"), refund_no="RF1"
        ),
    ]


def test_settlement_failures_are_gateway_errors(gateway):
    answers = {
        "alipay.data.dataservice.bill.downloadurl.query": business_failed("isp.bill_not_exist")
    }
    with mock.patch("alipay.urlopen", FakeAlipay(answers)), pytest.raises(GatewayError):
        gateway.settlement(date(2019, 8, 1))
    answers = {"alipay.data.dataservice.bill.downloadurl.query": ok(bill_download_url="http://b/")}
    with (
        mock.patch("alipay.urlopen", FakeAlipay(answers)),
        mock.patch("billing.gateways.alipay.urlopen", return_value=io.BytesIO(b"not a zip")),
        pytest.raises(GatewayError),
    ):
        gateway.settlement(date(2019, 8, 1))
