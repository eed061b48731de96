"""{% load bill_lines %}: `{{ line|bill_line_text }}` prints a bill line as "name  2 × ¥1.20",
the way the PDF receipt writes it (billing.receipt_pdf.line_text)."""

from django import template

from billing.receipt_pdf import line_text

register = template.Library()


@register.filter
def bill_line_text(line) -> str:
    return line_text(line)
