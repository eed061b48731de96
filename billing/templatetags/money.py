"""{% load money %}: `{{ bill.amount|money }}` prints "¥1,234.50" in the reader's language."""

from django import template

from billing.money import money_text

register = template.Library()


@register.filter
def money(amount) -> str:
    return money_text(amount)
