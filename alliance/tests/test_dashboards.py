"""The dashboard pages and exports (alliance.dashboards)."""

import csv
import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from openpyxl import load_workbook

from alliance.tests.factories import AUGUST, Estate, august
from billing import selectors as billing_selectors
from billing.tests.factories import BillFactory, estate, pay
from community.demo import default_demo_period
from community.models import Community, Role, User
from community.tests.factories import CentreFactory, member, resident
from repairs import services as repairs_services
from repairs.tests.factories import TicketCategoryFactory

pytestmark = pytest.mark.django_db


def page(client, user, name, *args, **query):
    client.force_login(user)
    path = reverse(name, args=args)
    if query:
        path += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return client.get(path)


# --- the community page -----------------------------------------------------------------------


def test_after_the_demo_the_community_page_tells_the_article(client):
    call_command("seed_demo", stdout=None)
    community = Community.objects.get(name="翰林苑")
    period = default_demo_period()

    response = page(
        client,
        User.objects.get(username="committee"),
        "dashboard-community",
        community.pk,
        period=period,
    )

    assert response.status_code == 200
    headline = response.context["headline"]
    assert headline == {"paid": "82%", "tickets": 28, "handled": "100%", "satisfied": "100%"}
    assert b"chart.umd.min.js" in response.content
    trend = response.context["trend"]
    assert trend["chart"]["labels"][-1] == str(period)
    assert trend["rows"][-1]["bills_paid"] == 46
    collection = trend["chart"]["figures"][0]
    assert collection["key"] == "collection_rate"
    assert collection["values"][-1] == 82.14
    assert collection["values"][0] is None  # no bills that month: a gap, not 0%


def test_a_resident_of_the_estate_sees_its_page_and_an_outsider_gets_404(client):
    estate_ = Estate(households=2)

    assert (
        page(client, estate_.residents[0], "dashboard-community", estate_.community.pk).status_code
        == 200
    )
    assert (
        page(client, estate_.outsider, "dashboard-community", estate_.community.pk).status_code
        == 404
    )
    assert (
        page(client, estate_.inspector, "dashboard-community", estate_.community.pk).status_code
        == 403
    )


def test_a_bad_period_on_a_page_is_400(client):
    estate_ = Estate(households=1)

    response = page(
        client, estate_.committee, "dashboard-community", estate_.community.pk, period="2019-13"
    )

    assert response.status_code == 400
    assert page(client, estate_.centre_admin, "dashboard-centre", period="x").status_code == 400


# --- the centre dashboard ---------------------------------------------------------------------


def centre_with(n: int):
    """A centre of `n` estates, each with a paid bill and an open report in August."""
    centre = CentreFactory()
    admin = member(Role.CENTRE_ADMIN, centre=centre)
    category = TicketCategoryFactory(kind="report", response_hours=2, resolve_hours=24)
    for number in range(n):
        community, homes = estate(1, centre=centre)
        user = resident(homes[0])
        pay(user, [BillFactory(household=homes[0], period=str(AUGUST))])
        repairs_services.ticket_create(
            filed_by=user,
            kind="report",
            category=category,
            title=f"路灯 {number}",
            location="东门",
            community=community,
            at=august(3),
        )
    return centre, admin


def count_queries(client, admin) -> int:
    client.force_login(admin)
    path = reverse("dashboard-centre") + f"?period={AUGUST}"
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200
    return len(queries)


def test_the_centre_dashboard_needs_the_same_queries_for_3_and_12_estates(
    client, django_assert_max_num_queries
):
    _, small = centre_with(3)
    _, large = centre_with(12)

    few = count_queries(client, small)
    many = count_queries(client, large)

    assert few == many, (few, many)
    # 11 for the table and the trend, 2 for the money checks (statement differences, suspense).
    with django_assert_max_num_queries(13):
        response = client.get(reverse("dashboard-centre") + f"?period={AUGUST}")
    assert len(response.context["rows"]) == 12


def test_the_centre_dashboard_shows_every_estate_of_the_centre_only(client):
    estate_ = Estate(households=3)  # two of three paid
    estate_.pay_out()
    centre_with(2)  # another centre's estates

    response = page(client, estate_.centre_admin, "dashboard-centre", period=AUGUST)

    rows = {row["community_id"]: row for row in response.context["rows"]}
    assert set(rows) == {estate_.community.pk, estate_.other_community.pk}
    row = rows[estate_.community.pk]
    assert (row["bills_due"], row["bills_paid"], row["collection_rate"]) == (
        3,
        2,
        Decimal("0.6667"),
    )
    summary = billing_selectors.escrow_summary(community=estate_.community)
    assert (row["held"], row["withheld"], row["released"]) == (
        summary["held"],
        summary["withheld"],
        summary["released"],
    )
    assert reverse("dashboard-community", args=[estate_.community.pk]).encode() in response.content


def test_the_centre_dashboard_sorts_by_a_column(client):
    estate_ = Estate(households=3)  # 2 of 3 paid; its sibling estate has no bills

    ascending = page(
        client, estate_.centre_admin, "dashboard-centre", period=AUGUST, sort="collection_rate"
    )
    descending = page(
        client,
        estate_.centre_admin,
        "dashboard-centre",
        period=AUGUST,
        sort="collection_rate",
        dir="desc",
    )

    first_up = ascending.context["rows"][0]["community_id"]
    first_down = descending.context["rows"][0]["community_id"]
    assert (first_up, first_down) == (estate_.other_community.pk, estate_.community.pk)


def test_only_centre_admins_see_the_centre_dashboard(client):
    estate_ = Estate(households=1)

    assert page(client, estate_.staff, "dashboard-centre").status_code == 403
    assert page(client, estate_.committee, "dashboard-centre").status_code == 403
    assert page(client, estate_.staff, "dashboard-centre-export", "csv").status_code == 403


def test_the_admin_index_links_the_centre_dashboard(client, django_user_model):
    superuser = django_user_model.objects.create_superuser("root", "root@example.org", "pw")

    response = page(client, superuser, "admin:index")

    assert reverse("dashboard-centre").encode() in response.content


# --- exports ----------------------------------------------------------------------------------


def read_csv(response) -> list[list[str]]:
    text = response.content.decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text)))


def read_xlsx(response) -> list[list]:
    book = load_workbook(io.BytesIO(response.content), read_only=True)
    return [list(row) for row in book.active.iter_rows(values_only=True)]


def test_the_centre_table_exports_as_csv_and_xlsx_with_chinese_headers(client):
    estate_ = Estate(households=3)
    estate_.pay_out()

    as_csv = read_csv(
        page(client, estate_.centre_admin, "dashboard-centre-export", "csv", period=AUGUST)
    )
    as_xlsx = read_xlsx(
        page(client, estate_.centre_admin, "dashboard-centre-export", "xlsx", period=AUGUST)
    )

    assert as_csv[0][:5] == ["小区", "户数", "应缴账单", "已缴账单", "缴费率"]
    assert as_xlsx[0] == as_csv[0]
    by_name = {row[0]: row for row in as_csv[1:]}
    row = by_name[estate_.community.name]
    assert row[1:5] == ["3", "3", "2", "0.6667"]
    summary = billing_selectors.escrow_summary(community=estate_.community)
    assert Decimal(row[5]) == summary["held"]
    xlsx_row = next(r for r in as_xlsx[1:] if r[0] == estate_.community.name)
    assert Decimal(str(xlsx_row[5])) == summary["held"]
    assert len(as_csv) == len(as_xlsx) == 3  # header + the two estates of the centre


def test_english_headers_on_request(client):
    estate_ = Estate(households=1)

    rows = read_csv(
        page(client, estate_.centre_admin, "dashboard-centre-export", "csv", headers="en")
    )

    assert rows[0][0] == "Community"


def test_an_unknown_export_format_is_404(client):
    estate_ = Estate(households=1)

    response = page(client, estate_.centre_admin, "dashboard-centre-export", "pdf")

    assert response.status_code == 404


def test_the_bills_export_reconciles_to_the_escrow_summary(client):
    estate_ = Estate(households=3)  # only August: the month's totals are all the escrow holds
    estate_.pay_out()
    summary = billing_selectors.escrow_summary(community=estate_.community)
    collected = sum(summary[k] for k in ("held", "released", "forfeited_to_fund", "refunded"))

    for fmt, read in (("csv", read_csv), ("xlsx", read_xlsx)):
        rows = read(
            page(client, estate_.centre_admin, "dashboard-bills-export", fmt, period=AUGUST)
        )
        header, body, totals = rows[0], rows[1:-1], rows[-1]
        assert header[:6] == ["小区", "房号", "账期", "应收金额", "状态", "实收金额"]
        assert len(body) == 3 and totals[0] == "合计"
        column = {name: header.index(name) for name in header}

        def total(name, totals=totals, column=column):
            return Decimal(str(totals[column[name]])).quantize(Decimal("0.01"))

        assert total("实收金额") == collected
        assert total("托管中") == summary["held"]
        assert total("其中暂扣") == summary["withheld"]
        assert total("已付物业") == summary["released"]
        assert total("转入公共基金") == summary["forfeited_to_fund"]
        assert total("已退款") == summary["refunded"]
        assert total("应收金额") == sum(b.amount for b in estate_.bills)
        assert sum(Decimal(str(r[column["实收金额"]])) for r in body) == collected


# --- the company view -------------------------------------------------------------------------


def test_property_staff_see_their_estates_queue_ratings_and_scores(client):
    estate_ = Estate(households=3)
    estate_.tickets(handled=1, open_=2)
    estate_.rate(0)

    response = page(client, estate_.staff, "dashboard-company", period=AUGUST)

    assert response.status_code == 200
    row = next(r for r in response.context["estates"] if r["community"] == estate_.community)
    assert row["open"] == 2
    assert row["ratings"].count == 1
    assert len(row["scores"]) == 12


def test_residents_do_not_see_the_company_view(client):
    estate_ = Estate(households=1)

    assert page(client, estate_.residents[0], "dashboard-company").status_code == 403
