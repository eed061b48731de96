"""Payments taken at the Linli centre's desk (cash, bank transfer, card), and the cashier's day.

Older residents pay at the centre. A centre admin at the desk (the cashier) records the payment
against bills they choose; it is booked at once through the same path as a gateway's capture
(billing.services._succeed) with the desk's clearing account of the method in place of the
gateway's: Dr desk:<centre>:<method>, Cr escrow, one leg per bill. So the escrow, payouts,
refunds, the trail and the points see a desk payment as any other.

A cashier's day closes with the cash counted in the drawer, which must equal what the ledger
says this cashier took in cash at this centre that local day (their cash payments less the cash
refunds they made); a closed day takes no more cash.

Serialisation: a desk payment and a day close of the same cashier both lock the cashier's user
row first (nothing else locks user rows), so a cash payment can never slip into a day while it
is being closed, and one form sent twice at once is recorded once. The unique index on
(recorded_by, idempotency_key) is the guarantee behind that: an insert that meets it replays.
"""

from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from billing import ledger, services
from billing.locks import accounts_for_update, bills_for_update, payment_for_update
from billing.models import (
    Account,
    Bill,
    DeskDayClose,
    LedgerTransaction,
    Payment,
    PaymentItem,
    Posting,
)
from billing.money import ZERO, fen, money_text
from community import audit
from community import selectors as community_selectors
from community.models import Centre, Household, Residency, Role, User
from config.api import Conflict

# Who works the desk: the centre's admins (there is no separate cashier role).
DESK_ROLES = (Role.CENTRE_ADMIN,)
# Methods that leave a bank's or card terminal's reference to check the money against.
METHODS_WITH_REFERENCE = (Payment.Method.TRANSFER, Payment.Method.CARD)
# The payer the desk records, by preference: the owner, else a tenant, else a family member.
_PAYER_PREFERENCE = (
    Residency.Relation.OWNER,
    Residency.Relation.TENANT,
    Residency.Relation.FAMILY,
)
HOUSEHOLD_SEARCH_LIMIT = 20
_MAX_ID = 2**63 - 1


# --- scope ------------------------------------------------------------------------------------


def desk_centres(*, user: User) -> QuerySet[Centre]:
    """The centres whose desk `user` may work: those of the communities they administer."""
    communities = community_selectors.community_list(user=user, roles=DESK_ROLES)
    return Centre.objects.filter(pk__in=communities.values("centre_id")).order_by("name", "pk")


def desk_check_cashier(*, user: User) -> None:
    """PermissionDenied (403) for someone who works no centre's desk."""
    if not desk_centres(user=user).exists():
        raise PermissionDenied(_("The desk is for the Linli centre's staff."))


def desk_household_list(*, cashier: User, building: str = "", unit: str = "") -> QuerySet:
    """Households of the cashier's centres whose building and unit contain what was typed, for
    the desk's search (at most HOUSEHOLD_SEARCH_LIMIT; nothing for an empty search)."""
    building, unit = building.strip(), unit.strip()
    if not building and not unit:
        return Household.objects.none()
    qs = community_selectors.household_list(user=cashier, roles=DESK_ROLES)
    if building:
        qs = qs.filter(building__name__icontains=building)
    if unit:
        qs = qs.filter(unit__icontains=unit)
    return qs.select_related("building__community__centre").order_by(
        "building__community__name", "building__name", "unit", "pk"
    )[:HOUSEHOLD_SEARCH_LIMIT]


def desk_household_get(*, cashier: User, household_id) -> Household:
    """A household of the cashier's centres; Household.DoesNotExist (404) for any other."""
    return (
        community_selectors.household_list(user=cashier, roles=DESK_ROLES)
        .select_related("building__community__centre")
        .get(pk=household_id)
    )


def desk_payer(*, household: Household) -> User | None:
    """Whom a desk payment of the household's bills is recorded for (and who earns its points):
    its owner living there today, else a tenant, else a family member; the longest-standing
    first. None when nobody lives there."""
    residencies = list(
        household.residencies.active().select_related("user").order_by("start_date", "pk")
    )
    for relation in _PAYER_PREFERENCE:
        for residency in residencies:
            if residency.relation == relation and residency.user.is_active:
                return residency.user
    return None


def desk_bill_list(*, household: Household) -> QuerySet[Bill]:
    """The household's bills still owed, oldest month first, each with `in_payment`: whether an
    online payment in progress holds it (the desk cannot take it meanwhile)."""
    return (
        Bill.objects.filter(
            household=household, status__in=[Bill.Status.UNPAID, Bill.Status.PARTIALLY_PAID]
        )
        .annotate(in_payment=Exists(PaymentItem.objects.filter(bill=OuterRef("pk"), is_open=True)))
        .order_by("period", "pk")
    )


# --- recording a payment ----------------------------------------------------------------------


class _Taken(Exception):
    """The desk payment's insert met a unique index: the key, or a bill in an open payment."""


def _today() -> date:
    return timezone.localdate(timezone=timezone.get_default_timezone())


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    """The local day (settings.TIME_ZONE) as an aware [start, end) pair."""
    zone = timezone.get_default_timezone()
    start = timezone.make_aware(datetime.combine(day, time.min), zone)
    end = timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min), zone)
    return start, end


def _lock_cashier(cashier: User) -> None:
    User.objects.select_for_update().filter(pk=cashier.pk).first()


def _desk_key(cashier: User, idempotency_key: str) -> str:
    # Namespaced by the cashier: Payment.idempotency_key is unique per payer as well, and the
    # payer's own online keys and other cashiers' keys must never collide with this one.
    return f"desk:{cashier.pk}:{idempotency_key}"[:100]


def _desk_replay(cashier: User, key: str, fingerprint: str) -> Payment | None:
    existing = Payment.objects.filter(recorded_by=cashier, idempotency_key=key).first()
    if existing is None:
        return None
    if existing.request_fingerprint != fingerprint:
        raise Conflict(_("This Idempotency-Key was used for a different request."))
    return existing


def _day_closed(cashier: User, centre: Centre, day: date) -> bool:
    return DeskDayClose.objects.filter(cashier=cashier, centre=centre, day=day).exists()


def _check_input(method: str, reference: str, bill_ids) -> str:
    if method not in Payment.DESK_METHODS:
        raise ValidationError({"method": _("Choose cash, bank transfer or card.")})
    reference = (reference or "").strip()
    if method in METHODS_WITH_REFERENCE and not reference:
        raise ValidationError(
            {"reference": _("Enter the bank's or card terminal's reference for this payment.")}
        )
    if len(reference) > Payment._meta.get_field("reference").max_length:
        raise ValidationError({"reference": _("The reference is too long.")})
    if not bill_ids:
        raise ValidationError({"bill_ids": _("Choose at least one bill.")})
    return reference


def desk_payment_record(
    *,
    cashier: User,
    household_id: int,
    bill_ids: list[int],
    method: str,
    reference: str,
    idempotency_key: str,
    fingerprint: str,
) -> tuple[Payment, bool]:
    """Record money taken at the desk for some of a household's bills, and book it at once:
    Dr the desk's account of the method, Cr escrow per bill, the bills paid, payment_succeeded
    announced (points). Returns (payment, created).

    The cashier must work the desk of the household's centre (anyone else: 404); every bill must
    be the household's (else 404) and still owed (paid, waived or void → 409; inside an online
    payment in progress → 409). Cash, transfer or card only (400); a transfer or card needs its
    reference (400). Nobody living in the household → 409 (a payment needs a payer). Cash after
    the cashier closed today's count → 409. The same Idempotency-Key with the same body returns
    the first payment, also when the two race; with a different body → 409."""
    reference = _check_input(method, reference, bill_ids)
    bill_ids = sorted({int(pk) for pk in bill_ids})
    if not all(0 < pk <= _MAX_ID for pk in bill_ids):  # no such row (and SQLite would overflow)
        raise Bill.DoesNotExist("bill not found")
    household = desk_household_get(cashier=cashier, household_id=household_id)
    centre = household.building.community.centre
    key = _desk_key(cashier, idempotency_key)
    existing = _desk_replay(cashier, key, fingerprint)
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            _lock_cashier(cashier)
            existing = _desk_replay(cashier, key, fingerprint)
            if existing is not None:  # the same form, sent again while the first was saved
                return existing, False
            if method == Payment.Method.CASH and _day_closed(cashier, centre, _today()):
                raise Conflict(
                    _("You have closed today's cash count; no more cash can be taken today.")
                )
            bills = bills_for_update(bill_ids)
            if len(bills) != len(bill_ids) or any(b.household_id != household.pk for b in bills):
                raise Bill.DoesNotExist("bill not found")
            for bill in bills:
                if bill.status in (Bill.Status.PAID, Bill.Status.WAIVED):
                    raise Conflict(
                        _("Bill %(period)s is already settled.") % {"period": bill.period}
                    )
                if bill.status == Bill.Status.VOID:
                    raise Conflict(
                        _("Bill %(period)s was a prepayment that expired; it is not owed.")
                        % {"period": bill.period}
                    )
            payer = desk_payer(household=household)
            if payer is None:
                raise Conflict(
                    _(
                        "Nobody is registered as living in %(household)s; link the owner or "
                        "tenant to the household before taking a payment."
                    )
                    % {"household": household}
                )
            payment = _desk_payment_open(
                cashier=cashier,
                payer=payer,
                bills=bills,
                method=method,
                reference=reference,
                key=key,
                fingerprint=fingerprint,
            )
            payment = payment_for_update(payment.pk)
            paid_at = timezone.now()
            services._succeed(
                payment,
                trade_no=f"DESK-{payment.pk}",
                paid_at=paid_at,
                clearing=ledger.desk_account(centre, method),
            )
            audit.record(
                action=audit.Action.DESK_PAYMENT,
                actor=cashier,
                target=payment,
                centre_id=centre.pk,
                details={
                    "payment": payment.out_trade_no,
                    "household_id": household.pk,
                    "payer_id": payer.pk,
                    "bills": [b.period for b in bills],
                    "amount": payment.amount,
                    "method": method,
                    "reference": reference,
                },
            )
    except _Taken as exc:
        replay = _desk_replay(cashier, key, fingerprint)
        if replay is not None:  # the same request, racing itself
            return replay, False
        raise Conflict(
            _(
                "One of these bills is in an online payment in progress; it can be paid at the "
                "desk once that payment is completed or has expired."
            )
        ) from exc
    return payment, True


def _desk_payment_open(
    *,
    cashier: User,
    payer: User,
    bills: list[Bill],
    method: str,
    reference: str,
    key: str,
    fingerprint: str,
) -> Payment:
    """The payment row and its items, as services._payment_open writes them for a gateway.
    Raises _Taken on a unique index (the cashier's key, or a bill inside another open payment);
    nothing but locks was written before, so the caller's whole transaction rolls back."""
    now = timezone.now()
    payment = Payment(
        payer=payer,
        gateway=Payment.DESK_GATEWAY,
        method=method,
        recorded_by=cashier,
        reference=reference,
        out_trade_no=services._new_trade_no(),
        amount=sum((bill.outstanding for bill in bills), ZERO),
        idempotency_key=key,
        request_fingerprint=fingerprint,
        expires_at=now,  # never pending: booked in the same transaction
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
    return payment


# --- the cashier's day ------------------------------------------------------------------------


def desk_day_expected(*, cashier: User, centre: Centre, day: date) -> tuple[Decimal, int]:
    """What the ledger says `cashier` took at `centre`'s desk on the local `day`: (the cash, net
    of the cash refunds they made, and how many desk payments they recorded by any method). One
    aggregate query over the postings of the centre's desk accounts."""
    start, end = _day_bounds(day)
    totals = Posting.objects.filter(
        account__kind=Account.Kind.DESK_CLEARING,
        account__centre=centre,
        transaction__created_at__gte=start,
        transaction__created_at__lt=end,
    ).aggregate(
        cash=Sum(
            "amount",
            filter=Q(account__method=Payment.Method.CASH)
            & (
                Q(
                    transaction__kind=LedgerTransaction.Kind.PAYMENT,
                    transaction__payment__recorded_by=cashier,
                )
                | Q(
                    transaction__kind=LedgerTransaction.Kind.REFUND,
                    transaction__refund__created_by=cashier,
                )
            ),
        ),
        payments=Count(
            "transaction",
            filter=Q(
                transaction__kind=LedgerTransaction.Kind.PAYMENT,
                transaction__payment__recorded_by=cashier,
            ),
            distinct=True,
        ),
    )
    return fen(totals["cash"] or ZERO), totals["payments"]


def desk_day_get(*, cashier: User, centre: Centre, day: date) -> DeskDayClose | None:
    return DeskDayClose.objects.filter(cashier=cashier, centre=centre, day=day).first()


def desk_day_close(
    *, cashier: User, centre: Centre, counted_cash: Decimal, note: str = ""
) -> DeskDayClose:
    """Close the cashier's day (today, local) at the centre's desk with the cash counted in the
    drawer. The count must equal the ledger's figure (desk_day_expected): otherwise 409, with
    both figures, and nothing is written (the table's check constraint holds it too). Closing
    twice → 409. A centre the cashier does not work → 404. After closing, the desk takes no more
    cash from this cashier today."""
    if isinstance(counted_cash, float):
        raise ValidationError({"counted_cash": _("Enter the amount in yuan.")})
    counted = fen(counted_cash)
    centre = desk_centres(user=cashier).get(pk=centre.pk)
    day = _today()
    with transaction.atomic():
        _lock_cashier(cashier)
        # And the drawer's ledger account, so a cash refund being booked now is seen or waits.
        drawer = ledger.desk_account(centre, Payment.Method.CASH)
        accounts_for_update([drawer.pk])
        if _day_closed(cashier, centre, day):
            raise Conflict(_("You have already closed today's cash count."))
        expected, payments = desk_day_expected(cashier=cashier, centre=centre, day=day)
        if counted != expected:
            raise Conflict(
                _(
                    "The cash counted, %(counted)s, does not match the %(expected)s the ledger "
                    "shows for your cash payments today; count again."
                )
                % {"counted": money_text(counted), "expected": money_text(expected)}
            )
        try:
            with transaction.atomic():
                closed = DeskDayClose.objects.create(
                    cashier=cashier,
                    centre=centre,
                    day=day,
                    expected_cash=expected,
                    counted_cash=counted,
                    payments=payments,
                    note=(note or "").strip()[:200],
                )
        except IntegrityError as exc:
            raise Conflict(_("You have already closed today's cash count.")) from exc
        audit.record(
            action=audit.Action.DESK_DAY_CLOSED,
            actor=cashier,
            target=closed,
            centre_id=centre.pk,
            details={
                "day": day.isoformat(),
                "expected_cash": expected,
                "counted_cash": counted,
                "payments": payments,
            },
        )
    return closed


# --- reads for the desk's pages ---------------------------------------------------------------


def _with_items(qs: QuerySet[Payment]) -> QuerySet[Payment]:
    return qs.select_related("payer", "recorded_by").prefetch_related(
        Prefetch(
            "items",
            queryset=PaymentItem.objects.select_related(
                "bill__household__building__community__centre"
            ).order_by("bill__period", "pk"),
        )
    )


def desk_payment_list(
    *, user: User, day: date | None = None, centre: Centre | None = None
) -> QuerySet[Payment]:
    """The desk payments `user` recorded (on the local `day`, at `centre`, if given), newest
    first."""
    qs = Payment.objects.filter(gateway=Payment.DESK_GATEWAY, recorded_by=user)
    if day is not None:
        start, end = _day_bounds(day)
        qs = qs.filter(paid_at__gte=start, paid_at__lt=end)
    if centre is not None:
        qs = qs.filter(
            pk__in=PaymentItem.objects.filter(bill__community__centre=centre).values("payment_id")
        )
    return _with_items(qs).order_by("-paid_at", "-pk")


def desk_receipt_get(*, user: User, payment_id) -> Payment:
    """A desk payment to print or reprint a receipt for: one of the communities `user` works the
    desk of (any of the centre's staff may reprint it). Payment.DoesNotExist (404) otherwise,
    and for a payment that was not taken at the desk."""
    qs = Payment.objects.filter(
        gateway=Payment.DESK_GATEWAY,
        status__in=[Payment.Status.SUCCEEDED, Payment.Status.REFUNDED],
    )
    if not user.is_superuser:
        communities = community_selectors.community_list(user=user, roles=DESK_ROLES)
        qs = qs.filter(
            pk__in=PaymentItem.objects.filter(bill__community__in=communities.values("pk")).values(
                "payment_id"
            )
        )
    return _with_items(qs).get(pk=payment_id)
