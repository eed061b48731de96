"""Reads for points, scoped through community.selectors: a reward outside the resident's centres,
someone else's redemption or a community the user cannot see simply is not in these querysets,
so it answers 404."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date

from django.db.models import (
    CharField,
    Exists,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Sum,
    Value,
)
from django.db.models.functions import Cast, Coalesce, TruncDate
from django.utils import timezone

from billing import selectors as billing_selectors
from billing.models import Payment, PaymentItem, Refund
from community import selectors as community_selectors
from community.models import Community, PropertyCompany, Residency, Role, RoleMembership, User
from community.periods import Period
from points.labels import Level, level_for
from points.models import (
    USER_CURRENCIES,
    Balance,
    Currency,
    Entry,
    Event,
    Holder,
    Redemption,
    Reward,
    Rule,
)

# The awards a payment_succeeded event earns (and a refund takes back).
PAYMENT_EVENTS = (Event.PAYMENT_ON_TIME, Event.PREPAYMENT)

HISTORY_LIMIT = 100
LEADERBOARD_SIZE = 20


def _memberships(user: User, role: str) -> QuerySet[RoleMembership]:
    return community_selectors.membership_list_for_user(user=user).filter(role=role)


def rule_in_force(*, event: str, on: date) -> Rule | None:
    """The rule for `event` on a day (at most one: see Rule)."""
    return (
        Rule.objects.filter(event=event, active_from__lte=on)
        .filter(Q(active_to__isnull=True) | Q(active_to__gte=on))
        .order_by("-active_from")
        .first()
    )


def rule_list() -> QuerySet[Rule]:
    return Rule.objects.order_by("event", "-active_from")


# --- balances and history ---------------------------------------------------------------------


def holder_of_user(*, user: User) -> Holder | None:
    return Holder.objects.filter(user=user).first()


def balances_of(holder: Holder | None) -> dict[str, int]:
    """Every currency of the holder with its balance (0 for a holder not created yet)."""
    if holder is None:
        return {currency: 0 for currency in USER_CURRENCIES}
    found = dict(holder.balances.values_list("currency", "amount"))
    return {currency: found.get(currency, 0) for currency in holder.currencies}


def entry_list(*, holder: Holder | None) -> QuerySet[Entry]:
    if holder is None:
        return Entry.objects.none()
    return Entry.objects.filter(holder=holder).order_by("-occurred_at", "-pk")


@dataclass
class ResidentPoints:
    holder: Holder | None
    reputation: int
    contribution: int
    level: Level


def resident_points(*, user: User) -> ResidentPoints:
    holder = holder_of_user(user=user)
    balances = balances_of(holder)
    reputation = balances[Currency.REPUTATION]
    return ResidentPoints(
        holder=holder,
        reputation=reputation,
        contribution=balances[Currency.CONTRIBUTION],
        level=level_for(reputation),
    )


@dataclass
class CompanyPoints:
    company: PropertyCompany
    holder: Holder | None
    reward_points: int
    entries: list[Entry] = field(default_factory=list)


def company_points_list(*, user: User, history: int = HISTORY_LIMIT) -> list[CompanyPoints]:
    """The reward points of each company the user works for as property staff (all companies
    for a superuser), with the latest entries."""
    companies = PropertyCompany.objects.order_by("name")
    if not user.is_superuser:
        staffed = _memberships(user, Role.PROPERTY_STAFF)
        companies = companies.filter(pk__in=staffed.values("company_id"))
    result = []
    for company in companies.select_related("points_holder")[:20]:
        holder = getattr(company, "points_holder", None)
        balances = balances_of(holder) if holder else {Currency.REWARD: 0}
        result.append(
            CompanyPoints(
                company=company,
                holder=holder,
                reward_points=balances[Currency.REWARD],
                entries=list(entry_list(holder=holder)[:history]),
            )
        )
    return result


# --- rewards ----------------------------------------------------------------------------------


def _resident_centre_ids(user: User):
    communities = community_selectors.community_list(
        user=user, roles=[community_selectors.RESIDENT]
    )
    return communities.values("centre_id")


def reward_list(*, user: User, on: date | None = None) -> QuerySet[Reward]:
    """Rewards a resident may redeem: those of the centres of their communities that are
    offered today (sold-out ones included, so the catalogue shows them as such)."""
    on = on or timezone.localdate()
    return (
        Reward.objects.filter(centre_id__in=_resident_centre_ids(user), active_from__lte=on)
        .filter(Q(active_to__isnull=True) | Q(active_to__gte=on))
        .select_related("centre", "organisation")
        .order_by("cost", "name", "pk")
    )


def reward_get(*, user: User, reward_id) -> Reward:
    """A reward of the resident's centres, offered or not (redeeming one no longer offered is a
    409, not a 404); raises Reward.DoesNotExist outside them."""
    try:
        pk = int(reward_id)
    except (TypeError, ValueError):
        raise Reward.DoesNotExist from None
    return Reward.objects.filter(centre_id__in=_resident_centre_ids(user)).get(pk=pk)


def redemption_list(*, user: User) -> QuerySet[Redemption]:
    return (
        Redemption.objects.filter(user=user)
        .select_related("reward__centre", "reward__organisation")
        .order_by("-created_at", "-pk")
    )


def _provided_q(user: User) -> Q:
    """Rewards the user provides: their alliance organisation's, or their centre's own."""
    if user.is_superuser:
        return Q()
    organisations = _memberships(user, Role.ALLIANCE_INSPECTOR).values("organisation_id")
    centres = _memberships(user, Role.CENTRE_ADMIN).values("centre_id")
    return Q(reward__organisation_id__in=organisations) | Q(
        reward__organisation__isnull=True, reward__centre_id__in=centres
    )


def is_provider(*, user: User) -> bool:
    if not user.is_authenticated:
        return False
    return (
        user.is_superuser
        or RoleMembership.objects.filter(
            user=user, role__in=[Role.ALLIANCE_INSPECTOR, Role.CENTRE_ADMIN]
        ).exists()
    )


def redemption_for_provider(*, user: User, code: str) -> Redemption:
    """The redemption with this code, if `user` provides its reward; Redemption.DoesNotExist
    otherwise (→ 404: a code of another provider reveals nothing)."""
    code = (code or "").strip().upper()
    return (
        Redemption.objects.filter(_provided_q(user))
        .select_related("reward__centre", "reward__organisation", "user")
        .get(code=code)
    )


def redemption_list_for_provider(*, user: User) -> QuerySet[Redemption]:
    return (
        Redemption.objects.filter(_provided_q(user))
        .select_related("reward__centre", "reward__organisation", "user", "fulfilled_by")
        .order_by("-created_at", "-pk")
    )


def redemption_get_for_admin(*, user: User, redemption_id) -> Redemption:
    """A redemption of a reward of the user's centre (centre admins, superusers); others → 404."""
    qs = Redemption.objects.select_related("reward", "user")
    if not user.is_superuser:
        centres = _memberships(user, Role.CENTRE_ADMIN).values("centre_id")
        qs = qs.filter(reward__centre_id__in=centres)
    try:
        pk = int(redemption_id)
    except (TypeError, ValueError):
        raise Redemption.DoesNotExist from None
    return qs.get(pk=pk)


# --- leaderboard ------------------------------------------------------------------------------


def leaderboard_communities(*, user: User) -> QuerySet[Community]:
    """Communities whose leaderboard the user may read: any they can see."""
    return community_selectors.community_list(user=user).order_by("name")


@dataclass(frozen=True)
class LeaderboardRow:
    rank: int
    user_id: int
    name: str
    contribution: int
    reputation: int


def leaderboard(*, community: Community, period: Period, size: int = LEADERBOARD_SIZE):
    """The month's most active residents of a community: contribution earned in the month
    (awards less clawbacks; spending does not lower it), then reputation earned. Only people
    living there today, and never anyone who opted out. One aggregate query."""
    living_here = Residency.objects.active().filter(
        household__building__community=community, user_id=OuterRef("holder__user_id")
    )
    earned = Q(period=str(period), kind__in=[Entry.Kind.AWARD, Entry.Kind.CLAWBACK])
    zero = Value(0, output_field=IntegerField())
    rows = (
        Entry.objects.filter(earned, holder__user__isnull=False, holder__leaderboard_opt_out=False)
        .filter(Exists(living_here))
        .values("holder__user_id", "holder__user__display_name", "holder__user__username")
        .annotate(
            contribution=Coalesce(Sum("amount", filter=Q(currency=Currency.CONTRIBUTION)), zero),
            reputation=Coalesce(Sum("amount", filter=Q(currency=Currency.REPUTATION)), zero),
        )
        .filter(Q(contribution__gt=0) | Q(reputation__gt=0))
        .order_by("-contribution", "-reputation", "holder__user_id")[:size]
    )
    return [
        LeaderboardRow(
            rank=rank,
            user_id=row["holder__user_id"],
            name=row["holder__user__display_name"] or row["holder__user__username"],
            contribution=row["contribution"],
            reputation=row["reputation"],
        )
        for rank, row in enumerate(rows, start=1)
    ]


# --- soundness --------------------------------------------------------------------------------


def points_problems() -> list[str]:
    """Every way the points ledger could be wrong, recomputed from the entries: a balance that
    differs from the sum of its entries, entries without a balance row, a spendable balance
    below zero, a redemption without exactly its one debit (and its one refund once
    cancelled). Empty when all is well."""
    problems = []
    sums = defaultdict(int)
    for holder_id, currency, total in (
        Entry.objects.values("holder_id", "currency")
        .annotate(total=Sum("amount"))
        .values_list("holder_id", "currency", "total")
    ):
        sums[(holder_id, currency)] = total
    seen = set()
    for pk, holder_id, currency, amount in Balance.objects.values_list(
        "pk", "holder_id", "currency", "amount"
    ):
        seen.add((holder_id, currency))
        expected = sums.get((holder_id, currency), 0)
        if amount != expected:
            problems.append(
                f"balance {pk} (holder {holder_id}, {currency}) is {amount}, entries say {expected}"
            )
        if currency == Currency.CONTRIBUTION and amount < 0:
            problems.append(f"balance {pk} (holder {holder_id}) is below zero: {amount}")
    for key in sums.keys() - seen:
        problems.append(f"entries of holder {key[0]} in {key[1]} have no balance row")

    debits = dict(
        Entry.objects.filter(kind=Entry.Kind.REDEMPTION)
        .values("reference")
        .annotate(total=Sum("amount"))
        .values_list("reference", "total")
    )
    refunds = dict(
        Entry.objects.filter(kind=Entry.Kind.REDEMPTION_REFUND)
        .values("reference")
        .annotate(total=Sum("amount"))
        .values_list("reference", "total")
    )
    for pk, cost, status in Redemption.objects.values_list("pk", "cost", "status"):
        if debits.get(str(pk)) != -cost:
            problems.append(f"redemption {pk} was debited {debits.get(str(pk))}, not -{cost}")
        expected_refund = cost if status == Redemption.Status.CANCELLED else None
        if refunds.get(str(pk)) != expected_refund:
            problems.append(
                f"redemption {pk} ({status}) was refunded {refunds.get(str(pk))}, "
                f"not {expected_refund}"
            )
    redemption_ids = {str(pk) for pk in Redemption.objects.values_list("pk", flat=True)}
    for reference in (debits.keys() | refunds.keys()) - redemption_ids:
        problems.append(f"redemption entries for {reference}, which does not exist")
    return problems


# --- awards that did not arrive ---------------------------------------------------------------


def payments_missing_their_award(*, after_id: int, up_to_id: int) -> list[dict]:
    """The payment_succeeded events, as billing announced them, of the payments with ids in
    (after_id, up_to_id] that succeeded, are not refunded, earn an award by billing's own rule
    (on time, or prepaid months) and have no award entry: what award_for_payments needs to
    award them. A payment that earns nothing is not listed. One query for the payments, on the
    primary key's range and the entries' unique index, and one for their items and bills."""
    awarded = Entry.objects.filter(
        source__in=PAYMENT_EVENTS,
        kind=Entry.Kind.AWARD,
        reference=Cast(OuterRef("pk"), CharField(max_length=64)),
    )
    # Earning nothing, in SQL, so that every sweep does not load two days of late payments:
    # with no prepaid month, a payment that settled a bill after its due day (the local day of
    # paying) is not on time. The rule itself is applied below, as billing applies it.
    prepaid = PaymentItem.objects.filter(payment=OuterRef("pk"), bill__is_prepaid=True)
    late = PaymentItem.objects.filter(
        payment=OuterRef("pk"), bill__due_date__lt=OuterRef("paid_day")
    )
    payments = (
        Payment.objects.filter(
            pk__gt=after_id,
            pk__lte=up_to_id,
            status=Payment.Status.SUCCEEDED,
            refunded_amount=0,
        )
        .annotate(paid_day=TruncDate("paid_at"))  # in the current (Shanghai) time zone
        .filter(Exists(prepaid) | ~Exists(late))
        .exclude(Exists(awarded))
        .order_by("pk")
        .only("pk", "payer_id", "paid_at")
        .prefetch_related(
            Prefetch(
                "items",
                queryset=PaymentItem.objects.select_related("bill").order_by("bill_id", "pk"),
            )
        )
    )
    events = []
    for payment in payments:
        bills = [item.bill for item in payment.items.all()]
        # As billing's _succeed computes the event's payload.
        on_time = billing_selectors.paid_on_time(bills, timezone.localdate(payment.paid_at))
        months_prepaid = sum(1 for bill in bills if bill.is_prepaid)
        if on_time or months_prepaid:
            events.append(
                {
                    "payment_id": payment.pk,
                    "payer_id": payment.payer_id,
                    "paid_at": payment.paid_at.isoformat(),
                    "on_time": on_time,
                    "months_prepaid": months_prepaid,
                }
            )
    return events


def refunds_missing_their_clawback(*, after_id: int, up_to_id: int) -> list[tuple[int, int]]:
    """(payment id, payer's user id) of the payments refunded by the succeeded refunds with ids
    in (after_id, up_to_id] whose award still stands: an award entry of theirs has no clawback,
    so their payment_refunded's clawback never ran. One query."""
    clawed_back = Entry.objects.filter(
        holder_id=OuterRef("holder_id"),
        source=OuterRef("source"),
        reference=OuterRef("reference"),
        kind=Entry.Kind.CLAWBACK,
    )
    refunded = Refund.objects.filter(
        pk__gt=after_id, pk__lte=up_to_id, status=Refund.Status.SUCCEEDED
    ).annotate(reference=Cast("payment_id", CharField(max_length=64)))
    standing = (
        Entry.objects.filter(
            kind=Entry.Kind.AWARD,
            source__in=PAYMENT_EVENTS,
            reference__in=refunded.values("reference"),
        )
        .exclude(Exists(clawed_back))
        .values_list("reference", "holder__user_id")
        .distinct()
    )
    return sorted((int(reference), user_id) for reference, user_id in standing)
