"""A payment's receipt as a PDF, in the reader's language, with a Chinese font embedded.

ReportLab lays it out; its TTFont embeds the subset of the font's glyphs the receipt uses
(FontFile2), so the PDF reads the same on a phone with no Chinese fonts. The font is a TrueType
file named by settings.RECEIPT_PDF_FONT (Debian's fonts-wqy-microhei by default). ReportLab
cannot embed OpenType fonts with CFF outlines (Noto CJK, Source Han), so those are refused here
with ReceiptFontUnavailable, as is a missing file: the view answers with an explanation, never a
500. Money is Decimal all the way (billing.money.money_text); nothing passes through a float.
"""

import io
import threading
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from xml.sax.saxutils import escape

from django.conf import settings
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFError, TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from reportlab.platypus.flowables import KeepTogether

from billing import chain
from billing.models import Payment, PaymentItem, Refund
from billing.money import money_text

GATEWAY_NAMES = {
    "sandbox": gettext_lazy("Sandbox (test payments)"),
    "alipay": gettext_lazy("Alipay"),
    "wechat": gettext_lazy("WeChat Pay"),
    Payment.DESK_GATEWAY: gettext_lazy("The centre's desk"),
}

_registered: dict[tuple[str, int], str] = {}
_lock = threading.Lock()


class ReceiptFontUnavailable(Exception):
    """settings.RECEIPT_PDF_FONT is missing or is not a TrueType font ReportLab can embed."""


def receipt_font() -> str:
    """The registered ReportLab name of the receipts' font, registering it on first use."""
    path, index = str(settings.RECEIPT_PDF_FONT), settings.RECEIPT_PDF_FONT_INDEX
    with _lock:
        if (path, index) in _registered:
            return _registered[(path, index)]
        if not Path(path).is_file():
            raise ReceiptFontUnavailable(f"RECEIPT_PDF_FONT {path} does not exist")
        name = f"LinliReceipt{len(_registered)}"
        try:
            pdfmetrics.registerFont(TTFont(name, path, subfontIndex=index))
        except (TTFError, OSError, ValueError) as exc:
            raise ReceiptFontUnavailable(f"RECEIPT_PDF_FONT {path}: {exc}") from exc
        _registered[(path, index)] = name
        return name


@dataclass(frozen=True)
class _Styles:
    title: ParagraphStyle
    subtitle: ParagraphStyle
    text: ParagraphStyle
    small: ParagraphStyle
    number: ParagraphStyle
    small_number: ParagraphStyle
    heading: ParagraphStyle


def _styles(font: str) -> _Styles:
    text = ParagraphStyle("text", fontName=font, fontSize=10, leading=14, wordWrap="CJK")
    return _Styles(
        title=ParagraphStyle("title", parent=text, fontSize=18, leading=24, alignment=1),
        subtitle=ParagraphStyle(
            "subtitle", parent=text, textColor=colors.HexColor("#555555"), alignment=1
        ),
        text=text,
        small=ParagraphStyle(
            "small", parent=text, fontSize=8.5, leading=12, textColor=colors.HexColor("#555555")
        ),
        number=ParagraphStyle("number", parent=text, alignment=2),
        small_number=ParagraphStyle(
            "small_number",
            parent=text,
            fontSize=8.5,
            leading=12,
            alignment=2,
            textColor=colors.HexColor("#555555"),
        ),
        heading=ParagraphStyle("heading", parent=text, fontSize=12, leading=18, spaceBefore=8),
    )


def _p(text, style) -> Paragraph:
    return Paragraph(escape(str(text)), style)


def _when(moment) -> str:
    return formats.date_format(timezone.localtime(moment), "DATETIME_FORMAT") if moment else ""


def _quantity(value: Decimal) -> str:
    """100.00 → "100", 1.50 → "1.5": a count or an area as people write it."""
    text = f"{value.normalize():f}" if value == value.to_integral() else f"{value:f}".rstrip("0")
    return text.rstrip(".")


def _unit_price(value: Decimal) -> str:
    """A price of up to 4 decimals (a rate per m²) with at least two: ¥1.20, ¥1.2345."""
    text = f"{value:f}"
    whole, _dot, decimals = text.partition(".")
    decimals = decimals.rstrip("0").ljust(2, "0")
    return f"-¥{whole[1:]}.{decimals}" if whole.startswith("-") else f"¥{whole}.{decimals}"


def household_text(household) -> str:
    building = household.building
    return f"{building.community.name} {building.name} {household.unit}"


def line_text(line) -> str:
    """One bill line as "name  quantity unit × unit price", "物业费  100 m² × ¥1.20" (the receipt
    and the bills page)."""
    quantity = _quantity(line.quantity)
    quantity = f"{quantity} {line.unit}" if line.unit else quantity
    return f"{line.name}  {quantity} × {_unit_price(line.unit_price)}"


def _method_text(payment: Payment) -> str:
    if payment.method == Payment.Method.ONLINE:
        return str(GATEWAY_NAMES.get(payment.gateway, payment.gateway))
    return payment.get_method_display()


def render_receipt(*, payment: Payment, items: list[PaymentItem], refunds: list[Refund]) -> bytes:
    """The receipt of a succeeded or refunded payment, as PDF bytes, in the active language."""
    font = receipt_font()
    st = _styles(font)
    households = list(dict.fromkeys(household_text(item.bill.household) for item in items))
    facts = [
        (_("Receipt number"), payment.receipt_number),
        (_("Paid at"), _when(payment.paid_at)),
        (_("Payer"), payment.payer.get_display_name()),
        (_("Household"), "\n".join(households)),
        (_("Paid by"), _method_text(payment)),
    ]
    if payment.method == Payment.Method.ONLINE:
        facts.append((_("Gateway trade number"), payment.trade_no))
    elif payment.reference:
        facts.append((_("Reference"), payment.reference))
    facts += [
        (_("Trade number"), payment.out_trade_no),
        (_("Status"), payment.get_status_display()),
    ]
    check_code = chain.payment_check_code(payment)  # billing/chain.py; /check/ verifies it
    if check_code:
        facts.append((_("Check code"), check_code))
    fact_rows = [
        [_p(label, st.small), [_p(part, st.text) for part in str(value).split("\n")]]
        for label, value in facts
    ]
    facts_table = Table(fact_rows, colWidths=[38 * mm, None], hAlign="LEFT")
    facts_table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#dddddd")),
            ]
        )
    )

    rows = [
        [
            _p(_("Month"), st.small),
            _p(_("Household"), st.small),
            _p(_("Area (m²)"), st.small),
            _p(_("Rate"), st.small),
            _p(_("Amount"), st.small),
        ]
    ]
    line_rows = []  # indexes of the rows that are a bill's lines, drawn smaller
    for item in items:
        bill = item.bill
        rows.append(
            [
                _p(bill.period, st.text),
                _p(household_text(bill.household), st.text),
                _p(f"{bill.area}", st.number),
                _p(bill.rate_display, st.number),
                _p(money_text(item.amount), st.number),
            ]
        )
        for line in bill.lines.all():
            label = line_text(line)
            if line.waived_at:
                label = f"{label} ({_('waived')})"
            line_rows.append(len(rows))
            rows.append(
                ["", _p(label, st.small), "", "", _p(money_text(line.amount), st.small_number)]
            )
    rows.append(["", "", "", _p(_("Total"), st.number), _p(money_text(payment.amount), st.number)])
    bills_table = Table(
        rows, colWidths=[20 * mm, None, 22 * mm, 20 * mm, 30 * mm], repeatRows=1, hAlign="LEFT"
    )
    style = [
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LINEBELOW", (0, 0), (-1, 0), 0.75, colors.black),
        ("LINEABOVE", (0, -1), (-1, -1), 0.75, colors.black),
        ("SPAN", (1, -1), (2, -1)),
    ]
    style += [("TOPPADDING", (0, i), (-1, i), 0) for i in line_rows]
    bills_table.setStyle(TableStyle(style))

    story = [
        _p(_("Property fee receipt"), st.title),
        _p(_("Collected in escrow by the Linli centre"), st.subtitle),
        Spacer(1, 6 * mm),
        facts_table,
        Spacer(1, 6 * mm),
        bills_table,
    ]
    succeeded = [refund for refund in refunds if refund.status == Refund.Status.SUCCEEDED]
    if succeeded:
        refund_rows = [
            [
                _p(_when(r.created_at), st.text),
                _p(r.refund_no, st.small),
                _p(money_text(r.amount), st.number),
            ]
            for r in succeeded
        ]
        refund_table = Table(refund_rows, colWidths=[50 * mm, None, 30 * mm], hAlign="LEFT")
        story.append(
            KeepTogether(
                [
                    _p(_("Refunds"), st.heading),
                    refund_table,
                    _p(
                        _("Refunded since: %(amount)s")
                        % {"amount": money_text(payment.refunded_amount)},
                        st.text,
                    ),
                ]
            )
        )

    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
        title=f"{_('Property fee receipt')} {payment.receipt_number}",
        author=_("Linli centre"),
        invariant=True,  # the same payment gives the same bytes (no creation date or random id)
    )
    document.build(story)
    return buffer.getvalue()
