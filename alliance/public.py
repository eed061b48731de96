"""An estate's public transparency page (/estates/<public_token>/): a year of its money, bills,
tickets and scorecards, for anyone, without signing in. Reads only: the figures come from
billing's ledger, repairs' tickets and alliance's scorecards, so the page lives in alliance, the
latest app that reads them all.

Every money figure of a month is a sum of ledger postings on the estate's own accounts
(escrow:<id>, company_payable:<id>, public_fund:<id>), picked by the ledger transaction's kind
and by the month it concerns:

- collected: money paid into escrow for the month's bills (−Σ escrow postings of `payment`
  transactions whose bill is of the month), before refunds;
- refunded: money paid back for the month's bills (Σ postings of `refund` transactions whose
  bill is of the month, on any of the three accounts: a refund comes out of wherever the money
  was);
- paid to the company: the month's payout (−Σ company_payable postings of the `payout`
  transaction of the month's regular Payout; it also pays money that came in late for earlier
  months not yet paid out);
- held back: what that payout kept in escrow for the scorecard (the regular Payout's
  `held_back`: holding back moves no money, so it is the payout's record, not a posting);
- released / forfeited: the month's hold-back release, to the company (−Σ company_payable
  postings) and to the estate's public fund (−Σ public_fund postings) of the
  `holdback_release` transaction of the month;
- in escrow at the month's end: −Σ escrow postings made before the next month began
  (Asia/Shanghai), the balance the centre held then.

No personal data: the figures are sums and counts per estate and month; nothing here reads a
household, a resident or a flat, and the page shows none.

Cached: `estate_figures` is cached per estate and month for `CACHE_SECONDS` (5 minutes). A
public page behind a lobby QR code is read far more than the ledger changes, and a refund or a
payout showing five minutes late is harmless; a short TTL needs no invalidation wired into
billing, repairs and alliance (which could not import this module anyway: it is later in the
order). `CACHE_VERSION` is bumped when the cached shape changes. A cache miss costs a fixed
number of queries whatever the estate's size or the number of months (a test counts them).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.core.cache import cache
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncMonth
from django.utils import timezone

from alliance import trust
from alliance.kpis import kpi_grid, rate
from alliance.models import COMPONENTS, Component, Scorecard
from billing import selectors as billing_selectors
from billing.models import Account, LedgerTransaction, Payout, Posting
from billing.money import ZERO, fen
from community.models import Community
from community.periods import Period
from repairs import selectors as repairs_selectors
from repairs.models import Status, Ticket

MONTHS = 12
CACHE_SECONDS = 300
CACHE_VERSION = 2

_KIND = LedgerTransaction.Kind
_ACCOUNT = Account.Kind


@dataclass(frozen=True)
class MonthFigures:
    period: Period
    collected: Decimal
    refunded: Decimal
    paid_to_company: Decimal
    held_back: Decimal
    released: Decimal
    forfeited: Decimal
    in_escrow: Decimal
    bills_due: int
    bills_paid: int
    tickets_filed: int
    tickets_handled: int
    sla_missed: int
    score: Decimal | None
    score_final: bool

    @property
    def collection_rate(self) -> Decimal:
        return rate(self.bills_paid, self.bills_due)


@dataclass(frozen=True)
class EstateFigures:
    community_id: int
    until: Period
    months: list[MonthFigures]  # newest first
    in_escrow_now: Decimal
    public_fund_now: Decimal
    scorecard: dict | None  # the newest scorecard with a score, with its components
    totals: dict[str, Decimal] = field(default_factory=dict)
    # The public fund's spendings put to the owners (billing.selectors.public_fund_spends),
    # newest first.
    fund_spends: list[dict] = field(default_factory=list)


def community_by_token(token: str) -> Community:
    """The estate whose public page this is; Community.DoesNotExist for an unknown token."""
    return Community.objects.only("pk", "name", "address", "public_token").get(public_token=token)


def _money(value) -> Decimal:
    # SQLite hands decimals' sums back unquantized (or as int); PostgreSQL as exact numerics.
    return fen(Decimal(str(value))) if value is not None else ZERO


def estate_figures(*, community: Community, until: Period | None = None) -> EstateFigures:
    """The page's figures, from the cache when they are there (see the module docstring)."""
    until = until or Period.current()
    key = f"public-estate:v{CACHE_VERSION}:{community.pk}:{until}"
    figures = cache.get(key)
    if figures is None:
        figures = compute_estate_figures(community=community, until=until)
        cache.set(key, figures, CACHE_SECONDS)
    return figures


def compute_estate_figures(*, community: Community, until: Period) -> EstateFigures:
    """The figures of the `MONTHS` months up to `until`, straight from the database: 11 queries
    (13 with the fund's spendings) whatever the number of months, bills, payments or tickets."""
    periods = [until.plus(-n) for n in range(MONTHS - 1, -1, -1)]
    names = [str(p) for p in periods]
    first_start, _ = repairs_selectors.period_bounds(periods[0])
    _, last_end = repairs_selectors.period_bounds(periods[-1])
    postings = Posting.objects.filter(account__community=community).order_by()

    # By the month of the bill: payments in, refunds out.
    by_bill = defaultdict(lambda: ZERO)
    for account_kind, kind, period, total in (
        postings.filter(transaction__kind__in=[_KIND.PAYMENT, _KIND.REFUND], bill__period__in=names)
        .values("account__kind", "transaction__kind", "bill__period")
        .annotate(total=Sum("amount"))
        .values_list("account__kind", "transaction__kind", "bill__period", "total")
    ):
        by_bill[(kind, account_kind, period)] += _money(total)

    # By the month of the payout: to the company, released, forfeited.
    by_payout = defaultdict(lambda: ZERO)
    for account_kind, kind, period, total in (
        postings.filter(
            transaction__kind__in=[_KIND.PAYOUT, _KIND.HOLDBACK_RELEASE],
            transaction__payout__period__in=names,
        )
        .values("account__kind", "transaction__kind", "transaction__payout__period")
        .annotate(total=Sum("amount"))
        .values_list("account__kind", "transaction__kind", "transaction__payout__period", "total")
    ):
        by_payout[(kind, account_kind, period)] += _money(total)

    held_back = {
        period: _money(amount)
        for period, amount in Payout.objects.filter(
            community=community, kind=Payout.Kind.REGULAR, period__in=names
        ).values_list("period", "held_back")
    }

    # The escrow's balance at each month's end: the balance now less what was posted since.
    balances = dict(Account.objects.filter(community=community).values_list("kind", "balance"))
    escrow_now = _money(-balances.get(_ACCOUNT.ESCROW, ZERO))
    fund_now = _money(-balances.get(_ACCOUNT.PUBLIC_FUND, ZERO))
    escrow_postings = postings.filter(account__kind=_ACCOUNT.ESCROW, created_at__gte=first_start)
    posted_in = {
        (month.year, month.month): _money(total)
        for month, total in escrow_postings.annotate(
            month=TruncMonth("created_at", tzinfo=timezone.get_default_timezone())
        )
        .values("month")
        .annotate(total=Sum("amount"))
        .values_list("month", "total")
    }
    after_window = _money(
        escrow_postings.filter(created_at__gte=last_end).aggregate(total=Sum("amount"))["total"]
    )

    kpis = kpi_grid(community_ids=[community.pk], until=until, months=MONTHS)
    sla_missed = _sla_missed(community, first_start, last_end)
    cards = {
        card.period: card
        for card in Scorecard.objects.filter(
            community=community, is_current=True, period__in=names
        ).order_by()
    }

    months = []
    # Walk back from now: the balance at a month's end is the next month's end balance less
    # what the next month posted (postings are debit +, so escrow's balance is −Σ).
    balance_at_end = escrow_now + after_window
    for period in reversed(periods):
        name = str(period)
        k = kpis[(community.pk, period)]
        card = cards.get(name)
        months.append(
            MonthFigures(
                period=period,
                collected=-by_bill[(_KIND.PAYMENT, _ACCOUNT.ESCROW, name)],
                refunded=sum(
                    (
                        by_bill[(_KIND.REFUND, account, name)]
                        for account in (
                            _ACCOUNT.ESCROW,
                            _ACCOUNT.COMPANY_PAYABLE,
                            _ACCOUNT.PUBLIC_FUND,
                        )
                    ),
                    ZERO,
                ),
                paid_to_company=-by_payout[(_KIND.PAYOUT, _ACCOUNT.COMPANY_PAYABLE, name)],
                held_back=held_back.get(name, ZERO),
                released=-by_payout[(_KIND.HOLDBACK_RELEASE, _ACCOUNT.COMPANY_PAYABLE, name)],
                forfeited=-by_payout[(_KIND.HOLDBACK_RELEASE, _ACCOUNT.PUBLIC_FUND, name)],
                in_escrow=balance_at_end,
                bills_due=k.bills_due,
                bills_paid=k.bills_paid,
                tickets_filed=k.tickets_total,
                tickets_handled=k.tickets_handled,
                sla_missed=sla_missed.get(name, 0),
                score=card.score if card else None,
                score_final=bool(card and card.finalized_at),
            )
        )
        balance_at_end += posted_in.get((period.year, period.month), ZERO)

    newest = next(
        (cards[str(p)] for p in reversed(periods) if str(p) in cards and cards[str(p)].score),
        None,
    )
    totals = {
        name: sum((getattr(m, name) for m in months), ZERO)
        for name in ("collected", "refunded", "paid_to_company", "released", "forfeited")
    }
    return EstateFigures(
        community_id=community.pk,
        until=until,
        months=months,
        in_escrow_now=escrow_now,
        public_fund_now=fund_now,
        scorecard=_scorecard(newest),
        totals=totals,
        fund_spends=_fund_spends(community),
    )


def _fund_spends(community: Community) -> list[dict]:
    """Every spending of the public fund put to the owners, for the page (two queries)."""
    return list(billing_selectors.public_fund_spends(community=community))


def _sla_missed(community: Community, start, end) -> dict[str, int]:
    """{period: tickets filed in the month (not cancelled) that missed a deadline}: one query,
    the same month and filter as repairs.selectors.handling_figures."""
    rows = (
        Ticket.objects.filter(community=community, created_at__gte=start, created_at__lt=end)
        .exclude(status=Status.CANCELLED)
        .order_by()
        .annotate(month=TruncMonth("created_at", tzinfo=timezone.get_default_timezone()))
        .values("month")
        .annotate(missed=Count("pk", filter=Q(sla_breached=True)))
        .values_list("month", "missed")
    )
    return {str(Period(month.year, month.month)): missed for month, missed in rows}


def _scorecard(card: Scorecard | None) -> dict | None:
    """The card as plain data for the cache: its score, and each component with its value, its
    weight and the share it had in the score (weights of components without data are left out
    and the others renormalised, as alliance.scoring does)."""
    if card is None:
        return None
    weights = {name: Decimal(value) for name, value in (card.weights or {}).items()}
    present = sum(
        (weights.get(name, ZERO) for name in COMPONENTS if getattr(card, name) is not None),
        Decimal(0),
    )
    components = []
    for name in COMPONENTS:
        value = getattr(card, name)
        weight = weights.get(name)
        share = weight / present if value is not None and weight is not None and present else None
        components.append({"name": name, "value": value, "weight": weight, "share": share})
    return {
        "period": Period.parse(card.period),
        "score": card.score,
        "final": card.finalized_at is not None,
        "components": components,
        "rating_count": card.rating_count,
        "inspection_count": card.inspection_count,
        "ticket_count": card.ticket_count,
        "tickets_within_sla": card.tickets_within_sla,
        # How far to trust it, and the company's appeals with the mediator's decisions: public
        # as on the scorecard page, but only the count of rating bursts (their buildings and
        # times are for the centre, the company and the mediators).
        "trust": trust.scorecard_trust(scorecard=card),
        "appeals": list(trust.scorecard_appeals(scorecard=card)),
    }


def component_label(name: str) -> str:
    return str(Component(name).label)
