"""Fee items on bills: the lines of a month's bill, meter readings, opening arrears, late fees
and prepayment discounts (the models' overview is in billing/models.py, above Settlement).

Rules every writer here keeps, in the transaction that writes the line:
- a bill's amount is the sum of its lines that are not waived, and its passthrough_amount the
  sum of those settled by pass-through (bill_totals_problems finds any bill that drifted);
- each charge item, late fee rule and discount applies to a bill at most once: partial unique
  indexes on BillLine, so a retry or a race inserts nothing twice;
- a bill only grows while it is owed: a late fee accrues on unpaid bills outside a pending
  payment, and a metered line is added to a month's bill when its reading comes in after the
  bill was issued (a prepaid month, a late reading).
"""

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from billing import summary as billing_summary
from billing.locks import bills_for_update
from billing.models import (
    Bill,
    BillLine,
    ChargeItem,
    ChargeSubscription,
    ChargeTier,
    LateFeeRule,
    MeterReading,
    PrepayDiscountRule,
    Settlement,
)
from billing.money import ZERO, allocate, fen
from community import audit
from community import selectors as community_selectors
from community.models import Agreement, Household, User
from community.periods import Period
from config.api import Conflict

AREA_UNIT = "m²"


def property_fee_name() -> str:
    """The property fee line's name, stored in the site's language like a notice is."""
    with translation.override(settings.LANGUAGE_CODE):
        return _("Property fee")


def opening_arrears_name() -> str:
    with translation.override(settings.LANGUAGE_CODE):
        return _("Opening arrears")


# --- what a month costs ------------------------------------------------------------------------


@dataclass
class Charge:
    """One line to be: what the bill run, a prepayment or a late reading puts on a bill."""

    name: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    amount: Decimal
    settlement: str = Settlement.ESCROW
    item_id: int | None = None
    position: int = 0

    def line(self, bill: Bill) -> BillLine:
        return BillLine(
            bill=bill,
            kind=BillLine.Kind.CHARGE,
            charge_item_id=self.item_id,
            name=self.name,
            quantity=self.quantity,
            unit=self.unit,
            unit_price=self.unit_price,
            amount=self.amount,
            settlement=self.settlement,
            position=self.position,
        )


def tiered_amount(usage: Decimal, unit_price: Decimal, tiers) -> Decimal:
    """Usage priced in tiers [(up_to or None, price), ...] ordered by up_to (None last), or at
    the flat unit price when there are none; rounded half-up to the fen once, at the end. The
    bill run's SQL (_GENERATE_SQL) computes the same."""
    if not tiers:
        return fen(usage * unit_price)
    total, lower = Decimal(0), Decimal(0)
    for up_to, price in tiers:
        upper = usage if up_to is None else min(usage, up_to)
        if upper > lower:
            total += (upper - lower) * price
        if up_to is None or usage <= up_to:
            break
        lower = up_to
    return fen(total)


def _tiers_by_item(items) -> dict[int, list[tuple[Decimal | None, Decimal]]]:
    tiers: dict[int, list] = defaultdict(list)
    for tier in ChargeTier.objects.filter(item__in=[i.pk for i in items]).order_by("item", "up_to"):
        tiers[tier.item_id].append((tier.up_to, tier.unit_price))
    for rows in tiers.values():  # the open-ended tier last
        rows.sort(key=lambda row: (row[0] is None, row[0] or 0))
    return tiers


def metered_charge(item: ChargeItem, reading: MeterReading, tiers=None) -> Charge:
    if tiers is None:
        tiers = _tiers_by_item([item]).get(item.pk, [])
    return Charge(
        name=item.name,
        quantity=reading.usage,
        unit=item.unit,
        unit_price=item.unit_price,
        amount=tiered_amount(reading.usage, item.unit_price, tiers),
        settlement=item.settlement,
        item_id=item.pk,
        position=item.position,
    )


def monthly_charges(
    agreement: Agreement, households: list[tuple[int, Decimal]], period: Period | None
) -> dict[int, list[Charge]]:
    """Each household's charges for a month under `agreement`: the property fee, every per-m²
    and fixed item, subscriptions, and, when `period` is given, the metered items read that
    month. households: [(id, area)]. A prepayment passes period=None: usage is not known in
    advance, so metered items come on the month's bill when their reading does."""
    items = list(agreement.charge_items.all())
    by_id = dict(households)
    subscriptions: dict[int, list[ChargeSubscription]] = defaultdict(list)
    if any(i.by_subscription for i in items):
        for sub in ChargeSubscription.objects.filter(
            household_id__in=by_id, item__in=[i.pk for i in items if i.by_subscription]
        ):
            subscriptions[sub.household_id].append(sub)
    readings: dict[int, list[MeterReading]] = defaultdict(list)
    metered = {i.code: i for i in items if i.method == ChargeItem.Method.METERED}
    tiers = _tiers_by_item(metered.values()) if metered else {}
    if period is not None and metered:
        for reading in MeterReading.objects.filter(
            household_id__in=by_id, period=str(period), meter__in=list(metered)
        ):
            readings[reading.household_id].append(reading)
    fee_name = property_fee_name()
    charges: dict[int, list[Charge]] = {}
    for household_id, area in households:
        rows = [
            Charge(
                name=fee_name,
                quantity=area,
                unit=AREA_UNIT,
                unit_price=agreement.fee_rate,
                amount=fen(area * agreement.fee_rate),
            )
        ]
        for item in items:
            common = {"settlement": item.settlement, "item_id": item.pk, "position": item.position}
            if item.method == ChargeItem.Method.PER_AREA:
                rows.append(
                    Charge(
                        item.name,
                        area,
                        AREA_UNIT,
                        item.unit_price,
                        fen(area * item.unit_price),
                        **common,
                    )
                )
            elif item.method == ChargeItem.Method.FIXED and not item.by_subscription:
                rows.append(
                    Charge(
                        item.name,
                        Decimal(1),
                        item.unit,
                        item.unit_price,
                        fen(item.unit_price),
                        **common,
                    )
                )
        for sub in subscriptions.get(household_id, []):
            item = next(i for i in items if i.pk == sub.item_id)
            rows.append(
                Charge(
                    item.name,
                    Decimal(sub.quantity),
                    item.unit,
                    item.unit_price,
                    fen(sub.quantity * item.unit_price),
                    item.settlement,
                    item.pk,
                    item.position,
                )
            )
        for reading in readings.get(household_id, []):
            item = metered[reading.meter]
            rows.append(metered_charge(item, reading, tiers.get(item.pk, [])))
        charges[household_id] = rows
    return charges


def totals(charges: list[Charge]) -> tuple[Decimal, Decimal]:
    """(amount, pass-through part) of a bill's charges."""
    amount = sum((c.amount for c in charges), ZERO)
    passthrough = sum((c.amount for c in charges if c.settlement == Settlement.PASSTHROUGH), ZERO)
    return amount, passthrough


# --- the bill run ------------------------------------------------------------------------------

# One statement per agreement on PostgreSQL, shaped like the raw INSERT … SELECT it is measured
# against (bench/scenarios/bill_run.py): the bills straight from the estate's households, each
# property-fee line straight from its new bill's RETURNING row. Only the agreement's other
# charges (per-m² and fixed items, subscriptions, the month's metered readings priced in tiers;
# none for most estates) go through a UNION ALL, are summed per household onto the bill, and are
# joined back to the new bills for their lines; `hh` serves only them, so an agreement without
# such items never reads it (the bills read the households themselves: a CTE read from more
# than one place is materialized first). ON CONFLICT: a household billed already (e.g. a
# prepaid month) gets nothing new here. The property fee is the same expression on the bill and
# on its line, so a bill is the sum of its lines. Numeric arithmetic is exact and ROUND rounds
# half away from zero, i.e. half-up for these non-negative amounts, as fen() does. Also returns
# whether the agreement has a metered item, so the bill run looks for late readings only then.
_GENERATE_SQL = """
WITH hh AS (
    SELECT h.id, h.area FROM community_household AS h
      JOIN community_building AS b ON b.id = h.building_id
     WHERE b.community_id = %(community)s
), items AS (
    SELECT id, code, name, method, unit_price, unit, settlement, by_subscription, position
      FROM billing_chargeitem WHERE agreement_id = %(agreement)s
), tiers AS (
    SELECT t.item_id, t.unit_price, t.up_to AS upper,
           coalesce(lag(t.up_to) OVER (PARTITION BY t.item_id ORDER BY t.up_to NULLS LAST), 0)
             AS lower
      FROM billing_chargetier AS t JOIN items AS i ON i.id = t.item_id
), usage AS (
    SELECT r.household_id, i.id AS item_id, r.reading - r.previous_reading AS used
      FROM billing_meterreading AS r
      JOIN hh ON hh.id = r.household_id
      JOIN items AS i ON i.code = r.meter AND i.method = 'metered'
     WHERE r.period = %(period)s
), other_charges AS (
    SELECT hh.id AS household_id, i.id AS item_id, i.name, hh.area::numeric AS quantity,
           %(area_unit)s::varchar AS unit, i.unit_price, round(hh.area * i.unit_price, 2) AS amount,
           i.settlement, i.position
      FROM hh CROSS JOIN items AS i WHERE i.method = 'per_area'
    UNION ALL
    SELECT hh.id, i.id, i.name, 1, i.unit, i.unit_price, round(i.unit_price, 2), i.settlement,
           i.position
      FROM hh CROSS JOIN items AS i WHERE i.method = 'fixed' AND NOT i.by_subscription
    UNION ALL
    SELECT hh.id, i.id, i.name, s.quantity, i.unit, i.unit_price,
           round(s.quantity * i.unit_price, 2), i.settlement, i.position
      FROM hh JOIN billing_chargesubscription AS s ON s.household_id = hh.id
      JOIN items AS i ON i.id = s.item_id AND i.method = 'fixed' AND i.by_subscription
    UNION ALL
    SELECT u.household_id, i.id, i.name, u.used, i.unit, i.unit_price,
           round(coalesce(
               (SELECT sum(greatest(0, least(u.used, coalesce(t.upper, u.used)) - t.lower)
                           * t.unit_price)
                  FROM tiers AS t WHERE t.item_id = i.id),
               u.used * i.unit_price), 2),
           i.settlement, i.position
      FROM usage AS u JOIN items AS i ON i.id = u.item_id
), other_sums AS (
    SELECT household_id, sum(amount) AS amount,
           sum(CASE WHEN settlement = 'passthrough' THEN amount ELSE 0 END) AS passthrough
      FROM other_charges GROUP BY household_id
), new_bills AS (
    INSERT INTO billing_bill (household_id, community_id, period, area, rate, amount,
                              passthrough_amount, paid_amount, status, due_date, is_prepaid,
                              created_at)
    SELECT h.id, %(community)s, %(period)s, h.area, %(rate)s,
           round(h.area * %(rate)s::numeric, 2) + coalesce(o.amount, 0),
           coalesce(o.passthrough, 0), 0, 'unpaid', %(due)s, FALSE, now()
      FROM community_household AS h
      JOIN community_building AS b ON b.id = h.building_id
      LEFT JOIN other_sums AS o ON o.household_id = h.id
     WHERE b.community_id = %(community)s
    ON CONFLICT (household_id, period) WHERE NOT (status = 'void') DO NOTHING
    RETURNING id, household_id, area
), new_lines AS (
    INSERT INTO billing_billline (bill_id, kind, charge_item_id, name, quantity, unit,
                                  unit_price, amount, settlement, position, waive_reason)
    SELECT nb.id, 'charge', NULL, %(fee_name)s, nb.area, %(area_unit)s, %(rate)s,
           round(nb.area * %(rate)s::numeric, 2), 'escrow', 0, ''
      FROM new_bills AS nb
    UNION ALL
    SELECT nb.id, 'charge', o.item_id, o.name, o.quantity, o.unit, o.unit_price, o.amount,
           o.settlement, o.position, ''
      FROM new_bills AS nb JOIN other_charges AS o ON o.household_id = nb.household_id
)
SELECT (SELECT count(*) FROM new_bills),
       EXISTS (SELECT FROM items WHERE method = 'metered')
"""


def bills_generate_for_agreement(agreement: Agreement, period: Period, due) -> int:
    """Issue the month's bill, with its lines, to every household of the agreement's estate
    that has none yet; then put late meter readings on bills that existed already. Caller runs
    it in a transaction. Returns how many bills were created."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                _GENERATE_SQL,
                {
                    "community": agreement.community_id,
                    "agreement": agreement.pk,
                    "period": str(period),
                    "rate": agreement.fee_rate,
                    "due": due,
                    "fee_name": property_fee_name(),
                    "area_unit": AREA_UNIT,
                },
            )
            created, metered = cursor.fetchone()
    else:
        created, metered = _generate_python(agreement, period, due), True
    if metered:
        _metered_lines_for_billed_households(agreement, period)
    # The new bills are all unpaid: one upsert of the estate's month in the summary, last (the
    # summary's rows are locked after the bills and accounts, in every service).
    billing_summary.unpaid_bills_created(
        community_id=agreement.community_id, period=str(period), count=created
    )
    return created


def _generate_python(agreement: Agreement, period: Period, due, batch: int = 2000) -> int:
    billed = Bill.objects.filter(community_id=agreement.community_id, period=str(period)).exclude(
        status=Bill.Status.VOID
    )
    households = list(
        Household.objects.filter(building__community_id=agreement.community_id)
        .exclude(pk__in=billed.values("household_id"))
        .values_list("pk", "area")
    )
    created = 0
    for start in range(0, len(households), batch):
        chunk = households[start : start + batch]
        charges = monthly_charges(agreement, chunk, period)
        bills = []
        for household_id, area in chunk:
            amount, passthrough = totals(charges[household_id])
            bills.append(
                Bill(
                    household_id=household_id,
                    community_id=agreement.community_id,
                    period=str(period),
                    area=area,
                    rate=agreement.fee_rate,
                    amount=amount,
                    passthrough_amount=passthrough,
                    due_date=due,
                )
            )
        Bill.objects.bulk_create(bills)
        BillLine.objects.bulk_create(
            [c.line(bill) for bill in bills for c in charges[bill.household_id]]
        )
        created += len(bills)
    return created


def _metered_lines_for_billed_households(agreement: Agreement, period: Period) -> int:
    """Readings of `period` whose household's bill for the month was issued before them (a
    prepaid month, or the reading came in after the bill run) and does not charge them yet."""
    metered = {i.code: i for i in agreement.charge_items.filter(method=ChargeItem.Method.METERED)}
    if not metered:
        return 0
    live_bill = Bill.objects.filter(
        household_id=OuterRef("household_id"), period=OuterRef("period")
    ).exclude(status__in=[Bill.Status.VOID, Bill.Status.WAIVED])
    charged = BillLine.objects.filter(
        bill__household_id=OuterRef("household_id"),
        bill__period=OuterRef("period"),
        charge_item__agreement=agreement,
        charge_item__code=OuterRef("meter"),
    ).exclude(bill__status=Bill.Status.VOID)
    readings = (
        MeterReading.objects.filter(
            household__building__community_id=agreement.community_id,
            period=str(period),
            meter__in=list(metered),
        )
        .filter(Exists(live_bill))
        .exclude(Exists(charged))
    )
    added = 0
    for reading in readings:
        added += _metered_line_add(reading, metered[reading.meter])
    return added


def _metered_line_add(reading: MeterReading, item: ChargeItem) -> int:
    """Put a reading on its month's live bill if the bill exists, is still owed or paid (not
    waived or void) and has no line for the item yet. Returns 1 if a line was added."""
    bill = (
        Bill.objects.filter(household_id=reading.household_id, period=reading.period)
        .exclude(status__in=[Bill.Status.VOID, Bill.Status.WAIVED])
        .first()
    )
    if bill is None or bill.lines.filter(charge_item=item).exists():
        return 0
    bill = bills_for_update([bill.pk])[0]
    charge = metered_charge(item, reading)
    try:
        with transaction.atomic():
            charge.line(bill).save()
    except IntegrityError:  # added meanwhile
        return 0
    _bill_add(bill, charge.amount, passthrough=charge.settlement == Settlement.PASSTHROUGH)
    return 1


def _bill_add(bill: Bill, amount: Decimal, *, passthrough: bool = False) -> None:
    """Grow (or shrink) a locked bill by a line's amount; a paid bill that grows owes again."""
    bill.amount += amount
    if passthrough:
        bill.passthrough_amount += amount
    before = bill.status
    if bill.status != Bill.Status.WAIVED:
        bill.status = Bill.status_for(amount=bill.amount, paid_amount=bill.paid_amount)
    bill.save(update_fields=["amount", "passthrough_amount", "status"])
    billing_summary.bills_moved([(bill, before)])


# --- meter readings and opening arrears (entered by staff, or imported) ------------------------


def _metered_item(
    household: Household, meter: str, period: Period, memo: dict | None = None
) -> ChargeItem:
    """The metered charge item `meter` of the agreement the household's estate had in
    `period`. `memo`: a dict the caller keeps for one batch (an imported sheet), so a month's
    thousands of readings look the item up once per estate rather than once a row."""
    key = (household.building.community_id, str(period), meter)
    if memo is not None and key in memo:
        return memo[key]
    item = _metered_item_lookup(household, meter, period)
    if memo is not None:
        memo[key] = item
    return item


def _metered_item_lookup(household: Household, meter: str, period: Period) -> ChargeItem:
    agreement = community_selectors.agreement_in_force(
        community=household.building.community, on=period.first_day
    )
    item = None
    if agreement is not None:
        item = agreement.charge_items.filter(code=meter, method=ChargeItem.Method.METERED).first()
    if item is None:
        raise ValidationError(
            {
                "meter": _("This estate has no metered charge “%(meter)s” in %(period)s.")
                % {"meter": meter, "period": period}
            }
        )
    return item


def _reading_value(value, field: str) -> Decimal:
    try:
        number = Decimal(value)
    except (ArithmeticError, TypeError, ValueError):
        number = None
    if (
        number is None
        or not number.is_finite()
        or number < 0
        or number != number.quantize(Decimal("0.01"))
        or number >= Decimal("1e10")
    ):
        raise ValidationError(
            {field: _("Enter a meter reading: a number from 0, at most two decimals.")}
        )
    return number


def meter_reading_record(
    *,
    household: Household,
    meter: str,
    period: Period,
    reading,
    previous_reading=None,
    recorded_by: User | None = None,
    source: str = MeterReading.Source.STAFF,
    memo: dict | None = None,
) -> tuple[MeterReading, str]:
    """Record a household meter's reading at the end of `period`. Returns (reading, what):
    "created", "updated" or "unchanged" (the same values again: an import re-run). The previous
    reading defaults to the meter's latest earlier reading. If the month's bill was issued
    already, the usage is put on it as a line now; once that line exists the reading is billed
    and can no longer change (409). `memo`: see _metered_item."""
    item = _metered_item(household, meter, period, memo)
    value = _reading_value(reading, "reading")
    previous = (
        None
        if previous_reading in (None, "")
        else _reading_value(previous_reading, "previous_reading")
    )
    with transaction.atomic():
        Household.objects.select_for_update().get(pk=household.pk)
        existing = MeterReading.objects.filter(
            household=household, meter=meter, period=str(period)
        ).first()
        if previous is None:
            previous = (
                existing.previous_reading
                if existing is not None
                else MeterReading.objects.filter(
                    household=household, meter=meter, period__lt=str(period)
                )
                .order_by("-period")
                .values_list("reading", flat=True)
                .first()
            )
        if previous is None:
            raise ValidationError(
                {"previous_reading": _("This meter has no earlier reading: give the previous one.")}
            )
        if value < previous:
            raise ValidationError(
                {
                    "reading": _("The reading %(reading)s is below the previous one, %(previous)s.")
                    % {"reading": value, "previous": previous}
                }
            )
        if existing is not None:
            if existing.reading == value and existing.previous_reading == previous:
                return existing, "unchanged"
            billed = BillLine.objects.filter(
                bill__household=household, bill__period=str(period), charge_item=item
            ).exclude(bill__status=Bill.Status.VOID)
            if billed.exists():
                raise Conflict(
                    _("%(period)s is billed for this meter already; its reading cannot change.")
                    % {"period": period}
                )
            existing.reading, existing.previous_reading = value, previous
            existing.recorded_by, existing.source = recorded_by, source
            existing.save()
            saved, what = existing, "updated"
        else:
            saved = MeterReading.objects.create(
                household=household,
                meter=meter,
                period=str(period),
                previous_reading=previous,
                reading=value,
                recorded_by=recorded_by,
                source=source,
            )
            what = "created"
        _metered_line_add(saved, item)
    return saved, what


def opening_arrears_record(*, household: Household, period: Period, amount) -> tuple[Bill, str]:
    """What a household owed before the estate came to Linli, as a bill of `period` with one
    opening-arrears line, due at once. Arrears are passed through: the service they pay for was
    given before the centre held the money, so no hold-back applies. Returns (bill, "created" |
    "unchanged"); another amount for the same month → 409, nothing written."""
    try:
        value = fen(Decimal(amount))
    except (ArithmeticError, TypeError, ValueError):
        value = None
    if (
        value is None
        or not value.is_finite()
        or value <= 0
        or value != Decimal(amount)
        or (value >= Decimal("1e10"))
    ):
        raise ValidationError({"amount": _("Enter the arrears in yuan, above 0, at most fen.")})
    community = household.building.community

    def existing_bill():
        return (
            Bill.objects.filter(household=household, period=str(period))
            .exclude(status=Bill.Status.VOID)
            .first()
        )

    def unchanged_or_conflict(bill: Bill) -> tuple[Bill, str]:
        if bill.amount == value and bill.lines.filter(kind=BillLine.Kind.OPENING_ARREARS).exists():
            return bill, "unchanged"
        raise Conflict(
            _("%(household)s already has a bill for %(period)s of %(amount)s.")
            % {"household": household, "period": period, "amount": bill.amount}
        )

    bill = existing_bill()
    if bill is not None:
        return unchanged_or_conflict(bill)
    try:
        with transaction.atomic():
            bill = Bill.objects.create(
                household=household,
                community=community,
                period=str(period),
                area=household.area,
                rate=0,
                amount=value,
                passthrough_amount=value,
                due_date=period.last_day,
            )
            BillLine.objects.create(
                bill=bill,
                kind=BillLine.Kind.OPENING_ARREARS,
                name=opening_arrears_name(),
                quantity=1,
                unit_price=value,
                amount=value,
                settlement=Settlement.PASSTHROUGH,
            )
            billing_summary.bills_created([bill])
    except IntegrityError:  # the same household and month, at the same time
        return unchanged_or_conflict(existing_bill())
    return bill, "created"


# --- prepayment discounts ----------------------------------------------------------------------


def prepay_discount(community_id: int, months: int) -> tuple[PrepayDiscountRule, int] | None:
    """The active rule that gives the most months free for prepaying `months`, and how many:
    one block of months_free per full months_paid. An estate's own rules and the rules for
    every estate both count."""
    best = None
    for rule in PrepayDiscountRule.objects.filter(is_active=True).filter(
        Q(community_id=community_id) | Q(community__isnull=True)
    ):
        free = (months // rule.months_paid) * rule.months_free
        if free and (best is None or free > best[1]):
            best = (rule, free)
    return best


def prepay_discount_lines(
    bills: list[Bill], charges: list[list[Charge]], community_id: int
) -> list[BillLine]:
    """Discount lines for a prepayment's bills (not yet saved): `free` months' escrowed charges
    off in all, spread over the bills in proportion to their escrowed charges (largest
    remainder, billing.money.allocate), so each bill keeps something to pay and the total is
    exact. Lowers each bill's amount to match."""
    found = prepay_discount(community_id, len(bills))
    if found is None:
        return []
    rule, free = found
    escrowed = [
        sum((c.amount for c in rows if c.settlement == Settlement.ESCROW), ZERO) for rows in charges
    ]
    # The months given free are the last ones prepaid: their escrowed charges come off.
    off = sum(escrowed[-free:], ZERO)
    if not off:
        return []
    shares = allocate(off, escrowed)
    lines = []
    for bill, share in zip(bills, shares, strict=True):
        if not share:
            continue
        bill.amount -= share
        lines.append(
            BillLine(
                bill=bill,
                kind=BillLine.Kind.DISCOUNT,
                discount_rule=rule,
                name=rule.name,
                quantity=1,
                unit_price=-share,
                amount=-share,
                position=900,
            )
        )
    return lines


# --- late fees -----------------------------------------------------------------------------------


def late_fee_rules() -> tuple[LateFeeRule | None, dict[int, LateFeeRule]]:
    """(the rule for every estate, {community id: the estate's own rule}), active ones only."""
    default, own = None, {}
    for rule in LateFeeRule.objects.filter(is_active=True):
        if rule.community_id is None:
            default = rule
        else:
            own[rule.community_id] = rule
    return default, own


def late_fee_for(bill: Bill, rule: LateFeeRule, today, current: Decimal) -> Decimal:
    """The late fee a bill carries on `today` under `rule`: daily_rate × what is still owed on
    its charges × the days past the grace period, at most cap_rate × that, never less than it
    carries already (`current`): paying part of a bill does not give back a fee accrued."""
    days = (today - bill.due_date).days - rule.grace_days
    if days <= 0:
        return current
    owed = max(bill.amount - current - bill.paid_amount, ZERO)
    accrued = min(fen(owed * rule.daily_rate * days), fen(owed * rule.cap_rate))
    return max(accrued, current)


def late_fees_assess(*, today=None) -> int:
    """Daily: bring every overdue bill's late fee line up to today under its estate's rule.
    A bill inside a pending payment keeps its amount until the payment ends (the payer is
    paying what they were shown); imported opening arrears take no late fee. Returns how many
    lines were added or raised."""
    today = today or timezone.localdate()
    default, own = late_fee_rules()
    if default is None and not own:
        return 0
    candidates = (
        Bill.objects.filter(
            status__in=[Bill.Status.UNPAID, Bill.Status.PARTIALLY_PAID], due_date__lt=today
        )
        .exclude(payment_items__is_open=True)
        # Opening arrears are the figure agreed when the estate came in, late fees of before
        # included: a rule of ours does not reach back over them.
        .exclude(lines__kind=BillLine.Kind.OPENING_ARREARS)
        .order_by("pk")
    )
    if default is None:
        candidates = candidates.filter(community_id__in=list(own))
    changed = 0
    for bill_id in candidates.values_list("pk", flat=True).iterator(chunk_size=2000):
        with transaction.atomic():
            changed += _late_fee_update(bill_id, default, own, today)
    return changed


def _late_fee_update(bill_id: int, default, own, today) -> int:
    locked = bills_for_update([bill_id])
    if not locked:
        return 0
    bill = locked[0]
    rule = own.get(bill.community_id, default)
    if rule is None or bill.status not in (Bill.Status.UNPAID, Bill.Status.PARTIALLY_PAID):
        return 0
    if bill.payment_items.filter(is_open=True).exists():
        return 0
    line = BillLine.objects.filter(bill=bill, kind=BillLine.Kind.LATE_FEE).first()
    if line is not None and line.is_waived:
        return 0  # waived once, for good: the rule applies to a bill exactly once
    current = line.amount if line is not None else ZERO
    fee = late_fee_for(bill, rule if line is None else line.late_fee_rule, today, current)
    if fee <= current:
        return 0
    if line is None:
        BillLine.objects.create(
            bill=bill,
            kind=BillLine.Kind.LATE_FEE,
            late_fee_rule=rule,
            name=rule.name,
            quantity=(today - bill.due_date).days - rule.grace_days,
            unit_price=0,
            amount=fee,
            position=800,
        )
    else:
        line.amount = fee
        line.quantity = (today - bill.due_date).days - line.late_fee_rule.grace_days
        line.save(update_fields=["amount", "quantity"])
    _bill_add(bill, fee - current)
    return 1


@transaction.atomic
def late_fee_waive(*, line: BillLine, by: User, reason: str) -> BillLine:
    """Waive a bill's late fee (a centre admin's decision, e.g. the resident was in hospital):
    the bill no longer owes it, the line stays with who waived it and why, and the audit log
    records it. A late fee already paid is not waived but refunded (409)."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": _("Say why the late fee is waived.")})
    bill = bills_for_update([line.bill_id])[0]
    line = BillLine.objects.select_for_update().get(pk=line.pk)
    if line.kind != BillLine.Kind.LATE_FEE:
        raise ValidationError({"line": _("Only a late fee can be waived.")})
    if line.is_waived:
        raise Conflict(_("This late fee is waived already."))
    if bill.payment_items.filter(is_open=True).exists():
        raise Conflict(_("The bill is inside a payment in progress; try again when it ends."))
    if bill.paid_amount > bill.amount - line.amount:
        raise Conflict(_("This late fee is paid already; refund it instead."))
    line.waived_at = timezone.now()
    line.waived_by = by
    line.waive_reason = reason[:200]
    line.save(update_fields=["waived_at", "waived_by", "waive_reason"])
    _bill_add(bill, -line.amount)
    audit.record(
        action=audit.Action.LATE_FEE_WAIVED,
        target=bill,
        actor=by,
        centre_id=bill.community.centre_id,
        details={
            "household_id": bill.household_id,
            "period": bill.period,
            "late_fee": line.amount,
            "rule": line.name,
            "reason": line.waive_reason,
        },
    )
    return line


# --- the books' own check ------------------------------------------------------------------------


def bill_totals_problems() -> list[str]:
    """Bills with lines whose amount or pass-through part differs from their lines' sums.
    Summed in Python with Decimal: SQLite would sum numerics as floating point."""
    sums: dict[int, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    lines = BillLine.objects.filter(waived_at__isnull=True).values_list(
        "bill_id", "amount", "settlement"
    )
    for bill_id, amount, settlement in lines.iterator(chunk_size=5000):
        sums[bill_id][0] += amount
        if settlement == Settlement.PASSTHROUGH:
            sums[bill_id][1] += amount
    bills = Bill.objects.filter(lines__isnull=False).distinct()
    return [
        f"bill {pk}: amount {amount}, pass-through {passthrough}; lines {sums[pk]}"
        for pk, amount, passthrough in bills.values_list("pk", "amount", "passthrough_amount")
        if [amount, passthrough] != sums[pk]
    ]
