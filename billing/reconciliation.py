"""Billing's writes and reads for reconciliation with the gateways' daily statements, kept beside
services.py and selectors.py with their conventions: keyword-only arguments, a write runs in one
transaction.atomic() with its audit row, reads return querysets with select_related.

Each day a gateway publishes a statement of the trades paid and the refunds made that day. The
ledger is the other side: postings on the gateway's clearing account (`clearing:<gateway>`), a
payment or an unbooked capture (`capture_unbooked`, money the gateway took after the bills were
settled otherwise, held in suspense: it is in the books) as a positive line keyed by the
payment's out_trade_no and dated by its paid_at, a refund as a negative line keyed by its
refund_no and dated by its ledger transaction. Lines are matched by (kind, key); every key gets
one ReconciliationLine: matched, missing_in_ledger, missing_at_gateway or amount_differs.
"""

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Count, Exists, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from billing import services
from billing.gateways import get_gateway
from billing.gateways.base import GatewayError, SettlementLine
from billing.models import (
    LedgerTransaction,
    Payment,
    PaymentItem,
    Posting,
    Reconciliation,
    ReconciliationLine,
    Refund,
)
from billing.money import ZERO, fen, money_text
from community import audit
from community import selectors as community_selectors
from community.models import Role, RoleMembership, User
from community.services import notice_send

logger = logging.getLogger(__name__)

Kind = ReconciliationLine.Kind
Result = ReconciliationLine.Result
DIFFERENCES = (Result.MISSING_IN_LEDGER, Result.MISSING_AT_GATEWAY, Result.AMOUNT_DIFFERS)


@dataclass
class _Side:
    """One (kind, key) as one side sees it: the amount summed over its lines, and what names it."""

    amount: Decimal = ZERO
    out_trade_no: str = ""
    trade_no: str = ""
    refund_no: str = ""
    payment_id: int | None = None
    refund_id: int | None = None


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    """A statement day, midnight to midnight in the project's time zone (settings.TIME_ZONE)."""
    start = timezone.make_aware(
        datetime.combine(day, datetime.min.time()), timezone.get_default_timezone()
    )
    return start, start + timedelta(days=1)


def _statement_sides(statement: list[SettlementLine]) -> dict[tuple[str, str], _Side]:
    sides: dict[tuple[str, str], _Side] = {}
    for line in statement:
        if line.amount < 0:
            # A refund line without our number cannot be matched; it keeps a key of its own.
            key = (Kind.REFUND, line.refund_no or f"trade:{line.out_trade_no}")
        else:
            key = (Kind.PAYMENT, line.out_trade_no)
        side = sides.setdefault(
            key,
            _Side(out_trade_no=line.out_trade_no, trade_no=line.trade_no, refund_no=line.refund_no),
        )
        side.amount += line.amount
    return sides


def _clearing_postings(gateway: str) -> QuerySet[Posting]:
    return Posting.objects.filter(account__key=f"clearing:{gateway}")


def _payment_sides(postings: QuerySet[Posting]) -> dict[tuple[str, str], _Side]:
    rows = postings.values(
        "transaction__payment_id",
        "transaction__payment__out_trade_no",
        "transaction__payment__trade_no",
    ).annotate(total=Sum("amount"))
    sides: dict[tuple[str, str], _Side] = {}
    for row in rows:
        no = row["transaction__payment__out_trade_no"] or ""
        side = sides.setdefault(
            (Kind.PAYMENT, no),
            _Side(
                out_trade_no=no,
                trade_no=row["transaction__payment__trade_no"] or "",
                payment_id=row["transaction__payment_id"],
            ),
        )
        side.amount += fen(row["total"])
    return sides


def _ledger_sides(gateway: str, day: date) -> dict[tuple[str, str], _Side]:
    """The ledger's lines of the gateway's day: two grouped queries."""
    start, end = _day_bounds(day)
    clearing = _clearing_postings(gateway)
    payments = (
        clearing.filter(
            transaction__kind__in=[
                LedgerTransaction.Kind.PAYMENT,
                LedgerTransaction.Kind.CAPTURE_UNBOOKED,
            ]
        )
        # Dated by when the payer paid; a capture booked without a paid_at by when it was booked.
        .alias(paid=Coalesce("transaction__payment__paid_at", "transaction__created_at"))
        .filter(paid__gte=start, paid__lt=end)
    )
    sides = _payment_sides(payments)
    refunds = (
        clearing.filter(
            transaction__kind=LedgerTransaction.Kind.REFUND,
            transaction__created_at__gte=start,
            transaction__created_at__lt=end,
        )
        .values(
            "transaction__idempotency_key",
            "transaction__refund_id",
            "transaction__refund__refund_no",
            "transaction__payment_id",
            "transaction__payment__out_trade_no",
            "transaction__payment__trade_no",
        )
        .annotate(total=Sum("amount"))
    )
    for row in refunds:
        no = row["transaction__refund__refund_no"] or ""
        side = sides.setdefault(
            (Kind.REFUND, no or f"ledger:{row['transaction__idempotency_key']}"),
            _Side(
                out_trade_no=row["transaction__payment__out_trade_no"] or "",
                trade_no=row["transaction__payment__trade_no"] or "",
                refund_no=no,
                payment_id=row["transaction__payment_id"],
                refund_id=row["transaction__refund_id"],
            ),
        )
        side.amount += fen(row["total"])
    return sides


def _book_missing_captures(
    gateway: str, theirs: dict[tuple[str, str], _Side], ours: dict[tuple[str, str], _Side]
) -> list[int]:
    """Nothing captured may stay outside the books: a trade of ours the statement lists as paid
    while the ledger has nothing for it (a lost notification, a payment given up before the money
    arrived) is booked now, to its bills or to suspense. Each booking is the billing service's
    own transaction, committed whatever happens to this run afterwards. Returns the payment ids."""
    missing = [
        side.out_trade_no
        for key, side in theirs.items()
        if key[0] == Kind.PAYMENT and key not in ours and side.out_trade_no
    ]
    if not missing:
        return []
    payment_ids = list(
        Payment.objects.filter(gateway=gateway, out_trade_no__in=missing)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for payment_id in payment_ids:
        try:
            status = services.payment_book_from_gateway(payment_id=payment_id)
        except GatewayError as exc:  # the line stays missing_in_ledger, for the admins to see
            logger.warning("booking payment %s from %s failed: %s", payment_id, gateway, exc)
        else:
            logger.info("payment %s booked from %s's statement: %s", payment_id, gateway, status)
    return payment_ids


def _result(theirs: _Side | None, ours: _Side | None) -> str:
    if ours is None:
        return Result.MISSING_IN_LEDGER
    if theirs is None:
        return Result.MISSING_AT_GATEWAY
    return Result.MATCHED if theirs.amount == ours.amount else Result.AMOUNT_DIFFERS


def _lines(
    reconciliation: Reconciliation,
    theirs: dict[tuple[str, str], _Side],
    ours: dict[tuple[str, str], _Side],
) -> list[ReconciliationLine]:
    lines = []
    for key in sorted(set(theirs) | set(ours)):
        gateway_side, ledger_side = theirs.get(key), ours.get(key)
        # What names the line: the ledger's links, the gateway's trade number when it has one.
        known = ledger_side or gateway_side
        lines.append(
            ReconciliationLine(
                reconciliation=reconciliation,
                kind=key[0],
                result=_result(gateway_side, ledger_side),
                out_trade_no=known.out_trade_no,
                trade_no=(gateway_side.trade_no if gateway_side else "") or known.trade_no,
                refund_no=known.refund_no,
                gateway_amount=gateway_side.amount if gateway_side else None,
                ledger_amount=ledger_side.amount if ledger_side else None,
                payment_id=ledger_side.payment_id if ledger_side else None,
                refund_id=ledger_side.refund_id if ledger_side else None,
            )
        )
    _link(reconciliation.gateway, lines)
    return lines


def _link(gateway: str, lines: list[ReconciliationLine]) -> None:
    """Fill in the payment and refund of lines the ledger does not know, and every line's
    centre (the payment's bills' community's): three queries whatever the number of lines."""
    refund_nos = {line.refund_no for line in lines if line.refund_id is None and line.refund_no}
    if refund_nos:
        refunds = {
            refund_no: (pk, payment_id)
            for pk, refund_no, payment_id in Refund.objects.filter(
                refund_no__in=refund_nos, payment__gateway=gateway
            ).values_list("pk", "refund_no", "payment_id")
        }
        for line in lines:
            if line.refund_id is None and line.refund_no in refunds:
                line.refund_id, line.payment_id = refunds[line.refund_no]
    trade_nos = {line.out_trade_no for line in lines if line.payment_id is None}
    if trade_nos:
        payments = dict(
            Payment.objects.filter(gateway=gateway, out_trade_no__in=trade_nos).values_list(
                "out_trade_no", "pk"
            )
        )
        for line in lines:
            if line.payment_id is None:
                line.payment_id = payments.get(line.out_trade_no)
    payment_ids = {line.payment_id for line in lines if line.payment_id is not None}
    centres: dict[int, int] = {}
    for payment_id, centre_id in (
        PaymentItem.objects.filter(payment_id__in=payment_ids)
        .order_by("payment_id", "pk")
        .values_list("payment_id", "bill__community__centre_id")
    ):
        centres.setdefault(payment_id, centre_id)
    for line in lines:
        line.centre_id = centres.get(line.payment_id)


def _line_name(line: ReconciliationLine) -> str:
    return line.refund_no if line.kind == Kind.REFUND else line.out_trade_no


def _amount_text(amount: Decimal | None) -> str:
    return "—" if amount is None else money_text(amount)


def _report(reconciliation: Reconciliation, lines: list[ReconciliationLine]) -> None:
    """One audit line per centre whose lines differ (and one without a centre for trades the
    portal never issued), and a notice to each centre admin listing the differences they may
    see: their centres' lines and those without a centre. A rerun finding the same differences
    notifies nobody again; different ones are a new notice."""
    differing = [line for line in lines if line.result != Result.MATCHED]
    by_centre: dict[int | None, list[ReconciliationLine]] = defaultdict(list)
    for line in differing:
        by_centre[line.centre_id].append(line)
    day = reconciliation.day.isoformat()
    for centre_id in sorted(by_centre, key=lambda c: (c is None, c or 0)):
        group = by_centre[centre_id]
        audit.record(
            action=audit.Action.SETTLEMENT_DIFFERENCE,
            target=reconciliation,
            centre_id=centre_id,
            details={
                "gateway": reconciliation.gateway,
                "day": day,
                "trades": [line.out_trade_no for line in group if line.kind == Kind.PAYMENT],
                "refunds": [line.refund_no for line in group if line.kind == Kind.REFUND],
                "lines": [
                    {
                        "kind": line.kind,
                        "out_trade_no": line.out_trade_no,
                        "refund_no": line.refund_no,
                        "result": line.result,
                        "gateway_amount": line.gateway_amount,
                        "ledger_amount": line.ledger_amount,
                    }
                    for line in group
                ],
            },
        )
    admins: dict[int, set[int]] = defaultdict(set)
    for user_id, centre_id in RoleMembership.objects.filter(
        role=Role.CENTRE_ADMIN, centre__isnull=False
    ).values_list("user_id", "centre_id"):
        admins[user_id].add(centre_id)
    link = reverse("admin:billing_reconciliation_change", args=[reconciliation.pk])
    users = {user.pk: user for user in User.objects.filter(pk__in=admins, is_active=True)}
    for user_id, centre_ids in sorted(admins.items()):
        seen = [line for line in differing if line.centre_id in centre_ids or not line.centre_id]
        if not seen or user_id not in users:
            continue
        fingerprint = hashlib.sha256(
            "|".join(f"{line.kind}:{_line_name(line)}:{line.result}" for line in seen).encode()
        ).hexdigest()[:16]
        notice_send(
            user=users[user_id],
            title=_("Gateway statement differences: %(gateway)s, %(day)s")
            % {"gateway": reconciliation.gateway, "day": day},
            body="\n".join(
                _("%(number)s: %(result)s (gateway %(at_gateway)s, ledger %(in_ledger)s)")
                % {
                    "number": _line_name(line) or line.out_trade_no,
                    "result": line.get_result_display(),
                    "at_gateway": _amount_text(line.gateway_amount),
                    "in_ledger": _amount_text(line.ledger_amount),
                }
                for line in seen
            ),
            link=link,
            dedupe_key=f"reconciliation:{reconciliation.pk}:{fingerprint}",
        )


def _lock(gateway: str, day: date) -> Reconciliation:
    """The gateway-day's row, locked: two runs of one day write one after the other."""
    reconciliation, _created = Reconciliation.objects.select_for_update().get_or_create(
        gateway=gateway, day=day, defaults={"status": Reconciliation.Status.FAILED}
    )
    return reconciliation


def _record_failure(*, gateway: str, day: date, error: str) -> Reconciliation:
    with transaction.atomic():
        reconciliation = _lock(gateway, day)
        reconciliation.lines.all().delete()
        reconciliation.status = Reconciliation.Status.FAILED
        reconciliation.error = error[:300]
        reconciliation.matched = reconciliation.missing_in_ledger = 0
        reconciliation.missing_at_gateway = reconciliation.amount_differs = 0
        reconciliation.save()
    return reconciliation


def reconciliation_run(*, gateway: str, day: date) -> Reconciliation:
    """Fetch the gateway's statement for `day`, match it line by line with the ledger, and
    record the result, replacing the lines of an earlier run of the same day. A statement that
    cannot be fetched (GatewayError) is recorded as failed, with no lines; nothing is raised.

    Before matching, a trade of ours that the gateway captured and the ledger lacks is booked
    (billing.services.payment_book_from_gateway) and then matched like any other line. The
    statement is fetched, and those bookings made, before this run's own transaction opens, so
    no row stays locked while a gateway is asked something."""
    try:
        statement = get_gateway(gateway).settlement(day)
    except GatewayError as exc:
        logger.warning("the %s statement of %s could not be fetched: %s", gateway, day, exc)
        return _record_failure(gateway=gateway, day=day, error=str(exc) or repr(exc))
    theirs = _statement_sides(statement)
    booked = _book_missing_captures(gateway, theirs, _ledger_sides(gateway, day))
    with transaction.atomic():
        reconciliation = _lock(gateway, day)
        ours = _ledger_sides(gateway, day)
        if booked:
            # Matched again: whatever the booking put in the ledger for these trades, whichever
            # day the gateway's paid_at (or the booking) gives it.
            payments = _clearing_postings(gateway).filter(
                transaction__kind__in=[
                    LedgerTransaction.Kind.PAYMENT,
                    LedgerTransaction.Kind.CAPTURE_UNBOOKED,
                ],
                transaction__payment_id__in=booked,
            )
            for key, side in _payment_sides(payments).items():
                if key in theirs:
                    ours[key] = side
        lines = _lines(reconciliation, theirs, ours)
        reconciliation.lines.all().delete()
        ReconciliationLine.objects.bulk_create(lines)
        counts = defaultdict(int)
        for line in lines:
            counts[line.result] += 1
        reconciliation.matched = counts[Result.MATCHED]
        reconciliation.missing_in_ledger = counts[Result.MISSING_IN_LEDGER]
        reconciliation.missing_at_gateway = counts[Result.MISSING_AT_GATEWAY]
        reconciliation.amount_differs = counts[Result.AMOUNT_DIFFERS]
        reconciliation.error = ""
        reconciliation.status = (
            Reconciliation.Status.DIFFERENCES
            if reconciliation.differences
            else Reconciliation.Status.MATCHED
        )
        reconciliation.save()
        if reconciliation.differences:
            _report(reconciliation, lines)
    return reconciliation


# --- reads ------------------------------------------------------------------------------------


def reconciliation_line_scope(*, user: User) -> Q:
    """Which lines a user may see: a superuser all; a centre admin those of their centres and
    those without a centre (trades the portal never issued); anyone else none."""
    if not user.is_authenticated or not user.is_active:
        return Q(pk__in=[])
    if user.is_superuser:
        return Q()
    administered = community_selectors.community_list(user=user, roles=[Role.CENTRE_ADMIN])
    return Q(centre_id__in=administered.values("centre_id")) | (
        Q(centre__isnull=True) & Exists(administered)
    )


def reconciliation_line_list(*, user: User) -> QuerySet[ReconciliationLine]:
    return (
        ReconciliationLine.objects.filter(reconciliation_line_scope(user=user))
        .select_related("reconciliation", "payment", "refund", "centre")
        .order_by("-reconciliation__day", "reconciliation__gateway", "result", "pk")
    )


def reconciliation_differences(*, user: User, days: int = 30) -> QuerySet[ReconciliationLine]:
    """The unmatched lines of the last `days` statement days that the user may see, newest day
    first."""
    since = timezone.localdate() - timedelta(days=days)
    return reconciliation_line_list(user=user).filter(
        result__in=DIFFERENCES, reconciliation__day__gte=since
    )


def reconciliation_difference_summary(*, user: User, days: int = 30, newest: int = 5) -> dict:
    """For a dashboard: how many unmatched lines of each result the user may see over the last
    `days` days, and the newest few. Two queries."""
    differences = reconciliation_differences(user=user, days=days)
    counts = dict(
        differences.order_by()
        .values_list("result")
        .annotate(n=Count("pk"))
        .values_list("result", "n")
    )
    by_result = [(result, Result(result).label, counts.get(result, 0)) for result in DIFFERENCES]
    return {
        "days": days,
        "total": sum(counts.values()),
        "by_result": by_result,
        "newest": list(differences[:newest]) if counts else [],
    }
