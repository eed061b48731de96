"""WeChat Pay (微信支付) APIv3 behind the gateway interface, through wechatpayv3.

The SDK runs in WeChat Pay public-key mode (微信支付公钥: public_key + public_key_id). In that mode
it never downloads platform certificates, so building the gateway makes no network call; answers
and notifications signed with that key are verified by the SDK (Wechatpay-Signature over
"timestamp\\nnonce\\nbody\\n", SHA256withRSA), and the notification's `resource` is decrypted by the
SDK (AEAD_AES_256_GCM with the APIv3 key). Requests are signed by the SDK with the merchant API
private key (Authorization: WECHATPAY2-SHA256-RSA2048 …).

Paying: Native (the default; the pay URL is the weixin:// code_url the pay page shows as a QR
code) or H5 (WECHATPAY_TRADE_TYPE=h5; the pay URL is the h5_url a phone browser opens). H5 needs
the payer's IP address, which PaymentRequest does not carry yet (see `create`).
"""

import gzip
import hashlib
import json
import time
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from wechatpayv3 import WeChatPay, WeChatPayType

from billing.gateways.alipay import read_rsa_key
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
CENT = Decimal("0.01")
# A notification whose Wechatpay-Timestamp is further than this from our clock is refused
# (WeChat Pay's advice against replays: five minutes).
MAX_CLOCK_SKEW_SECONDS = 5 * 60
TIMEOUT = (10, 30)  # connect, read: seconds
_SIGNATURE_HEADERS = (
    "Wechatpay-Signature",
    "Wechatpay-Timestamp",
    "Wechatpay-Nonce",
    "Wechatpay-Serial",
    "Wechatpay-Signature-Type",
)
_TRADE_TYPES = {"native": WeChatPayType.NATIVE, "h5": WeChatPayType.H5}


def fen(amount: Decimal) -> int:
    """A positive Decimal amount in yuan as whole fen (分), exactly; never through float."""
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
        raise ValueError(f"amount must be a positive Decimal, not {amount!r}")
    if amount != amount.quantize(CENT):
        raise ValueError(f"amount has more than two decimals: {amount}")
    return int(amount.quantize(CENT).scaleb(2))


def yuan(total_fen: Any) -> Decimal:
    """Whole fen (an int in WeChat Pay's JSON) as Decimal yuan with two places, exactly."""
    if isinstance(total_fen, bool) or not isinstance(total_fen, int) or total_fen < 0:
        raise ValueError(f"not an amount in fen: {total_fen!r}")
    return Decimal(total_fen).scaleb(-2).quantize(CENT)


def _rfc3339(text: Any) -> datetime:
    if not isinstance(text, str):
        raise ValueError(f"not a time: {text!r}")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"time without a zone: {text!r}")
    return moment


def _canonical_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The Wechatpay-* headers under their canonical names, whether given as HTTP names in any
    case (request.headers) or as WSGI environ keys (request.META: HTTP_WECHATPAY_SIGNATURE)."""
    wanted = {name.lower(): name for name in _SIGNATURE_HEADERS}
    found: dict[str, str] = {}
    for key, value in headers.items():
        if not isinstance(key, str):
            continue
        name = key.lower()
        if name.startswith("http_"):
            name = name[len("http_") :].replace("_", "-")
        if name in wanted and isinstance(value, str):
            found[wanted[name]] = value
    return found


class WechatPayGateway:
    name = "wechat"

    def __init__(self) -> None:
        names = ("WECHATPAY_MCHID", "WECHATPAY_APPID", "WECHATPAY_CERT_SERIAL_NO")
        names += ("WECHATPAY_APIV3_KEY", "WECHATPAY_PUBLIC_KEY_ID")
        values = {name: str(getattr(settings, name, "") or "").strip() for name in names}
        missing = [name for name, value in values.items() if not value]
        if missing:
            raise ImproperlyConfigured(
                "The wechat gateway is listed in PAYMENT_GATEWAYS but these settings are not "
                f"set: {', '.join(missing)}."
            )
        self.mchid = values["WECHATPAY_MCHID"]
        self.appid = values["WECHATPAY_APPID"]
        self.public_key_id = values["WECHATPAY_PUBLIC_KEY_ID"]
        apiv3_key = values["WECHATPAY_APIV3_KEY"]
        if len(apiv3_key.encode("utf-8")) != 32:
            raise ImproperlyConfigured("WECHATPAY_APIV3_KEY must be the 32-character APIv3 key.")
        trade_type = str(getattr(settings, "WECHATPAY_TRADE_TYPE", "native") or "native").lower()
        if trade_type not in _TRADE_TYPES:
            raise ImproperlyConfigured("WECHATPAY_TRADE_TYPE must be 'native' or 'h5'.")
        self.trade_type = trade_type
        private_key = read_rsa_key("WECHATPAY_PRIVATE_KEY", private=True)
        public_key = read_rsa_key("WECHATPAY_PUBLIC_KEY", private=False)
        try:
            # public_key + public_key_id: no platform-certificate download (no network) here.
            # No notify_url on the client: payments pass theirs, refunds send none (so refund
            # notices never reach the payment notification endpoint).
            self._client = WeChatPay(
                wechatpay_type=_TRADE_TYPES[trade_type],
                mchid=self.mchid,
                private_key=private_key,
                cert_serial_no=values["WECHATPAY_CERT_SERIAL_NO"],
                appid=self.appid,
                apiv3_key=apiv3_key,
                notify_url=None,
                timeout=TIMEOUT,
                public_key=public_key,
                public_key_id=self.public_key_id,
            )
        except Exception as exc:  # the SDK raises bare Exceptions for unusable keys
            raise ImproperlyConfigured(f"WeChat Pay could not be configured: {exc}") from exc

    # --- paying ---------------------------------------------------------------------------------

    def create(self, request: PaymentRequest) -> str:
        """Register the order with WeChat Pay (a signed POST) and return where the payer pays:
        Native's code_url, or H5's h5_url with our return_url as redirect_url. WeChat Pay closes
        the order after PAYMENT_PENDING_MINUTES (time_expire).

        H5 requires the payer's IP (scene_info.payer_client_ip). PaymentRequest has no such field
        yet; it is read from `request.client_ip` when present, and H5 refuses without it."""
        minutes = int(getattr(settings, "PAYMENT_PENDING_MINUTES", 30))
        expires = datetime.now(SHANGHAI).replace(microsecond=0) + timedelta(minutes=minutes)
        order: dict[str, Any] = {
            "description": request.subject,
            "out_trade_no": request.out_trade_no,
            "amount": {"total": fen(request.amount), "currency": "CNY"},
            "time_expire": expires.isoformat(),
            "notify_url": request.notify_url,
            "pay_type": _TRADE_TYPES[self.trade_type],
        }
        if self.trade_type == "h5":
            client_ip = getattr(request, "client_ip", "") or ""
            if not client_ip:
                raise GatewayError("WeChat Pay H5 needs the payer's IP address (client_ip).")
            order["scene_info"] = {"payer_client_ip": client_ip, "h5_info": {"type": "Wap"}}
        answer = self._call("pay", self._client.pay, **order)
        if self.trade_type == "native":
            url = answer.get("code_url")
            if not isinstance(url, str) or not url:
                raise GatewayError("WeChat Pay answered without a code_url")
            return url
        url = answer.get("h5_url")
        if not isinstance(url, str) or not url:
            raise GatewayError("WeChat Pay answered without an h5_url")
        joiner = "&" if "?" in url else "?"
        return f"{url}{joiner}redirect_url={quote(request.return_url, safe='')}"

    def parse_notification(self, *, body: bytes, headers: Mapping[str, str]) -> Notification:
        canonical = _canonical_headers(headers)
        for name in _SIGNATURE_HEADERS:
            if not canonical.get(name):
                raise NotificationRejected(f"no {name} header")
        # Checked before the SDK sees it: for any other serial the SDK would go and download
        # platform certificates (a network call on untrusted input).
        if canonical["Wechatpay-Serial"] != self.public_key_id:
            raise NotificationRejected("signed with a key that is not our WeChat Pay public key")
        stamp = canonical["Wechatpay-Timestamp"]
        if not stamp.isascii() or not stamp.isdigit():
            raise NotificationRejected("malformed Wechatpay-Timestamp")
        if abs(time.time() - int(stamp)) > MAX_CLOCK_SKEW_SECONDS:
            raise NotificationRejected("stale Wechatpay-Timestamp")
        try:
            text = body.decode("utf-8")
        except (UnicodeDecodeError, AttributeError) as exc:
            raise NotificationRejected("the body is not UTF-8") from exc
        try:
            # Verifies the signature with the WeChat Pay public key, then decrypts `resource`
            # with the APIv3 key; None when either fails.
            data = self._client.callback(headers=canonical, body=text)
        except Exception as exc:  # malformed JSON, unsupported algorithm…: untrusted input
            raise NotificationRejected(f"the notification could not be read: {exc}") from exc
        if not data or not isinstance(data.get("resource"), dict):
            raise NotificationRejected("bad signature or undecryptable resource")
        resource = data["resource"]
        if resource.get("mchid") != self.mchid:
            raise NotificationRejected(f"mchid {resource.get('mchid')!r} is not ours")
        if resource.get("appid") != self.appid:
            raise NotificationRejected(f"appid {resource.get('appid')!r} is not ours")
        try:
            return self._notification(resource, data)
        except (KeyError, TypeError, AttributeError, ValueError, ArithmeticError) as exc:
            raise NotificationRejected(f"malformed notification: {exc}") from exc

    def _notification(self, resource: dict, data: dict) -> Notification:
        out_trade_no, trade_no = resource["out_trade_no"], resource["transaction_id"]
        if not (isinstance(out_trade_no, str) and isinstance(trade_no, str)):
            raise ValueError("out_trade_no and transaction_id must be strings")
        if not out_trade_no or not trade_no:
            raise ValueError("out_trade_no and transaction_id are required")
        state = resource["trade_state"]
        if state == "SUCCESS":
            succeeded = True
        elif state in ("CLOSED", "REVOKED", "PAYERROR"):
            succeeded = False
        else:  # NOTPAY, USERPAYING, REFUND or unknown: not a payment's final state
            raise ValueError(f"trade_state {state!r} is not final")
        amount = resource["amount"]
        if amount.get("currency", "CNY") != "CNY":
            raise ValueError(f"currency {amount.get('currency')!r}")
        return Notification(
            out_trade_no=out_trade_no,
            trade_no=trade_no,
            amount=yuan(amount["total"]),
            succeeded=succeeded,
            paid_at=_rfc3339(resource["success_time"]) if succeeded else None,
            raw=data,
        )

    def acknowledgement(self) -> tuple[int, str, str]:
        body = json.dumps({"code": "SUCCESS", "message": "成功"}, ensure_ascii=False)
        return 200, body, "application/json"

    # --- server calls -----------------------------------------------------------------------------

    def query(self, out_trade_no: str) -> TradeStatus:
        try:
            answer = self._call("query", self._client.query, out_trade_no=out_trade_no)
        except _NotFound:
            # The order never reached WeChat Pay; nothing was or can be paid on it.
            return TradeStatus(status="pending")
        state = answer.get("trade_state")
        trade_no = answer.get("transaction_id") or ""
        try:
            amount = yuan(answer["amount"]["total"]) if "amount" in answer else None
            paid_at = _rfc3339(answer["success_time"]) if answer.get("success_time") else None
        except (KeyError, TypeError, ValueError) as exc:
            raise GatewayError(f"WeChat Pay query: malformed answer: {exc}") from exc
        if state in ("SUCCESS", "REFUND"):  # REFUND: paid, then (partly) refunded
            return TradeStatus("succeeded", trade_no=trade_no, amount=amount, paid_at=paid_at)
        if state in ("NOTPAY", "USERPAYING"):
            return TradeStatus("pending", trade_no=trade_no, amount=amount)
        if state in ("CLOSED", "REVOKED", "PAYERROR"):
            return TradeStatus("closed", trade_no=trade_no, amount=amount)
        return TradeStatus("unknown", trade_no=trade_no, amount=amount)

    def refund(
        self, *, out_trade_no: str, refund_no: str, amount: Decimal, total: Decimal
    ) -> RefundResult:
        """WeChat Pay refunds asynchronously: PROCESSING answers succeeded=False (accepted, not
        done yet; sending the same refund_no again reports its state), SUCCESS succeeded=True,
        CLOSED and ABNORMAL raise GatewayError."""
        answer = self._call(
            "refund",
            self._client.refund,
            out_refund_no=refund_no,
            out_trade_no=out_trade_no,
            amount={"refund": fen(amount), "total": fen(total), "currency": "CNY"},
        )
        status = answer.get("status")
        refund_id = answer.get("refund_id") or ""
        if status in ("SUCCESS", "PROCESSING"):
            return RefundResult(
                refund_no=refund_no, gateway_refund_id=refund_id, succeeded=status == "SUCCESS"
            )
        raise GatewayError(f"WeChat Pay refund {refund_no}: status {status!r}")

    def settlement(self, day: date) -> list[SettlementLine]:
        """The day's trade bill (bill_type ALL), downloaded through the SDK and checked against
        its SHA1 hash: payments positive (订单金额), refunds negative (申请退款金额) with our refund
        number (商户退款单号). WeChat Pay publishes it after 10:00 the next day; a day without
        trades has no bill (empty list)."""
        try:
            answer = self._call(
                "trade_bill", self._client.trade_bill, bill_date=day.isoformat(), tar_type="GZIP"
            )
        except _NotFound:
            return []
        url, hash_type = answer.get("download_url"), answer.get("hash_type")
        if not isinstance(url, str) or not url or hash_type != "SHA1":
            raise GatewayError(f"WeChat Pay trade_bill: unexpected answer {answer!r}")
        try:
            code, content = self._client.download_bill(url)
        except Exception as exc:
            raise GatewayError(f"downloading the WeChat Pay bill failed: {exc!r}") from exc
        if code != 200:
            raise GatewayError(f"downloading the WeChat Pay bill failed: HTTP {code}")
        if isinstance(content, str):
            content = content.encode("utf-8")
        try:
            raw = gzip.decompress(content)
        except (OSError, EOFError) as exc:
            raise GatewayError("the WeChat Pay bill is not gzip") from exc
        # The hash is the integrity check of the (unsigned) download: of the bill, unzipped.
        if hashlib.sha1(raw).hexdigest().lower() != str(answer.get("hash_value", "")).lower():
            raise GatewayError("the WeChat Pay bill does not match its hash")
        try:
            return parse_trade_bill(raw.decode("utf-8-sig"))
        except UnicodeDecodeError as exc:
            raise GatewayError("the WeChat Pay bill is not UTF-8") from exc

    # --- helpers ----------------------------------------------------------------------------------

    def _call(self, what: str, method, **kwargs) -> dict:
        """One SDK request (signed by the SDK; a 2xx answer's signature verified by the SDK with
        the WeChat Pay public key). 404 raises _NotFound; other failures GatewayError."""
        try:
            code, message = method(**kwargs)
        except Exception as exc:  # requests' errors, "failed to verify the signature", …
            raise GatewayError(f"WeChat Pay {what} failed: {exc!r}") from exc
        try:
            answer = json.loads(message) if message else {}
        except (TypeError, ValueError) as exc:
            raise GatewayError(f"WeChat Pay {what}: HTTP {code}, not JSON") from exc
        if not isinstance(answer, dict):
            raise GatewayError(f"WeChat Pay {what}: HTTP {code}, unexpected answer")
        if code in range(200, 300):
            return answer
        if code == 404 or answer.get("code") in ("ORDER_NOT_EXIST", "NO_STATEMENT_EXIST"):
            raise _NotFound(answer.get("code"))
        raise GatewayError(
            f"WeChat Pay {what} refused: HTTP {code} {answer.get('code')} {answer.get('message')}"
        )


class _NotFound(GatewayError):
    pass


def parse_trade_bill(text: str) -> list[SettlementLine]:
    """Lines of WeChat Pay's trade bill: a header line, detail lines whose every field starts
    with a backtick (`), then a summary header (总交易单数,…) and a summary line."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    header = [name.strip() for name in lines[0].split(",")]
    columns = {name: i for i, name in enumerate(header)}
    try:
        state_at, trade_no_at = columns["交易状态"], columns["微信订单号"]
        out_trade_no_at = columns["商户订单号"]
        paid_at = columns.get("订单金额", columns.get("应结订单金额"))
        refunded_at = columns.get("申请退款金额", columns.get("退款金额"))
        refund_no_at = columns.get("商户退款单号")  # our out_refund_no, on a refund's line
    except KeyError as exc:
        raise GatewayError(f"the WeChat Pay bill lacks the column {exc}") from exc
    if paid_at is None or refunded_at is None:
        raise GatewayError("the WeChat Pay bill lacks its amount columns")
    result = []
    for line in lines[1:]:
        if not line.startswith("`"):
            break  # the summary header
        fields = [field.strip() for field in line[1:].split(",`")]
        if len(fields) < len(header) - 1:
            raise GatewayError(f"malformed WeChat Pay bill line: {line!r}")
        fields += [""] * (len(header) - len(fields))
        state = fields[state_at]
        if state not in ("SUCCESS", "REFUND"):
            continue
        text_amount = fields[paid_at if state == "SUCCESS" else refunded_at]
        try:
            amount = Decimal(text_amount)
        except ArithmeticError as exc:
            raise GatewayError(f"malformed amount in WeChat Pay bill line: {line!r}") from exc
        if not amount.is_finite() or amount != amount.quantize(CENT):
            raise GatewayError(f"malformed amount in WeChat Pay bill line: {line!r}")
        amount = abs(amount).quantize(CENT)
        refund_no = ""
        if state == "REFUND" and refund_no_at is not None:
            refund_no = fields[refund_no_at]
        result.append(
            SettlementLine(
                out_trade_no=fields[out_trade_no_at],
                trade_no=fields[trade_no_at],
                amount=amount if state == "SUCCESS" else -amount,
                refund_no=refund_no,
            )
        )
    return result
