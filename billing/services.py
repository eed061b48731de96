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
from django.utils import timezone
from django.utils.translation import gettext as _

from billing import events, ledger
from billing.gateways import get_gateway
from billing.gateways.base import GatewayError, NotificationRejected, PaymentRequest
from billing.locks import bills_for_update, payment_for_update
from billing.models import (
    Bill,
    LedgerTransaction,
    Payment,
    PaymentItem,
    Payout,
    Refund,
)
from billing.money import ZERO, fee, fen, split
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
            ON CONFLICT (household_id, period) DO NOTHING
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
                    body=_("%(household)s: %(amount)s yuan was due on %(due)s.")
                    % {
                        "household": bill.household,
                        "amount": f"{bill.outstanding:.2f}",
                        "due": bill.due_date.isoformat(),
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


def _replay(payer: User, key: str, fingerprint: str) -> Payment | None:
    existing = Payment.objects.filter(payer=payer, idempotency_key=key).first()
    if existing is None:
        return None
    if existing.request_fingerprint != fingerprint:
        raise Conflict(_("This Idempotency-Key was used for a different request."))
    return existing


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
    with transaction.atomic():
        bills = bills_for_update(bill_ids)
        households = {b.household_id for b in bills}
        if len(bills) != len(set(bill_ids)) or visible.filter(pk__in=households).count() != len(
            households
        ):
            raise Bill.DoesNotExist("bill not found")
        for bill in bills:
            if bill.status in (Bill.Status.PAID, Bill.Status.WAIVED):
                raise Conflict(_("Bill %(period)s is already settled.") % {"period": bill.period})
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
            with transaction.atomic():
                payment.save()
                PaymentItem.objects.bulk_create(
                    [PaymentItem(payment=payment, bill=b, amount=b.outstanding) for b in bills]
                )
        except IntegrityError as exc:
            replay = _replay(payer, idempotency_key, fingerprint)
            if replay is not None:  # the same request, racing itself
                return replay, False
            raise Conflict(_("One of these bills is already in a payment in progress.")) from exc
        subject = _("Property fee") + " " + ", ".join(sorted({b.period for b in bills}))
        payment.pay_url = gateway_impl.create(
            PaymentRequest(
                out_trade_no=payment.out_trade_no,
                amount=amount,
                subject=subject[:120],
                notify_url=settings.SITE_URL + reverse("payment-notify", args=[gateway]),
                return_url=settings.SITE_URL + reverse("payment-detail-page", args=[payment.pk]),
            )
        )
        payment.save(update_fields=["pay_url"])
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


def _succeed(payment: Payment, *, trade_no: str, paid_at: datetime) -> None:
    """Record the money as received: bills paid, escrow credited. Caller holds the payment lock."""
    items = list(payment.items.select_related("bill__community").order_by("bill_id"))
    bills = {b.pk: b for b in bills_for_update([item.bill_id for item in items])}
    for item in items:
        bill = bills[item.bill_id]
        if bill.status == Bill.Status.WAIVED or bill.paid_amount + item.amount > bill.amount:
            raise Conflict(f"bill {bill.pk} can no longer take {item.amount}")
        bill.paid_amount += item.amount
        bill.status = Bill.status_for(amount=bill.amount, paid_amount=bill.paid_amount)
        bill.save(update_fields=["paid_amount", "status"])
    payment.status = Payment.Status.SUCCEEDED
    payment.trade_no = trade_no
    payment.paid_at = paid_at
    payment.failure_reason = ""
    payment.save(update_fields=["status", "trade_no", "paid_at", "failure_reason"])
    _close_items(payment)
    legs = [ledger.Leg(ledger.clearing_account(payment.gateway), payment.amount)]
    legs += [
        ledger.Leg(
            ledger.escrow_account(bills[item.bill_id].community),
            -item.amount,
            bill=bills[item.bill_id],
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
        try:
            with transaction.atomic():
                _succeed(payment, trade_no=notification.trade_no, paid_at=notification.paid_at)
        except Conflict:
            # Paid at the gateway after the payment had expired and its bills were paid some
            # other way: the money is real, so the centre must refund it by hand.
            payment.failure_reason = "paid after expiry: refund required"
            payment.trade_no = notification.trade_no
            payment.save(update_fields=["failure_reason", "trade_no"])
            communities = payment.items.values("bill__community_id")
            _notify_centre_admins(
                communities,
                title=_("A payment needs a manual refund"),
                body=_("Trade %(no)s was paid after it had expired.")
                % {"no": payment.out_trade_no},
                key=f"late-payment:{payment.pk}",
            )
    return payment


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
            _succeed(payment, trade_no=status.trade_no, paid_at=status.paid_at)
        elif status.status in ("closed", "unknown") or expire:
            _fail(payment, "expired" if expire else "closed at the gateway")
        return payment.status


# --- payouts ----------------------------------------------------------------------------------


def _lock_community(community: Community) -> None:
    # Payouts and releases of one community run one at a time.
    Community.objects.select_for_update().get(pk=community.pk)


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
        payout = Payout.objects.create(
            community=community,
            period=str(period),
            kind=Payout.Kind.REGULAR,
            holdback_share=agreement.holdback_share,
        )
        legs = []
        for item in items:
            net = item.amount - item.refunded_amount
            to_company, held = split(net, 1 - agreement.holdback_share)
            item.payout = payout
            item.paid_out_to_company, item.held_back = to_company, held
            payout.collected += net
            payout.to_company += to_company
            payout.held_back += held
        PaymentItem.objects.bulk_update(items, ["payout", "paid_out_to_company", "held_back"])
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
        items = list(regular.items.select_for_update(of=("self",)).order_by("pk"))
        release = Payout.objects.create(
            community=community,
            period=str(period),
            kind=Payout.Kind.HOLDBACK_RELEASE,
            holdback_share=regular.holdback_share,
            score=score,
        )
        for item in items:
            to_company, to_fund = split(item.held_back, score)
            release.held_back += item.held_back
            release.to_company += to_company
            release.to_public_fund += to_fund
            item.released_to_company, item.forfeited_to_fund = to_company, to_fund
            item.held_back = ZERO
        PaymentItem.objects.bulk_update(
            items, ["released_to_company", "forfeited_to_fund", "held_back"]
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
    return release, True


# --- refunds ----------------------------------------------------------------------------------


@dataclass
class _Take:
    item: PaymentItem
    from_escrow: Decimal
    from_company: Decimal


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
                _("At most %(left)s yuan of this payment can still be refunded.")
                % {"left": f"{payment.amount - payment.refunded_amount:.2f}"}
            )
        items = list(
            payment.items.select_for_update(of=("self",))
            .select_related("bill__community", "payout")
            .order_by("-bill__period", "-pk")
        )
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
            refund_no="R" + _new_trade_no(),
            amount=amount,
            reason=reason,
            status=Refund.Status.SUCCEEDED,
            created_by=by,
            idempotency_key=idempotency_key,
            request_fingerprint=fingerprint,
            from_escrow=sum((t.from_escrow for t in takes), ZERO),
            from_company=sum((t.from_company for t in takes), ZERO),
        )
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
        ledger.post(
            kind=LedgerTransaction.Kind.REFUND,
            idempotency_key=f"refund:{refund.refund_no}",
            legs=legs,
            memo=reason,
            payment=payment,
            refund=refund,
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
        admins = RoleMembership.objects.filter(role=Role.CENTRE_ADMIN).select_related("user")
        for membership in admins:
            notice_send(
                user=membership.user,
                title=_("Settlement differences on %(day)s") % {"day": day.isoformat()},
                body="\n".join(problems),
                dedupe_key=f"settlement:{gateway}:{day.isoformat()}",
            )
    return problems
