"""Domain events billing announces. Sent after the writing transaction commits, so a listener
never sees a payment that was rolled back. Billing imports no listener: points/ and alliance/
connect their receivers to these signals.

payment_succeeded(payment_id: int, payer_id: int, amount: str ("123.45"), paid_at: str (ISO 8601),
    on_time: bool  (billing.selectors.paid_on_time: a bill that fell due among them, and every
        bill paid on or before its due date),
    bills: list[{"bill_id", "household_id", "community_id", "period", "amount", "is_prepaid"}],
    months_prepaid: int  (how many of the bills were prepaid future months))

payment_refunded(payment_id: int, refund_id: int, payer_id: int, amount: str,
    fully_refunded: bool)
"""

from django.dispatch import Signal

payment_succeeded = Signal()
payment_refunded = Signal()
