"""{{ payment|check_code }}: a receipt's check code (billing/chain.py), "" before it is booked."""

from django import template

from billing import chain

register = template.Library()


@register.filter
def check_code(payment) -> str:
    return chain.payment_check_code(payment)
