"""The outside channels of the notifications layer: e-mail, SMS (Alibaba Cloud SMS) and WeChat
subscription messages. Each adapter takes one Delivery and either returns the provider's
reference or raises SendError, saying whether trying again later could help.

Each channel is off until its settings are (settings/base.py: LINLI_SMS_PROVIDER and ALIYUN_SMS_*,
WECHAT_MP_*); `enabled_channels()` is what notify() fans out to.

SMS: we sign Alibaba Cloud's RPC requests ourselves (signature method V2: HMAC-SHA1 over the
sorted, percent-encoded query) rather than pulling in alibabacloud_dysmsapi20170525 and its
Tea runtime (a dozen packages) for one GET request. community/tests/test_notifications.py checks
the signer against Alibaba Cloud's own published examples. HTTP goes through httpx (already a
dependency); tests replace TRANSPORT with an httpx.MockTransport, the HTTP boundary and nothing
else.
"""

import base64
import hashlib
import hmac
import json
import logging
import uuid
from datetime import UTC, datetime
from urllib.parse import quote

import httpx
from django.conf import settings
from django.core import mail
from django.core.cache import cache

from community.notification_models import Channel, Delivery

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10
# None: the real network. Tests put an httpx.MockTransport here.
TRANSPORT: httpx.BaseTransport | None = None


class SendError(Exception):
    """The provider refused or could not be reached. `retryable`: a later try may succeed
    (network, 5xx, throttling); otherwise (bad number, user refused, wrong keys) it will not."""

    def __init__(self, message: str, *, retryable: bool):
        super().__init__(message)
        self.retryable = retryable


def _client() -> httpx.Client:
    return httpx.Client(timeout=TIMEOUT_SECONDS, transport=TRANSPORT)


def enabled_channels() -> list[str]:
    """The channels notify() fans out to, in order. In-app and e-mail are always there (e-mail
    only reaches people with an address); SMS and WeChat once configured."""
    channels = [Channel.IN_APP, Channel.EMAIL]
    if settings.LINLI_SMS_PROVIDER == "aliyun":
        channels.append(Channel.SMS)
    if settings.WECHAT_MP_APPID and settings.WECHAT_MP_SECRET:
        channels.append(Channel.WECHAT)
    return channels


def kind_has_template(channel: str, kind: str) -> bool:
    """SMS and WeChat send only pre-approved templates: a kind without one is not sent there."""
    if channel == Channel.SMS:
        return bool(settings.ALIYUN_SMS_TEMPLATES.get(kind))
    if channel == Channel.WECHAT:
        return bool(settings.WECHAT_MP_TEMPLATES.get(kind))
    return True


def send(delivery: Delivery) -> str:
    """Send one claimed Delivery through its channel; returns the provider's reference."""
    if delivery.channel == Channel.EMAIL:
        return send_email(delivery)
    if delivery.channel == Channel.SMS:
        return AliyunSms.from_settings().send(delivery)
    if delivery.channel == Channel.WECHAT:
        return WechatSubscribe.from_settings().send(delivery)
    raise SendError(f"no adapter for channel {delivery.channel}", retryable=False)


# --- e-mail -------------------------------------------------------------------------------------


def send_email(delivery: Delivery) -> str:
    if not delivery.user.email:  # removed since the message was queued
        raise SendError("no e-mail address", retryable=False)
    try:
        mail.send_mail(
            delivery.title,
            f"{delivery.body}\n\n{delivery.link}".strip(),
            None,
            [delivery.user.email],
        )
    except OSError as exc:  # SMTP down, refused connection: the mail server may be back later
        raise SendError(str(exc), retryable=True) from exc
    return ""


# --- Alibaba Cloud SMS (dysmsapi 2017-05-25, SendSms) -------------------------------------------


def percent_encode(value: str) -> str:
    """Alibaba Cloud's POP encoding: RFC 3986, UTF-8, only A-Z a-z 0-9 - _ . ~ left as they are
    (so a space is %20, never +; * is %2A; ~ stays ~)."""
    return quote(value, safe="-_.~")


def aliyun_string_to_sign(method: str, params: dict[str, str]) -> str:
    canonical = "&".join(
        f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items())
    )
    return f"{method}&{percent_encode('/')}&{percent_encode(canonical)}"


def aliyun_signature(method: str, params: dict[str, str], secret: str) -> str:
    """Signature = Base64(HMAC-SHA1(secret + "&", StringToSign)), StringToSign built from every
    parameter except Signature itself."""
    to_sign = aliyun_string_to_sign(method, params)
    digest = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def aliyun_signed_url(endpoint: str, params: dict[str, str], secret: str) -> str:
    """The GET URL as Alibaba Cloud's documentation builds it: Signature first, then the sorted,
    encoded parameters."""
    signature = aliyun_signature("GET", params, secret)
    query = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items()))
    return f"{endpoint}?Signature={percent_encode(signature)}&{query}"


# Codes after which the same request may succeed later: throttling and the provider's own
# faults (isp.*). Everything else (isv.MOBILE_NUMBER_ILLEGAL, SignatureDoesNotMatch, a template
# not approved...) fails the same way every time.
ALIYUN_RETRYABLE_CODES = {
    "isv.BUSINESS_LIMIT_CONTROL",
    "Throttling",
    "Throttling.User",
    "ServiceUnavailable",
}


def _nonce() -> str:
    return uuid.uuid4().hex


def _timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class AliyunSms:
    action_params = {"Action": "SendSms", "Version": "2017-05-25", "RegionId": "cn-hangzhou"}
    response_format = "JSON"

    def __init__(self, *, access_key_id: str, secret: str, sign_name: str, endpoint: str):
        self.access_key_id = access_key_id
        self.secret = secret
        self.sign_name = sign_name
        self.endpoint = endpoint

    @classmethod
    def from_settings(cls) -> "AliyunSms":
        return cls(
            access_key_id=settings.ALIYUN_SMS_ACCESS_KEY_ID,
            secret=settings.ALIYUN_SMS_ACCESS_KEY_SECRET,
            sign_name=settings.ALIYUN_SMS_SIGN_NAME,
            endpoint=settings.ALIYUN_SMS_ENDPOINT,
        )

    def request_params(
        self, *, phone: str, template_code: str, template_param: dict, out_id: str
    ) -> dict[str, str]:
        return {
            **self.action_params,
            "AccessKeyId": self.access_key_id,
            "Format": self.response_format,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureVersion": "1.0",
            "SignatureNonce": _nonce(),
            "Timestamp": _timestamp(),
            "PhoneNumbers": phone,
            "SignName": self.sign_name,
            "TemplateCode": template_code,
            "TemplateParam": json.dumps(template_param, ensure_ascii=False, separators=(",", ":")),
            "OutId": out_id,
        }

    def send(self, delivery: Delivery) -> str:
        phone = delivery.user.phone.strip()
        if not phone:
            raise SendError("no phone number", retryable=False)
        params = self.request_params(
            phone=phone,
            template_code=settings.ALIYUN_SMS_TEMPLATES[delivery.kind],
            template_param={k: str(v) for k, v in delivery.params.items()},
            out_id=str(delivery.pk),
        )
        url = aliyun_signed_url(self.endpoint, params, self.secret)
        try:
            with _client() as client:
                response = client.get(url)
        except httpx.HTTPError as exc:
            raise SendError(f"SMS provider unreachable: {exc}", retryable=True) from exc
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        code = answer.get("Code", "")
        if response.status_code == 200 and code == "OK":
            return answer.get("BizId", "")
        retryable = response.status_code >= 500 or code in ALIYUN_RETRYABLE_CODES
        retryable = retryable or code.startswith("isp.")
        raise SendError(
            f"SMS refused: HTTP {response.status_code} {code} {answer.get('Message', '')}".strip(),
            retryable=retryable,
        )


# --- WeChat subscription messages (小程序订阅消息) ------------------------------------------------

WECHAT_TOKEN_URL = "https://api.weixin.qq.com/cgi-bin/token"
WECHAT_SEND_URL = "https://api.weixin.qq.com/cgi-bin/message/subscribe/send"
# -1: system busy. 40001 / 42001: the access token is invalid or expired (fetch a new one).
WECHAT_RETRYABLE = {-1, 40001, 42001}
WECHAT_TOKEN_CACHE_KEY = "notifications:wechat-mp-access-token"


class WechatSubscribe:
    def __init__(self, *, appid: str, secret: str):
        self.appid = appid
        self.secret = secret

    @classmethod
    def from_settings(cls) -> "WechatSubscribe":
        return cls(appid=settings.WECHAT_MP_APPID, secret=settings.WECHAT_MP_SECRET)

    def access_token(self, client: httpx.Client) -> str:
        """The app's access token, shared through the cache by every process (WeChat allows a
        limited number of fetches a day and invalidates the previous token on each fetch)."""
        token = cache.get(WECHAT_TOKEN_CACHE_KEY)
        if token:
            return token
        try:
            answer = client.get(
                WECHAT_TOKEN_URL,
                params={
                    "grant_type": "client_credential",
                    "appid": self.appid,
                    "secret": self.secret,
                },
            ).json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SendError(f"WeChat unreachable: {exc}", retryable=True) from exc
        if "access_token" not in answer:
            raise SendError(
                f"WeChat token refused: {answer.get('errcode')} {answer.get('errmsg')}",
                retryable=answer.get("errcode") == -1,
            )
        cache.set(
            WECHAT_TOKEN_CACHE_KEY, answer["access_token"], answer.get("expires_in", 7200) - 300
        )
        return answer["access_token"]

    def payload(self, delivery: Delivery, openid: str) -> dict:
        fields = settings.WECHAT_MP_FIELDS.get(delivery.kind) or {}
        data = {
            fields.get(name, name): {"value": str(value)} for name, value in delivery.params.items()
        }
        return {
            "touser": openid,
            "template_id": settings.WECHAT_MP_TEMPLATES[delivery.kind],
            # No "page": our links are web paths, not the mini program's pages; the message
            # opens the mini program's home.
            "data": data,
        }

    def send(self, delivery: Delivery) -> str:
        preference = getattr(delivery.user, "notification_preference", None)
        openid = preference.wechat_openid if preference else ""
        if not openid:
            raise SendError("no WeChat openid", retryable=False)
        with _client() as client:
            token = self.access_token(client)
            try:
                answer = client.post(
                    WECHAT_SEND_URL,
                    params={"access_token": token},
                    content=json.dumps(self.payload(delivery, openid), ensure_ascii=False).encode(),
                    headers={"Content-Type": "application/json"},
                ).json()
            except (httpx.HTTPError, ValueError) as exc:
                raise SendError(f"WeChat unreachable: {exc}", retryable=True) from exc
        errcode = answer.get("errcode", 0)
        if errcode == 0:
            return str(answer.get("msgid", ""))
        if errcode in (40001, 42001):
            cache.delete(WECHAT_TOKEN_CACHE_KEY)
        # 43101: the person has not (or no longer) subscribed to this template: not retryable.
        raise SendError(
            f"WeChat refused: {errcode} {answer.get('errmsg', '')}",
            retryable=errcode in WECHAT_RETRYABLE,
        )
