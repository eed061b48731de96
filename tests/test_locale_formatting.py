"""Money, dates and numbers in the reader's language (config/formats, billing.money.money_text,
the `money` filter, Django's named date formats)."""

import re
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.template import Context, Template
from django.urls import reverse
from django.utils import translation

from billing.models import Payment
from billing.money import money_text
from billing.tests.factories import BillFactory, estate, pay
from community.tests.factories import resident
from tests.test_templates_translated import template_files

SHANGHAI = ZoneInfo("Asia/Shanghai")


def render(source: str, language: str, **context) -> str:
    with translation.override(language):
        return Template(source).render(Context(context))


@pytest.mark.parametrize("language", ["zh-hans", "en"])
@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        (Decimal("1234.5"), "¥1,234.50"),
        (Decimal("1234567.891"), "¥1,234,567.89"),  # rounded half up to the fen
        (Decimal("0.005"), "¥0.01"),
        (Decimal("0"), "¥0.00"),
        (Decimal("-12"), "-¥12.00"),
        (Decimal("999.99"), "¥999.99"),
        ("86.40", "¥86.40"),  # text from the API or a form
        (None, ""),
    ],
)
def test_money_is_yuan_grouped_by_thousands_in_both_languages(language, amount, shown):
    assert render("{% load money %}{{ amount|money }}", language, amount=amount) == shown


def test_money_refuses_a_float():
    with pytest.raises(TypeError):
        money_text(1234.5)


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        (
            "zh-hans",
            "2026年11月29日|2026年11月29日 14:30|11月29日 14:30|2026年11月29日 08:30–11:30",
        ),
        (
            "en",
            "Nov. 29, 2026|11/29/2026 2:30 p.m.|November 29 2:30 p.m.|"
            "Nov. 29, 2026, 8:30 a.m.–11:30 a.m.",
        ),
    ],
)
def test_dates_use_the_languages_own_formats(language, expected):
    when = datetime(2026, 11, 29, 14, 30, tzinfo=SHANGHAI)
    source = (
        "{% load community_life %}"
        '{{ day|date:"DATE_FORMAT" }}|{{ when|date:"SHORT_DATETIME_FORMAT" }}|'
        '{{ when|date:"MONTH_DAY_FORMAT" }} {{ when|time:"TIME_FORMAT" }}|'
        "{% time_span starts ends %}"
    )
    starts = datetime(2026, 11, 29, 8, 30, tzinfo=SHANGHAI)
    ends = datetime(2026, 11, 29, 11, 30, tzinfo=SHANGHAI)
    rendered = render(source, language, day=date(2026, 11, 29), when=when, starts=starts, ends=ends)
    assert rendered == expected


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("zh-hans", "2026年11月29日 08:30 – 2026年11月30日 11:30"),
        ("en", "Nov. 29, 2026, 8:30 a.m. – Nov. 30, 2026, 11:30 a.m."),
    ],
)
def test_a_span_over_two_days_shows_both_dates(language, expected):
    starts = datetime(2026, 11, 29, 8, 30, tzinfo=SHANGHAI)
    ends = datetime(2026, 11, 30, 11, 30, tzinfo=SHANGHAI)
    source = "{% load community_life %}{% time_span starts ends %}"
    assert render(source, language, starts=starts, ends=ends) == expected


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_percentages(language):
    source = "{% load alliance_tags %}{{ rate|percent }} {{ none|percent }}"
    assert render(source, language, rate=Decimal("0.91665"), none=None) == "91.67% —"


def test_numbers_in_templates_are_not_grouped_behind_our_back():
    # Grouping is asked for where it is meant (money); ids and form values stay plain digits.
    assert render("{{ pk }} {{ year }}", "zh-hans", pk=123456, year=2026) == "123456 2026"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("language", "due", "paid_at"),
    [
        ("zh-hans", "2019年8月15日", "2019年8月15日 09:05"),
        ("en", "08/15/2019", "Aug. 15, 2019, 9:05 a.m."),
    ],
)
def test_bill_list_and_receipt_show_money_and_dates_in_the_readers_language(
    client, language, due, paid_at
):
    _, (home,) = estate(1)
    user = resident(home)
    unpaid = BillFactory(household=home, period="2019-08", amount=Decimal("1234.50"))
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    client.force_login(user)

    bills = client.get(reverse("bill-list")).content.decode()
    assert f'<html lang="{language}">' in bills
    assert '<span class="amount">¥1,234.50</span>' in bills
    assert due in bills

    payment = pay(user, [unpaid])
    Payment.objects.filter(pk=payment.pk).update(
        paid_at=datetime(2019, 8, 15, 9, 5, tzinfo=SHANGHAI)
    )
    receipt = client.get(reverse("payment-receipt", args=[payment.pk])).content.decode()
    assert f"<dd>{paid_at}</dd>" in receipt
    assert "<strong>¥1,234.50</strong>" in receipt


# --- guards on the templates --------------------------------------------------------------------

# A hard-coded date format prints the same in every language. "c" (ISO 8601) is for machines
# (<time datetime="…">); the live queue's "updated" clock keeps its seconds, which show that it
# refreshes and read the same in both languages.
MACHINE_FORMATS = {"c", "H:i:s"}
DATE_FILTER = re.compile(r"""\|(?:date|time):["']([^"']*)["']""")


@pytest.mark.parametrize("path", template_files(), ids=lambda path: path.name)
def test_templates_use_named_date_formats(path):
    source = path.read_text(encoding="utf-8")
    fixed = [
        fmt
        for fmt in DATE_FILTER.findall(source)
        if not fmt.endswith("_FORMAT") and fmt not in MACHINE_FORMATS
    ]
    assert fixed == []


@pytest.mark.parametrize("path", template_files(), ids=lambda path: path.name)
def test_templates_print_money_through_the_money_filter(path):
    # "¥{{ amount }}" would print 1234.50 without grouping: |money formats it for the reader.
    assert "¥{{" not in Path(path).read_text(encoding="utf-8")
