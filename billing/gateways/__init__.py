"""Gateways by name. Which ones are on is a setting (PAYMENT_GATEWAYS); each reads its own keys
from settings when it is built, so an unconfigured gateway costs nothing."""

from django.conf import settings
from django.utils.module_loading import import_string

from billing.gateways.base import Gateway

GATEWAY_CLASSES = {
    "sandbox": "billing.gateways.sandbox.SandboxGateway",
    "alipay": "billing.gateways.alipay.AlipayGateway",
    "wechat": "billing.gateways.wechat.WechatPayGateway",
}


class UnknownGateway(LookupError):
    pass


def enabled_gateways() -> list[str]:
    return [name for name in settings.PAYMENT_GATEWAYS if name in GATEWAY_CLASSES]


def get_gateway(name: str) -> Gateway:
    if name not in enabled_gateways():
        raise UnknownGateway(name)
    return import_string(GATEWAY_CLASSES[name])()
