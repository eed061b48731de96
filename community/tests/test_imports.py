"""Estate workbooks (community/imports.py): dry run, all-or-nothing, idempotent, scoped."""

import io
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import IntegrityError
from django.test import Client
from django.urls import reverse
from django.utils import translation
from openpyxl import Workbook, load_workbook

from community import import_format as fmt
from community.imports import (
    estate_workbook_export,
    estate_workbook_import,
    estate_workbook_template,
)
from community.models import Building, Community, Household, Residency, Role, User
from community.permissions import CENTRE_ADMIN_GROUP
from community.tests.factories import (
    CentreFactory,
    CommunityFactory,
    PropertyCompanyFactory,
    member,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def in_english(client):
    """These tests read the import's messages in English, their msgids: the services run in
    the active language, and the pages in the language of the cookie (Chinese first)."""
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    with translation.override("en"):
        yield


COLUMNS = {
    fmt.SHEET_COMMUNITIES: [fmt.COMMUNITY, fmt.ADDRESS, fmt.COMPANY],
    fmt.SHEET_BUILDINGS: [fmt.COMMUNITY, fmt.BUILDING],
    fmt.SHEET_HOUSEHOLDS: [fmt.COMMUNITY, fmt.BUILDING, fmt.UNIT, fmt.AREA],
    fmt.SHEET_RESIDENTS: [fmt.COMMUNITY, fmt.BUILDING, fmt.UNIT, fmt.NAME, fmt.PHONE, fmt.RELATION],
}


def workbook(sheets: dict[str, list[list]], columns: dict | None = None) -> bytes:
    book = Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        sheet.append((columns or COLUMNS)[name])
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def estate(company_name: str) -> dict[str, list[list]]:
    return {
        fmt.SHEET_COMMUNITIES: [["翰林苑", "示例路1号", company_name]],
        fmt.SHEET_BUILDINGS: [["翰林苑", "1幢"], ["翰林苑", "2幢"]],
        fmt.SHEET_HOUSEHOLDS: [
            ["翰林苑", "1幢", "101", 89.5],
            ["翰林苑", "1幢", "102", "120.00"],
            ["翰林苑", "2幢", "101", 66],
        ],
        fmt.SHEET_RESIDENTS: [
            ["翰林苑", "1幢", "101", "张三", 13800138000, "业主"],
            ["翰林苑", "1幢", "101", "李四", "13900139000", "家属"],
            ["翰林苑", "2幢", "101", "王五", "13700137000", "租户"],
            # The same person owns a second flat: one account.
            ["翰林苑", "1幢", "102", "张三", "13800138000", "业主"],
        ],
    }


@pytest.fixture
def centre():
    return CentreFactory(name="柯城区邻礼中心")


@pytest.fixture
def company():
    return PropertyCompanyFactory(name="信安物业")


def counts() -> tuple[int, ...]:
    return (
        Community.objects.count(),
        Building.objects.count(),
        Household.objects.count(),
        Residency.objects.count(),
        User.objects.count(),
    )


def test_a_dry_run_reports_every_row_and_writes_nothing(centre, company):
    before = counts()
    report = estate_workbook_import(
        data=workbook(estate(company.name)), centre=centre, dry_run=True
    )
    assert report.ok and not report.committed
    assert [(s.name, s.totals["new"]) for s in report.sheets] == [
        (fmt.SHEET_COMMUNITIES, 1),
        (fmt.SHEET_BUILDINGS, 2),
        (fmt.SHEET_HOUSEHOLDS, 3),
        (fmt.SHEET_RESIDENTS, 4),
    ]
    assert [row.number for row in report.sheets[2].rows] == [2, 3, 4]
    assert counts() == before


def test_the_import_creates_the_estate_and_a_rerun_changes_nothing(centre, company):
    data = workbook(estate(company.name))
    report = estate_workbook_import(data=data, centre=centre, dry_run=False)
    assert report.ok and report.committed
    community = Community.objects.get(centre=centre, name="翰林苑")
    assert community.company == company and community.address == "示例路1号"
    assert sorted(
        Household.objects.filter(building__community=community).values_list(
            "building__name", "unit", "area"
        )
    ) == [
        ("1幢", "101", Decimal("89.50")),
        ("1幢", "102", Decimal("120.00")),
        ("2幢", "101", Decimal("66.00")),
    ]
    zhang = User.objects.get(phone="13800138000")
    assert zhang.username == "13800138000" and zhang.display_name == "张三"
    assert not zhang.has_usable_password()
    assert sorted(zhang.residencies.values_list("household__unit", "relation")) == [
        ("101", "owner"),
        ("102", "owner"),
    ]
    assert Residency.objects.get(user__phone="13900139000").relation == "family"
    assert Residency.objects.get(user__phone="13700137000").relation == "tenant"
    after = counts()

    again = estate_workbook_import(data=data, centre=centre, dry_run=False)
    assert again.ok
    assert [s.totals["skip"] for s in again.sheets] == [1, 2, 3, 4]
    assert again.total("new") == again.total("update") == 0
    assert counts() == after


def test_a_changed_area_and_relation_are_updates(centre, company):
    estate_workbook_import(data=workbook(estate(company.name)), centre=centre, dry_run=False)
    sheets = estate(company.name)
    sheets[fmt.SHEET_HOUSEHOLDS][0][3] = "90.10"
    sheets[fmt.SHEET_RESIDENTS][1][5] = "租户"
    report = estate_workbook_import(data=workbook(sheets), centre=centre, dry_run=False)
    assert report.ok
    assert [row.action for row in report.sheets[2].rows] == ["update", "skip", "skip"]
    assert [row.action for row in report.sheets[3].rows] == ["skip", "update", "skip", "skip"]
    assert Household.objects.get(building__name="1幢", unit="101").area == Decimal("90.10")
    assert Residency.objects.get(user__phone="13900139000").relation == "tenant"


def test_every_bad_row_is_refused_with_its_reason_and_nothing_is_written(centre, company):
    sheets = estate(company.name)
    sheets[fmt.SHEET_HOUSEHOLDS] += [
        ["翰林苑", "9幢", "101", "80"],  # unknown building
        ["翰林苑", "1幢", "101", "80"],  # duplicate of row 2
        ["翰林苑", "1幢", "103", "eighty"],  # area not a number
        ["翰林苑", "1幢", "104", "-5"],  # area not positive
        ["别的小区", "1幢", "101", "80"],  # unknown community
    ]
    sheets[fmt.SHEET_RESIDENTS] += [
        ["翰林苑", "1幢", "101", "赵六", "1380013800", "业主"],  # 10 digits
        ["翰林苑", "1幢", "101", "钱七", "13600136000", "房东"],  # unknown relation
    ]
    before = counts()
    report = estate_workbook_import(data=workbook(sheets), centre=centre, dry_run=False)
    assert not report.ok and not report.committed
    households = {row.number: row.messages for row in report.sheets[2].refused}
    assert households == {
        5: ["Unknown building “9幢” in “翰林苑”."],
        6: ["Row 2 already names this household."],
        7: ["“eighty” is not a floor area: a number of m² above 0, at most two decimals."],
        8: ["“-5” is not a floor area: a number of m² above 0, at most two decimals."],
        9: ["Unknown community “别的小区”."],
    }
    residents = {row.number: row.messages for row in report.sheets[3].refused}
    assert residents == {
        6: ["“1380013800” is not a mobile number: 11 digits, starting with 1."],
        7: ["“房东” is not a relation: write 业主 (owner), 租户 (tenant) or 家属 (family)."],
    }
    assert report.refused_count == 7
    assert counts() == before


def test_another_centres_estate_is_unknown(centre, company):
    theirs = CommunityFactory(name="隔壁小区", company=company)
    theirs.buildings.create(name="1幢")
    data = workbook({fmt.SHEET_HOUSEHOLDS: [["隔壁小区", "1幢", "101", "80"]]})
    before = counts()
    report = estate_workbook_import(data=data, centre=centre, dry_run=False)
    assert [row.messages for row in report.sheets[0].rows] == [["Unknown community “隔壁小区”."]]
    assert counts() == before


def test_a_file_that_is_not_a_workbook_or_lacks_a_column_is_refused(centre):
    report = estate_workbook_import(data=b"not a spreadsheet", centre=centre, dry_run=True)
    assert not report.ok and len(report.errors) == 1
    assert report.errors[0].startswith("This is not an Excel workbook (.xlsx)")

    data = workbook(
        {fmt.SHEET_HOUSEHOLDS: [["翰林苑", "1幢", "101"]]},
        columns={fmt.SHEET_HOUSEHOLDS: [fmt.COMMUNITY, fmt.BUILDING, fmt.UNIT]},
    )
    report = estate_workbook_import(data=data, centre=centre, dry_run=True)
    assert report.errors == [f"The sheet “{fmt.SHEET_HOUSEHOLDS}” has no column “{fmt.AREA}”."]


def test_the_export_reads_back_as_an_unchanged_import(centre, company):
    estate_workbook_import(data=workbook(estate(company.name)), centre=centre, dry_run=False)
    exported = estate_workbook_export(centre=centre)
    book = load_workbook(io.BytesIO(exported))
    assert next(iter(book[fmt.SHEET_HOUSEHOLDS].iter_rows(values_only=True))) == tuple(
        COLUMNS[fmt.SHEET_HOUSEHOLDS]
    )
    before = counts()
    report = estate_workbook_import(data=exported, centre=centre, dry_run=False)
    assert report.ok
    assert report.total("new") == report.total("update") == 0
    assert report.total("skip") == 10
    assert counts() == before


def test_the_shipped_template_is_the_generated_one():
    shipped = Path(settings.BASE_DIR) / "docs" / "templates" / "linli-import-template.xlsx"
    ours = load_workbook(io.BytesIO(estate_workbook_template()))
    theirs = load_workbook(shipped)
    assert theirs.sheetnames == ours.sheetnames
    for name in ours.sheetnames:
        assert list(theirs[name].iter_rows(values_only=True)) == list(
            ours[name].iter_rows(values_only=True)
        )


# --- Django admin: upload, dry run, confirm ---------------------------------------------------


@pytest.fixture
def admin_client(client, centre):
    admin = member(Role.CENTRE_ADMIN, centre=centre)
    admin.is_staff = True
    admin.save()
    admin.groups.add(Group.objects.get(name=CENTRE_ADMIN_GROUP))
    client.force_login(admin)
    return client


def upload(client, data: bytes, centre):
    return client.post(
        reverse("admin:community_community_import_workbook"),
        {"centre": centre.pk, "file": SimpleUploadedFile("estate.xlsx", data)},
    )


def test_the_admin_dry_run_writes_nothing_and_the_confirmation_imports(
    admin_client, centre, company
):
    page = admin_client.get(reverse("admin:community_community_import_workbook"))
    assert page.status_code == 200
    assert reverse("admin:community_community_workbook_template") in page.content.decode()
    before = counts()

    response = upload(admin_client, workbook(estate(company.name)), centre)
    assert response.status_code == 200
    html = response.content.decode()
    assert "data-dry-run-ok" in html and "data-confirm" in html
    assert counts() == before

    confirmed = admin_client.post(
        reverse("admin:community_community_import_workbook"), {"token": response.context["token"]}
    )
    assert confirmed.status_code == 302
    assert confirmed["Location"] == reverse("admin:community_community_changelist")
    assert Household.objects.filter(building__community__centre=centre).count() == 3
    assert Residency.objects.count() == 4


def test_a_centre_admin_cannot_import_into_another_centres_estate(admin_client, centre, company):
    other = CentreFactory(name="别的中心")
    theirs = CommunityFactory(name="隔壁小区", centre=other, company=company)
    theirs.buildings.create(name="1幢")
    before = counts()
    data = workbook({fmt.SHEET_HOUSEHOLDS: [["隔壁小区", "1幢", "101", "80"]]})

    # Into their own centre, the other centre's estate is unknown.
    response = upload(admin_client, data, centre)
    assert response.status_code == 200
    assert response.context["token"] == ""
    assert "data-confirm" not in response.content.decode()
    refused = response.context["report"].sheets[0].refused
    assert [row.messages for row in refused] == [["Unknown community “隔壁小区”."]]

    # The other centre cannot be chosen at all.
    response = upload(admin_client, data, other)
    assert response.status_code == 200
    assert response.context["report"] is None
    assert "centre" in response.context["form"].errors
    assert counts() == before


def test_a_forged_or_foreign_confirmation_imports_nothing(admin_client, centre, company, client):
    colleague = member(Role.CENTRE_ADMIN, centre=centre)
    colleague.is_staff = True
    colleague.save()
    colleague.groups.add(Group.objects.get(name=CENTRE_ADMIN_GROUP))
    response = upload(admin_client, workbook(estate(company.name)), centre)
    token = response.context["token"]
    before = counts()
    url = reverse("admin:community_community_import_workbook")

    forged = admin_client.post(url, {"token": token[:-2] + "xx"})
    assert forged.status_code == 200 and forged.context["report"] is None
    assert [str(m) for m in get_messages(forged.wsgi_request)] == [
        "This dry run has expired: upload the workbook again."
    ]
    # Another centre admin of the same centre cannot confirm this admin's dry run.
    other_client = Client()
    other_client.force_login(colleague)
    assert other_client.post(url, {"token": token}).context["report"] is None
    assert counts() == before


def test_the_export_holds_only_the_admins_centre(admin_client, centre, company):
    estate_workbook_import(data=workbook(estate(company.name)), centre=centre, dry_run=False)
    other = CommunityFactory(name="隔壁小区", company=company)
    other.buildings.create(name="9幢")
    response = admin_client.get(
        reverse("admin:community_community_export_workbook") + f"?centre={other.centre.pk}"
    )
    assert response.status_code == 200
    book = load_workbook(io.BytesIO(response.content))
    rows = list(book[fmt.SHEET_BUILDINGS].iter_rows(values_only=True))
    assert rows == [(fmt.COMMUNITY, fmt.BUILDING), ("翰林苑", "1幢"), ("翰林苑", "2幢")]
    template = admin_client.get(reverse("admin:community_community_workbook_template"))
    assert template.status_code == 200
    assert template["Content-Disposition"] == 'attachment; filename="linli-import-template.xlsx"'


def test_staff_without_the_centre_admin_role_cannot_import(client, centre, company):
    staff = member(Role.PROPERTY_STAFF, company=company)
    staff.is_staff = True
    staff.save()
    client.force_login(staff)
    before = counts()
    response = upload(client, workbook(estate(company.name)), centre)
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:index")
    assert counts() == before


# --- the command ----------------------------------------------------------------------------


def test_the_command_dry_runs_imports_and_refuses_with_a_non_zero_exit(tmp_path, centre, company):
    good = tmp_path / "estate.xlsx"
    good.write_bytes(workbook(estate(company.name)))
    out = io.StringIO()
    call_command("import_estate", str(good), "--centre", str(centre.pk), "--dry-run", stdout=out)
    assert f"{fmt.SHEET_HOUSEHOLDS}: new 3, update 0, skip 0, invalid 0, error 0" in out.getvalue()
    assert out.getvalue().rstrip().endswith("Dry run: nothing was written.")
    assert Household.objects.count() == 0

    sheets = estate(company.name)
    sheets[fmt.SHEET_HOUSEHOLDS].append(["翰林苑", "1幢", "105", "abc"])
    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(workbook(sheets))
    err = io.StringIO()
    with pytest.raises(CommandError) as refused:
        call_command("import_estate", str(bad), "--centre", str(centre.pk), stderr=err)
    assert str(refused.value) == "Refused: 1 rows, 0 file errors. Nothing was written."
    assert f"{fmt.SHEET_HOUSEHOLDS} 5: invalid 翰林苑 1幢 105 — “abc” is not a floor area" in (
        err.getvalue()
    )
    assert counts()[:4] == (0, 0, 0, 0)

    call_command("import_estate", str(good), "--centre", str(centre.pk), stdout=io.StringIO())
    assert Household.objects.count() == 3
    exported = tmp_path / "out.xlsx"
    call_command("export_estate", str(exported), "--centre", str(centre.pk), stdout=io.StringIO())
    assert load_workbook(exported).sheetnames[:4] == list(COLUMNS)


def test_a_database_error_in_a_batch_is_reported_and_the_whole_import_rolled_back(
    centre, company, monkeypatch
):
    # As if another writer had added one of the households between the checks and the insert.
    def refuse(*args, **kwargs):
        raise IntegrityError("household_unique_unit_per_building")

    monkeypatch.setattr(Household.objects, "bulk_create", refuse)
    before = counts()
    report = estate_workbook_import(
        data=workbook(estate(company.name)), centre=centre, dry_run=False
    )
    assert not report.ok and not report.committed
    assert report.errors == ["household_unique_unit_per_building"]
    assert counts() == before
