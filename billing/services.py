"""Writes for billing: bills, payments, notifications, payouts, hold-back releases, refunds.

Each service runs in one database transaction, locks what it changes (billing.locks, in
primary-key order), writes its ledger transaction through billing.ledger.post in the same
transaction, and announces events only after commit.
"""

import hashlib
import json
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from billing import charges, events, ledger, rows, selectors
from billing import summary as billing_summary
from billing.gateways import UnknownGateway, get_gateway
from billing.gateways.base import GatewayError, NotificationRejected, PaymentRequest
from billing.locks import (
    accounts_for_update,
    bills_for_update,
    payer_bills_for_update,
    payment_by_trade_for_update,
    payment_for_update,
    payment_items_with_bills_for_update,
)
from billing.models import (
    Account,
    Bill,
    BillLine,
    DeskDayClose,
    LedgerTransaction,
    Payment,
    PaymentItem,
    Payout,
    Refund,
)
from billing.money import ZERO, allocate, fen, money_text
from community import audit, notifications
from community import selectors as community_selectors
from community.models import Agreement, Community, Household, Role, User
from community.notification_models import Kind as NotificationKind
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
    force on the period's first day, due on the agreement's due day, with a line per charge:
    the property fee (area × rate), the agreement's other items and the month's metered usage
    (billing.charges), each rounded half-up to the fen. Generating a period twice creates
    nothing new (the unique constraint on household + period, with ON CONFLICT DO NOTHING).
    Returns how many bills were created.

    On PostgreSQL this is one set-based statement per agreement (billing.charges._GENERATE_SQL);
    elsewhere the same rows are computed in Python and inserted in batches.
    """
    created = 0
    for agreement in _agreements_in_force(period.first_day):
        due = period.day(agreement.bill_due_day)
        with transaction.atomic():
            created += charges.bills_generate_for_agreement(agreement, period, due)
    return created


def _month_index(period: Period) -> int:
    return period.year * 12 + period.month - 1


def _prepaid_bills(
    household: Household, community: Community, months: int
) -> list[tuple[Bill, list[charges.Charge]]]:
    """The household's next `months` bills, each at the rate of the agreement in force in its
    month, starting after its latest bill (this month if it has none). Caller holds the
    household's lock, so the latest bill cannot change meanwhile. 409 past the prepayment
    horizon (MAX_PREPAY_MONTHS beyond this month, in all) or past the agreements."""
    current = Period.current()
    latest = (
        Bill.objects.filter(household=household, status__in=Bill.LIVE_STATUSES)
        .order_by("-period")
        .values_list("period", flat=True)
        .first()
    )
    first = _month_index(current)
    if latest is not None:
        first = max(first, _month_index(Period.parse(latest)) + 1)
    horizon = _month_index(current) + MAX_PREPAY_MONTHS
    room = horizon - first + 1
    if months > room:
        raise Conflict(
            ngettext(
                "Fees can be prepaid up to %(months)s month beyond this one; %(room)s more can "
                "be prepaid for this household.",
                "Fees can be prepaid up to %(months)s months beyond this one; %(room)s more can "
                "be prepaid for this household.",
                MAX_PREPAY_MONTHS,
            )
            % {"months": MAX_PREPAY_MONTHS, "room": max(room, 0)}
        )
    try:
        periods = [Period(index // 12, index % 12 + 1) for index in range(first, first + months)]
    except ValueError as exc:  # beyond the year 9999
        raise ValidationError({"months": _("Those months are beyond the calendar.")}) from exc
    agreements = list(Agreement.objects.filter(community=community).order_by("effective_from"))
    bills = []
    for period in periods:
        agreement = next(
            (
                a
                for a in agreements
                if a.effective_from <= period.first_day
                and (a.effective_to is None or a.effective_to >= period.first_day)
            ),
            None,
        )
        if agreement is None:
            raise Conflict(
                _("No agreement is in force for %(period)s; fees cannot be prepaid that far.")
                % {"period": period}
            )
        month_charges = charges.monthly_charges(agreement, [(household.pk, household.area)], None)
        amount, passthrough = charges.totals(month_charges[household.pk])
        bill = Bill(
            household=household,
            community=community,
            period=str(period),
            area=household.area,
            rate=agreement.fee_rate,
            amount=amount,
            passthrough_amount=passthrough,
            due_date=period.day(agreement.bill_due_day),
            is_prepaid=True,
        )
        bills.append((bill, month_charges[household.pk]))
    return bills


def _prepaid_bills_create(bills: list[tuple[Bill, list]], community: Community) -> list[Bill]:
    """Insert a prepayment's bills with their charge lines, and its discount (a prepayment
    discount rule's lines, which lower the bills' amounts before they are inserted)."""
    rows = [bill for bill, _ in bills]
    discounts = charges.prepay_discount_lines(rows, [c for _, c in bills], community.pk)
    Bill.objects.bulk_create(rows)
    billing_summary.bills_created(rows)
    lines = [charge.line(bill) for bill, month in bills for charge in month]
    for line in discounts:
        line.bill_id = line.bill.pk
    BillLine.objects.bulk_create(lines + discounts)
    return rows


def bill_prepay(
    *,
    user: User,
    household_id: int,
    months: int,
    gateway: str,
    idempotency_key: str,
    fingerprint: str,
) -> tuple[Payment, bool]:
    """Prepay the household's next `months` months: their bills are created together with the
    pending payment that pays them, in one transaction. Returns (payment, created); the
    payment's items hold the new bills.

    The months start after the household's latest bill and reach at most MAX_PREPAY_MONTHS
    beyond this month in all, however many requests ask (→ 409 past that). Each bill takes the
    rate in force in its month. The same Idempotency-Key with the same body returns the first
    prepayment, also when the two race; with a different body → 409. When the payment fails or
    expires, its bills of months still to come become void with it (_void_unpaid_prepaid_bills),
    so prepaying never leaves unpaid bills behind nor keeps a rate for months nobody paid for.
    Only a resident of the household may prepay (anyone else: 404)."""
    if not 1 <= months <= MAX_PREPAY_MONTHS:
        raise ValidationError({"months": _("Prepay between 1 and 36 months.")})
    household = community_selectors.household_get(
        user=user, household_id=household_id, roles=[community_selectors.RESIDENT]
    )
    key = f"prepay:{idempotency_key}"[:100]
    existing = _prepay_replay(user, key, fingerprint)
    if existing is not None:
        return existing, False
    gateway_impl = get_gateway(gateway)
    community = household.building.community
    try:
        with transaction.atomic():
            # One prepayment at a time per household: its latest bill is read under this lock,
            # and a second request with the same key finds the first's payment under it.
            Household.objects.select_for_update().get(pk=household.pk)
            existing = _prepay_replay(user, key, fingerprint)
            if existing is not None:
                return existing, False
            planned = _prepaid_bills(household, community, months)
            try:
                with transaction.atomic():
                    bills = _prepaid_bills_create(planned, community)
            except IntegrityError as exc:  # the bill run reached this month meanwhile
                raise _Taken from exc
            payment = _payment_open(
                payer=user,
                bills=bills,
                gateway=gateway,
                gateway_impl=gateway_impl,
                idempotency_key=key,
                fingerprint=fingerprint,
            )
    except _Taken as exc:
        replay = _prepay_replay(user, key, fingerprint)
        if replay is not None:
            return replay, False
        raise Conflict(_("Some of these months have just been billed; try again.")) from exc
    return payment, True


def _prepay_replay(user: User, key: str, fingerprint: str) -> Payment | None:
    existing = _replay(user, key, fingerprint)
    if existing is not None and existing.status == Payment.Status.FAILED:
        raise Conflict(_("This prepayment was not completed and has expired; start a new one."))
    return existing


def prepaid_bills(payment: Payment) -> list[Bill]:
    """The bills a prepayment created, in month order."""
    return sorted(
        (item.bill for item in payment.items.select_related("bill")), key=lambda b: b.period
    )


def _void_unpaid_prepaid_bills(bill_ids) -> list[tuple[Bill, str]]:
    """Prepaid bills of months still to come that nothing pays any more (their payment failed
    or expired, or their money was refunded) become void: never owed, and out of the
    one-bill-per-month rule, so the month's own bill is issued by the bill run at the rate then
    in force. A prepaid bill of this month stays: the month is owed anyway.

    One UPDATE ... RETURNING (PostgreSQL, SQLite 3.35+). Returns the voided bills' moves for
    billing.summary.bills_moved, which the caller reports with its own, last (after any ledger
    posting: the summary's rows are the last locks a transaction takes)."""
    ids = list(bill_ids)
    if not ids:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE billing_bill SET status = %s
             WHERE id IN ({", ".join(["%s"] * len(ids))})
               AND is_prepaid AND status = %s AND period > %s
               AND NOT EXISTS (SELECT 1 FROM billing_paymentitem AS i
                                WHERE i.bill_id = billing_bill.id AND i.is_open)
            RETURNING community_id, period
            """,
            [Bill.Status.VOID, *ids, Bill.Status.UNPAID, str(Period.current())],
        )
        voided = cursor.fetchall()
    return [
        (Bill(community_id=c, period=p, status=Bill.Status.VOID), Bill.Status.UNPAID)
        for c, p in voided
    ]


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
                # Through the notifications layer: in-app, and e-mail / SMS / WeChat as the
                # resident chose, held in the quiet hours; the key keeps it to once per bill.
                notifications.notify(
                    user=resident,
                    kind=NotificationKind.BILL_REMINDER,
                    title=_("Property fee for %(period)s is overdue") % {"period": bill.period},
                    body=_("%(household)s: %(amount)s was due on %(due)s.")
                    % {
                        "household": bill.household,
                        "amount": money_text(bill.outstanding),
                        "due": formats.date_format(bill.due_date, "DATE_FORMAT"),
                    },
                    link=reverse("bill-list"),
                    key=f"bill-overdue:{bill.pk}",
                    params={
                        "period": bill.period,
                        "amount": str(bill.outstanding),
                        "due": bill.due_date.isoformat(),
                    },
                )
    return marked


@transaction.atomic
def bill_waive(*, bill: Bill) -> Bill:
    """Waive an unpaid bill (a centre decision, e.g. a vacant flat): nothing is owed any more."""
    bill = bills_for_update([bill.pk])[0]
    if bill.paid_amount > 0 or bill.payment_items.filter(is_open=True).exists():
        raise Conflict(_("A bill with payments cannot be waived; refund first."))
    before = bill.status
    bill.status = Bill.Status.WAIVED
    bill.save(update_fields=["status"])
    billing_summary.bills_moved([(bill, before)])
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
    body → 409. A bill of another household → 404; a bill already paid, waived, void or inside
    another pending payment → 409. The bills are locked while they are checked, and a partial
    unique index (one open payment item per bill) holds even against a race.

    A new payment is the common case, so the key is not looked up first: the unique index on
    (payer, key) refuses a second insert, and only a request that does not succeed (the key
    taken, or a bill refused) looks for the payment that key made — answering with it if the
    body is the same, 409 if not, exactly as a lookup beforehand would.
    """
    try:
        return _payment_create(
            payer=payer,
            bill_ids=bill_ids,
            gateway=gateway,
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
        ), True
    except (_Taken, Bill.DoesNotExist, Conflict, ValidationError, UnknownGateway) as exc:
        replay = _replay(payer, idempotency_key, fingerprint)
        if replay is not None:  # a retry, or the same request racing itself
            return replay, False
        if isinstance(exc, _Taken):
            raise Conflict(_("One of these bills is already in a payment in progress.")) from exc
        raise


def _payment_create(
    *, payer: User, bill_ids: list[int], gateway: str, idempotency_key: str, fingerprint: str
) -> Payment:
    if not bill_ids:
        raise ValidationError({"bill_ids": _("Choose at least one bill.")})
    gateway_impl = get_gateway(gateway)
    with transaction.atomic():
        bills = payer_bills_for_update(bill_ids, payer=payer)
        if len(bills) != len(set(bill_ids)):  # one is not a bill, or not the payer's: 404
            raise Bill.DoesNotExist("bill not found")
        for bill in bills:
            if bill.status in (Bill.Status.PAID, Bill.Status.WAIVED):
                raise Conflict(_("Bill %(period)s is already settled.") % {"period": bill.period})
            if bill.status == Bill.Status.VOID:
                raise Conflict(
                    _("Bill %(period)s was a prepayment that expired; prepay again.")
                    % {"period": bill.period}
                )
        return _payment_open(
            payer=payer,
            bills=bills,
            gateway=gateway,
            gateway_impl=gateway_impl,
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
        )


def _payment_open(
    *,
    payer: User,
    bills: list[Bill],
    gateway: str,
    gateway_impl,
    idempotency_key: str,
    fingerprint: str,
) -> Payment:
    """A pending payment of the bills' outstanding amounts, registered with the gateway (which
    answers with the pay URL). Caller holds the bills' locks, or created them, in its
    transaction. Raises _Taken when the key or a bill is taken (the unique indexes): nothing but
    the locks is written before these inserts, so the caller's whole transaction is rolled back
    rather than a savepoint taken for every payment."""
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
            [
                PaymentItem(
                    payment=payment,
                    bill=b,
                    amount=b.outstanding,
                    passthrough_amount=b.outstanding_passthrough,
                )
                for b in bills
            ]
        )
    except IntegrityError as exc:
        raise _Taken from exc
    periods = sorted({b.period for b in bills})
    shown = periods if len(periods) <= 3 else [periods[0], "…", periods[-1]]
    subject = _("Property fee") + " " + ", ".join(shown)
    payment.pay_url = gateway_impl.create(
        PaymentRequest(
            out_trade_no=payment.out_trade_no,
            amount=amount,
            subject=subject[:120],
            notify_url=settings.SITE_URL + reverse("payment-notify", args=[gateway]),
            return_url=settings.SITE_URL + reverse("payment-detail-page", args=[payment.pk]),
        )
    )
    rows.save_fields(payment, "pay_url")
    return payment


def _close_items(payment: Payment) -> None:
    """The payment's items no longer hold their bills (the partial unique index of open items):
    one UPDATE, written out as billing.rows explains, since every payment makes it."""
    connection = transaction.get_connection()
    table = connection.ops.quote_name(PaymentItem._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f'UPDATE {table} SET "is_open" = %s WHERE "payment_id" = %s AND "is_open"',
            [False, payment.pk],
        )


def _fail(payment: Payment, reason: str) -> None:
    payment.status = Payment.Status.FAILED
    payment.failure_reason = reason
    payment.save(update_fields=["status", "failure_reason"])
    _close_items(payment)
    billing_summary.bills_moved(
        _void_unpaid_prepaid_bills(payment.items.values_list("bill_id", flat=True))
    )


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
        if (
            bill.status in (Bill.Status.WAIVED, Bill.Status.VOID)
            or bill.paid_amount + taking[bill.pk] > bill.amount
        ):
            raise Conflict(
                _("Bill %(bill)s can no longer take %(amount)s.")
                % {"bill": bill.pk, "amount": item.amount}
            )
    before = {pk: bill.status for pk, bill in bills.items()}
    for item in items:
        bill = bills[item.bill_id]
        bill.paid_amount += item.amount
        bill.status = Bill.status_for(amount=bill.amount, paid_amount=bill.paid_amount)
        rows.save_fields(bill, "paid_amount", "status")
    payment.status = Payment.Status.SUCCEEDED
    payment.trade_no = trade_no
    payment.paid_at = paid_at
    payment.failure_reason = ""
    rows.save_fields(payment, "status", "trade_no", "paid_at", "failure_reason")
    _close_items(payment)
    gateway_clearing, escrows = ledger.payment_accounts(
        payment.gateway if clearing is None else None,
        (bill.community_id for bill in bills.values()),
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
    # Every estate and month the payment paid a bill of, in the dashboards' summary: one
    # upsert, after the ledger has locked the accounts (a refund locks them before it too, so
    # the two never wait for each other's locks in opposite orders).
    billing_summary.bills_moved((bill, before[pk]) for pk, bill in bills.items())
    paid_day = timezone.localdate(paid_at)
    bill_rows = [bills[item.bill_id] for item in items]
    payload = {
        "payment_id": payment.pk,
        "payer_id": payment.payer_id,
        "amount": f"{payment.amount:.2f}",
        "paid_at": paid_at.isoformat(),
        "on_time": selectors.paid_on_time(bill_rows, paid_day),
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
    a bad signature, a stale timestamp, an unknown trade, a different amount, or a gateway
    trade number that belongs to another of our payments; a duplicate is recognised and changes
    nothing. Money captured that can no longer settle the payment's bills is booked to the
    gateway's suspense account (_book_to_suspense)."""
    notification = get_gateway(gateway).parse_notification(body=body, headers=headers)
    try:
        with transaction.atomic():
            payment = payment_by_trade_for_update(gateway, notification.out_trade_no)
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
            if payment.paid_at is not None:  # booked already: to its bills, or to suspense
                if payment.trade_no != notification.trade_no:
                    logger.warning(
                        "payment %s: second trade %s notified", payment.pk, notification.trade_no
                    )
                return payment
            if not notification.succeeded:
                if payment.status == Payment.Status.PENDING:
                    _fail(payment, "closed at the gateway")
                return payment
            _book_capture(payment, trade_no=notification.trade_no, paid_at=notification.paid_at)
    except IntegrityError as exc:
        _refuse_taken_trade_no(gateway, notification.trade_no, notification.out_trade_no, exc)
        raise
    return payment


def _refuse_taken_trade_no(gateway: str, trade_no: str, out_trade_no: str, exc) -> None:
    """After an IntegrityError (its transaction rolled back): if the gateway's trade number is
    another payment's, the notification is not to be trusted → NotificationRejected (400)."""
    taken = (
        Payment.objects.filter(gateway=gateway, trade_no=trade_no)
        .exclude(out_trade_no=out_trade_no)
        .values_list("out_trade_no", flat=True)
        .first()
    )
    if taken is not None:
        logger.warning(
            "payment %s: gateway trade number %s is already payment %s's; refused",
            out_trade_no,
            trade_no,
            taken,
        )
        raise NotificationRejected("trade number of another payment") from exc


def _book_capture(payment: Payment, *, trade_no: str, paid_at: datetime) -> None:
    """Book money the gateway took: to the payment's bills, or, if they were settled some other
    way meanwhile (it had expired and they were paid again, another payment of them got there
    first, a prepaid month became void), to the gateway's suspense account. Caller holds the
    payment lock."""
    try:
        # No savepoint: _succeed raises Conflict before it writes anything.
        _succeed(payment, trade_no=trade_no, paid_at=paid_at)
    except Conflict:
        _book_to_suspense(payment, trade_no=trade_no, paid_at=paid_at)


def _book_to_suspense(payment: Payment, *, trade_no: str, paid_at: datetime) -> None:
    """Captured money no bill can take goes on the books all the same: Dr the gateway's
    clearing account, Cr its suspense account, so the ledger holds everything the gateway
    captured and reconciliation matches the trade. The payment fails (its bills are not paid by
    it, and its prepaid months become void), keeps the money `in_suspense`, and the centre
    admins are asked to refund it (payment_refund takes it from suspense). Caller holds the
    payment lock."""
    payment.status = Payment.Status.FAILED
    payment.failure_reason = "captured after its bills were settled: refund due"
    payment.trade_no = trade_no
    payment.paid_at = paid_at
    payment.in_suspense = payment.amount
    payment.save(update_fields=["status", "failure_reason", "trade_no", "paid_at", "in_suspense"])
    _close_items(payment)
    voided = _void_unpaid_prepaid_bills(payment.items.values_list("bill_id", flat=True))
    ledger.post(
        kind=LedgerTransaction.Kind.CAPTURE_UNBOOKED,
        idempotency_key=f"capture:{payment.pk}",
        legs=[
            ledger.Leg(ledger.clearing_account(payment.gateway), payment.amount),
            ledger.Leg(ledger.suspense_account(payment.gateway), -payment.amount),
        ],
        memo=f"{payment.gateway} {trade_no}",
        payment=payment,
    )
    billing_summary.bills_moved(voided)
    item = payment.items.select_related("bill__community").first()
    audit.record(
        action=audit.Action.CAPTURE_UNBOOKED,
        target=payment,
        centre_id=item.bill.community.centre_id if item is not None else None,
        details={
            "payment": payment.out_trade_no,
            "trade_no": trade_no,
            "amount": payment.amount,
            "gateway": payment.gateway,
        },
    )
    _notify_centre_admins(
        payment.items.values("bill__community_id"),
        title=_("A payment needs a refund"),
        body=_(
            "The gateway took %(amount)s for trade %(no)s after its bills had been settled; the "
            "money is held in suspense until you refund it."
        )
        % {"amount": money_text(payment.amount), "no": payment.out_trade_no},
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
    """Ask the gateway how a payment stands and book what the ledger lacks: a trade it captured
    goes to the payment's bills (or to suspense), a pending one it closed fails. With
    expire=True a pending payment the gateway still calls pending is closed as expired. A
    payment that already failed here (cancelled, expired) but that the gateway captured all
    the same is booked too: daily reconciliation finds those. Returns the payment's status."""
    payment = Payment.objects.get(pk=payment_id)
    if payment.paid_at is not None:
        return payment.status
    try:
        status = get_gateway(payment.gateway).query(payment.out_trade_no)
    except GatewayError:
        logger.warning("gateway query failed for %s", payment.out_trade_no)
        return payment.status
    try:
        with transaction.atomic():
            payment = payment_for_update(payment_id)
            if payment.paid_at is not None:
                return payment.status
            if status.status == "succeeded" and status.amount == payment.amount:
                _book_capture(payment, trade_no=status.trade_no, paid_at=status.paid_at)
            elif payment.status == Payment.Status.PENDING and (
                status.status in ("closed", "unknown") or expire
            ):
                _fail(payment, "expired" if expire else "closed at the gateway")
            return payment.status
    except IntegrityError as exc:
        try:
            _refuse_taken_trade_no(payment.gateway, status.trade_no, payment.out_trade_no, exc)
        except NotificationRejected:
            return Payment.objects.get(pk=payment_id).status
        raise


def payment_book_from_gateway(*, payment_id: int) -> str:
    """For reconciliation: a trade the gateway's statement lists but the ledger lacks is asked
    about and booked (payment_reconcile). Returns the payment's status."""
    return payment_reconcile(payment_id=payment_id)


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


# The split of a payout and of a release over a month's items, two ways with the same figures to
# the fen. The estate's part is round(total × share) (half up), exactly: rounding each item on its
# own would drift from it by up to half a fen per item. It is spread over the items by largest
# remainder (billing.money.allocate: each item its exact share rounded down, the fen left over to
# the largest remainders, ties to the lower id). PostgreSQL multiplies numerics exactly, and div()
# and mod() of whole fen are exact, so one UPDATE reproduces allocate() item by item, and the sums
# come back from its RETURNING rows in the same statement, which also writes them on the payout's
# row: no item is loaded into Python (docs/performance.md, payouts). SQLite's arithmetic is binary
# floating point, so there the items go through allocate() in Python. Both lock the items in
# primary-key order first.
#
# The payout finds its items through the community's bills as an array (bill_id = ANY(ARRAY(...)))
# rather than a join. Joined, the plan depended on the statistics: on the bench's freshly analysed
# 200-estate database the planner read every payment item of the site (a sequential scan of 90,000
# rows, then a hash join with the community's bills: 21 ms, against 1.5 ms by index), a cost per
# estate that grows with the number of estates. An array of unknown length is estimated small, so
# the plan is always the bill_id index, probed once per bill of the estate.
#
# The UPDATEs join the items table to `shared` alone, which carries every figure they write. A
# join of two of the CTEs (shared with locked, whose row counts the planner cannot know) was
# planned as a nested loop once the estimate fell to one row, as it does on an estate with a year
# of bills: the 450 items were read 450 times over (202,500 rows; 32 ms where 5 ms do).

_ALLOCATE_SQL = """
, total AS (
    SELECT coalesce(sum(weight), 0) AS whole,
           round(coalesce(sum(weight), 0) * %(share)s::numeric, 2) AS part
      FROM locked
), exact AS (
    SELECT l.id, l.weight, l.through,
           CASE WHEN t.whole = 0 THEN 0
                ELSE div(t.part * l.weight * 10000, t.whole * 100) END AS base,
           CASE WHEN t.whole = 0 THEN 0
                ELSE mod(t.part * l.weight * 10000, t.whole * 100) END AS remainder
      FROM locked AS l CROSS JOIN total AS t
), shared AS (
    SELECT e.id, e.weight, e.through,
           round((e.base + CASE
                WHEN row_number() OVER (ORDER BY e.remainder DESC, e.id)
                     <= (SELECT t.part * 100 FROM total AS t)
                        - (SELECT coalesce(sum(x.base), 0) FROM exact AS x)
                THEN 1 ELSE 0 END)::numeric / 100, 2) AS part
      FROM exact AS e
)
"""

_PAY_ITEMS_SQL = (
    """
WITH kept AS (
    SELECT i.id, i.amount - i.refunded_amount AS net, i.passthrough_amount FROM {item} AS i
    JOIN {payment} AS p ON p.id = i.payment_id
    WHERE i.bill_id = ANY(ARRAY(
            SELECT b.id FROM {bill} AS b
             WHERE b.community_id = %(community)s AND b.period <= %(period)s
          ))
      AND p.status = ANY(%(statuses)s) AND i.payout_id IS NULL
    ORDER BY i.id
    FOR UPDATE OF i
), locked AS (
    SELECT id, net - least(passthrough_amount, net) AS weight,
           least(passthrough_amount, net) AS through
      FROM kept
)"""
    + _ALLOCATE_SQL
    + """
, paid AS (
    UPDATE {item} AS i
    SET payout_id = %(payout)s, paid_out_to_company = s.part + s.through,
        held_back = s.weight - s.part
    FROM shared AS s WHERE i.id = s.id
    RETURNING s.weight + s.through AS net, i.paid_out_to_company, i.held_back
)
, sums AS (
    SELECT coalesce(sum(net), 0) AS collected,
           coalesce(sum(paid_out_to_company), 0) AS to_company,
           coalesce(sum(held_back), 0) AS held_back
      FROM paid
), recorded AS (
    UPDATE {payout} AS p
       SET collected = sums.collected, to_company = sums.to_company, held_back = sums.held_back
      FROM sums WHERE p.id = %(payout)s
)
SELECT collected, to_company, held_back FROM sums
"""
)

_RELEASE_ITEMS_SQL = (
    """
WITH locked AS (
    SELECT id, held_back AS weight, 0 AS through FROM {item}
     WHERE bill_id = ANY(ARRAY(
             SELECT b.id FROM {bill} AS b
              WHERE b.community_id = %(community)s AND b.period <= %(period)s
           ))
       AND payout_id = %(payout)s
     ORDER BY id FOR UPDATE
)"""
    + _ALLOCATE_SQL
    + """
, released AS (
    UPDATE {item} AS i
    SET released_to_company = s.part, forfeited_to_fund = i.held_back - s.part, held_back = 0
    FROM shared AS s WHERE i.id = s.id
    RETURNING s.weight AS held, i.released_to_company, i.forfeited_to_fund
)
, sums AS (
    SELECT coalesce(sum(held), 0) AS held_back,
           coalesce(sum(released_to_company), 0) AS to_company,
           coalesce(sum(forfeited_to_fund), 0) AS to_public_fund
      FROM released
), recorded AS (
    UPDATE {payout} AS p
       SET held_back = sums.held_back, to_company = sums.to_company,
           to_public_fund = sums.to_public_fund
      FROM sums WHERE p.id = %(release)s
)
SELECT held_back, to_company, to_public_fund FROM sums
"""
)


def _tables() -> dict[str, str]:
    return {
        "item": connection.ops.quote_name(PaymentItem._meta.db_table),
        "bill": connection.ops.quote_name(Bill._meta.db_table),
        "payment": connection.ops.quote_name(Payment._meta.db_table),
        "payout": connection.ops.quote_name(Payout._meta.db_table),
    }


def _money_sums(sql: str, params: dict) -> tuple[Decimal, Decimal, Decimal]:
    with connection.cursor() as cursor:
        cursor.execute(sql.format(**_tables()), params)
        return tuple(fen(value) for value in cursor.fetchone())


def _pay_items_sql(
    payout: Payout, community: Community, period: Period, share: Decimal
) -> tuple[Decimal, Decimal, Decimal]:
    """Assign the unpaid items of `period` and earlier to `payout`: round(collected × share) to
    the company, spread over the items by largest remainder, the rest of each held back.
    Returns (collected, to company, held back)."""
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
    nets = [item.amount - item.refunded_amount for item in items]
    # Pass-through money goes to the company whole; a refund before the payout came out of
    # the escrowed part first (as least(...) does in _PAY_ITEMS_SQL).
    throughs = [min(item.passthrough_amount, net) for item, net in zip(items, nets, strict=True)]
    weights = [net - through for net, through in zip(nets, throughs, strict=True)]
    collected = sum(nets, ZERO)
    escrowed = sum(weights, ZERO)
    parts = (
        allocate(fen(escrowed * share), weights) if items and escrowed else [ZERO for _ in items]
    )
    for item, weight, through, to_company in zip(items, weights, throughs, parts, strict=True):
        item.payout = payout
        item.paid_out_to_company, item.held_back = to_company + through, weight - to_company
    to_company_total = sum(parts, ZERO) + sum(throughs, ZERO)
    held_total = collected - to_company_total
    _save_items(items, ["payout", "paid_out_to_company", "held_back"])
    payout.collected, payout.to_company, payout.held_back = collected, to_company_total, held_total
    payout.save(update_fields=["collected", "to_company", "held_back"])
    return collected, to_company_total, held_total


def _release_items_sql(
    release: Payout, regular: Payout, score: Decimal
) -> tuple[Decimal, Decimal, Decimal]:
    """Release what `regular`'s items still hold back: round(held back × score) to the company,
    spread over the items by largest remainder, the rest to the public fund. Returns (held back,
    to company, to the public fund), written on `release` too."""
    return _money_sums(
        _RELEASE_ITEMS_SQL,
        {
            "payout": regular.pk,
            "release": release.pk,
            "share": score,
            # The items are found by the estate's bills, as the payout found them: payout_id
            # has no index (one fewer to write on every item the payout and release rewrite).
            "community": regular.community_id,
            "period": regular.period,
        },
    )


def _release_items_python(
    release: Payout, regular: Payout, score: Decimal
) -> tuple[Decimal, Decimal, Decimal]:
    items = list(regular.items.select_for_update(of=("self",)).order_by("pk"))
    held = [item.held_back for item in items]
    held_total = sum(held, ZERO)
    parts = allocate(fen(held_total * score), held) if items else []
    for item, item_held, to_company in zip(items, held, parts, strict=True):
        item.released_to_company, item.forfeited_to_fund = to_company, item_held - to_company
        item.held_back = ZERO
    to_company_total = sum(parts, ZERO)
    to_fund_total = held_total - to_company_total
    _save_items(items, ["released_to_company", "forfeited_to_fund", "held_back"])
    release.held_back, release.to_company = held_total, to_company_total
    release.to_public_fund = to_fund_total
    release.save(update_fields=["held_back", "to_company", "to_public_fund"])
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
        # The totals are written on the payout's row by pay_items.
        payout.collected, payout.to_company, payout.held_back = pay_items(
            payout, community, period, 1 - agreement.holdback_share
        )
        if payout.to_company:
            accounts = ledger.estate_accounts(
                community, Account.Kind.ESCROW, Account.Kind.COMPANY_PAYABLE
            )
            legs = [
                ledger.Leg(accounts[Account.Kind.ESCROW], payout.to_company),
                ledger.Leg(accounts[Account.Kind.COMPANY_PAYABLE], -payout.to_company),
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
        month = {
            payout.kind: payout
            for payout in Payout.objects.filter(
                community=community,
                period=str(period),
                kind__in=[Payout.Kind.REGULAR, Payout.Kind.HOLDBACK_RELEASE],
            )
        }
        if Payout.Kind.HOLDBACK_RELEASE in month:
            return month[Payout.Kind.HOLDBACK_RELEASE], False
        regular = month.get(Payout.Kind.REGULAR)
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
        # The totals are written on the release's row by release_items.
        release.held_back, release.to_company, release.to_public_fund = release_items(
            release, regular, score
        )
        if release.held_back:
            accounts = ledger.estate_accounts(
                community,
                Account.Kind.ESCROW,
                Account.Kind.COMPANY_PAYABLE,
                Account.Kind.PUBLIC_FUND,
            )
            ledger.post(
                kind=LedgerTransaction.Kind.HOLDBACK_RELEASE,
                idempotency_key=f"holdback:{community.pk}:{period}",
                legs=[
                    ledger.Leg(accounts[Account.Kind.ESCROW], release.held_back),
                    ledger.Leg(accounts[Account.Kind.COMPANY_PAYABLE], -release.to_company),
                    ledger.Leg(accounts[Account.Kind.PUBLIC_FUND], -release.to_public_fund),
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
class _RefundPlan:
    """What a refund takes from where: the ledger legs (the payer's side last), and the rows
    whose figures change with it."""

    legs: list[ledger.Leg] = field(default_factory=list)
    items: list[PaymentItem] = field(default_factory=list)
    bills: list[Bill] = field(default_factory=list)
    # The bills' statuses before the refund, for the dashboards' summary.
    statuses_before: dict[int, str] = field(default_factory=dict)
    from_escrow: Decimal = ZERO
    from_company: Decimal = ZERO
    from_fund: Decimal = ZERO
    from_suspense: Decimal = ZERO


def _check_accounts_cover(legs: list[ledger.Leg]) -> None:
    """Refuse (409) a refund that would take from an account more than it holds, before the
    gateway moves any money (posting anyway would break the overdraft constraint only after
    the gateway had paid out). Locks the legs' accounts in primary-key order, the order
    ledger.post then takes them in."""
    taken: dict[int, Decimal] = {}
    for leg in legs:
        taken[leg.account.pk] = taken.get(leg.account.pk, ZERO) + leg.amount
    for pk, account in accounts_for_update(taken).items():
        if account.kind in Account.LIABILITIES and account.balance + taken[pk] > 0:
            raise Conflict(
                _("%(account)s holds only %(held)s; refund the rest of this payment by hand.")
                % {"account": account.get_kind_display(), "held": money_text(-account.balance)}
            )


def _refund_from_bills(payment: Payment, amount: Decimal) -> _RefundPlan:
    """Take `amount` back from a succeeded payment's bills, the latest month first (typically
    prepaid months of someone moving out). Within a bill the money comes back from where it
    went, in proportion (billing.money.allocate): from escrow while it is held (before the
    payout, or the held-back part after it), from the company payable for what the company was
    paid or released, from the public fund for what was forfeited to it. So a refund never
    eats the hold-back first (the score keeps deciding what the company gets of the rest), and
    the company's share of a payment never turns negative."""
    left = payment.amount - payment.refunded_amount
    if amount > left:
        raise Conflict(
            _("At most %(left)s of this payment can still be refunded.")
            % {"left": money_text(left)}
        )
    # Locked in primary-key order, like payouts lock them, so a refund and a payout of the
    # same estate wait for each other instead of deadlocking; then latest month first.
    items = list(
        payment.items.select_for_update(of=("self",))
        .select_related("bill__community__centre")
        .order_by("pk")
    )
    items.sort(key=lambda item: (item.bill.period, item.pk), reverse=True)
    bills = {b.pk: b for b in bills_for_update([item.bill_id for item in items])}
    plan_before = {pk: bill.status for pk, bill in bills.items()}
    if payment.gateway == Payment.DESK_GATEWAY:
        # Paid back at the desk, by the method it came in: out of the same desk account.
        payer_side = ledger.desk_account(items[0].bill.community.centre, payment.method)
    else:
        payer_side = ledger.clearing_account(payment.gateway)
    plan = _RefundPlan(legs=[ledger.Leg(payer_side, -amount)], statuses_before=plan_before)
    to_take = amount
    for item in items:
        take = min(to_take, item.amount - item.refunded_amount)
        if take <= 0:
            continue
        to_take -= take
        bill = bills[item.bill_id]
        community = bill.community
        if item.payout_id is None:
            from_company, from_held, from_fund = ZERO, take, ZERO
        else:
            with_company = (
                item.paid_out_to_company + item.released_to_company - item.refunded_from_company
            )
            in_fund = item.forfeited_to_fund - item.refunded_from_fund
            from_company, from_held, from_fund = allocate(
                take, [with_company, item.held_back, in_fund]
            )
            item.held_back -= from_held
        item.refunded_amount += take
        item.refunded_from_company += from_company
        item.refunded_from_fund += from_fund
        bill.paid_amount -= take
        bill.status = Bill.status_for(amount=bill.amount, paid_amount=bill.paid_amount)
        for account_of, part in (
            (ledger.escrow_account, from_held),
            (ledger.company_payable_account, from_company),
            (ledger.public_fund_account, from_fund),
        ):
            if part:
                plan.legs.append(ledger.Leg(account_of(community), part, bill=bill))
        plan.from_escrow += from_held
        plan.from_company += from_company
        plan.from_fund += from_fund
        plan.items.append(item)
        plan.bills.append(bill)
        if to_take == 0:
            break
    return plan


def _refund_from_suspense(payment: Payment, amount: Decimal) -> _RefundPlan:
    """Give back money the gateway captured that no bill took (_book_to_suspense)."""
    if amount > payment.in_suspense:
        raise Conflict(
            _("At most %(left)s of this payment can still be refunded.")
            % {"left": money_text(payment.in_suspense)}
        )
    return _RefundPlan(
        legs=[
            ledger.Leg(ledger.clearing_account(payment.gateway), -amount),
            ledger.Leg(ledger.suspense_account(payment.gateway), amount),
        ],
        from_suspense=amount,
    )


def _refuse_cash_after_the_day_closed(payment: Payment, by: User) -> None:
    """Cash paid back from the drawer counts in the refunder's day at the desk (billing.desk):
    once that day is closed with its count, its figure must not change (409). The drawer's
    account is locked first, as desk_day_close locks it, so a close and a refund cannot pass
    each other."""
    centre = payment.items.select_related("bill__community__centre").first().bill.community.centre
    accounts_for_update([ledger.desk_account(centre, Payment.Method.CASH).pk])
    today = timezone.localdate(timezone=timezone.get_default_timezone())
    if DeskDayClose.objects.filter(cashier=by, centre=centre, day=today).exists():
        raise Conflict(
            _("You have closed today's cash count; a cash refund must wait until tomorrow.")
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
    """Refund part or all of a payment: a succeeded one from its bills (_refund_from_bills),
    one whose money is in suspense from there. Through its gateway, or, for a desk payment, paid
    back at the desk. Never more than is left (→ 409).

    The same Idempotency-Key with the same body returns the first refund, whatever the
    concurrency: the key is looked up under the payment's lock, and the refund's row (unique per
    admin and key) is written before the gateway is asked, so a request with the same key for
    another payment waits on that unique index and is refused (409) rather than refunded."""
    amount = fen(amount)
    if amount <= 0:
        raise ValidationError({"amount": _("The amount must be positive.")})
    with transaction.atomic():
        payment = payment_for_update(payment.pk)
        existing = Refund.objects.filter(created_by=by, idempotency_key=idempotency_key).first()
        if existing is not None:
            if existing.request_fingerprint != fingerprint:
                raise Conflict(_("This Idempotency-Key was used for a different request."))
            return existing, False
        if payment.method == Payment.Method.CASH:
            _refuse_cash_after_the_day_closed(payment, by)
        if payment.in_suspense > 0:
            plan = _refund_from_suspense(payment, amount)
        elif payment.status == Payment.Status.SUCCEEDED:
            plan = _refund_from_bills(payment, amount)
        else:
            raise Conflict(_("Only a succeeded payment can be refunded."))
        refund = Refund(
            payment=payment,
            refund_no=_refund_no(by, idempotency_key),
            amount=amount,
            reason=reason,
            status=Refund.Status.SUCCEEDED,
            created_by=by,
            idempotency_key=idempotency_key,
            request_fingerprint=fingerprint,
            from_escrow=plan.from_escrow,
            from_company=plan.from_company,
            from_fund=plan.from_fund,
            from_suspense=plan.from_suspense,
        )
        _check_accounts_cover(plan.legs)  # before the gateway sends any money back
        try:
            with transaction.atomic():
                refund.save()
        except IntegrityError as exc:  # the key, used for another payment at the same moment
            raise Conflict(_("This Idempotency-Key was used for a different request.")) from exc
        if payment.gateway != Payment.DESK_GATEWAY:
            try:
                result = get_gateway(payment.gateway).refund(
                    out_trade_no=payment.out_trade_no,
                    refund_no=refund.refund_no,
                    amount=amount,
                    total=payment.amount,
                )
            except GatewayError as exc:
                raise Conflict(
                    _("The gateway refused the refund: %(error)s") % {"error": exc}
                ) from exc
            refund.gateway_refund_id = result.gateway_refund_id
            Refund.objects.filter(pk=refund.pk).update(gateway_refund_id=refund.gateway_refund_id)
        moves = []
        if plan.items:
            PaymentItem.objects.bulk_update(
                plan.items,
                ["refunded_amount", "refunded_from_company", "refunded_from_fund", "held_back"],
            )
            Bill.objects.bulk_update(plan.bills, ["paid_amount", "status"])
            moves = [
                (bill, plan.statuses_before[pk])
                for pk, bill in {b.pk: b for b in plan.bills}.items()
            ]
            moves += _void_unpaid_prepaid_bills(b.pk for b in plan.bills if b.paid_amount == 0)
        payment.refunded_amount += amount
        payment.in_suspense -= plan.from_suspense
        # A payment that paid its bills becomes refunded; one whose money sat in suspense stays
        # failed (it never paid a bill: payouts and the trail must keep ignoring it).
        if payment.refunded_amount == payment.amount and plan.items:
            payment.status = Payment.Status.REFUNDED
        payment.save(update_fields=["refunded_amount", "in_suspense", "status"])
        ledger.post(
            kind=LedgerTransaction.Kind.REFUND,
            idempotency_key=f"refund:{refund.refund_no}",
            legs=plan.legs,
            memo=reason,
            payment=payment,
            refund=refund,
        )
        # The bills it unpaid (and voided) in the dashboards' summary: one upsert, last.
        billing_summary.bills_moved(moves)
        first_item = payment.items.select_related("bill__community").first()
        audit.record(
            action=audit.Action.REFUND,
            actor=by,
            target=refund,
            centre_id=first_item.bill.community.centre_id if first_item else None,
            details={
                "payment": payment.out_trade_no,
                "refund_no": refund.refund_no,
                "amount": amount,
                "from_escrow": refund.from_escrow,
                "from_company": refund.from_company,
                "from_fund": refund.from_fund,
                "from_suspense": refund.from_suspense,
                "reason": reason,
            },
        )
        if plan.items:  # money a resident had paid for bills (and may have earned points for)
            payload = {
                "payment_id": payment.pk,
                "refund_id": refund.pk,
                "payer_id": payment.payer_id,
                "amount": f"{amount:.2f}",
                "fully_refunded": payment.status == Payment.Status.REFUNDED,
            }
            transaction.on_commit(lambda: events.payment_refunded.send(sender=Payment, **payload))
    return refund, True
