"""Writes for billing: bills, payments, notifications, payouts, hold-back releases, refunds.

Each service runs in one database transaction, locks what it changes (billing.locks, in
primary-key order), writes its ledger transaction through billing.ledger.post in the same
transaction, and announces events only after commit.
"""

import hashlib
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from billing import events, ledger
from billing.gateways import get_gateway
from billing.gateways.base import GatewayError, NotificationRejected, PaymentRequest
from billing.locks import (
    accounts_for_update,
    bills_for_update,
    payment_for_update,
    payment_items_with_bills_for_update,
)
from billing.models import (
    Account,
    Bill,
    LedgerTransaction,
    Payment,
    PaymentItem,
    Payout,
    Refund,
)
from billing.money import ZERO, fee, fen, money_text, split
from community import audit
from community import selectors as community_selectors
from community.models import Agreement, Community, Household, Role, RoleMembership, User
from community.periods import Period
from community.services import notice_send
from config.api import Conflict

logger = logging.getLogger(__name__)

MAX_PREPAY_MONTHS = 36


# --- bills ------------------------------------------------------------------------------------


def _agreements_in_force(on) -> list[Agreement]:
    return list(
        Agreement.objects.filter(effective_from__lte=on)
        .filter(Q(effective_to__isnull=True) | Q(effective_to__gte=on))
        .select_related("community")
    )


def bill_generate_for_period(*, period: Period) -> int:
    """Create the period's bill for every household of every community whose agreement is in
    force on the period's first day: area × rate, rounded half-up to the fen, due on the
    agreement's due day. Generating a period twice creates nothing new (the unique constraint
    on household + period, with ON CONFLICT DO NOTHING). Returns how many bills were created.

    On PostgreSQL this is one set-based INSERT … SELECT per agreement (numeric arithmetic is
    exact and ROUND(numeric) rounds half away from zero, i.e. half-up for fees); elsewhere the
    same rows are computed in Python and inserted in batches.
    """
    created = 0
    for agreement in _agreements_in_force(period.first_day):
        due = period.day(agreement.bill_due_day)
        with transaction.atomic():
            if connection.vendor == "postgresql":
                created += _generate_sql(agreement, period, due)
            else:
                created += _generate_python(agreement, period, due)
    return created


def _generate_sql(agreement: Agreement, period: Period, due) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO billing_bill (household_id, community_id, period, area, rate, amount,
                                      paid_amount, status, due_date, is_prepaid, created_at)
            SELECT h.id, b.community_id, %s, h.area, %s, ROUND(h.area * %s, 2),
                   0, 'unpaid', %s, FALSE, NOW()
              FROM community_household h
              JOIN community_building b ON b.id = h.building_id
             WHERE b.community_id = %s
            ON CONFLICT (household_id, period) WHERE NOT (status = 'void') DO NOTHING
            """,
            [str(period), agreement.fee_rate, agreement.fee_rate, due, agreement.community_id],
        )
        return cursor.rowcount


def _generate_python(agreement: Agreement, period: Period, due, batch: int = 2000) -> int:
    households = Household.objects.filter(building__community_id=agreement.community_id)
    before = Bill.objects.filter(community_id=agreement.community_id, period=str(period)).count()
    rows = []
    for household_id, area in households.values_list("pk", "area").iterator(chunk_size=batch):
        rows.append(
            Bill(
                household_id=household_id,
                community_id=agreement.community_id,
                period=str(period),
                area=area,
                rate=agreement.fee_rate,
                amount=fee(area=area, rate=agreement.fee_rate),
                due_date=due,
            )
        )
        if len(rows) >= batch:
            Bill.objects.bulk_create(rows, ignore_conflicts=True)
            rows = []
    Bill.objects.bulk_create(rows, ignore_conflicts=True)
    after = Bill.objects.filter(community_id=agreement.community_id, period=str(period)).count()
    return after - before


def bill_prepay(*, user: User, household_id: int, months: int) -> list[Bill]:
    """Create the household's next `months` bills at today's rate, so they can be paid now.

    They start with the month after the household's latest bill (or this month if it has none
    yet). Only a resident of the household may prepay (anyone else: 404)."""
    if not 1 <= months <= MAX_PREPAY_MONTHS:
        raise ValidationError({"months": _("Prepay between 1 and 36 months.")})
    household = community_selectors.household_get(
        user=user, household_id=household_id, roles=[community_selectors.RESIDENT]
    )
    community = household.building.community
    agreement = community_selectors.agreement_in_force(community=community)
    if agreement is None:
        raise Conflict(_("This community has no agreement in force; fees cannot be prepaid."))
    with transaction.atomic():
        # One prepayment at a time per household: the latest bill is read under this lock.
        Household.objects.select_for_update().get(pk=household.pk)
        latest = Bill.objects.filter(household=household).order_by("-period").first()
        first = Period.current()
        if latest is not None:
            first = max(first, Period.parse(latest.period).next())
        periods = [first.plus(n) for n in range(months)]
        if agreement.effective_to and periods[-1].first_day > agreement.effective_to:
            raise Conflict(_("The agreement ends before the last month asked for."))
        bills = [
            Bill(
                household=household,
                community=community,
                period=str(period),
                area=household.area,
                rate=agreement.fee_rate,
                amount=fee(area=household.area, rate=agreement.fee_rate),
                due_date=period.day(agreement.bill_due_day),
                is_prepaid=True,
            )
            for period in periods
        ]
        try:
            with transaction.atomic():
                Bill.objects.bulk_create(bills)
        except IntegrityError as exc:
            raise Conflict(_("Some of these months have just been billed; try again.")) from exc
    return bills


def bill_mark_overdue(*, today=None) -> int:
    """Mark unpaid bills past their due date as overdue and remind each household's residents
    once per bill (an in-app notice, and e-mail where the resident has an address)."""
    today = today or timezone.localdate()
    overdue = Bill.objects.filter(
        status__in=[Bill.Status.UNPAID, Bill.Status.PARTIALLY_PAID],
        due_date__lt=today,
        overdue_since__isnull=True,
    ).select_related("household__building__community")
    marked = 0
    for bill in overdue.iterator(chunk_size=500):
        with transaction.atomic():
            updated = Bill.objects.filter(pk=bill.pk, overdue_since__isnull=True).update(
                overdue_since=bill.due_date + timedelta(days=1)
            )
            if not updated:
                continue
            marked += 1
            residents = User.objects.filter(
                residencies__in=bill.household.residencies.active(on=today)
            ).distinct()
            for resident in residents:
                notice_send(
                    user=resident,
                    title=_("Property fee for %(period)s is overdue") % {"period": bill.period},
                    body=_("%(household)s: %(amount)s was due on %(due)s.")
                    % {
                        "household": bill.household,
                        "amount": money_text(bill.outstanding),
                        "due": formats.date_format(bill.due_date, "DATE_FORMAT"),
                    },
                    link=reverse("bill-list"),
                    dedupe_key=f"bill-overdue:{bill.pk}",
                )
    return marked


@transaction.atomic
def bill_waive(*, bill: Bill) -> Bill:
    """Waive an unpaid bill (a centre decision, e.g. a vacant flat): nothing is owed any more."""
    bill = bills_for_update([bill.pk])[0]
    if bill.paid_amount > 0 or bill.payment_items.filter(is_open=True).exists():
        raise Conflict(_("A bill with payments cannot be waived; refund first."))
    bill.status = Bill.Status.WAIVED
    bill.save(update_fields=["status"])
    audit.record(
        action=audit.Action.BILL_WAIVED,
        target=bill,
        details={"household_id": bill.household_id, "period": bill.period, "amount": bill.amount},
    )
    return bill


# --- payments ---------------------------------------------------------------------------------


def request_fingerprint(payload) -> str:
    """A stable hash of a request body, to tell "the same request again" from a different one
    sent with the same Idempotency-Key."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _new_trade_no() -> str:
    # Date for humans reading statements, randomness so nobody can guess another trade.
    return timezone.localtime().strftime("%Y%m%d") + secrets.token_hex(8).upper()


def _refund_no(by: User, idempotency_key: str) -> str:
    """The refund number the gateway sees, derived from who asked and their Idempotency-Key:
    if our transaction fails after the gateway refunded, the client's retry sends the same
    number and the gateway answers with the refund it already made instead of paying twice
    (Alipay's out_request_no, WeChat's out_refund_no are idempotent per trade)."""
    digest = hashlib.sha256(f"{by.pk}:{idempotency_key}".encode()).hexdigest()
    return "R" + digest[:24].upper()


def _replay(payer: User, key: str, fingerprint: str) -> Payment | None:
    existing = Payment.objects.filter(payer=payer, idempotency_key=key).first()
    if existing is None:
        return None
    if existing.request_fingerprint != fingerprint:
        raise Conflict(_("This Idempotency-Key was used for a different request."))
    return existing


class _Taken(Exception):
    """payment_create's insert met a unique index: the key or a bill is taken."""


def payment_create(
    *, payer: User, bill_ids: list[int], gateway: str, idempotency_key: str, fingerprint: str
) -> tuple[Payment, bool]:
    """Start paying some of the payer's bills through a gateway. Returns (payment, created).

    The same Idempotency-Key with the same body returns the first payment; with a different
    body → 409. A bill of another household → 404; a bill already paid, waived or inside
    another pending payment → 409. The bills are locked while they are checked, and a partial
    unique index (one open payment item per bill) holds even against a race.
    """
    existing = _replay(payer, idempotency_key, fingerprint)
    if existing is not None:
        return existing, False
    if not bill_ids:
        raise ValidationError({"bill_ids": _("Choose at least one bill.")})
    gateway_impl = get_gateway(gateway)
    visible = community_selectors.household_list(user=payer, roles=[community_selectors.RESIDENT])
    try:
        with transaction.atomic():
            bills = bills_for_update(bill_ids)
            households = {b.household_id for b in bills}
            if len(bills) != len(set(bill_ids)) or visible.filter(pk__in=households).count() != len(
                households
            ):
                raise Bill.DoesNotExist("bill not found")
            for bill in bills:
                if bill.status in (Bill.Status.PAID, Bill.Status.WAIVED):
                    raise Conflict(
                        _("Bill %(period)s is already settled.") % {"period": bill.period}
                    )
            amount = sum((bill.outstanding for bill in bills), ZERO)
            payment = Payment(
                payer=payer,
                gateway=gateway,
                out_trade_no=_new_trade_no(),
                amount=amount,
                idempotency_key=idempotency_key,
                request_fingerprint=fingerprint,
                expires_at=timezone.now() + timedelta(minutes=settings.PAYMENT_PENDING_MINUTES),
            )
            try:
                payment.save()
                PaymentItem.objects.bulk_create(
                    [PaymentItem(payment=payment, bill=b, amount=b.outstanding) for b in bills]
                )
            except IntegrityError as exc:
                # Nothing but the locks is written before these inserts, so the whole
                # transaction is rolled back rather than a savepoint taken for every payment.
                raise _Taken from exc
            subject = _("Property fee") + " " + ", ".join(sorted({b.period for b in bills}))
            payment.pay_url = gateway_impl.create(
                PaymentRequest(
                    out_trade_no=payment.out_trade_no,
                    amount=amount,
                    subject=subject[:120],
                    notify_url=settings.SITE_URL + reverse("payment-notify", args=[gateway]),
                    return_url=settings.SITE_URL
                    + reverse("payment-detail-page", args=[payment.pk]),
                )
            )
            payment.save(update_fields=["pay_url"])
    except _Taken as exc:
        replay = _replay(payer, idempotency_key, fingerprint)
        if replay is not None:  # the same request, racing itself
            return replay, False
        raise Conflict(_("One of these bills is already in a payment in progress.")) from exc
    return payment, True


def _close_items(payment: Payment) -> None:
    PaymentItem.objects.filter(payment=payment, is_open=True).update(is_open=False)


def _fail(payment: Payment, reason: str) -> None:
    payment.status = Payment.Status.FAILED
    payment.failure_reason = reason
    payment.save(update_fields=["status", "failure_reason"])
    _close_items(payment)


@transaction.atomic
def payment_cancel(*, payment: Payment) -> Payment:
    """The payer gives up a pending payment: its bills are free to pay again."""
    payment = payment_for_update(payment.pk)
    if payment.status != Payment.Status.PENDING:
        raise Conflict(_("Only a pending payment can be cancelled."))
    _fail(payment, "cancelled")
    return payment


def _succeed(
    payment: Payment, *, trade_no: str, paid_at: datetime, clearing: Account | None = None
) -> None:
    """Record the money as received: bills paid, escrow credited. Caller holds the payment lock.
    Raises Conflict, having written nothing, if a bill can no longer take its share. The money
    is debited to the gateway's clearing account, or to `clearing` (the desk's, for a payment
    taken at the centre's desk)."""
    items = payment_items_with_bills_for_update(payment.pk)
    bills = {item.bill_id: item.bill for item in items}
    taking: dict[int, Decimal] = {}
    for item in items:
        bill = bills[item.bill_id]
        taking[bill.pk] = taking.get(bill.pk, ZERO) + item.amount
        if bill.status == Bill.Status.WAIVED or bill.paid_amount + taking[bill.pk] > bill.amount:
            raise Conflict(
                _("Bill %(bill)s can no longer take %(amount)s.")
                % {"bill": bill.pk, "amount": item.amount}
            )
    for item in items:
        bill = bills[item.bill_id]
        bill.paid_amount += item.amount
        bill.status = Bill.status_for(amount=bill.amount, paid_amount=bill.paid_amount)
        bill.save(update_fields=["paid_amount", "status"])
    payment.status = Payment.Status.SUCCEEDED
    payment.trade_no = trade_no
    payment.paid_at = paid_at
    payment.failure_reason = ""
    payment.save(update_fields=["status", "trade_no", "paid_at", "failure_reason"])
    _close_items(payment)
    communities = {bill.community_id: bill.community for bill in bills.values()}
    gateway_clearing, escrows = ledger.payment_accounts(
        payment.gateway if clearing is None else None, list(communities.values())
    )
    legs = [ledger.Leg(clearing or gateway_clearing, payment.amount)]
    legs += [
        ledger.Leg(
            escrows[bills[item.bill_id].community_id], -item.amount, bill=bills[item.bill_id]
        )
        for item in items
    ]
    ledger.post(
        kind=LedgerTransaction.Kind.PAYMENT,
        idempotency_key=f"payment:{payment.pk}",
        legs=legs,
        memo=f"{payment.gateway} {trade_no}",
        payment=payment,
    )
    paid_day = timezone.localdate(paid_at)
    bill_rows = [bills[item.bill_id] for item in items]
    payload = {
        "payment_id": payment.pk,
        "payer_id": payment.payer_id,
        "amount": f"{payment.amount:.2f}",
        "paid_at": paid_at.isoformat(),
        "on_time": all(paid_day <= bill.due_date for bill in bill_rows),
        "months_prepaid": sum(1 for bill in bill_rows if bill.is_prepaid),
        "bills": [
            {
                "bill_id": bill.pk,
                "household_id": bill.household_id,
                "community_id": bill.community_id,
                "period": bill.period,
                "amount": f"{item.amount:.2f}",
                "is_prepaid": bill.is_prepaid,
            }
            for item, bill in zip(items, bill_rows, strict=True)
        ],
    }
    transaction.on_commit(lambda: events.payment_succeeded.send(sender=Payment, **payload))


def _notify_centre_admins(community_ids, *, title: str, body: str, key: str) -> None:
    admins = User.objects.filter(
        memberships__role=Role.CENTRE_ADMIN,
        memberships__centre__communities__in=community_ids,
    ).distinct()
    for admin in admins:
        notice_send(user=admin, title=title, body=body, dedupe_key=key)


def payment_notification_receive(*, gateway: str, body: bytes, headers) -> Payment:
    """Record a gateway's notification. Raises NotificationRejected (→ 400, nothing changed) for
    a bad signature, a stale timestamp, an unknown trade or a different amount; a duplicate is
    recognised and changes nothing."""
    notification = get_gateway(gateway).parse_notification(body=body, headers=headers)
    with transaction.atomic():
        payment = (
            Payment.objects.select_for_update(of=("self",))
            .filter(gateway=gateway, out_trade_no=notification.out_trade_no)
            .first()
        )
        if payment is None:
            raise NotificationRejected("unknown trade")
        if notification.amount != payment.amount:
            logger.warning(
                "payment %s: notified amount %s differs from %s; ignored",
                payment.out_trade_no,
                notification.amount,
                payment.amount,
            )
            raise NotificationRejected("amount differs")
        if payment.status in (Payment.Status.SUCCEEDED, Payment.Status.REFUNDED):
            if payment.trade_no != notification.trade_no:
                logger.warning(
                    "payment %s: second trade %s notified", payment.pk, notification.trade_no
                )
            return payment  # a duplicate: already recorded
        if not notification.succeeded:
            if payment.status == Payment.Status.PENDING:
                _fail(payment, "closed at the gateway")
            return payment
        _succeed_or_ask_for_refund(
            payment, trade_no=notification.trade_no, paid_at=notification.paid_at
        )
    return payment


def _succeed_or_ask_for_refund(payment: Payment, *, trade_no: str, paid_at: datetime) -> None:
    """Record money the gateway took. If the payment's bills were settled some other way
    meanwhile (it had expired and they were paid again, or another payment of them got there
    first), the money cannot settle them: the payment fails, closing its hold on its bills, and
    the centre admins are asked to refund it by hand. Caller holds the payment lock."""
    try:
        # No savepoint: _succeed raises Conflict before it writes anything.
        _succeed(payment, trade_no=trade_no, paid_at=paid_at)
    except Conflict:
        payment.status = Payment.Status.FAILED
        payment.failure_reason = "paid after expiry: refund required"
        payment.trade_no = trade_no
        payment.save(update_fields=["status", "failure_reason", "trade_no"])
        _close_items(payment)
        communities = payment.items.values("bill__community_id")
        _notify_centre_admins(
            communities,
            title=_("A payment needs a manual refund"),
            body=_("Trade %(no)s was paid after it had expired.") % {"no": payment.out_trade_no},
            key=f"late-payment:{payment.pk}",
        )


def payment_expire_stale(*, now=None) -> int:
    """Free the bills of pending payments nobody completed in time (after asking the gateway,
    since a notification may only have been lost). Returns how many expired."""
    now = now or timezone.now()
    expired = 0
    stale = Payment.objects.filter(status=Payment.Status.PENDING, expires_at__lt=now)
    for payment_id in stale.values_list("pk", flat=True):
        if payment_reconcile(payment_id=payment_id, expire=True) == Payment.Status.FAILED:
            expired += 1
    return expired


def payment_reconcile(*, payment_id: int, expire: bool = False) -> str:
    """Ask the gateway how a pending payment stands and complete or close it accordingly.
    With expire=True a payment the gateway still calls pending is closed as expired."""
    payment = Payment.objects.get(pk=payment_id)
    try:
        status = get_gateway(payment.gateway).query(payment.out_trade_no)
    except GatewayError:
        logger.warning("gateway query failed for %s", payment.out_trade_no)
        return payment.status
    with transaction.atomic():
        payment = payment_for_update(payment_id)
        if payment.status != Payment.Status.PENDING:
            return payment.status
        if status.status == "succeeded" and status.amount == payment.amount:
            _succeed_or_ask_for_refund(payment, trade_no=status.trade_no, paid_at=status.paid_at)
        elif status.status in ("closed", "unknown") or expire:
            _fail(payment, "expired" if expire else "closed at the gateway")
        return payment.status


# --- payouts ----------------------------------------------------------------------------------


def _save_items(items: list[PaymentItem], fields: list[str], batch: int = 5000) -> None:
    """bulk_update of many payment items (a community's month). On PostgreSQL one
    UPDATE … FROM (VALUES …) per batch: Django's bulk_update writes a CASE WHEN per row and
    field, and compiling those in Python cost ~1.5 ms per item, seconds for one estate's payout
    (docs/performance.md). The values are the ones computed in Decimal above, written as
    they are; elsewhere bulk_update."""
    if connection.vendor != "postgresql":
        PaymentItem.objects.bulk_update(items, fields)
        return
    columns = [PaymentItem._meta.get_field(name) for name in fields]
    targets = ", ".join(
        f"{connection.ops.quote_name(c.column)} = v.c{n}" for n, c in enumerate(columns)
    )
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        row = "(%s, " + ", ".join(f"%s::{c.db_type(connection)}" for c in columns) + ")"
        params = []
        for item in chunk:
            params.append(item.pk)
            params += [c.get_db_prep_save(getattr(item, c.attname), connection) for c in columns]
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {PaymentItem._meta.db_table} AS t SET {targets} "
                f"FROM (VALUES {', '.join([row] * len(chunk))}) "
                f"AS v(id, {', '.join(f'c{n}' for n in range(len(columns)))}) WHERE t.id = v.id",
                params,
            )


def _lock_community(community: Community) -> None:
    # Payouts and releases of one community run one at a time.
    Community.objects.select_for_update().get(pk=community.pk)


# The per-item split of a payout and of a release, two ways with the same figures to the fen.
# billing.money.split is `part = round(total × share, half away from zero); rest = total − part`;
# PostgreSQL's round(numeric, 2) also rounds half away from zero and multiplies numerics exactly,
# so one UPDATE reproduces it item by item, and the sums come back from its RETURNING rows in the
# same statement: no item is loaded into Python (docs/performance.md, payouts). SQLite's round()
# works in binary floating point, so there the items go through split() in Python.
# Both lock the items in primary-key order first, as the per-item code always did.

_PAY_ITEMS_SQL = """
WITH locked AS (
    SELECT i.id FROM {item} AS i
    JOIN {bill} AS b ON b.id = i.bill_id
    JOIN {payment} AS p ON p.id = i.payment_id
    WHERE b.community_id = %(community)s AND b.period <= %(period)s
      AND p.status = ANY(%(statuses)s) AND i.payout_id IS NULL
    ORDER BY i.id
    FOR UPDATE OF i
), paid AS (
    UPDATE {item} AS i
    SET payout_id = %(payout)s,
        paid_out_to_company = round((i.amount - i.refunded_amount) * %(share)s::numeric, 2),
        held_back = (i.amount - i.refunded_amount)
            - round((i.amount - i.refunded_amount) * %(share)s::numeric, 2)
    FROM locked WHERE i.id = locked.id
    RETURNING i.amount - i.refunded_amount AS net, i.paid_out_to_company, i.held_back
)
SELECT coalesce(sum(net), 0), coalesce(sum(paid_out_to_company), 0),
       coalesce(sum(held_back), 0)
FROM paid
"""

_RELEASE_ITEMS_SQL = """
WITH locked AS (
    SELECT id FROM {item} WHERE payout_id = %(payout)s ORDER BY id FOR UPDATE
), released AS (
    UPDATE {item} AS i
    SET released_to_company = round(i.held_back * %(score)s::numeric, 2),
        forfeited_to_fund = i.held_back - round(i.held_back * %(score)s::numeric, 2),
        held_back = 0
    FROM locked WHERE i.id = locked.id
    RETURNING i.released_to_company, i.forfeited_to_fund
)
SELECT coalesce(sum(released_to_company + forfeited_to_fund), 0),
       coalesce(sum(released_to_company), 0), coalesce(sum(forfeited_to_fund), 0)
FROM released
"""


def _tables() -> dict[str, str]:
    return {
        "item": connection.ops.quote_name(PaymentItem._meta.db_table),
        "bill": connection.ops.quote_name(Bill._meta.db_table),
        "payment": connection.ops.quote_name(Payment._meta.db_table),
    }


def _money_sums(sql: str, params: dict) -> tuple[Decimal, Decimal, Decimal]:
    with connection.cursor() as cursor:
        cursor.execute(sql.format(**_tables()), params)
        return tuple(fen(value) for value in cursor.fetchone())


def _pay_items_sql(
    payout: Payout, community: Community, period: Period, share: Decimal
) -> tuple[Decimal, Decimal, Decimal]:
    """Assign the unpaid items of `period` and earlier to `payout`, `share` of each (net of
    refunds) to the company and the rest held back. Returns (collected, to company, held back)."""
    return _money_sums(
        _PAY_ITEMS_SQL,
        {
            "payout": payout.pk,
            "community": community.pk,
            "period": str(period),
            "statuses": [Payment.Status.SUCCEEDED.value, Payment.Status.REFUNDED.value],
            "share": share,
        },
    )


def _pay_items_python(
    payout: Payout, community: Community, period: Period, share: Decimal
) -> tuple[Decimal, Decimal, Decimal]:
    items = list(
        PaymentItem.objects.select_for_update(of=("self",))
        .filter(
            bill__community=community,
            bill__period__lte=str(period),
            payment__status__in=[Payment.Status.SUCCEEDED, Payment.Status.REFUNDED],
            payout__isnull=True,
        )
        .order_by("pk")
    )
    collected = to_company_total = held_total = ZERO
    for item in items:
        net = item.amount - item.refunded_amount
        to_company, held = split(net, share)
        item.payout = payout
        item.paid_out_to_company, item.held_back = to_company, held
        collected += net
        to_company_total += to_company
        held_total += held
    _save_items(items, ["payout", "paid_out_to_company", "held_back"])
    return collected, to_company_total, held_total


def _release_items_sql(regular: Payout, score: Decimal) -> tuple[Decimal, Decimal, Decimal]:
    """Release what `regular`'s items still hold back: score × each to the company, the rest to
    the public fund. Returns (held back, to company, to the public fund)."""
    return _money_sums(_RELEASE_ITEMS_SQL, {"payout": regular.pk, "score": score})


def _release_items_python(regular: Payout, score: Decimal) -> tuple[Decimal, Decimal, Decimal]:
    items = list(regular.items.select_for_update(of=("self",)).order_by("pk"))
    held_total = to_company_total = to_fund_total = ZERO
    for item in items:
        to_company, to_fund = split(item.held_back, score)
        held_total += item.held_back
        to_company_total += to_company
        to_fund_total += to_fund
        item.released_to_company, item.forfeited_to_fund = to_company, to_fund
        item.held_back = ZERO
    _save_items(items, ["released_to_company", "forfeited_to_fund", "held_back"])
    return held_total, to_company_total, to_fund_total


def payout_run(*, community: Community, period: Period) -> tuple[Payout, bool]:
    """Pay the company (1 − hold-back) of what was collected for `period` (and for earlier
    months not yet paid out). Returns (payout, created); running it again returns the same
    payout and pays nothing twice. The service month must be over."""
    if period.last_day >= timezone.localdate():
        raise ValidationError({"period": _("The service month is not over yet.")})
    agreement = community_selectors.agreement_in_force(community=community, on=period.last_day)
    if agreement is None:
        raise ValidationError({"period": _("No agreement was in force in that month.")})
    with transaction.atomic():
        _lock_community(community)
        existing = Payout.objects.filter(
            community=community, period=str(period), kind=Payout.Kind.REGULAR
        ).first()
        if existing is not None:
            return existing, False
        payout = Payout.objects.create(
            community=community,
            period=str(period),
            kind=Payout.Kind.REGULAR,
            holdback_share=agreement.holdback_share,
        )
        pay_items = _pay_items_sql if connection.vendor == "postgresql" else _pay_items_python
        payout.collected, payout.to_company, payout.held_back = pay_items(
            payout, community, period, 1 - agreement.holdback_share
        )
        payout.save(update_fields=["collected", "to_company", "held_back"])
        if payout.to_company:
            legs = [
                ledger.Leg(ledger.escrow_account(community), payout.to_company),
                ledger.Leg(ledger.company_payable_account(community), -payout.to_company),
            ]
            ledger.post(
                kind=LedgerTransaction.Kind.PAYOUT,
                idempotency_key=f"payout:{community.pk}:{period}",
                legs=legs,
                memo=f"{community.name} {period}",
                payout=payout,
            )
        audit.record(
            action=audit.Action.PAYOUT,
            target=payout,
            centre_id=community.centre_id,
            details={
                "community": community.name,
                "period": str(period),
                "collected": payout.collected,
                "to_company": payout.to_company,
                "held_back": payout.held_back,
            },
        )
    return payout, True


def release_holdback(
    *, community: Community, period: Period, score: Decimal
) -> tuple[Payout, bool]:
    """Release the month's held-back money once its scorecard is final: score × the held-back
    part to the company, the rest to the community's public fund. Called by alliance/.
    Returns (release, created); a second call releases nothing more."""
    score = Decimal(score)
    if not Decimal(0) <= score <= Decimal(1):
        raise ValidationError({"score": _("The score must be between 0 and 1.")})
    with transaction.atomic():
        _lock_community(community)
        existing = Payout.objects.filter(
            community=community, period=str(period), kind=Payout.Kind.HOLDBACK_RELEASE
        ).first()
        if existing is not None:
            return existing, False
        regular = Payout.objects.filter(
            community=community, period=str(period), kind=Payout.Kind.REGULAR
        ).first()
        if regular is None:
            raise Conflict(_("The month has not been paid out yet; run the payout first."))
        release = Payout.objects.create(
            community=community,
            period=str(period),
            kind=Payout.Kind.HOLDBACK_RELEASE,
            holdback_share=regular.holdback_share,
            score=score,
        )
        release_items = (
            _release_items_sql if connection.vendor == "postgresql" else _release_items_python
        )
        release.held_back, release.to_company, release.to_public_fund = release_items(
            regular, score
        )
        release.save(update_fields=["held_back", "to_company", "to_public_fund"])
        if release.held_back:
            ledger.post(
                kind=LedgerTransaction.Kind.HOLDBACK_RELEASE,
                idempotency_key=f"holdback:{community.pk}:{period}",
                legs=[
                    ledger.Leg(ledger.escrow_account(community), release.held_back),
                    ledger.Leg(ledger.company_payable_account(community), -release.to_company),
                    ledger.Leg(ledger.public_fund_account(community), -release.to_public_fund),
                ],
                memo=f"{community.name} {period} score {score}",
                payout=release,
            )
        audit.record(
            action=audit.Action.HOLDBACK_RELEASE,
            target=release,
            centre_id=community.centre_id,
            details={
                "community": community.name,
                "period": str(period),
                "score": str(score),
                "held_back": release.held_back,
                "to_company": release.to_company,
                "to_public_fund": release.to_public_fund,
            },
        )
    return release, True


# --- refunds ----------------------------------------------------------------------------------


@dataclass
class _Take:
    item: PaymentItem
    from_escrow: Decimal
    from_company: Decimal


def _check_accounts_cover(legs: list[ledger.Leg]) -> None:
    """Refuse (409) a refund that would take from an account more than it holds, before the
    gateway moves any money: after a hold-back release the company payable answers for the
    whole refund (the public fund keeps its part), and it may hold less than that; posting
    anyway would break the overdraft constraint only after the gateway had paid out. Locks the
    legs' accounts in primary-key order, the order ledger.post then takes them in."""
    taken: dict[int, Decimal] = {}
    for leg in legs:
        taken[leg.account.pk] = taken.get(leg.account.pk, ZERO) + leg.amount
    for pk, account in accounts_for_update(taken).items():
        if account.kind in Account.LIABILITIES and account.balance + taken[pk] > 0:
            raise Conflict(
                _("%(account)s holds only %(held)s; refund the rest of this payment by hand.")
                % {"account": account.get_kind_display(), "held": money_text(-account.balance)}
            )


def payment_refund(
    *,
    payment: Payment,
    amount: Decimal,
    reason: str,
    by: User,
    idempotency_key: str,
    fingerprint: str,
) -> tuple[Refund, bool]:
    """Refund part or all of a succeeded payment through its gateway. Never more than was paid
    minus refunds already made (→ 409). The money comes back from where it is now: escrow while
    held (including a held-back part), the company payable once paid out to the company.
    The latest months are refunded first (typically prepaid months of someone moving out)."""
    existing = Refund.objects.filter(created_by=by, idempotency_key=idempotency_key).first()
    if existing is not None:
        if existing.request_fingerprint != fingerprint:
            raise Conflict(_("This Idempotency-Key was used for a different request."))
        return existing, False
    amount = fen(amount)
    if amount <= 0:
        raise ValidationError({"amount": _("The amount must be positive.")})
    with transaction.atomic():
        payment = payment_for_update(payment.pk)
        if payment.status not in (Payment.Status.SUCCEEDED,):
            raise Conflict(_("Only a succeeded payment can be refunded."))
        if amount > payment.amount - payment.refunded_amount:
            raise Conflict(
                _("At most %(left)s of this payment can still be refunded.")
                % {"left": money_text(payment.amount - payment.refunded_amount)}
            )
        # Locked in primary-key order, like payouts lock them, so a refund and a payout of the
        # same estate wait for each other instead of deadlocking; then latest month first.
        items = list(
            payment.items.select_for_update(of=("self",))
            .select_related("bill__community", "payout")
            .order_by("pk")
        )
        items.sort(key=lambda item: (item.bill.period, item.pk), reverse=True)
        bills = {b.pk: b for b in bills_for_update([item.bill_id for item in items])}
        released = {
            (p.community_id, p.period)
            for p in Payout.objects.filter(
                kind=Payout.Kind.HOLDBACK_RELEASE,
                community_id__in={item.bill.community_id for item in items},
            )
        }
        takes, left = [], amount
        for item in items:
            take = min(left, item.amount - item.refunded_amount)
            if take <= 0:
                continue
            left -= take
            bill = bills[item.bill_id]
            if item.payout_id is None:
                from_escrow, from_company = take, ZERO
            elif (bill.community_id, item.payout.period) in released:
                from_escrow, from_company = ZERO, take
            else:
                from_escrow = min(take, item.held_back)
                from_company = take - from_escrow
                item.held_back -= from_escrow
            item.refunded_amount += take
            item.refunded_from_company += from_company
            bill.paid_amount -= take
            bill.status = Bill.status_for(amount=bill.amount, paid_amount=bill.paid_amount)
            takes.append(_Take(item, from_escrow, from_company))
            if left == 0:
                break
        refund = Refund(
            payment=payment,
            refund_no=_refund_no(by, idempotency_key),
            amount=amount,
            reason=reason,
            status=Refund.Status.SUCCEEDED,
            created_by=by,
            idempotency_key=idempotency_key,
            request_fingerprint=fingerprint,
            from_escrow=sum((t.from_escrow for t in takes), ZERO),
            from_company=sum((t.from_company for t in takes), ZERO),
        )
        legs = [ledger.Leg(ledger.clearing_account(payment.gateway), -amount)]
        for take in takes:
            bill = bills[take.item.bill_id]
            if take.from_escrow:
                legs.append(
                    ledger.Leg(ledger.escrow_account(bill.community), take.from_escrow, bill=bill)
                )
            if take.from_company:
                legs.append(
                    ledger.Leg(
                        ledger.company_payable_account(bill.community), take.from_company, bill=bill
                    )
                )
        _check_accounts_cover(legs)  # before the gateway sends any money back
        try:
            result = get_gateway(payment.gateway).refund(
                out_trade_no=payment.out_trade_no,
                refund_no=refund.refund_no,
                amount=amount,
                total=payment.amount,
            )
        except GatewayError as exc:
            raise Conflict(_("The gateway refused the refund: %(error)s") % {"error": exc}) from exc
        refund.gateway_refund_id = result.gateway_refund_id
        refund.save()
        PaymentItem.objects.bulk_update(
            [t.item for t in takes], ["refunded_amount", "refunded_from_company", "held_back"]
        )
        Bill.objects.bulk_update([bills[t.item.bill_id] for t in takes], ["paid_amount", "status"])
        payment.refunded_amount += amount
        if payment.refunded_amount == payment.amount:
            payment.status = Payment.Status.REFUNDED
        payment.save(update_fields=["refunded_amount", "status"])
        ledger.post(
            kind=LedgerTransaction.Kind.REFUND,
            idempotency_key=f"refund:{refund.refund_no}",
            legs=legs,
            memo=reason,
            payment=payment,
            refund=refund,
        )
        audit.record(
            action=audit.Action.REFUND,
            actor=by,
            target=refund,
            centre_id=items[0].bill.community.centre_id if items else None,
            details={
                "payment": payment.out_trade_no,
                "refund_no": refund.refund_no,
                "amount": amount,
                "from_escrow": refund.from_escrow,
                "from_company": refund.from_company,
                "reason": reason,
            },
        )
        payload = {
            "payment_id": payment.pk,
            "refund_id": refund.pk,
            "payer_id": payment.payer_id,
            "amount": f"{amount:.2f}",
            "fully_refunded": payment.status == Payment.Status.REFUNDED,
        }
        transaction.on_commit(lambda: events.payment_refunded.send(sender=Payment, **payload))
    return refund, True


# --- reconciliation ---------------------------------------------------------------------------


def settlement_reconcile(*, gateway: str, day) -> list[str]:
    """Compare one day's gateway settlement with the ledger's payments of that day and report
    every difference to the centre admins. Returns the differences found."""
    lines = {line.out_trade_no: line for line in get_gateway(gateway).settlement(day)}
    start = timezone.make_aware(datetime.combine(day, datetime.min.time()))
    ours = {
        p.out_trade_no: p
        for p in Payment.objects.filter(
            gateway=gateway,
            paid_at__gte=start,
            paid_at__lt=start + timedelta(days=1),
            status__in=[Payment.Status.SUCCEEDED, Payment.Status.REFUNDED],
        )
    }
    problems = []
    for no, line in lines.items():
        if no not in ours:
            problems.append(f"{no}: settled by the gateway ({line.amount}) but not in the ledger")
        elif ours[no].amount != line.amount:
            problems.append(f"{no}: gateway {line.amount}, ledger {ours[no].amount}")
    problems += [
        f"{no}: in the ledger ({payment.amount}) but not settled by the gateway"
        for no, payment in ours.items()
        if no not in lines
    ]
    if problems:
        # One line for each centre whose payments differ, one site-wide for trades we never had.
        by_centre: dict[int | None, list[str]] = {}
        for no in sorted(set(lines) | set(ours)):
            if no in ours and no in lines and ours[no].amount == lines[no].amount:
                continue
            centre_id = None
            if no in ours:
                item = ours[no].items.select_related("bill__community").first()
                centre_id = item.bill.community.centre_id if item is not None else None
            by_centre.setdefault(centre_id, []).append(no)
        for centre_id, trades in by_centre.items():
            audit.record(
                action=audit.Action.SETTLEMENT_DIFFERENCE,
                target_type="billing.settlement",
                target_id=f"{gateway}:{day.isoformat()}",
                target_repr=f"{gateway} {day.isoformat()}",
                centre_id=centre_id,
                details={"gateway": gateway, "day": day.isoformat(), "trades": trades},
            )
        admins = RoleMembership.objects.filter(role=Role.CENTRE_ADMIN).select_related("user")
        for membership in admins:
            notice_send(
                user=membership.user,
                title=_("Settlement differences on %(day)s") % {"day": day.isoformat()},
                body="\n".join(problems),
                dedupe_key=f"settlement:{gateway}:{day.isoformat()}",
            )
    return problems
