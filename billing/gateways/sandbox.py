"""The built-in sandbox gateway: behaves like a real one, so the whole payment flow — pay page,
signed server-to-server notification, lost notifications, refunds, settlement — runs end to end
without a payment provider. Contract: API.md, "Sandbox gateway".

Notification: JSON body {"out_trade_no","trade_no","amount","status":"SUCCESS|CLOSED","paid_at"}
with header X-Sandbox-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256("<t>.<raw body>")> keyed
with SANDBOX_GATEWAY_SECRET; a timestamp more than 300 s away is refused.
"""

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from billing.gateways.base import (
    GatewayError,
    Notification,
    NotificationRejected,
    PaymentRequest,
    RefundResult,
    SettlementLine,
    TradeStatus,
)
from billing.models import SandboxRefund, SandboxTrade

SIGNATURE_HEADER = "X-Sandbox-Signature"
TOLERANCE_SECONDS = 300


def sign(raw_body: bytes, *, timestamp: int | None = None, secret: str | None = None) -> str:
    """The X-Sandbox-Signature header value for a body, as the gateway computes it."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    key = (secret if secret is not None else settings.SANDBOX_GATEWAY_SECRET).encode()
    digest = hmac.new(key, f"{timestamp}.".encode() + raw_body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _parse_signature(header: str) -> tuple[int, str]:
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        return int(parts["t"]), parts["v1"]
    except (KeyError, ValueError) as exc:
        raise NotificationRejected("malformed signature header") from exc


def notification_body(trade: SandboxTrade) -> bytes:
    status = "SUCCESS" if trade.status == "TRADE_SUCCESS" else "CLOSED"
    return json.dumps(
        {
            "out_trade_no": trade.out_trade_no,
            "trade_no": trade.trade_no,
            "amount": f"{trade.amount:.2f}",
            "status": status,
            "paid_at": trade.paid_at.isoformat() if trade.paid_at else None,
        },
        separators=(",", ":"),
    ).encode()


class SandboxGateway:
    name = "sandbox"

    def create(self, request: PaymentRequest) -> str:
        SandboxTrade.objects.create(
            out_trade_no=request.out_trade_no,
            trade_no=f"SBX{secrets.token_hex(12).upper()}",
            amount=request.amount,
            notify_url=request.notify_url,
        )
        return settings.SITE_URL + reverse("sandbox-pay", args=[request.out_trade_no])

    def parse_notification(self, *, body: bytes, headers: Mapping[str, str]) -> Notification:
        header = headers.get(SIGNATURE_HEADER) or ""
        if not header:
            raise NotificationRejected("missing signature")
        timestamp, received = _parse_signature(header)
        if abs(time.time() - timestamp) > TOLERANCE_SECONDS:
            raise NotificationRejected("stale timestamp")
        expected = sign(body, timestamp=timestamp).split("v1=", 1)[1]
        if not hmac.compare_digest(expected, received):
            raise NotificationRejected("bad signature")
        try:
            data = json.loads(body)
            amount = Decimal(str(data["amount"]))
            status = data["status"]
            paid_at = datetime.fromisoformat(data["paid_at"]) if data.get("paid_at") else None
            out_trade_no, trade_no = str(data["out_trade_no"]), str(data["trade_no"])
        except (ValueError, KeyError, TypeError, InvalidOperation) as exc:
            raise NotificationRejected("malformed body") from exc
        # NaN, sNaN and Infinity parse as Decimals, but have no exponent to compare: a money
        # amount must be finite, positive and to the fen.
        if (
            status not in ("SUCCESS", "CLOSED")
            or not amount.is_finite()
            or amount <= 0
            or amount.as_tuple().exponent < -2
        ):
            raise NotificationRejected("malformed body")
        if status == "SUCCESS" and (paid_at is None or timezone.is_naive(paid_at)):
            raise NotificationRejected("a successful trade needs paid_at with an offset")
        return Notification(
            out_trade_no=out_trade_no,
            trade_no=trade_no,
            amount=amount,
            succeeded=status == "SUCCESS",
            paid_at=paid_at,
            raw=data,
        )

    def acknowledgement(self) -> tuple[int, str, str]:
        return 200, "success", "text/plain"

    def query(self, out_trade_no: str) -> TradeStatus:
        trade = SandboxTrade.objects.filter(out_trade_no=out_trade_no).first()
        if trade is None:
            return TradeStatus(status="unknown")
        status = {"TRADE_SUCCESS": "succeeded", "TRADE_CLOSED": "closed"}.get(
            trade.status, "pending"
        )
        return TradeStatus(
            status=status, trade_no=trade.trade_no, amount=trade.amount, paid_at=trade.paid_at
        )

    def refund(
        self, *, out_trade_no: str, refund_no: str, amount: Decimal, total: Decimal
    ) -> RefundResult:
        """Refund part of a paid trade. Idempotent by refund_no, as Alipay's out_request_no and
        WeChat Pay's out_refund_no are: the same number again answers with the refund already
        made and moves no money; the same number with another trade or amount is refused."""
        with transaction.atomic():
            trade = (
                SandboxTrade.objects.select_for_update().filter(out_trade_no=out_trade_no).first()
            )
            if trade is None or trade.status != "TRADE_SUCCESS":
                raise GatewayError("trade not paid")
            existing = SandboxRefund.objects.filter(refund_no=refund_no).first()
            if existing is not None:
                if existing.trade_id != trade.pk or existing.amount != amount:
                    raise GatewayError("refund number already used for another refund")
                return RefundResult(
                    refund_no=refund_no,
                    gateway_refund_id=existing.gateway_refund_id,
                    succeeded=True,
                )
            if trade.refunded + amount > trade.amount:
                raise GatewayError("refund exceeds the trade")
            try:
                # Two refunds of one trade wait for each other on the trade's lock; the unique
                # refund_no still refuses the same number sent for two trades at once.
                with transaction.atomic():
                    refund = SandboxRefund.objects.create(
                        trade=trade,
                        refund_no=refund_no,
                        gateway_refund_id=f"SBXR{secrets.token_hex(8).upper()}",
                        amount=amount,
                    )
            except IntegrityError as exc:
                raise GatewayError("refund number already used for another refund") from exc
            trade.refunded += amount
            trade.save(update_fields=["refunded"])
        return RefundResult(
            refund_no=refund_no, gateway_refund_id=refund.gateway_refund_id, succeeded=True
        )

    def settlement(self, day: date) -> list[SettlementLine]:
        """The day's statement from the gateway's own book: trades paid that day (positive),
        then refunds made that day (negative, with our refund number). The day runs midnight to
        midnight in the project's time zone (settings.TIME_ZONE), as a Chinese gateway's does."""
        start = timezone.make_aware(
            datetime.combine(day, datetime.min.time()), timezone.get_default_timezone()
        )
        end = start + timedelta(days=1)
        trades = SandboxTrade.objects.filter(
            status="TRADE_SUCCESS", paid_at__gte=start, paid_at__lt=end
        ).order_by("paid_at", "pk")
        refunds = (
            SandboxRefund.objects.filter(created_at__gte=start, created_at__lt=end)
            .select_related("trade")
            .order_by("created_at", "pk")
        )
        return [SettlementLine(t.out_trade_no, t.trade_no, t.amount) for t in trades] + [
            SettlementLine(r.trade.out_trade_no, r.trade.trade_no, -r.amount, refund_no=r.refund_no)
            for r in refunds
        ]

    # --- the gateway's own side: what its pay page does --------------------------------------

    @staticmethod
    def confirm(trade: SandboxTrade) -> None:
        if trade.status == "WAIT_BUYER_PAY":
            trade.status, trade.paid_at = "TRADE_SUCCESS", timezone.now()
            trade.save(update_fields=["status", "paid_at"])

    @staticmethod
    def cancel(trade: SandboxTrade) -> None:
        if trade.status == "WAIT_BUYER_PAY":
            trade.status = "TRADE_CLOSED"
            trade.save(update_fields=["status"])
