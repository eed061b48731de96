"""Each bill's lines (billing.models.BillLine) on the resident's bills page and on the PDF
receipt: name, quantity × unit price, amount; a waived late fee marked; the page's queries do
not grow with the number of bills and lines.

The bill of 2019-08 (120.00 for 100 m² at 1.20) is made of: the property fee 100 m² × ¥1.00 =
100.00, opening arrears 1 × ¥30.00 = 30.00, a prepayment discount of −10.00, and a late fee of
6.00 that was waived (so not in the amount)."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing.models import BillLine, LateFeeRule, PrepayDiscountRule
from billing.tests.factories import BillFactory, estate, pay
from billing.tests.pdf import pdf_text, require_receipt_font
from community.tests.factories import resident

pytestmark = pytest.mark.django_db


def with_lines(bill, *, late_fee_rule, discount_rule):
    BillLine.objects.bulk_create(
        [
            BillLine(
                bill=bill,
                kind=BillLine.Kind.CHARGE,
                name="物业服务费",
                quantity=Decimal("100.00"),
                unit="m²",
                unit_price=Decimal("1.0000"),
                amount=Decimal("100.00"),
                position=0,
            ),
            BillLine(
                bill=bill,
                kind=BillLine.Kind.OPENING_ARREARS,
                name="往期欠费",
                quantity=Decimal("1.00"),
                unit_price=Decimal("30.0000"),
                amount=Decimal("30.00"),
                position=1,
            ),
            BillLine(
                bill=bill,
                kind=BillLine.Kind.DISCOUNT,
                discount_rule=discount_rule,
                name="预缴优惠",
                quantity=Decimal("1.00"),
                unit_price=Decimal("-10.0000"),
                amount=Decimal("-10.00"),
                position=2,
            ),
            BillLine(
                bill=bill,
                kind=BillLine.Kind.LATE_FEE,
                late_fee_rule=late_fee_rule,
                name="滞纳金",
                quantity=Decimal("1.00"),
                unit_price=Decimal("6.0000"),
                amount=Decimal("6.00"),
                position=3,
                waived_at=timezone.now(),
            ),
        ]
    )
    return bill


@pytest.fixture
def world():
    community, (home,) = estate(1, name="翰林苑")
    owner = resident(home, user__username="owner")
    rules = {
        "late_fee_rule": LateFeeRule.objects.create(
            community=community,
            name="滞纳金",
            daily_rate=Decimal("0.0005"),
            cap_rate=Decimal("0.2"),
        ),
        "discount_rule": PrepayDiscountRule.objects.create(
            community=community, name="预缴优惠", months_paid=12, months_free=1
        ),
    }
    august = with_lines(BillFactory(household=home, period="2019-08"), **rules)
    return {"home": home, "owner": owner, "august": august, "rules": rules}


def test_the_bills_page_shows_each_bills_lines(client, world):
    client.force_login(world["owner"])

    page = client.get(reverse("bill-list")).content.decode()

    lines = page.split(f'data-bill-lines="{world["august"].pk}"', 1)[1].split("</label>", 1)[0]
    assert "物业服务费  100 m² × ¥1.00</span><span>¥100.00" in lines
    assert "往期欠费  1 × ¥30.00</span><span>¥30.00" in lines
    assert "预缴优惠  1 × -¥10.00</span><span>-¥10.00" in lines
    assert '<span class="bill-line waived"><span>滞纳金  1 × ¥6.00 <small>已减免</small>' in lines
    assert lines.index("物业服务费") < lines.index("往期欠费") < lines.index("预缴优惠")


def test_paid_bills_show_their_lines_too(client, world):
    pay(world["owner"], [world["august"]])
    client.force_login(world["owner"])

    page = client.get(reverse("bill-list")).content.decode()

    settled = page.split("<details>", 1)[1]
    assert "物业服务费  100 m² × ¥1.00" in settled
    assert f'name="bill" value="{world["august"].pk}"' not in page


def test_the_pdf_receipt_lists_each_bills_lines(client, world):
    require_receipt_font()
    september = BillFactory(household=world["home"], period="2019-09")  # a bill without lines
    payment = pay(world["owner"], [world["august"], september])
    client.force_login(world["owner"])

    text = pdf_text(client.get(reverse("payment-receipt-pdf", args=[payment.pk])).content)

    for expected in (
        "物业服务费 100 m² × ¥1.00",
        "¥100.00",
        "往期欠费 1 × ¥30.00",
        "¥30.00",
        "预缴优惠 1 × -¥10.00",
        "-¥10.00",
        "滞纳金 1 × ¥6.00 (已减免)",
        "¥6.00",
        "¥240.00",
    ):
        assert expected in " ".join(text.split()), expected
    assert text.index("物业服务费") < text.index("2019-09")


def test_the_bills_pages_queries_do_not_grow_with_bills_and_lines(client, world):
    client.force_login(world["owner"])

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse("bill-list")).status_code == 200
        return len(queries)

    one = count()
    for month in range(1, 13):
        bill = BillFactory(household=world["home"], period=f"2020-{month:02d}")
        with_lines(bill, **world["rules"])
    pay(world["owner"], [world["august"]])

    assert count() == one
