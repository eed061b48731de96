"""The one small interface every payment gateway implements.

The portal creates a payment (the gateway answers with the page the payer confirms on), receives
the gateway's signed server-to-server notification, asks the gateway about a trade whose
notification never came (reconciliation), refunds, and reads a day's settlement. Everything
gateway-specific — signatures, field names, the acknowledgement it expects — stays behind this
interface; billing.services only sees the dataclasses below.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Literal, Protocol


class NotificationRejected(Exception):
    """The notification is not to be trusted or not understood (bad or missing signature, stale
    timestamp, malformed body). The portal answers 400 and changes nothing."""


class GatewayError(Exception):
    """The gateway could not be reached or refused a request (query, refund)."""


@dataclass(frozen=True)
class PaymentRequest:
    out_trade_no: str  # ours, unique
    amount: Decimal  # yuan, 2 places
    subject: str  # shown to the payer, e.g. "翰林苑 物业费 2019-08"
    notify_url: str  # absolute URL of our notification endpoint for this gateway
    return_url: str  # where the payer's browser goes afterwards


@dataclass(frozen=True)
class Notification:
    """A verified notification, normalised."""

    out_trade_no: str
    trade_no: str  # the gateway's own id of the trade
    amount: Decimal
    succeeded: bool  # False: the trade was closed without payment
    paid_at: datetime | None
    raw: Mapping = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class TradeStatus:
    status: Literal["pending", "succeeded", "closed", "unknown"]
    trade_no: str = ""
    amount: Decimal | None = None
    paid_at: datetime | None = None


@dataclass(frozen=True)
class RefundResult:
    refund_no: str  # ours, echoed back
    gateway_refund_id: str
    succeeded: bool


@dataclass(frozen=True)
class SettlementLine:
    out_trade_no: str
    trade_no: str
    amount: Decimal  # positive for a payment, negative for a refund
    refund_no: str = ""  # ours, on a refund's line (Alipay 退款批次号/请求号, WeChat 商户退款单号)


class Gateway(Protocol):
    name: str

    def create(self, request: PaymentRequest) -> str:
        """Register the trade with the gateway; return the pay URL for the payer."""

    def parse_notification(self, *, body: bytes, headers: Mapping[str, str]) -> Notification:
        """Verify the signature and parse; raise NotificationRejected if anything is wrong."""

    def acknowledgement(self) -> tuple[int, str, str]:
        """What the gateway expects back once a notification is recorded:
        (status code, body, content type)."""

    def query(self, out_trade_no: str) -> TradeStatus:
        """Ask the gateway how a trade stands (a notification may have been lost)."""

    def refund(
        self, *, out_trade_no: str, refund_no: str, amount: Decimal, total: Decimal
    ) -> RefundResult:
        """Refund part or all of a paid trade."""

    def settlement(self, day: date) -> list[SettlementLine]:
        """The gateway's settlement statement for one day, for reconciliation."""
