"""Billing's sheets of the estate workbook (community/imports.py): opening arrears and meter
readings. Each row is written by billing.charges' service, so an import keeps the same rules as
a reading entered by staff (below the previous one, an estate without that metered item, a
month already billed: refused with the service's message). Registered in BillingConfig.ready.
"""

from django.utils.translation import gettext as _

from billing.charges import meter_reading_record, opening_arrears_record
from billing.models import BillLine, MeterReading
from community import import_format as fmt
from community.imports import (
    HouseholdKeyMixin,
    ServiceRowResource,
    Sheet,
    parse_decimal,
    register_sheet,
)
from community.periods import Period


def _period(row, column: str, errors: list[str]) -> Period | None:
    try:
        return Period.parse(row.get(column, ""))
    except ValueError:
        errors.append(
            _("“%(value)s” is not a month: write it as YYYY-MM, e.g. 2026-06.")
            % {"value": row.get(column, "")}
        )
        return None


def _key(household) -> list[str]:
    return [household.building.community.name, household.building.name, household.unit]


class OpeningArrearsResource(HouseholdKeyMixin, ServiceRowResource):
    """What a household owed before the estate came to Linli: one bill per household and month."""

    key_columns = (fmt.COMMUNITY, fmt.BUILDING, fmt.UNIT, fmt.ARREARS_PERIOD)

    def load(self, dataset):
        self.load_households()

    def check(self, row, errors):
        household = self.resolve_household(row, errors)
        period = _period(row, fmt.ARREARS_PERIOD, errors)
        amount = parse_decimal(row.get(fmt.ARREARS_AMOUNT, ""), places=2, max_digits=12)
        if amount is None or amount <= 0:
            errors.append(
                _("“%(value)s” is not an amount: yuan above 0, at most two decimals.")
                % {"value": row.get(fmt.ARREARS_AMOUNT, "")}
            )
        return {"household": household, "period": period, "amount": amount}

    def record(self, *, household, period, amount):
        _bill, what = opening_arrears_record(household=household, period=period, amount=amount)
        return what

    def export_rows(self):
        lines = (
            BillLine.objects.filter(
                kind=BillLine.Kind.OPENING_ARREARS,
                bill__community__centre=self.centre,
                waived_at__isnull=True,
            )
            .select_related("bill__household__building__community")
            .order_by("bill__household_id", "bill__period")
        )
        return [[*_key(line.bill.household), line.bill.period, line.amount] for line in lines]


class MeterReadingResource(HouseholdKeyMixin, ServiceRowResource):
    """A household meter's reading at the end of a month (the meter is the metered charge
    item's code in the estate's agreement: water, power…). The previous reading may be left
    empty when the meter has an earlier reading."""

    key_columns = (fmt.COMMUNITY, fmt.BUILDING, fmt.UNIT, fmt.METER, fmt.PERIOD)

    def load(self, dataset):
        self.load_households()
        self.metered_items: dict = {}  # one look-up per estate, month and meter (charges)

    def check(self, row, errors):
        household = self.resolve_household(row, errors)
        period = _period(row, fmt.PERIOD, errors)
        values = {}
        for column, name in ((fmt.PREVIOUS_READING, "previous"), (fmt.READING, "reading")):
            text = row.get(column, "")
            if not text and name == "previous":
                values[name] = None
                continue
            values[name] = parse_decimal(text, places=2, max_digits=12)
            if values[name] is None or values[name] < 0:
                errors.append(
                    _("“%(value)s” is not a meter reading: a number from 0, at most two decimals.")
                    % {"value": text}
                )
        return {
            "household": household,
            "meter": row[fmt.METER],
            "period": period,
            "previous": values["previous"],
            "reading": values["reading"],
        }

    def record(self, *, household, meter, period, previous, reading):
        _reading, what = meter_reading_record(
            household=household,
            meter=meter,
            period=period,
            reading=reading,
            previous_reading=previous,
            recorded_by=self.user,
            source=MeterReading.Source.IMPORT,
            memo=self.metered_items,
        )
        return what

    def export_rows(self):
        readings = (
            MeterReading.objects.filter(household__building__community__centre=self.centre)
            .select_related("household__building__community")
            .order_by("household_id", "meter", "period")
        )
        return [
            [*_key(r.household), r.meter, r.period, r.previous_reading, r.reading] for r in readings
        ]


register_sheet(
    Sheet(
        fmt.SHEET_ARREARS,
        (fmt.COMMUNITY, fmt.BUILDING, fmt.UNIT, fmt.ARREARS_PERIOD, fmt.ARREARS_AMOUNT),
        OpeningArrearsResource,
        50,
    )
)
register_sheet(
    Sheet(
        fmt.SHEET_METER_READINGS,
        (
            fmt.COMMUNITY,
            fmt.BUILDING,
            fmt.UNIT,
            fmt.METER,
            fmt.PERIOD,
            fmt.PREVIOUS_READING,
            fmt.READING,
        ),
        MeterReadingResource,
        60,
    )
)
