"""Alipay (支付宝) behind the gateway interface, through python-alipay-sdk.

Phone browsers pay on Alipay's WAP cashier (alipay.trade.wap.pay): `create` only builds the
RSA2-signed URL, no network. Alipay then POSTs a form-encoded notification to notify_url, signed
RSA2 (SHA256withRSA) over the sorted parameters without `sign` and `sign_type`, with Alipay's
public key; the SDK's `verify` checks it. Query, refund and the daily bill are server calls whose
signed answers the SDK verifies against the same public key.

Configuration (settings, from the environment): ALIPAY_APP_ID, ALIPAY_APP_PRIVATE_KEY (ours, signs
requests), ALIPAY_PUBLIC_KEY (Alipay's, verifies what Alipay sends), ALIPAY_SANDBOX. Keys are PEM
text, a path to a PEM file, or the bare base64 the Alipay open platform shows. Only the public-key
mode is supported, not the public-key-certificate mode (公钥证书模式).
"""

import base64
import binascii
import csv
import io
import os
import re
import zipfile
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from urllib.request import urlopen
from zoneinfo import ZoneInfo

from alipay import AliPay
from alipay.utils import AliPayConfig
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from billing.gateways.base import (
    GatewayError,
    Notification,
    NotificationRejected,
    PaymentRequest,
    RefundResult,
    SettlementLine,
    TradeStatus,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
TIMEOUT_SECONDS = 15
CENT = Decimal("0.01")
# Alipay's amounts: plain yuan with at most two decimals ("0.01", "1234.50").
_YUAN = re.compile(r"\d{1,12}(\.\d{1,2})?")
_SIGNED_YUAN = re.compile(r"-?\d{1,12}(\.\d{1,2})?")
_ALIPAY_TIME = "%Y-%m-%d %H:%M:%S"  # Beijing time, no zone in the text
_SUCCESS = "10000"


def read_rsa_key(setting: str, *, private: bool) -> str:
    """The RSA key in settings.<setting> as PEM text (PKCS#8 for a private key, SubjectPublicKeyInfo
    for a public one). The setting holds PEM text, a path to a PEM file, or bare base64 DER (what
    the Alipay open platform shows). Raises ImproperlyConfigured if it is empty or not a key."""
    kind = "private" if private else "public"
    value = (getattr(settings, setting, "") or "").strip()
    if not value:
        raise ImproperlyConfigured(f"{setting} is not set (the RSA {kind} key).")
    if not value.startswith("-----BEGIN") and os.path.isfile(value):
        with open(value, encoding="ascii") as f:
            value = f.read().strip()
    elif value.endswith((".pem", ".key", ".txt")) or value.startswith(("/", "./")):
        raise ImproperlyConfigured(f"{setting}: no such file {value!r}.")
    try:
        if value.startswith("-----BEGIN"):
            pem = value.encode("ascii")
            key = (
                serialization.load_pem_private_key(pem, password=None)
                if private
                else serialization.load_pem_public_key(pem)
            )
        else:
            der = base64.b64decode("".join(value.split()), validate=True)
            key = (
                serialization.load_der_private_key(der, password=None)
                if private
                else serialization.load_der_public_key(der)
            )
    except (ValueError, TypeError, UnicodeError, binascii.Error, UnsupportedAlgorithm) as exc:
        raise ImproperlyConfigured(
            f"{setting} is not a readable RSA {kind} key "
            "(expected PEM text, the path of a PEM file, or bare base64)."
        ) from exc
    if private:
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ImproperlyConfigured(f"{setting} must be an RSA private key.")
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")
    if not isinstance(key, rsa.RSAPublicKey):
        raise ImproperlyConfigured(f"{setting} must be an RSA public key.")
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def yuan_text(amount: Decimal) -> str:
    """A positive Decimal amount as Alipay's yuan text with two decimals; never through float."""
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
        raise ValueError(f"amount must be a positive Decimal, not {amount!r}")
    if amount != amount.quantize(CENT):
        raise ValueError(f"amount has more than two decimals: {amount}")
    return str(amount.quantize(CENT))


def _parse_yuan(text: Any) -> Decimal:
    if not isinstance(text, str) or not _YUAN.fullmatch(text.strip()):
        raise ValueError(f"not an amount in yuan: {text!r}")
    return Decimal(text.strip()).quantize(CENT)


def _parse_time(text: str) -> datetime:
    return datetime.strptime(text, _ALIPAY_TIME).replace(tzinfo=SHANGHAI)


class AlipayGateway:
    name = "alipay"

    def __init__(self) -> None:
        self.app_id = str(getattr(settings, "ALIPAY_APP_ID", "") or "").strip()
        if not self.app_id:
            raise ImproperlyConfigured(
                "The alipay gateway is listed in PAYMENT_GATEWAYS but ALIPAY_APP_ID is not set."
            )
        private_key = read_rsa_key("ALIPAY_APP_PRIVATE_KEY", private=True)
        alipay_public_key = read_rsa_key("ALIPAY_PUBLIC_KEY", private=False)
        # Builds the signer and verifier from the keys; makes no network call.
        self._client = AliPay(
            appid=self.app_id,
            app_private_key_string=private_key,
            alipay_public_key_string=alipay_public_key,
            sign_type="RSA2",
            debug=bool(getattr(settings, "ALIPAY_SANDBOX", False)),
            config=AliPayConfig(timeout=TIMEOUT_SECONDS),
        )

    # --- paying ---------------------------------------------------------------------------------

    def create(self, request: PaymentRequest) -> str:
        """The signed alipay.trade.wap.pay URL the payer's browser opens. Alipay closes the trade
        if it is not paid within PAYMENT_PENDING_MINUTES (timeout_express)."""
        minutes = int(getattr(settings, "PAYMENT_PENDING_MINUTES", 30))
        biz_content = {
            "subject": request.subject,
            "out_trade_no": request.out_trade_no,
            "total_amount": yuan_text(request.amount),
            "product_code": "QUICK_WAP_PAY",
            "timeout_express": f"{minutes}m",
        }
        query = self._client.client_api(
            "alipay.trade.wap.pay",
            biz_content,
            notify_url=request.notify_url,
            return_url=request.return_url,
            timestamp=self._timestamp(),
        )
        # The SDK's gateway address (production, or the sandbox when ALIPAY_SANDBOX is on).
        return f"{self._client._gateway}?{query}"

    def parse_notification(self, *, body: bytes, headers: Mapping[str, str]) -> Notification:
        try:
            text = body.decode("utf-8")
            pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True, errors="strict")
        except (UnicodeDecodeError, ValueError, AttributeError) as exc:
            raise NotificationRejected("not a UTF-8 form-encoded body") from exc
        params = dict(pairs)
        if len(params) != len(pairs):
            raise NotificationRejected("a parameter appears twice")
        signature = params.get("sign", "")
        if not signature:
            raise NotificationRejected("no sign parameter")
        if params.get("sign_type", "RSA2") != "RSA2":
            raise NotificationRejected(f"unexpected sign_type {params.get('sign_type')!r}")
        signed = {k: v for k, v in params.items() if k != "sign"}
        try:
            # The SDK drops sign_type, sorts, joins k=v with & and checks SHA256withRSA.
            verified = self._client.verify(signed, signature)
        except Exception as exc:  # malformed base64 and the like: untrusted input
            raise NotificationRejected("the signature could not be checked") from exc
        if not verified:
            raise NotificationRejected("bad signature")
        if params.get("app_id") != self.app_id:
            raise NotificationRejected(f"app_id {params.get('app_id')!r} is not ours")
        try:
            return self._notification(params)
        except (KeyError, ValueError, ArithmeticError) as exc:
            raise NotificationRejected(f"malformed notification: {exc}") from exc

    def _notification(self, params: dict[str, str]) -> Notification:
        out_trade_no, trade_no = params["out_trade_no"], params["trade_no"]
        if not out_trade_no or not trade_no:
            raise ValueError("out_trade_no and trade_no are required")
        status = params["trade_status"]
        amount = _parse_yuan(params["total_amount"])
        gmt_payment = params.get("gmt_payment") or ""
        paid_at = _parse_time(gmt_payment) if gmt_payment else None
        if status in ("TRADE_SUCCESS", "TRADE_FINISHED"):
            succeeded = True
        elif status == "TRADE_CLOSED":
            # Closed without payment — or closed by a full refund of a paid trade, which Alipay
            # also announces as TRADE_CLOSED but with gmt_payment set: that trade *was* paid.
            succeeded = paid_at is not None
        else:  # WAIT_BUYER_PAY (not sent unless enabled) or anything unknown: no final state
            raise ValueError(f"trade_status {status!r} is not final")
        return Notification(
            out_trade_no=out_trade_no,
            trade_no=trade_no,
            amount=amount,
            succeeded=succeeded,
            paid_at=paid_at if succeeded else None,
            raw=params,
        )

    def acknowledgement(self) -> tuple[int, str, str]:
        return 200, "success", "text/plain"

    # --- server calls -----------------------------------------------------------------------------

    def query(self, out_trade_no: str) -> TradeStatus:
        response = self._call("alipay.trade.query", {"out_trade_no": out_trade_no})
        if response.get("code") != _SUCCESS:
            if response.get("sub_code") == "ACQ.TRADE_NOT_EXIST":
                # Alipay registers a WAP trade only once the payer opens the cashier; after
                # timeout_express it can no longer be paid.
                return TradeStatus(status="pending")
            raise self._error("alipay.trade.query", response)
        status = response.get("trade_status")
        trade_no = response.get("trade_no", "")
        try:
            amount = _parse_yuan(response["total_amount"]) if "total_amount" in response else None
            paid_text = response.get("send_pay_date") or ""
            paid_at = _parse_time(paid_text) if paid_text else None
        except ValueError as exc:
            raise GatewayError(f"alipay.trade.query: malformed answer: {exc}") from exc
        if status in ("TRADE_SUCCESS", "TRADE_FINISHED") or (
            status == "TRADE_CLOSED" and paid_at is not None  # paid, then refunded in full
        ):
            return TradeStatus("succeeded", trade_no=trade_no, amount=amount, paid_at=paid_at)
        if status == "WAIT_BUYER_PAY":
            return TradeStatus("pending", trade_no=trade_no, amount=amount)
        if status == "TRADE_CLOSED":
            return TradeStatus("closed", trade_no=trade_no, amount=amount)
        return TradeStatus("unknown", trade_no=trade_no, amount=amount)

    def refund(
        self, *, out_trade_no: str, refund_no: str, amount: Decimal, total: Decimal
    ) -> RefundResult:
        """Alipay refunds synchronously; the same refund_no (out_request_no) may be sent again
        safely. fund_change=Y means money moved in this call; otherwise (a repeat) the refund
        query says whether it went through."""
        response = self._call(
            "alipay.trade.refund",
            {
                "out_trade_no": out_trade_no,
                "refund_amount": yuan_text(amount),
                "out_request_no": refund_no,
            },
        )
        if response.get("code") != _SUCCESS:
            raise self._error("alipay.trade.refund", response)
        trade_no = response.get("trade_no", "")
        if response.get("fund_change") == "Y":
            return RefundResult(refund_no=refund_no, gateway_refund_id=trade_no, succeeded=True)
        check = self._call(
            "alipay.trade.fastpay.refund.query",
            {"out_trade_no": out_trade_no, "out_request_no": refund_no},
        )
        if check.get("code") != _SUCCESS:
            raise self._error("alipay.trade.fastpay.refund.query", check)
        return RefundResult(
            refund_no=refund_no,
            gateway_refund_id=check.get("trade_no") or trade_no,
            succeeded=check.get("refund_status") == "REFUND_SUCCESS",
        )

    def settlement(self, day: date) -> list[SettlementLine]:
        """The day's trade bill (业务明细): payments positive, refunds negative, by 订单金额, a
        refund with our refund number (退款批次号/请求号). Alipay publishes it the next day
        (after about 09:00 Beijing time)."""
        response = self._call(
            "alipay.data.dataservice.bill.downloadurl.query",
            {"bill_type": "trade", "bill_date": day.isoformat()},
        )
        if response.get("code") != _SUCCESS:
            raise self._error("alipay.data.dataservice.bill.downloadurl.query", response)
        url = response.get("bill_download_url") or ""
        if urlsplit(url).scheme not in ("http", "https"):
            raise GatewayError(f"Alipay gave no usable bill download URL: {url!r}")
        try:
            with urlopen(url, timeout=TIMEOUT_SECONDS) as answer:
                archive = answer.read()
        except OSError as exc:
            raise GatewayError(f"downloading the Alipay bill failed: {exc}") from exc
        return parse_trade_bill(archive)

    # --- helpers ----------------------------------------------------------------------------------

    @staticmethod
    def _timestamp() -> str:
        # Alipay reads `timestamp` as Beijing time; the SDK would use the server's local time.
        return datetime.now(SHANGHAI).strftime(_ALIPAY_TIME)

    def _call(self, method: str, biz_content: dict) -> dict:
        """One signed server call through the SDK; its answer's signature is verified by the SDK
        with Alipay's public key. Raises GatewayError when unreachable, unsigned or forged."""
        try:
            response = self._client.server_api(method, biz_content, timestamp=self._timestamp())
        except Exception as exc:  # URLError, timeouts, AliPayException, AliPayValidationError
            raise GatewayError(f"{method} failed: {exc!r}") from exc
        if not isinstance(response, dict):
            raise GatewayError(f"{method}: unexpected answer {response!r}")
        return response

    @staticmethod
    def _error(method: str, response: dict) -> GatewayError:
        return GatewayError(
            f"{method} refused: {response.get('code')} {response.get('msg')} "
            f"{response.get('sub_code', '')} {response.get('sub_msg', '')}".strip()
        )


def parse_trade_bill(archive: bytes) -> list[SettlementLine]:
    """Lines of Alipay's trade bill: a zip of GBK CSV files, of which the detail one (业务明细)
    has the header 支付宝交易号,商户订单号,业务类型,… between lines starting with '#'."""
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as bundle:
            texts = [bundle.read(info).decode("gb18030") for info in bundle.infolist()]
    except (zipfile.BadZipFile, UnicodeDecodeError, OSError) as exc:
        raise GatewayError(
            f"the Alipay bill is not a readable zip of GBK CSV files: {exc}"
        ) from exc
    for text in texts:
        rows = [row for row in csv.reader(io.StringIO(text)) if row and not row[0].startswith("#")]
        if rows and rows[0][0].strip().lstrip("\ufeff") == "支付宝交易号":
            return _bill_lines(rows[0], rows[1:])
    raise GatewayError("the Alipay bill has no detail file (业务明细)")


def _bill_lines(header: list[str], rows: list[list[str]]) -> list[SettlementLine]:
    columns = {name.strip().lstrip("\ufeff"): i for i, name in enumerate(header)}
    try:
        trade_no_at, out_trade_no_at = columns["支付宝交易号"], columns["商户订单号"]
        kind_at, amount_at = columns["业务类型"], columns["订单金额（元）"]
    except KeyError as exc:
        raise GatewayError(f"the Alipay bill lacks the column {exc}") from exc
    # Our refund number (out_request_no) on a refund's row; older bills may lack the column.
    refund_no_at = columns.get("退款批次号/请求号")
    lines = []
    for row in rows:
        if len(row) < len(header):
            raise GatewayError(f"malformed Alipay bill row: {row!r}")
        kind = row[kind_at].strip()
        if kind not in ("交易", "退款"):
            continue
        text = row[amount_at].strip()
        if not _SIGNED_YUAN.fullmatch(text):
            raise GatewayError(f"malformed amount in Alipay bill row: {row!r}")
        amount = abs(Decimal(text))
        refund_no = ""
        if kind == "退款" and refund_no_at is not None:
            refund_no = row[refund_no_at].strip()
        lines.append(
            SettlementLine(
                out_trade_no=row[out_trade_no_at].strip(),
                trade_no=row[trade_no_at].strip(),
                amount=amount if kind == "交易" else -amount,
                refund_no=refund_no,
            )
        )
    return lines
