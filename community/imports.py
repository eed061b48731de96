"""Estate workbooks in and out: one XLSX with a sheet per kind of row (community/import_format.py),
read and written with django-import-export's resources.

An import runs every sheet, in order, inside one transaction: a later sheet sees what an earlier
one created (households refer to buildings from the sheet before), and unless every row of every
sheet is good the whole transaction is rolled back. A dry run is the same run, always rolled back,
so its report (per row: created, changed, unchanged, refused and why) is exactly what the real
import will do. Rows are found by their natural keys (community name within the importing
centre, building name, unit, a resident's phone), so importing the same file again changes
nothing and reports every row as unchanged.

The importing centre is the scope: a row naming a community of another centre is refused as an
unknown community, whoever imports it.

Apps later in the dependency order add their own sheets with `register_sheet` (billing adds
opening arrears and meter readings, billing/imports.py), so community never imports them.
"""

import io
import re
import secrets
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import tablib
from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction
from django.db.models import QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from import_export import resources
from import_export.fields import Field
from import_export.instance_loaders import BaseInstanceLoader
from import_export.results import Error, RowResult

from community import import_format as fmt
from community.models import (
    Building,
    Centre,
    Community,
    Household,
    PropertyCompany,
    Residency,
    User,
)
from config.api import Conflict

MOBILE = re.compile(r"^1[3-9]\d{9}$")
CHUNK = 500  # rows per IN (...) lookup: well under SQLite's variable limit


# --- cells ----------------------------------------------------------------------------------


def cell_text(value) -> str:
    """A cell as the text a person typed: numbers without a trailing ".0" (a phone number or a
    unit typed into a numeric cell), the shortest exact form of a float (89.5, not 89.50000001)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral() else str(value)
    return str(value).strip()


def parse_decimal(text: str, *, places: int, max_digits: int) -> Decimal | None:
    """The text as an exact Decimal with at most `places` decimals, or None."""
    try:
        number = Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None
    if not number.is_finite() or number.as_tuple().exponent < -places:
        return None
    if abs(number) >= Decimal(10) ** (max_digits - places):
        return None
    return number.quantize(Decimal(1).scaleb(-places))


def _spreadsheet_row(numbers: list[int], row_number: int) -> int:
    """The spreadsheet's row number of django-import-export's 1-based data row number."""
    return numbers[row_number - 1] if 0 < row_number <= len(numbers) else row_number + 1


def _chunks(items: list, size: int = CHUNK) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- the resources --------------------------------------------------------------------------


class EstateResource(resources.ModelResource):
    """A sheet's rows against one model, found by natural key within the importing centre.

    Each row is checked in `before_import_row` (every problem of the row at once, as one
    ValidationError: django-import-export reports the row as invalid); `self.clean` holds what
    the row resolved to. `apply` sets the instance's fields and says whether anything changed,
    so an unchanged row is reported as skipped and not saved.
    """

    key_columns: tuple[str, ...] = ()
    duplicate_message = gettext_lazy("Row %(row)d already has this key: each key once per sheet.")

    def __init__(self, *, centre: Centre, user: User | None = None):
        super().__init__()
        self.centre = centre
        self.user = user
        self.seen: dict[tuple, int] = {}
        self.numbers: list[int] = []  # each data row's spreadsheet row number
        self.clean: dict = {}
        self.new = False
        self.changed = False

    # Caches, loaded once per sheet (and after the sheets before it have written their rows).
    def before_import(self, dataset, **kwargs):
        self.communities = {c.name: c for c in Community.objects.filter(centre=self.centre)}
        self.load(dataset)

    def load(self, dataset) -> None:
        pass

    def before_import_row(self, row, **kwargs):
        for column in list(row):
            row[column] = cell_text(row[column])
        self.clean = {}
        errors: list[str] = []
        empty = [c for c in self.key_columns if not row.get(c)]
        for column in empty:
            errors.append(_("“%(column)s” is empty.") % {"column": column})
        if not empty:
            key = tuple(row[c] for c in self.key_columns)
            number = _spreadsheet_row(self.numbers, kwargs.get("row_number", 0))
            if key in self.seen:
                errors.append(self.duplicate_message % {"row": self.seen[key]})
            else:
                self.seen[key] = number
            self.check(row, errors)
        if errors:
            raise ValidationError(errors)

    def check(self, row, errors: list[str]) -> None:
        """Resolve and check the row's cells into self.clean, appending a message per problem."""
        raise NotImplementedError

    def resolve_community(self, row, errors: list[str]) -> Community | None:
        community = self.communities.get(row[fmt.COMMUNITY])
        if community is None:
            errors.append(_("Unknown community “%(name)s”.") % {"name": row[fmt.COMMUNITY]})
        return community

    def get_or_init_instance(self, instance_loader, row):
        instance = self.existing()
        self.new = instance is None
        return (self.init_instance(row), True) if self.new else (instance, False)

    def existing(self):
        raise NotImplementedError

    def import_instance(self, instance, row, **kwargs):
        self.changed = self.apply(instance)

    def apply(self, instance) -> bool:
        raise NotImplementedError

    def skip_row(self, instance, original, row, import_validation_errors=None):
        return not self.new and not self.changed

    def save_instance(self, instance, is_create, row, **kwargs):
        if self._meta.use_bulk:
            # The sheets of thousands of rows (households, residents) are written with
            # bulk_create / bulk_update in batches; a database error there is reported as an
            # error of the whole import, which is then rolled back.
            self.prepare_bulk(instance, is_create)
            super().save_instance(instance, is_create, row, **kwargs)
            return
        # Each row's writes are checked before they are made; the savepoint keeps a database
        # error (a race with another writer) from breaking the import's transaction.
        with transaction.atomic():
            self.write(instance)

    def prepare_bulk(self, instance, is_create) -> None:
        pass

    def bulk_prepare(self, batch_size) -> None:
        """Writes a batch needs before its own rows (a resident's new account)."""

    # django-import-export's bulk_create and bulk_update catch a database error inside the
    # import's transaction, which PostgreSQL then refuses to go on with; a savepoint of their
    # own keeps the error a reported one (and the import is rolled back as a whole).
    def bulk_create(self, using_transactions, dry_run, raise_errors, batch_size=None, result=None):
        try:
            with transaction.atomic():
                self.bulk_prepare(batch_size)
                self._meta.model.objects.bulk_create(self.create_instances, batch_size=batch_size)
        except DatabaseError as exc:
            self.handle_import_error(result, exc, raise_errors)
        finally:
            self.create_instances.clear()

    def bulk_update(self, using_transactions, dry_run, raise_errors, batch_size=None, result=None):
        try:
            with transaction.atomic():
                self._meta.model.objects.bulk_update(
                    self.update_instances, self.get_bulk_update_fields(), batch_size=batch_size
                )
        except DatabaseError as exc:
            self.handle_import_error(result, exc, raise_errors)
        finally:
            self.update_instances.clear()

    def write(self, instance) -> None:
        instance.save()

    @staticmethod
    def _set(instance, **values) -> bool:
        changed = False
        for name, value in values.items():
            if getattr(instance, name) != value:
                setattr(instance, name, value)
                changed = True
        return changed


class CommunityResource(EstateResource):
    name = Field(attribute="name", column_name=fmt.COMMUNITY)
    address = Field(attribute="address", column_name=fmt.ADDRESS)
    company = Field(attribute="company__name", column_name=fmt.COMPANY)
    key_columns = (fmt.COMMUNITY,)
    duplicate_message = gettext_lazy("Row %(row)d already names this community.")

    class Meta:
        model = Community
        fields = ("name", "address", "company")
        import_id_fields = ("name",)
        skip_diff = True

    def load(self, dataset):
        names = sorted({cell_text(v) for v in dataset[fmt.COMPANY]} - {""})
        self.companies = {c.name: c for c in PropertyCompany.objects.filter(name__in=names)}

    def check(self, row, errors):
        company = self.companies.get(row.get(fmt.COMPANY, ""))
        if not row.get(fmt.COMPANY):
            errors.append(_("“%(column)s” is empty.") % {"column": fmt.COMPANY})
        elif company is None:
            errors.append(
                _("Unknown property company “%(name)s”: a superuser adds it first.")
                % {"name": row[fmt.COMPANY]}
            )
        if len(row[fmt.COMMUNITY]) > 100:
            errors.append(_("The name is longer than %(limit)d characters.") % {"limit": 100})
        self.clean = {
            "name": row[fmt.COMMUNITY],
            "address": row.get(fmt.ADDRESS, "")[:200],
            "company": company,
        }

    def existing(self):
        return self.communities.get(self.clean["name"])

    def init_instance(self, row=None):
        return Community(centre=self.centre, name=self.clean["name"])

    def apply(self, instance):
        return self._set(
            instance, address=self.clean["address"], company_id=self.clean["company"].pk
        )

    def write(self, instance):
        instance.save()
        self.communities[instance.name] = instance

    def get_queryset(self):
        return Community.objects.filter(centre=self.centre).select_related("company")


class BuildingResource(EstateResource):
    community = Field(attribute="community__name", column_name=fmt.COMMUNITY)
    name = Field(attribute="name", column_name=fmt.BUILDING)
    key_columns = (fmt.COMMUNITY, fmt.BUILDING)
    duplicate_message = gettext_lazy("Row %(row)d already names this building.")

    class Meta:
        model = Building
        fields = ("community", "name")
        import_id_fields = ("community", "name")
        skip_diff = True

    def load(self, dataset):
        self.buildings = {
            (b.community_id, b.name): b
            for b in Building.objects.filter(community__centre=self.centre)
        }

    def check(self, row, errors):
        community = self.resolve_community(row, errors)
        if len(row[fmt.BUILDING]) > 50:
            errors.append(_("The name is longer than %(limit)d characters.") % {"limit": 50})
        self.clean = {"community": community, "name": row[fmt.BUILDING]}

    def existing(self):
        return self.buildings.get((self.clean["community"].pk, self.clean["name"]))

    def init_instance(self, row=None):
        return Building(community=self.clean["community"], name=self.clean["name"])

    def apply(self, instance):
        return False  # a building is only its key

    def get_queryset(self):
        return Building.objects.filter(community__centre=self.centre).select_related("community")


class HouseholdKeyMixin:
    """Rows that name a household by community, building and unit."""

    def load_households(self) -> None:
        self.buildings = {
            (b.community.name, b.name): b
            for b in Building.objects.filter(community__centre=self.centre).select_related(
                "community"
            )
        }
        self.households = {
            (h.building_id, h.unit): h
            for h in Household.objects.filter(
                building__community__centre=self.centre
            ).select_related("building__community")
        }

    def resolve_building(self, row, errors) -> Building | None:
        community = self.resolve_community(row, errors)
        if community is None:
            return None
        building = self.buildings.get((community.name, row[fmt.BUILDING]))
        if building is None:
            errors.append(
                _("Unknown building “%(building)s” in “%(community)s”.")
                % {"building": row[fmt.BUILDING], "community": community.name}
            )
        return building

    def resolve_household(self, row, errors) -> Household | None:
        building = self.resolve_building(row, errors)
        if building is None:
            return None
        household = self.households.get((building.pk, row[fmt.UNIT]))
        if household is None:
            errors.append(
                _("Unknown household “%(unit)s” in “%(building)s”: add it on the households sheet.")
                % {"unit": row[fmt.UNIT], "building": str(building)}
            )
        return household


class HouseholdResource(HouseholdKeyMixin, EstateResource):
    community = Field(attribute="building__community__name", column_name=fmt.COMMUNITY)
    building = Field(attribute="building__name", column_name=fmt.BUILDING)
    unit = Field(attribute="unit", column_name=fmt.UNIT)
    area = Field(attribute="area", column_name=fmt.AREA)
    key_columns = (fmt.COMMUNITY, fmt.BUILDING, fmt.UNIT)
    duplicate_message = gettext_lazy("Row %(row)d already names this household.")

    class Meta:
        model = Household
        fields = ("community", "building", "unit", "area")
        import_id_fields = ("community", "building", "unit")
        skip_diff = True
        use_bulk = True
        batch_size = 1000

    def get_bulk_update_fields(self):
        return ["area"]

    def load(self, dataset):
        self.load_households()

    def check(self, row, errors):
        building = self.resolve_building(row, errors)
        if len(row[fmt.UNIT]) > 20:
            errors.append(_("The unit is longer than %(limit)d characters.") % {"limit": 20})
        area = parse_decimal(row.get(fmt.AREA, ""), places=2, max_digits=8)
        if area is None or area <= 0:
            errors.append(
                _("“%(value)s” is not a floor area: a number of m² above 0, at most two decimals.")
                % {"value": row.get(fmt.AREA, "")}
            )
        self.clean = {"building": building, "unit": row[fmt.UNIT], "area": area}

    def existing(self):
        return self.households.get((self.clean["building"].pk, self.clean["unit"]))

    def init_instance(self, row=None):
        return Household(building=self.clean["building"], unit=self.clean["unit"])

    def apply(self, instance):
        return self._set(instance, area=self.clean["area"])

    def get_queryset(self):
        return Household.objects.filter(building__community__centre=self.centre).select_related(
            "building__community"
        )

    def dehydrate_area(self, household):
        return household.area


class ResidentResource(HouseholdKeyMixin, EstateResource):
    """A person living in a household: an account per phone number (made on first import, with
    no usable password until they set one) and an open residency with their relation."""

    community = Field(attribute="household__building__community__name", column_name=fmt.COMMUNITY)
    building = Field(attribute="household__building__name", column_name=fmt.BUILDING)
    unit = Field(attribute="household__unit", column_name=fmt.UNIT)
    name = Field(column_name=fmt.NAME)
    phone = Field(attribute="user__phone", column_name=fmt.PHONE)
    relation = Field(column_name=fmt.RELATION)
    key_columns = (fmt.COMMUNITY, fmt.BUILDING, fmt.UNIT, fmt.PHONE)
    duplicate_message = gettext_lazy("Row %(row)d already names this person in this household.")

    class Meta:
        model = Residency
        fields = ("community", "building", "unit", "name", "phone", "relation")
        import_id_fields = ("community", "building", "unit", "phone")
        skip_diff = True
        use_bulk = True
        batch_size = 1000

    def get_bulk_update_fields(self):
        return ["relation"]

    def load(self, dataset):
        self.load_households()
        phones = sorted({cell_text(v) for v in dataset[fmt.PHONE]} - {""})
        self.users: dict[str, list[User]] = {}
        self.usernames: set[str] = set()
        self.new_users: list[User] = []
        for chunk in _chunks(phones):
            for user in User.objects.filter(phone__in=chunk):
                self.users.setdefault(user.phone, []).append(user)
            self.usernames |= set(
                User.objects.filter(username__in=chunk).values_list("username", flat=True)
            )
        self.residencies = {
            (r.user_id, r.household_id): r
            for r in Residency.objects.filter(
                end_date__isnull=True, household__building__community__centre=self.centre
            ).select_related("user", "household__building__community")
        }

    def check(self, row, errors):
        household = self.resolve_household(row, errors)
        phone = row[fmt.PHONE]
        users = []
        if not MOBILE.match(phone):
            errors.append(
                _("“%(value)s” is not a mobile number: 11 digits, starting with 1.")
                % {"value": phone}
            )
        else:
            users = self.users.get(phone, [])
            if len(users) > 1:
                errors.append(
                    _("Several accounts have the phone number %(phone)s: link this one by hand.")
                    % {"phone": phone}
                )
        relation = fmt.RELATION_WORDS.get(row.get(fmt.RELATION, "").lower())
        if relation is None:
            errors.append(
                _(
                    "“%(value)s” is not a relation: write 业主 (owner), 租户 (tenant) "
                    "or 家属 (family)."
                )
                % {"value": row.get(fmt.RELATION, "")}
            )
        name = row.get(fmt.NAME, "")
        if not users and not name:
            errors.append(_("“%(column)s” is empty.") % {"column": fmt.NAME})
        if len(name) > 64:
            errors.append(_("The name is longer than %(limit)d characters.") % {"limit": 64})
        self.clean = {
            "household": household,
            "user": users[0] if len(users) == 1 else None,
            "phone": phone,
            "name": name,
            "relation": relation,
        }

    def existing(self):
        user = self.clean["user"]
        if user is None:
            return None
        return self.residencies.get((user.pk, self.clean["household"].pk))

    def init_instance(self, row=None):
        return Residency(household=self.clean["household"], relation=self.clean["relation"])

    def apply(self, instance):
        return self._set(instance, relation=self.clean["relation"])

    def prepare_bulk(self, instance, is_create):
        # What residency_start's full_clean checks, the row has checked already against the
        # caches (the household is the centre's, the relation known, no open residency of this
        # person there); the database's constraints still stand behind the bulk insert.
        if is_create:
            instance.user = self.clean["user"] or self._new_user()

    def bulk_prepare(self, batch_size) -> None:
        # The batch's new accounts first, so that its residencies can point at them.
        try:
            User.objects.bulk_create(self.new_users, batch_size=batch_size)
        finally:
            self.new_users.clear()

    def _new_user(self) -> User:
        phone = self.clean["phone"]
        username = phone
        if username in self.usernames:
            username = f"{phone}-{secrets.token_hex(3)}"
        user = User(username=username, phone=phone, display_name=self.clean["name"])
        user.set_unusable_password()  # they set one when invited (password reset)
        self.new_users.append(user)
        self.usernames.add(username)
        self.users[phone] = [user]
        return user

    def get_queryset(self):
        return (
            Residency.objects.filter(
                end_date__isnull=True, household__building__community__centre=self.centre
            )
            .select_related("user", "household__building__community")
            .order_by("household__building__community__name", "household__building__name", "pk")
        )

    def dehydrate_name(self, residency):
        return residency.user.get_display_name()

    def dehydrate_relation(self, residency):
        return fmt.RELATION_LABELS[residency.relation]


class ServiceRowResource(resources.Resource):
    """A sheet whose rows are written by another app's service (billing's arrears and meter
    readings): each row is checked and handed to `record`, which returns the service's
    "created" / "updated" / "unchanged". A ValidationError or a Conflict refuses the row."""

    key_columns: tuple[str, ...] = ()

    class Meta:
        instance_loader_class = BaseInstanceLoader  # rows are found by the service, not here
        # Not for bulk writes (there are none): it spares django-import-export's savepoint per
        # row, as import_row below keeps one of its own around the service call.
        use_bulk = True

    def __init__(self, *, centre: Centre, user: User | None = None):
        super().__init__()
        self.centre = centre
        self.user = user
        self.seen: dict[tuple, int] = {}
        self.numbers: list[int] = []

    def get_import_id_fields(self):
        return []

    def before_import(self, dataset, **kwargs):
        self.communities = {c.name: c for c in Community.objects.filter(centre=self.centre)}
        self.load(dataset)

    def load(self, dataset) -> None:
        pass

    resolve_community = EstateResource.resolve_community

    def import_row(self, row, instance_loader, **kwargs):
        result = RowResult()
        number = _spreadsheet_row(self.numbers, kwargs.get("row_number", 0))
        errors: list[str] = []
        try:
            for column in list(row):
                row[column] = cell_text(row[column])
            empty = [c for c in self.key_columns if not row.get(c)]
            errors += [_("“%(column)s” is empty.") % {"column": c} for c in empty]
            if not empty:
                key = tuple(row[c] for c in self.key_columns)
                if key in self.seen:
                    errors.append(
                        _("Row %(row)d already has this key: each key once per sheet.")
                        % {"row": self.seen[key]}
                    )
                else:
                    self.seen[key] = number
                values = self.check(row, errors)
            if errors:
                raise ValidationError(errors)
            with transaction.atomic():
                outcome = self.record(**values)
            result.import_type = {
                "created": RowResult.IMPORT_TYPE_NEW,
                "updated": RowResult.IMPORT_TYPE_UPDATE,
            }.get(outcome, RowResult.IMPORT_TYPE_SKIP)
        except ValidationError as exc:
            result.import_type = RowResult.IMPORT_TYPE_INVALID
            result.validation_error = exc
        except Conflict as exc:
            result.import_type = RowResult.IMPORT_TYPE_INVALID
            result.validation_error = ValidationError(str(getattr(exc, "detail", exc)))
        except Exception as exc:  # as django-import-export's own rows: reported, then rolled back
            result.import_type = RowResult.IMPORT_TYPE_ERROR
            result.errors.append(Error(exc, row=row, number=number))
        return result

    def check(self, row, errors: list[str]) -> dict:
        raise NotImplementedError

    def record(self, **values) -> str:
        raise NotImplementedError

    def export_rows(self) -> list[list]:
        return []


# --- the workbook ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Sheet:
    name: str
    columns: tuple[str, ...]  # every column, in order; all required in an imported sheet
    resource: Callable[..., resources.Resource]  # (centre=, user=) -> resource
    order: int


SHEETS: dict[str, Sheet] = {}


def register_sheet(sheet: Sheet) -> None:
    SHEETS[sheet.name] = sheet


def sheets() -> list[Sheet]:
    return sorted(SHEETS.values(), key=lambda sheet: sheet.order)


register_sheet(
    Sheet(fmt.SHEET_COMMUNITIES, (fmt.COMMUNITY, fmt.ADDRESS, fmt.COMPANY), CommunityResource, 10)
)
register_sheet(Sheet(fmt.SHEET_BUILDINGS, (fmt.COMMUNITY, fmt.BUILDING), BuildingResource, 20))
register_sheet(
    Sheet(
        fmt.SHEET_HOUSEHOLDS,
        (fmt.COMMUNITY, fmt.BUILDING, fmt.UNIT, fmt.AREA),
        HouseholdResource,
        30,
    )
)
register_sheet(
    Sheet(
        fmt.SHEET_RESIDENTS,
        (fmt.COMMUNITY, fmt.BUILDING, fmt.UNIT, fmt.NAME, fmt.PHONE, fmt.RELATION),
        ResidentResource,
        40,
    )
)


ACTIONS = {
    RowResult.IMPORT_TYPE_NEW: "new",
    RowResult.IMPORT_TYPE_UPDATE: "update",
    RowResult.IMPORT_TYPE_SKIP: "skip",
    RowResult.IMPORT_TYPE_INVALID: "invalid",
    RowResult.IMPORT_TYPE_ERROR: "error",
}


@dataclass
class RowReport:
    number: int  # the row's number in the spreadsheet (the header is row 1)
    action: str  # new / update / skip / invalid / error
    key: str
    messages: list[str] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        return self.action in {"invalid", "error"}


@dataclass
class SheetReport:
    name: str
    rows: list[RowReport] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(row.action == action for row in self.rows)

    @property
    def totals(self) -> dict[str, int]:
        return {action: self.count(action) for action in ACTIONS.values()}

    @property
    def refused(self) -> list[RowReport]:
        return [row for row in self.rows if row.refused]


@dataclass
class WorkbookReport:
    dry_run: bool
    errors: list[str] = field(default_factory=list)  # about the file as a whole
    sheets: list[SheetReport] = field(default_factory=list)
    committed: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors and not any(sheet.refused for sheet in self.sheets)

    @property
    def refused_count(self) -> int:
        return sum(len(sheet.refused) for sheet in self.sheets)

    def total(self, action: str) -> int:
        return sum(sheet.count(action) for sheet in self.sheets)


def workbook_read(data: bytes) -> tuple[list[tuple[Sheet, tablib.Dataset, list[int]]], list[str]]:
    """The workbook's known sheets as datasets (with each data row's spreadsheet row number),
    and what is wrong with the file as a whole."""
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, OSError, KeyError, ValueError) as exc:
        return [], [_("This is not an Excel workbook (.xlsx): %(error)s") % {"error": exc}]
    errors, found = [], []
    names = "、".join(SHEETS)
    for worksheet in book.worksheets:
        sheet = SHEETS.get(worksheet.title.strip())
        rows = worksheet.iter_rows(values_only=True)
        header = [cell_text(value) for value in next(rows, ())]
        while header and not header[-1]:
            header.pop()
        if sheet is None:
            if header:
                errors.append(
                    _("The sheet “%(sheet)s” is not one of the format's sheets (%(sheets)s).")
                    % {"sheet": worksheet.title, "sheets": names}
                )
            continue
        missing = [column for column in sheet.columns if column not in header]
        for column in missing:
            errors.append(
                _("The sheet “%(sheet)s” has no column “%(column)s”.")
                % {"sheet": sheet.name, "column": column}
            )
        if missing:
            continue
        positions = [header.index(column) for column in sheet.columns]
        dataset = tablib.Dataset(headers=list(sheet.columns))
        numbers = []
        for number, values in enumerate(rows, start=2):
            values = list(values) + [None] * (len(header) - len(values))
            picked = [cell_text(values[i]) for i in positions]
            if any(picked):
                dataset.append(picked)
                numbers.append(number)
        found.append((sheet, dataset, numbers))
    book.close()
    if not found and not errors:
        errors.append(_("The workbook has none of the sheets %(sheets)s.") % {"sheets": names})
    found.sort(key=lambda item: item[0].order)
    return found, errors


def _messages(row_result: RowResult) -> list[str]:
    if row_result.validation_error is not None:
        return list(row_result.validation_error.messages)
    return [str(error.error) for error in row_result.errors]


@transaction.atomic
def estate_workbook_import(
    *, data: bytes, centre: Centre, user: User | None = None, dry_run: bool
) -> WorkbookReport:
    """Import an estate workbook into `centre`: every sheet or nothing. With `dry_run`, report
    what would happen and write nothing. The caller has checked that `user` may import into
    `centre` (community.admin, the import_estate command)."""
    found, errors = workbook_read(data)
    report = WorkbookReport(dry_run=dry_run, errors=errors)
    if errors:
        return report
    for sheet, dataset, numbers in found:
        resource = sheet.resource(centre=centre, user=user)
        resource.numbers = numbers
        result = resource.import_data(dataset, dry_run=False, use_transactions=True)
        report.errors += [str(error.error) for error in result.base_errors]
        sheet_report = SheetReport(sheet.name)
        for row_result, values, number in zip(result.rows, dataset, numbers, strict=True):
            key = " ".join(
                str(values[sheet.columns.index(c)])
                for c in resource.key_columns
                if c in sheet.columns
            )
            sheet_report.rows.append(
                RowReport(number, ACTIONS[row_result.import_type], key, _messages(row_result))
            )
        report.sheets.append(sheet_report)
    report.committed = not dry_run and report.ok
    if not report.committed:
        transaction.set_rollback(True)
    return report


def _write_sheet(book, sheet: Sheet, rows: Iterable[Iterable]) -> None:
    worksheet = book.create_sheet(sheet.name)
    worksheet.append(list(sheet.columns))
    for row in rows:
        worksheet.append(list(row))
    for index, column in enumerate(sheet.columns, start=1):
        worksheet.column_dimensions[worksheet.cell(1, index).column_letter].width = max(
            12, 3 * len(column)
        )


def _save(book) -> bytes:
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def estate_workbook_export(*, centre: Centre, communities: QuerySet | None = None) -> bytes:
    """The centre's estates as an estate workbook, in the import's format (a round trip)."""
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for sheet in sheets():
        resource = sheet.resource(centre=centre)
        if isinstance(resource, ServiceRowResource):
            rows = resource.export_rows()
        else:
            queryset = resource.get_queryset()
            if communities is not None:
                path = {
                    Community: "pk",
                    Building: "community",
                    Household: "building__community",
                    Residency: "household__building__community",
                }[resource._meta.model]
                queryset = queryset.filter(**{f"{path}__in": communities})
            rows = resource.export(queryset=queryset)
        _write_sheet(book, sheet, rows)
    return _save(book)


def estate_workbook_template() -> bytes:
    """The empty workbook with its headers and one example row per sheet."""
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for sheet in sheets():
        _write_sheet(book, sheet, fmt.EXAMPLES.get(sheet.name, []))
    return _save(book)
