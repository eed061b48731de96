"""PDF receipts (billing/receipt_pdf.py, /payments/<pk>/receipt.pdf): read back with pypdf, the
receipt's Chinese text and amounts are there and its Chinese font is embedded; a payment not
paid has none (409), someone else's is not there (404), a missing font is explained (503).

The estate: one household of 100 m² at 1.20 yuan/m²/month, its owner paying two months of
120.00 each. Bill lines on the receipt: test_bill_lines_shown.py."""

from decimal import Decimal

import pytest
from django.urls import reverse

from billing import services
from billing.models import Bill, Payment
from billing.tests.factories import BillFactory, desk_pay, estate, pay
from billing.tests.pdf import embedded_fonts, pdf_text, require_receipt_font
from community.models import Role
from community.tests.factories import HouseholdFactory, member, resident

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    community, (home,) = estate(1, name="翰林苑")
    owner = resident(home, user__username="owner", user__display_name="张三")
    august, september = (BillFactory(household=home, period=p) for p in ("2019-08", "2019-09"))
    neighbour_home = HouseholdFactory(building=home.building, unit="102")
    neighbour = resident(neighbour_home, user__username="neighbour")
    return {
        "community": community,
        "home": home,
        "owner": owner,
        "bills": [august, september],
        "neighbour": neighbour,
        "neighbour_home": neighbour_home,
    }


def test_the_receipt_pdf_has_the_payment_in_chinese_with_the_font_embedded(client, world):
    require_receipt_font()
    payment = pay(world["owner"], world["bills"])
    client.force_login(world["owner"])

    response = client.get(reverse("payment-receipt-pdf", args=[payment.pk]))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'inline; filename="{payment.receipt_number}.pdf"'
    assert "no-store" in response["Cache-Control"]
    assert response.content.startswith(b"%PDF-")
    text = pdf_text(response.content)
    for expected in (
        "物业费收据",  # Property fee receipt
        "收据编号",  # Receipt number
        payment.receipt_number,
        "付款人",  # Payer
        "张三",
        f"翰林苑 {world['home'].building.name} {world['home'].unit}",
        "2019-08",
        "2019-09",
        "¥120.00",
        "合计",  # Total
        "¥240.00",
        payment.trade_no,
    ):
        assert expected in text, expected
    fonts = embedded_fonts(response.content)
    chinese = {name: keys for name, keys in fonts.items() if "WenQuanYi" in name}
    assert list(chinese.values()) == [["/FontFile2"]]
    # Any other font is one of PDF's standard 14, which every reader has (ReportLab's default).
    assert {name for name in fonts if name not in chinese} <= {"/Helvetica"}
    # A subset (tag "ABCDEF+"), not the whole 5 MB font.
    assert all(name[7] == "+" for name in chinese)
    assert len(response.content) < 200_000


def test_amounts_are_exact_to_the_fen_with_thousands_grouped(client, world):
    require_receipt_font()
    big = BillFactory(household=world["home"], period="2019-10", amount=Decimal("1234.05"))
    payment = pay(world["owner"], [big])
    client.force_login(world["owner"])

    text = pdf_text(client.get(reverse("payment-receipt-pdf", args=[payment.pk])).content)

    assert text.count("¥1,234.05") == 2  # the bill and the total
    assert "1234.0" not in text.replace("1,234.05", "")


def test_the_receipt_is_in_the_readers_language(client, world):
    require_receipt_font()
    payment = pay(world["owner"], world["bills"])
    client.force_login(world["owner"])
    client.post(reverse("set_language"), {"language": "en", "next": "/"})

    text = pdf_text(client.get(reverse("payment-receipt-pdf", args=[payment.pk])).content)

    assert "Property fee receipt" in text
    assert "Receipt number" in text
    assert "物业费收据" not in text
    assert "¥240.00" in text


def test_a_refunded_payment_lists_its_refunds(client, world):
    require_receipt_font()
    payment = pay(world["owner"], world["bills"])
    admin = member(Role.CENTRE_ADMIN, centre=world["community"].centre)
    refund, _created = services.payment_refund(
        payment=payment,
        amount=Decimal("50.00"),
        reason="多收",
        by=admin,
        idempotency_key="r1",
        fingerprint="r1",
    )
    client.force_login(world["owner"])

    text = pdf_text(client.get(reverse("payment-receipt-pdf", args=[payment.pk])).content)

    assert refund.refund_no in text
    assert "¥50.00" in text
    assert "此后已退款：¥50.00" in text  # Refunded since: ¥50.00
    assert "¥240.00" in text


def test_a_desk_payment_names_its_method_and_reference(client, world):
    require_receipt_font()
    cashier = member(Role.CENTRE_ADMIN, centre=world["community"].centre)
    payment = desk_pay(cashier, world["bills"][:1], method="transfer", reference="BANK-778")
    client.force_login(world["owner"])

    text = pdf_text(client.get(reverse("payment-receipt-pdf", args=[payment.pk])).content)

    assert "缴费方式" in text  # Paid by
    assert "BANK-778" in text
    assert "¥120.00" in text


def test_the_centre_admin_of_the_estate_gets_the_receipt_too(client, world):
    require_receipt_font()
    payment = pay(world["owner"], world["bills"])
    client.force_login(member(Role.CENTRE_ADMIN, centre=world["community"].centre))

    response = client.get(reverse("payment-receipt-pdf", args=[payment.pk]))

    assert response.status_code == 200
    assert payment.receipt_number in pdf_text(response.content)


def test_a_pending_or_failed_payment_has_no_receipt(client, world):
    ids = [world["bills"][0].pk]
    pending, _created = services.payment_create(
        payer=world["owner"],
        bill_ids=ids,
        gateway="sandbox",
        idempotency_key="pending",
        fingerprint=services.request_fingerprint({"bill_ids": ids}),
    )
    client.force_login(world["owner"])

    response = client.get(reverse("payment-receipt-pdf", args=[pending.pk]))

    assert response.status_code == 409
    assert response["Content-Type"].startswith("text/html")
    assert b"data-receipt-not-paid" in response.content
    services.payment_cancel(payment=pending)
    assert Payment.objects.get(pk=pending.pk).status == Payment.Status.FAILED
    assert client.get(reverse("payment-receipt-pdf", args=[pending.pk])).status_code == 409
    assert Bill.objects.get(pk=ids[0]).status == Bill.Status.UNPAID


def test_someone_elses_receipt_is_404_and_anonymous_signs_in(client, world):
    theirs = pay(world["neighbour"], [BillFactory(household=world["neighbour_home"])])
    url = reverse("payment-receipt-pdf", args=[theirs.pk])

    assert client.get(url).status_code == 302
    assert client.get(url)["Location"].startswith(reverse("login"))
    client.force_login(world["owner"])
    assert client.get(url).status_code == 404
    assert client.get(reverse("payment-receipt-pdf", args=[999_999])).status_code == 404


def test_a_missing_font_is_explained_and_logged_not_a_500(client, world, settings, caplog):
    payment = pay(world["owner"], world["bills"])
    settings.RECEIPT_PDF_FONT = "/nonexistent/linli-font.ttf"
    client.force_login(world["owner"])

    response = client.get(reverse("payment-receipt-pdf", args=[payment.pk]))

    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/html")
    assert b"data-receipt-pdf-unavailable" in response.content
    assert reverse("payment-receipt", args=[payment.pk]).encode() in response.content
    assert "/nonexistent/linli-font.ttf does not exist" in caplog.text


def test_a_font_reportlab_cannot_embed_is_explained_too(client, world, settings, tmp_path):
    payment = pay(world["owner"], world["bills"])
    not_truetype = tmp_path / "cff.otf"
    not_truetype.write_bytes(b"OTTO" + bytes(200))  # an OpenType/CFF signature, no glyf table
    settings.RECEIPT_PDF_FONT = str(not_truetype)
    client.force_login(world["owner"])

    response = client.get(reverse("payment-receipt-pdf", args=[payment.pk]))

    assert response.status_code == 503
    assert b"data-receipt-pdf-unavailable" in response.content
