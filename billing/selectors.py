"""Reads for billing, scoped through community.selectors: a bill or payment outside the caller's
scope simply is not in these querysets, so it answers 404."""

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection
from django.db.models import Count, Exists, OuterRef, Prefetch, QuerySet, Sum
from django.utils.translation import gettext as _

from billing import chain
from billing.models import (
    Account,
    Bill,
    LedgerTransaction,
    Payment,
    PaymentItem,
    Payout,
    Posting,
    PublicFundSpend,
    Refund,
)
from billing.money import ZERO, fen, money_text
from community import selectors as community_selectors
from community.models import Community, Role, User

# Who may list bills and payments beyond their own: those who run the estate's money.
BILLING_STAFF_ROLES = (Role.CENTRE_ADMIN, Role.PROPERTY_STAFF)


def bill_list(*, user: User) -> QuerySet[Bill]:
    households = community_selectors.household_list(
        user=user, roles=[community_selectors.RESIDENT, *BILLING_STAFF_ROLES]
    )
    return (
        Bill.objects.filter(household__in=households.values("pk"), status__in=Bill.LIVE_STATUSES)
        .select_related("household__building", "community")
        .order_by("-period", "household_id")
    )


def household_paid_for_period(*, household, period) -> bool:
    """Has the household settled its bill for `period` (paid in full, or waived)? No bill yet,
    or one unpaid or partly paid, is False. For alliance: only paying households rate a month."""
    return Bill.objects.filter(
        household=household,
        period=str(period),
        status__in=[Bill.Status.PAID, Bill.Status.WAIVED],
    ).exists()


def households_paid_for_period(*, community, period) -> QuerySet:
    """The ids of the community's households that have settled their bill for `period` (as
    household_paid_for_period, for a whole estate in one query). For alliance's coverage."""
    return (
        Bill.objects.filter(
            community=community,
            period=str(period),
            status__in=[Bill.Status.PAID, Bill.Status.WAIVED],
        )
        .values("household_id")
        .distinct()
    )


def payment_list(*, user: User) -> QuerySet[Payment]:
    """The caller's own payments, plus every payment touching a community they administer."""
    administered = community_selectors.community_list(user=user, roles=[Role.CENTRE_ADMIN])
    own = Payment.objects.filter(payer=user)
    if user.is_superuser:
        scoped = Payment.objects.all()
    else:
        scoped = own | Payment.objects.filter(items__bill__community__in=administered.values("pk"))
    return (
        scoped.distinct()
        .select_related("payer")
        .prefetch_related(
            Prefetch(
                "items", queryset=PaymentItem.objects.select_related("bill__household__building")
            )
        )
        .order_by("-created_at", "-pk")
    )


def payment_get(*, user: User, payment_id) -> Payment:
    return payment_list(user=user).get(pk=payment_id)


def resident_bill_list(*, user: User, households) -> QuerySet[Bill]:
    """The bills of the resident's own households for the bills page, each with `in_payment`
    (inside a payment still in progress, so not payable now) and its lines prefetched."""
    open_items = PaymentItem.objects.filter(bill=OuterRef("pk"), is_open=True)
    qs = bill_list(user=user).filter(household__in=households)
    return qs.annotate(in_payment=Exists(open_items)).prefetch_related("lines")


def bill_payable_list(*, user: User, household_id) -> QuerySet[Bill]:
    """What "pay all" pays: the bills of one of the user's own households (as a resident) that
    are unpaid or partly paid and in no payment in progress, oldest first. Another household
    → Household.DoesNotExist (404)."""
    household = community_selectors.household_list(
        user=user, roles=[community_selectors.RESIDENT]
    ).get(pk=household_id)
    return (
        Bill.objects.filter(
            household=household, status__in=[Bill.Status.UNPAID, Bill.Status.PARTIALLY_PAID]
        )
        .exclude(payment_items__is_open=True)
        .order_by("period", "pk")
    )


def resident_payment_list(*, user: User) -> QuerySet[Payment]:
    """The resident's payment history: the payments they made online and those the desk
    recorded with them as the payer, newest first, with the bills each covered. Nobody else's,
    also not for a centre admin (who reads those in the admin)."""
    items = PaymentItem.objects.select_related("bill__household__building__community").order_by(
        "bill__period", "bill_id"
    )
    return (
        Payment.objects.filter(payer=user)
        .prefetch_related(Prefetch("items", queryset=items))
        .order_by("-created_at", "-pk")
    )


def payment_receipt_items(*, payment: Payment) -> QuerySet[PaymentItem]:
    """A receipt's rows: each bill the payment paid, with its household, estate and lines."""
    items = payment.items.select_related("bill__household__building__community").order_by(
        "bill__period", "bill_id"
    )
    return items.prefetch_related("bill__lines")


def payment_get_for_admin(*, user: User, payment_id) -> Payment:
    """A payment the user administers as a centre admin (refunds); others → 404."""
    administered = community_selectors.community_list(user=user, roles=[Role.CENTRE_ADMIN])
    qs = Payment.objects.all()
    if not user.is_superuser:
        qs = qs.filter(items__bill__community__in=administered.values("pk")).distinct()
    return qs.get(pk=payment_id)


@dataclass(frozen=True)
class ItemWhereabouts:
    """Where one bill's share of a payment is now. The parts add up to `amount`."""

    bill: Bill
    amount: Decimal
    held_in_escrow: Decimal  # includes held_back
    held_back: Decimal  # waiting for the month's scorecard
    paid_to_company: Decimal
    forfeited_to_fund: Decimal
    refunded: Decimal


def whereabouts(item: PaymentItem) -> ItemWhereabouts:
    to_company = item.paid_out_to_company + item.released_to_company - item.refunded_from_company
    in_fund = item.forfeited_to_fund - item.refunded_from_fund
    held = item.amount - item.refunded_amount - to_company - in_fund
    return ItemWhereabouts(
        bill=item.bill,
        amount=item.amount,
        held_in_escrow=held,
        held_back=item.held_back,
        paid_to_company=to_company,
        forfeited_to_fund=in_fund,
        refunded=item.refunded_amount,
    )


@dataclass(frozen=True)
class ItemOneLine:
    """What one bill's share of a payment did, for the one line on the payment page: "¥X: ¥Y
    paid to the company, ¥Z held back, ¥W released at score 0.87". A history, in the order it
    happened, so a refund is told after the rest (it may have taken back from the company)."""

    period: str
    amount: Decimal
    paid_out: bool  # the month's payout has run
    paid_to_company: Decimal  # at the payout (with any pass-through charges)
    held_back: Decimal  # what the payout held back and no refund took before the release
    released: Decimal | None  # to the company at the release; None before it
    forfeited: Decimal  # to the estate's public fund at the release
    score: Decimal | None  # the score the release followed
    held_in_escrow: Decimal  # still in escrow now
    refunded: Decimal

    @property
    def score_text(self) -> str:
        """The score as short as it is exact, with at least two decimals: 0.8700 → "0.87"."""
        if self.score is None:
            return ""
        score = self.score.normalize()
        return f"{score:.2f}" if score.as_tuple().exponent > -2 else f"{score}"

    def text(self) -> str:
        values = {
            "amount": money_text(self.amount),
            "period": self.period,
            "to_company": money_text(self.paid_to_company),
            "held_back": money_text(self.held_back),
            "held": money_text(self.held_in_escrow),
            "released": money_text(self.released),
            "forfeited": money_text(self.forfeited),
            "score": self.score_text,
            "refunded": money_text(self.refunded),
        }
        if self.refunded and self.refunded == self.amount and not self.paid_out:
            return _("%(amount)s: refunded to you") % values
        if not self.paid_out:
            if self.refunded:
                line = (
                    _(
                        "%(amount)s: %(held)s held in escrow until the company is paid for "
                        "%(period)s"
                    )
                    % values
                )
            else:
                return (
                    _("%(amount)s: held in escrow until the company is paid for %(period)s")
                    % values
                )
        elif self.released is None:
            line = (
                _(
                    "%(amount)s: %(to_company)s paid to the company, %(held_back)s held back until "
                    "the scorecard for %(period)s is final"
                )
                % values
            )
        elif self.forfeited:
            line = (
                _(
                    "%(amount)s: %(to_company)s paid to the company, %(held_back)s held back, "
                    "%(released)s released at score %(score)s, %(forfeited)s to the estate's "
                    "public fund"
                )
                % values
            )
        else:
            line = (
                _(
                    "%(amount)s: %(to_company)s paid to the company, %(held_back)s held back, "
                    "%(released)s released at score %(score)s"
                )
                % values
            )
        if not self.refunded:
            return line
        return _("%(line)s; %(refunded)s refunded to you") % {**values, "line": line}


def payment_one_lines(*, payment: Payment) -> list[ItemOneLine]:
    """One ItemOneLine per bill of a succeeded (or refunded) payment, oldest month first; none
    for a payment that took no money. Two queries: the items with their payouts, the releases."""
    if payment.status not in (Payment.Status.SUCCEEDED, Payment.Status.REFUNDED):
        return []
    items = list(payment.items.select_related("bill", "payout").order_by("bill__period", "pk"))
    paid_out = [item.payout for item in items if item.payout is not None]
    releases = {
        (release.community_id, release.period): release
        for release in Payout.objects.filter(
            kind=Payout.Kind.HOLDBACK_RELEASE,
            community_id__in={payout.community_id for payout in paid_out},
            period__in={payout.period for payout in paid_out},
        )
    }
    lines = []
    for item in items:
        where = whereabouts(item)
        release = (
            releases.get((item.payout.community_id, item.payout.period)) if item.payout else None
        )
        released = item.released_to_company if release is not None else None
        lines.append(
            ItemOneLine(
                period=item.bill.period,
                amount=item.amount,
                paid_out=item.payout is not None,
                paid_to_company=item.paid_out_to_company,
                held_back=item.held_back + item.released_to_company + item.forfeited_to_fund,
                released=released,
                forfeited=item.forfeited_to_fund,
                score=release.score if release is not None else None,
                held_in_escrow=where.held_in_escrow,
                refunded=item.refunded_amount,
            )
        )
    return lines


@dataclass(frozen=True)
class TrailStep:
    at: object  # datetime, or None for a state that is still ongoing
    kind: str  # received | paid_out | held_back | released | forfeited | refunded
    bill: Bill
    amount: Decimal
    source: str  # ledger account key the money left
    destination: str  # ledger account key (or "resident") the money went to


def payment_trail(*, payment: Payment) -> dict:
    """Where this payment's money is now, per bill, and every step that moved it there: received
    from the gateway into escrow, paid out to the company, held back, released or forfeited to
    the public fund, refunded. Amounts are this payment's own share of each step."""
    items = list(
        payment.items.select_related("bill__household__building", "payout").order_by("bill_id")
    )
    if payment.status not in (Payment.Status.SUCCEEDED, Payment.Status.REFUNDED):
        return {"items": [], "steps": []}
    by_bill = {item.bill_id: item for item in items}
    releases = {
        (p.community_id, p.period): p
        for p in Payout.objects.filter(
            kind=Payout.Kind.HOLDBACK_RELEASE,
            community_id__in={item.bill.community_id for item in items},
            period__in={item.payout.period for item in items if item.payout},
        )
    }
    postings = (
        Posting.objects.filter(transaction__payment=payment, bill_id__in=by_bill)
        .select_related("account", "transaction")
        .order_by("transaction__created_at", "pk")
    )
    clearing = f"clearing:{payment.gateway}"
    steps = []
    for posting in postings:
        item = by_bill[posting.bill_id]
        if posting.transaction.kind == LedgerTransaction.Kind.PAYMENT:
            steps.append(
                TrailStep(
                    posting.transaction.created_at,
                    "received",
                    item.bill,
                    -posting.amount,
                    clearing,
                    posting.account.key,
                )
            )
    for item in items:
        community_id = item.bill.community_id
        if item.payout is not None:
            steps.append(
                TrailStep(
                    item.payout.created_at,
                    "paid_out",
                    item.bill,
                    item.paid_out_to_company,
                    f"escrow:{community_id}",
                    f"company_payable:{community_id}",
                )
            )
            release = releases.get((community_id, item.payout.period))
            if release is not None:
                if item.released_to_company:
                    steps.append(
                        TrailStep(
                            release.created_at,
                            "released",
                            item.bill,
                            item.released_to_company,
                            f"escrow:{community_id}",
                            f"company_payable:{community_id}",
                        )
                    )
                if item.forfeited_to_fund:
                    steps.append(
                        TrailStep(
                            release.created_at,
                            "forfeited",
                            item.bill,
                            item.forfeited_to_fund,
                            f"escrow:{community_id}",
                            f"public_fund:{community_id}",
                        )
                    )
        if item.held_back:
            steps.append(
                TrailStep(
                    None,
                    "held_back",
                    item.bill,
                    item.held_back,
                    f"escrow:{community_id}",
                    f"escrow:{community_id}",
                )
            )
    for posting in postings:
        if posting.transaction.kind == LedgerTransaction.Kind.REFUND:
            steps.append(
                TrailStep(
                    posting.transaction.created_at,
                    "refunded",
                    by_bill[posting.bill_id].bill,
                    posting.amount,
                    posting.account.key,
                    "resident",
                )
            )
    return {"items": [whereabouts(item) for item in items], "steps": steps}


def escrow_summary(*, community: Community) -> dict[str, Decimal]:
    """The community's money, explainable to any resident: held in escrow (of which `withheld`
    waits for the scorecard), released to the company, forfeited to the public fund, refunded.
    held + released + forfeited_to_fund + refunded = everything ever collected."""
    balances = dict(Account.objects.filter(community=community).values_list("kind", "balance"))
    refunded = Posting.objects.filter(
        transaction__kind=LedgerTransaction.Kind.REFUND,
        account__community=community,
    ).aggregate(total=Sum("amount", default=ZERO))["total"]
    withheld = PaymentItem.objects.filter(bill__community=community).aggregate(
        total=Sum("held_back", default=ZERO)
    )["total"]
    # fen(): SQLite returns aggregates of decimals unquantized.
    return {
        "held": fen(-balances.get(Account.Kind.ESCROW, ZERO)),
        "released": fen(-balances.get(Account.Kind.COMPANY_PAYABLE, ZERO)),
        "withheld": fen(withheld),
        "forfeited_to_fund": fen(-balances.get(Account.Kind.PUBLIC_FUND, ZERO)),
        "refunded": fen(refunded),
    }


def refund_list(*, payment: Payment) -> QuerySet[Refund]:
    return payment.refunds.order_by("created_at")


def ledger_problems() -> list[str]:
    """Every way the ledger could be wrong, recomputed from the postings: a transaction whose
    postings do not sum to zero, one without postings, or an account whose cached balance
    differs from its postings. Empty when the ledger is sound (`manage.py check_ledger`).

    PostgreSQL sums numeric exactly, so it aggregates there; SQLite would sum as floating
    point, so there the sums are made in Python with Decimal."""
    if connection.vendor == "postgresql":
        transaction_totals = dict(
            LedgerTransaction.objects.annotate(total=Sum("postings__amount", default=ZERO))
            .exclude(total=0)
            .values_list("idempotency_key", "total")
        )
        account_totals = {
            a.key: (a.balance, a.computed)
            for a in Account.objects.annotate(computed=Sum("postings__amount", default=ZERO))
        }
    else:
        by_transaction, by_account = defaultdict(lambda: ZERO), defaultdict(lambda: ZERO)
        rows = Posting.objects.values_list("transaction__idempotency_key", "account_id", "amount")
        for key, account_id, amount in rows.iterator(chunk_size=5000):
            by_transaction[key] += amount
            by_account[account_id] += amount
        transaction_totals = {key: total for key, total in by_transaction.items() if total != 0}
        account_totals = {
            key: (balance, by_account[pk])
            for pk, key, balance in Account.objects.values_list("pk", "key", "balance")
        }
    problems = [
        f"transaction {key} does not balance: {total}" for key, total in transaction_totals.items()
    ]
    empty = LedgerTransaction.objects.filter(postings__isnull=True).values_list(
        "idempotency_key", flat=True
    )
    problems += [f"transaction {key} has no postings" for key in empty]
    problems += [
        f"account {key}: balance {balance}, postings sum {computed}"
        for key, (balance, computed) in account_totals.items()
        if balance != computed
    ]
    return problems + chain.chain_problems()


def _last_id_created_before(queryset, moment) -> int:
    """The id of the last row of `queryset` created before `moment`, 0 if none. Ids grow with
    creation, so two of these bound the rows created between two moments, read on the primary
    key (walking back from the newest row to the first one old enough) rather than through an
    index on created_at that every insert would have to write too."""
    return (
        queryset.filter(created_at__lt=moment).order_by("-pk").values_list("pk", flat=True).first()
        or 0
    )


def last_payment_id_created_before(moment) -> int:
    return _last_id_created_before(Payment.objects.all(), moment)


def last_refund_id_created_before(moment) -> int:
    return _last_id_created_before(Refund.objects.all(), moment)


def paid_on_time(bills, paid_day) -> bool:
    """What payment_succeeded calls on time: the payment settles at least one bill that fell
    due (not only prepaid months to come) and every bill by its due date. A prepayment alone
    earns the prepayment award, not the on-time one, or each prepaid month bought separately
    would be another on-time payment."""
    bills = list(bills)
    return any(not bill.is_prepaid for bill in bills) and all(
        paid_day <= bill.due_date for bill in bills
    )


def payments_in_suspense(*, community_ids) -> dict:
    """For a centre's dashboard: the payments of these estates whose money the gateway captured
    after their bills were settled otherwise (in the gateway's suspense account, owed back to
    the payer), how many and how much. One query."""
    totals = (
        Payment.objects.filter(
            in_suspense__gt=0,
            pk__in=PaymentItem.objects.filter(bill__community_id__in=community_ids).values(
                "payment_id"
            ),
        )
        .order_by()
        .aggregate(count=Count("pk"), amount=Sum("in_suspense"))
    )
    return {"count": totals["count"], "amount": fen(totals["amount"] or ZERO)}


# --- the community public fund (billing/public_fund.py) ---------------------------------------


def public_fund_balance(*, community: Community) -> Decimal:
    """What the community's public fund holds now (a positive amount; 0 before its first
    release). One query."""
    balance = (
        Account.objects.filter(key=f"public_fund:{community.pk}")
        .values_list("balance", flat=True)
        .first()
    )
    return -balance if balance else ZERO


def public_fund_spends(*, community: Community) -> list[dict]:
    """The spendings of the public fund put to the owners, newest first, cancelled ones left
    out: for the estate's public page. Each: id, status (proposed, approved, spent), amount,
    payee (the name; the account reference stays with the centre), purpose, the consultation
    (id, closes_at, and `passed`: True/False once tallied, None before) and posted_at. Two
    queries (the options come prefetched)."""
    spends = (
        PublicFundSpend.objects.filter(community=community)
        .exclude(status=PublicFundSpend.Status.CANCELLED)
        .select_related("consultation")
        .prefetch_related("consultation__options")
        .order_by("-created_at", "-pk")
    )
    rows = []
    for spend in spends:
        result = community_selectors.consultation_result(consultation=spend.consultation)
        rows.append(
            {
                "id": spend.pk,
                "status": spend.status,
                "amount": spend.amount,
                "payee": spend.payee_name,
                "purpose": spend.purpose,
                "consultation": spend.consultation_id,
                "closes_at": spend.consultation.closes_at,
                "passed": None if result is None else result.passed,
                "posted_at": spend.posted_at,
            }
        )
    return rows
