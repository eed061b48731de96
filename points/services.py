"""Writes for points: awards from events, clawbacks, redemptions and their fulfilment or
cancellation, the leaderboard opt-out.

Every write runs in one transaction and first locks all of the holder's balance rows in
primary-key order (points.locks), so everything that happens to one holder — awards, caps,
clawbacks, redemptions — happens one after the other. Each entry is unique per (source,
reference, holder, currency, kind): an event delivered twice, or two deliveries racing, award
once. The award_for_* functions are what the event tasks call, and what the demo calls with the
same references, so an event delivered after the demo cannot double anything.
"""

import logging
from collections import defaultdict
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db import IntegrityError, transaction
from django.db.models import Count, F
from django.utils import timezone
from django.utils.translation import gettext as _

from billing import selectors as billing_selectors
from billing.models import Payment
from community.models import Community, PropertyCompany, User
from community.periods import Period
from config.api import Conflict
from points import selectors
from points.locks import holder_balances_for_update, redemption_for_update, reward_for_update
from points.models import (
    Balance,
    Currency,
    Entry,
    Event,
    Holder,
    Redemption,
    Reward,
    Rule,
)

logger = logging.getLogger(__name__)

REDEMPTION_SOURCE = "redemption"
# What a refund takes back: the awards its payment earned.
PAYMENT_EVENTS = selectors.PAYMENT_EVENTS


# --- holders and balances ---------------------------------------------------------------------


def _holder(**owner) -> Holder:
    """The holder of a user or company, made (with its balance rows) on first use. A user or
    company that does not exist raises DoesNotExist (foreign keys are only checked at commit)."""
    holder = Holder.objects.filter(**owner).first()
    if holder is not None:
        return holder
    if "user_id" in owner and not User.objects.filter(pk=owner["user_id"]).exists():
        raise User.DoesNotExist(f"no user {owner['user_id']}")
    if (
        "company_id" in owner
        and not PropertyCompany.objects.filter(pk=owner["company_id"]).exists()
    ):
        raise PropertyCompany.DoesNotExist(f"no company {owner['company_id']}")
    try:
        with transaction.atomic():
            holder = Holder.objects.create(**owner)
            Balance.objects.bulk_create(
                [Balance(holder=holder, currency=currency) for currency in holder.currencies]
            )
    except IntegrityError:  # created meanwhile by a concurrent award
        holder = Holder.objects.get(**owner)
    return holder


def holder_for_user(user_id: int) -> Holder:
    return _holder(user_id=user_id)


def holder_for_company(company_id: int) -> Holder:
    return _holder(company_id=company_id)


def _lock_holder(holder: Holder) -> dict[str, Balance]:
    """Lock every balance row of the holder (pk order); returns them by currency. Precondition:
    inside transaction.atomic()."""
    return holder_balances_for_update(holder.pk)


def _post(
    *,
    holder: Holder,
    balance: Balance,
    amount: int,
    kind: str,
    source: str,
    reference: str,
    occurred_at: datetime,
    rule: Rule | None = None,
    detail: str = "",
) -> Entry | None:
    """Write one entry and move the balance. Precondition: the caller holds the holder's balance
    locks. Returns None (and writes nothing) if this entry exists already."""
    try:
        with transaction.atomic():
            entry = Entry.objects.create(
                holder=holder,
                currency=balance.currency,
                amount=amount,
                kind=kind,
                source=source,
                reference=reference,
                rule=rule,
                detail=detail[:100],
                occurred_at=occurred_at,
                period=str(Period.containing(timezone.localdate(occurred_at))),
            )
    except IntegrityError:
        duplicate = Entry.objects.filter(
            holder=holder, currency=balance.currency, kind=kind, source=source, reference=reference
        ).exists()
        if duplicate:
            return None
        raise
    # F() keeps the arithmetic in the database; the row is locked, so nobody else moves it.
    Balance.objects.filter(pk=balance.pk).update(amount=F("amount") + amount)
    balance.amount += amount
    return entry


# --- awards -----------------------------------------------------------------------------------


def _aware(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    return value


def qualifies(rule: Rule, measure) -> bool:
    """Does the event's measure (months prepaid, stars, score) reach the rule's threshold?"""
    if rule.threshold is None:
        return True
    return measure is not None and Decimal(str(measure)) >= rule.threshold


def points_for(rule: Rule, quantity: Decimal) -> int:
    if not rule.per_hour:
        return rule.amount
    return int((rule.amount * quantity).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def points_award(
    *,
    event: str,
    reference: str,
    holder: Holder,
    occurred_at: datetime,
    quantity: Decimal = Decimal(1),
    measure=None,
    detail: str = "",
) -> Entry | None:
    """Award the points the rule in force on the event's day gives for `event`, once per
    (event, reference, holder). Returns the award (the earlier one if it was made before), or
    None when no rule is in force, the threshold is not reached, the points round to nothing, or
    the holder's monthly cap for this event is used up. The cap is counted under the holder's
    balance locks, so racing awards cannot overshoot it."""
    occurred_at = _aware(occurred_at)
    rule = selectors.rule_in_force(event=event, on=timezone.localdate(occurred_at))
    if rule is None or not qualifies(rule, measure):
        return None
    amount = points_for(rule, quantity)
    if amount <= 0:
        return None
    with transaction.atomic():
        balances = _lock_holder(holder)
        earlier = Entry.objects.filter(
            holder=holder, source=event, reference=reference, kind=Entry.Kind.AWARD
        ).first()
        if earlier is not None:
            return earlier
        period = str(Period.containing(timezone.localdate(occurred_at)))
        if rule.cap_per_month is not None:
            used = Entry.objects.filter(
                holder=holder, source=event, kind=Entry.Kind.AWARD, period=period
            ).count()
            if used >= rule.cap_per_month:
                logger.info("points: %s cap reached for %s in %s", event, holder, period)
                return None
        entry = _post(
            holder=holder,
            balance=balances[rule.currency],
            amount=amount,
            kind=Entry.Kind.AWARD,
            source=event,
            reference=reference,
            occurred_at=occurred_at,
            rule=rule,
            detail=detail,
        )
        if entry is None:  # awarded meanwhile in another currency row: return that one
            entry = Entry.objects.get(
                holder=holder,
                source=event,
                reference=reference,
                kind=Entry.Kind.AWARD,
                currency=rule.currency,
            )
        return entry


def points_clawback(
    *, event: str, reference: str, holder: Holder, at: datetime | None = None
) -> Entry | None:
    """Take back the award `event`/`reference` gave `holder`, by a reversing entry, once.
    Nothing to take back (never awarded, or taken back already) → None. Reputation may go below
    what was earned since: a clawback is never refused."""
    at = at or timezone.now()
    with transaction.atomic():
        balances = _lock_holder(holder)
        award = Entry.objects.filter(
            holder=holder, source=event, reference=reference, kind=Entry.Kind.AWARD
        ).first()
        if award is None:
            return None
        return _post(
            holder=holder,
            balance=balances[award.currency],
            amount=-award.amount,
            kind=Entry.Kind.CLAWBACK,
            source=event,
            reference=reference,
            occurred_at=at,
            rule=award.rule,
            detail=award.detail,
        )


def _payment_refunded(*, payment_id: int, payer: User) -> bool:
    refunded = (
        billing_selectors.payment_list(user=payer)
        .filter(pk=payment_id)
        .values_list("refunded_amount", flat=True)
        .first()
    )
    return bool(refunded)


def award_for_payment(
    *,
    payment_id: int,
    payer_id: int,
    paid_at: datetime | str,
    on_time: bool,
    months_prepaid: int,
) -> list[Entry]:
    """billing's payment_succeeded: reputation for paying on time and for prepaying (the rules
    decide how many months count). A payment refunded before its award is made earns nothing:
    the check runs under the payer's locks, which the refund's clawback takes too, so whichever
    runs second sees the other."""
    holder = holder_for_user(payer_id)
    reference = str(payment_id)
    entries = []
    with transaction.atomic():
        _lock_holder(holder)
        if _payment_refunded(payment_id=payment_id, payer=holder.user):
            return []
        if on_time:
            entries.append(
                points_award(
                    event=Event.PAYMENT_ON_TIME,
                    reference=reference,
                    holder=holder,
                    occurred_at=_aware(paid_at),
                )
            )
        if months_prepaid:
            entries.append(
                points_award(
                    event=Event.PREPAYMENT,
                    reference=reference,
                    holder=holder,
                    occurred_at=_aware(paid_at),
                    measure=months_prepaid,
                    detail=str(months_prepaid),
                )
            )
    return [entry for entry in entries if entry is not None]


# --- batch awards -----------------------------------------------------------------------------


def _rule_on(rules: list[Rule], on) -> Rule | None:
    """selectors.rule_in_force, over rules loaded once (the latest start wins)."""
    in_force = [
        rule
        for rule in rules
        if rule.active_from <= on and (rule.active_to is None or rule.active_to >= on)
    ]
    return max(in_force, key=lambda rule: rule.active_from, default=None)


def _user_holders(user_ids: set[int]) -> dict[int, Holder]:
    """The holders of these users by user id, made (with their balance rows) for those who have
    none yet, in one short transaction of their own: users that do not exist are left out."""
    holders = {h.user_id: h for h in Holder.objects.filter(user_id__in=user_ids)}
    missing = user_ids - holders.keys()
    if missing:
        existing = set(User.objects.filter(pk__in=missing).values_list("pk", flat=True))
        with transaction.atomic():
            # In user order, and a concurrent creator's row is left alone (ignore_conflicts).
            Holder.objects.bulk_create(
                [Holder(user_id=user_id) for user_id in sorted(existing)], ignore_conflicts=True
            )
            made = list(Holder.objects.filter(user_id__in=existing).order_by("pk"))
            Balance.objects.bulk_create(
                [Balance(holder=h, currency=c) for h in made for c in h.currencies],
                ignore_conflicts=True,
            )
        holders.update({h.user_id: h for h in made})
    return holders


def award_for_payments(events: list[dict]) -> list[Entry]:
    """award_for_payment for many payment_succeeded events at once, with the same result entry
    for entry as awarding them one by one in this order: an event whose award exists already
    (delivered before, or twice in the batch) awards nothing more, a refunded payment earns
    nothing, the monthly caps count the batch's own awards, an unknown payer is skipped.

    Each event is a dict of award_for_payment's arguments. One transaction locks every payer's
    balance rows in one query (primary-key order: no cycle with another batch or with a single
    award, which locks one holder), then reads what exists, computes the entries and writes
    them with one insert and the balances with one update per currency. Returns the new
    entries."""
    if not events:
        return []
    holders = _user_holders({int(event["payer_id"]) for event in events})
    for event in events:
        if int(event["payer_id"]) not in holders:
            logger.warning("points: payment %s skipped: no user %s", *_ids(event))
    events = [event for event in events if int(event["payer_id"]) in holders]
    if not events:
        return []
    holder_ids = sorted({holders[int(event["payer_id"])].pk for event in events})
    references = {str(event["payment_id"]) for event in events}
    with transaction.atomic():
        # Just the ids: the amounts move in the database (F()), not here.
        balances: dict[tuple[int, str], int] = {
            (holder_id, currency): pk
            for pk, holder_id, currency in Balance.objects.filter(holder_id__in=holder_ids)
            .order_by("pk")
            .select_for_update(of=("self",))
            .values_list("pk", "holder_id", "currency")
        }
        rules: dict[str, list[Rule]] = {event: [] for event in PAYMENT_EVENTS}
        for rule in Rule.objects.filter(event__in=PAYMENT_EVENTS):
            rules[rule.event].append(rule)
        # What exists already, and what the caps have counted, under the locks: every award
        # locks its holder first, so nothing is added to these holders meanwhile.
        awarded = set(
            Entry.objects.filter(
                holder_id__in=holder_ids,
                source__in=PAYMENT_EVENTS,
                reference__in=references,
                kind=Entry.Kind.AWARD,
            ).values_list("holder_id", "source", "reference")
        )
        # The refund check, for the payments the payer made (one query); a refunded payment
        # someone else paid goes through the payer's own view, as award_for_payment does.
        refunded = dict(
            Payment.objects.filter(
                pk__in=[int(event["payment_id"]) for event in events], refunded_amount__gt=0
            ).values_list("pk", "payer_id")
        )
        planned = []  # (event, holder, rule, occurred_at, period, measure/detail)
        days = {}  # a due day's events share few distinct times: parse each once
        for event in events:
            holder = holders[int(event["payer_id"])]
            if event["paid_at"] not in days:
                occurred_at = _aware(event["paid_at"])
                days[event["paid_at"]] = occurred_at, timezone.localdate(occurred_at)
            occurred_at, day = days[event["paid_at"]]
            months = int(event.get("months_prepaid") or 0)
            for source, wanted, measure, detail in (
                (Event.PAYMENT_ON_TIME, bool(event["on_time"]), None, ""),
                (Event.PREPAYMENT, bool(months), months, str(months)),
            ):
                rule = _rule_on(rules[source], day) if wanted else None
                if rule is None or not qualifies(rule, measure):
                    continue
                if points_for(rule, Decimal(1)) <= 0:
                    continue
                planned.append((event, holder, source, rule, occurred_at, day, detail))
        period_of = {day: str(Period.containing(day)) for *_, day, _ in planned}
        # The caps' counts, for the sources whose planned rules have a cap: none by default
        # (the on-time and prepayment rules are uncapped), and then no query at all.
        capped_sources = {
            source for _e, _h, source, rule, *_ in planned if rule.cap_per_month is not None
        }
        used = {}
        if capped_sources:
            used = {
                (row["holder_id"], row["source"], row["period"]): row["n"]
                for row in Entry.objects.filter(
                    holder_id__in=holder_ids,
                    source__in=capped_sources,
                    kind=Entry.Kind.AWARD,
                    period__in=set(period_of.values()),
                )
                .values("holder_id", "source", "period")
                .annotate(n=Count("pk"))
            }
        entries, deltas = [], defaultdict(int)
        for event, holder, source, rule, occurred_at, day, detail in planned:
            payment_id = int(event["payment_id"])
            if payment_id in refunded and (
                refunded[payment_id] == holder.user_id
                or _payment_refunded(payment_id=payment_id, payer=holder.user)
            ):
                continue
            reference = str(payment_id)
            if (holder.pk, source, reference) in awarded:
                continue
            period = period_of[day]
            capped = rule.cap_per_month is not None
            if capped and used.get((holder.pk, source, period), 0) >= rule.cap_per_month:
                logger.info("points: %s cap reached for %s in %s", source, holder, period)
                continue
            amount = points_for(rule, Decimal(1))
            entries.append(
                Entry(
                    holder_id=holder.pk,
                    currency=rule.currency,
                    amount=amount,
                    kind=Entry.Kind.AWARD,
                    source=source,
                    reference=reference,
                    rule_id=rule.pk,
                    detail=detail[:100],
                    occurred_at=occurred_at,
                    period=period,
                )
            )
            awarded.add((holder.pk, source, reference))
            used[(holder.pk, source, period)] = used.get((holder.pk, source, period), 0) + 1
            deltas[balances[(holder.pk, rule.currency)]] += amount
        if not entries:
            return []
        _insert_entries(entries)
        # One statement per distinct amount (one or two: most payers earn the same), whatever
        # the currency; the rows are locked, nobody else moves them. (A CASE over each row costs
        # Django more to build than the database to run.)
        by_amount = defaultdict(list)
        for pk, delta in deltas.items():
            by_amount[delta].append(pk)
        for delta, pks in sorted(by_amount.items()):
            Balance.objects.filter(pk__in=pks).update(amount=F("amount") + delta)
    return entries


# The columns _insert_entries writes, with their PostgreSQL array types.
_ENTRY_COLUMNS = (
    ("holder_id", "bigint"),
    ("currency", "varchar"),
    ("amount", "bigint"),
    ("kind", "varchar"),
    ("source", "varchar"),
    ("reference", "varchar"),
    ("rule_id", "bigint"),
    ("detail", "varchar"),
    ("occurred_at", "timestamptz"),
    ("period", "varchar"),
    ("created_at", "timestamptz"),
)


def _insert_entries(entries: list[Entry]) -> None:
    """Entry.objects.bulk_create(entries), setting their pks, for a batch award's entries (plain
    values: ids, text, whole points, aware times). On PostgreSQL it is one INSERT … SELECT from
    unnest of one array per column, values passed as they are: bulk_create prepares each value
    through its field first, and for a due day's batch of 1,000 entries that took a third of
    the award's CPU (bench points_awards), more than the database took to write them. The
    unique constraint and the foreign keys hold here as they do for bulk_create."""
    connection = transaction.get_connection()
    if connection.vendor != "postgresql":
        Entry.objects.bulk_create(entries)
        return
    now = timezone.now()
    for entry in entries:
        entry.created_at = now
    names = ", ".join(name for name, _type in _ENTRY_COLUMNS)
    arrays = ", ".join(f"%s::{sql_type}[]" for _name, sql_type in _ENTRY_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Entry._meta.db_table} ({names}) "
            f"SELECT {names} FROM unnest({arrays}) WITH ORDINALITY AS e({names}, n) ORDER BY n "
            "RETURNING id",
            [[getattr(entry, name) for entry in entries] for name, _type in _ENTRY_COLUMNS],
        )
        ids = [row[0] for row in cursor.fetchall()]
    for entry, pk in zip(entries, ids, strict=True):
        entry.pk = pk
        entry._state.adding, entry._state.db = False, connection.alias


def clawback_missed_refunds(*, after_id: int, up_to_id: int) -> int:
    """Take back the awards of the payments refunded by the refunds with ids in (after_id,
    up_to_id] whose clawback never arrived (as award_missed_payments, for payment_refunded),
    through clawback_for_refund, which takes each back once. Returns the entries made."""
    made = 0
    missing = selectors.refunds_missing_their_clawback(after_id=after_id, up_to_id=up_to_id)
    for payment_id, payer_id in missing:
        made += len(clawback_for_refund(payment_id=payment_id, payer_id=payer_id))
    if made:
        logger.warning(
            "points: %d entries taken back for refunds %d..%d whose clawback had not arrived",
            made,
            after_id + 1,
            up_to_id,
        )
    return made


def _ids(event: dict) -> tuple:
    return event.get("payment_id"), event.get("payer_id")


def clawback_for_refund(*, payment_id: int, payer_id: int) -> list[Entry]:
    """billing's payment_refunded: a refund, partial or full, takes back what the payment earned
    (on-time and prepayment awards), once, by reversing entries."""
    holder = holder_for_user(payer_id)
    entries = []
    with transaction.atomic():
        _lock_holder(holder)
        for event in PAYMENT_EVENTS:
            entries.append(points_clawback(event=event, reference=str(payment_id), holder=holder))
    return [entry for entry in entries if entry is not None]


def _company_of(community_id: int) -> int | None:
    return Community.objects.filter(pk=community_id).values_list("company_id", flat=True).first()


def award_for_ticket_resolved(
    *,
    ticket_id: int,
    community_id: int,
    resolved_at: datetime | str,
    within_sla: bool,
    first_resolution: bool,
) -> Entry | None:
    """repairs' ticket_resolved: reward points for the community's company when a ticket is
    first resolved with no deadline missed. A resolution after a reopen earns nothing more."""
    if not (within_sla and first_resolution):
        return None
    company_id = _company_of(community_id)
    if company_id is None:
        return None
    return points_award(
        event=Event.TICKET_WITHIN_SLA,
        reference=str(ticket_id),
        holder=holder_for_company(company_id),
        occurred_at=_aware(resolved_at),
        detail=f"#{ticket_id}",
    )


def award_for_ticket_rated(
    *,
    ticket_id: int,
    community_id: int,
    rated_by_id: int,
    stars: int,
    rated_at: datetime | str,
) -> list[Entry]:
    """repairs' ticket_rated: reputation for the resident who rated (whatever the stars: an
    honest low rating earns the same), and reward points for the company for a top rating."""
    entries = [
        points_award(
            event=Event.TICKET_RATING,
            reference=str(ticket_id),
            holder=holder_for_user(rated_by_id),
            occurred_at=_aware(rated_at),
            measure=stars,
            detail=f"#{ticket_id}",
        )
    ]
    company_id = _company_of(community_id)
    if company_id is not None:
        entries.append(
            points_award(
                event=Event.TICKET_FIVE_STARS,
                reference=str(ticket_id),
                holder=holder_for_company(company_id),
                occurred_at=_aware(rated_at),
                measure=stars,
                detail=f"#{ticket_id}",
            )
        )
    return [entry for entry in entries if entry is not None]


def award_for_service_rating(
    *, rating_id: int, user_id: int, period: str, rated_at: datetime | str
) -> Entry | None:
    """alliance's service_rated: reputation for the resident who rated the month's service."""
    return points_award(
        event=Event.SERVICE_RATING,
        reference=str(rating_id),
        holder=holder_for_user(user_id),
        occurred_at=_aware(rated_at),
        detail=period,
    )


def award_for_checkin(
    *, checkin_id: int, user_id: int, kind: str, hours: str, checked_in_at: datetime | str
) -> Entry | None:
    """community's activity_checked_in: contribution per volunteering hour, or for taking part
    in an event (the rules' monthly cap applies)."""
    holder = holder_for_user(user_id)
    if kind == "volunteering":
        quantity = Decimal(str(hours))
        return points_award(
            event=Event.VOLUNTEER_HOUR,
            reference=str(checkin_id),
            holder=holder,
            occurred_at=_aware(checked_in_at),
            quantity=quantity,
            measure=quantity,
            detail=f"{quantity.normalize():f}",
        )
    return points_award(
        event=Event.ACTIVITY_CHECKIN,
        reference=str(checkin_id),
        holder=holder,
        occurred_at=_aware(checked_in_at),
    )


def award_for_scorecard(
    *,
    community_id: int,
    company_id: int,
    period: str,
    score: str,
    revision: int,
    finalized_at: datetime | str,
) -> Entry | None:
    """alliance's scorecard_finalized: reward points for the company when the month's score
    reaches the rule's threshold. Once per community and month, whatever the revisions (the
    reference is "<community>:<period>", so a corrected revision cannot award twice); a
    correction whose score no longer reaches the threshold takes the award back."""
    holder = holder_for_company(company_id)
    reference = f"{community_id}:{period}"
    occurred_at = _aware(finalized_at)
    entry = points_award(
        event=Event.SCORECARD,
        reference=reference,
        holder=holder,
        occurred_at=occurred_at,
        measure=score,
        detail=period,
    )
    if entry is None and revision > 1:
        rule = selectors.rule_in_force(event=Event.SCORECARD, on=timezone.localdate(occurred_at))
        if rule is not None and not qualifies(rule, score):
            return points_clawback(
                event=Event.SCORECARD, reference=reference, holder=holder, at=occurred_at
            )
    return entry


def award_missed_payments(*, after_id: int, up_to_id: int, chunk: int = 500) -> int:
    """Award the succeeded payments with ids in (after_id, up_to_id] that earn an award and
    have none: their payment_succeeded's task never ran. The Redis broker can lose a message
    (a worker killed between taking it off the queue and recording it as unacknowledged), and
    an event announced while the broker was down is only logged (points.receivers). Through
    award_for_payments, chunk by chunk, each chunk its own transaction: a payment whose award
    arrives meanwhile is awarded once all the same. Returns the number of entries made."""
    made = 0
    events = selectors.payments_missing_their_award(after_id=after_id, up_to_id=up_to_id)
    for start in range(0, len(events), chunk):
        made += len(award_for_payments(events[start : start + chunk]))
    if made:
        logger.warning(
            "points: %d entries awarded for payments %d..%d whose award had not arrived",
            made,
            after_id + 1,
            up_to_id,
        )
    return made


# --- rewards ----------------------------------------------------------------------------------


def _replay(user: User, key: str, fingerprint: str) -> Redemption | None:
    existing = Redemption.objects.filter(user=user, idempotency_key=key).first()
    if existing is None:
        return None
    if existing.request_fingerprint != fingerprint:
        raise Conflict(_("This Idempotency-Key was used for a different request."))
    return existing


def reward_redeem(
    *, user: User, reward_id, idempotency_key: str, fingerprint: str
) -> tuple[Redemption, bool]:
    """Spend contribution points on a reward. Returns (redemption, created).

    The same Idempotency-Key with the same body returns the first redemption; with a different
    body → 409. A reward outside the resident's centres → 404. No stock, not offered today,
    reputation under the reward's minimum or a balance short of its cost → 409. The reward row
    and then the resident's balances are locked, so stock and points are taken together, and
    twenty requests at once take exactly what stock and balance allow; the check constraints on
    stock and balance are the backstop.
    """
    existing = _replay(user, idempotency_key, fingerprint)
    if existing is not None:
        return existing, False
    reward = selectors.reward_get(user=user, reward_id=reward_id)
    holder = holder_for_user(user.pk)
    now = timezone.now()
    with transaction.atomic():
        reward = reward_for_update(reward.pk)
        existing = _replay(user, idempotency_key, fingerprint)  # the same request, racing itself
        if existing is not None:
            return existing, False
        if not reward.is_offered(timezone.localdate(now)):
            raise Conflict(_("This reward is not offered at the moment."))
        if reward.stock < 1:
            raise Conflict(_("This reward is out of stock."))
        balances = _lock_holder(holder)
        reputation = balances[Currency.REPUTATION].amount
        if reputation < reward.min_reputation:
            raise Conflict(
                _("This reward needs %(needed)s reputation; you have %(have)s.")
                % {"needed": reward.min_reputation, "have": reputation}
            )
        contribution = balances[Currency.CONTRIBUTION]
        if contribution.amount < reward.cost:
            raise Conflict(
                _("This reward costs %(cost)s contribution points; you have %(have)s.")
                % {"cost": reward.cost, "have": contribution.amount}
            )
        try:
            with transaction.atomic():
                redemption = Redemption.objects.create(
                    user=user,
                    reward=reward,
                    cost=reward.cost,
                    idempotency_key=idempotency_key,
                    request_fingerprint=fingerprint,
                    created_at=now,
                )
        except IntegrityError as exc:
            existing = _replay(user, idempotency_key, fingerprint)
            if existing is not None:
                return existing, False
            raise Conflict(_("Please try again.")) from exc
        try:
            with transaction.atomic():
                _post(
                    holder=holder,
                    balance=contribution,
                    amount=-reward.cost,
                    kind=Entry.Kind.REDEMPTION,
                    source=REDEMPTION_SOURCE,
                    reference=str(redemption.pk),
                    occurred_at=now,
                    detail=reward.name,
                )
                Reward.objects.filter(pk=reward.pk).update(stock=F("stock") - 1)
        except IntegrityError as exc:
            # The check constraints on balance and stock: unreachable while the locks above
            # hold, and a 409 rather than an overdraft if they ever did not.
            logger.error("points: redemption of %s refused by the database: %s", reward.pk, exc)
            raise Conflict(_("Not enough points or stock left.")) from exc
    return redemption, True


def redemption_fulfil(*, user: User, code: str) -> Redemption:
    """The provider (an inspector of the offering organisation, or an admin of the offering
    centre) marks a code as used. Unknown code or someone else's reward → 404; used or
    cancelled already → 409."""
    found = selectors.redemption_for_provider(user=user, code=code)
    with transaction.atomic():
        redemption = redemption_for_update(found.pk)
        if redemption.status != Redemption.Status.ISSUED:
            raise Conflict(
                _("This code is already %(status)s.") % {"status": redemption.get_status_display()}
            )
        redemption.status = Redemption.Status.FULFILLED
        redemption.fulfilled_at = timezone.now()
        redemption.fulfilled_by = user
        redemption.save(update_fields=["status", "fulfilled_at", "fulfilled_by"])
    return redemption


def redemption_cancel(*, redemption: Redemption, by: User, reason: str = "") -> Redemption:
    """The centre cancels an unused redemption: the points come back by a reversing entry and
    the stock by one, in one transaction. Already fulfilled or cancelled → 409."""
    with transaction.atomic():
        redemption = redemption_for_update(redemption.pk)
        if redemption.status != Redemption.Status.ISSUED:
            raise Conflict(
                _("Only an unused redemption can be cancelled; this one is %(status)s.")
                % {"status": redemption.get_status_display()}
            )
        reward = reward_for_update(redemption.reward_id)
        holder = holder_for_user(redemption.user_id)
        balances = _lock_holder(holder)
        now = timezone.now()
        _post(
            holder=holder,
            balance=balances[Currency.CONTRIBUTION],
            amount=redemption.cost,
            kind=Entry.Kind.REDEMPTION_REFUND,
            source=REDEMPTION_SOURCE,
            reference=str(redemption.pk),
            occurred_at=now,
            detail=reward.name,
        )
        Reward.objects.filter(pk=reward.pk).update(stock=F("stock") + 1)
        redemption.status = Redemption.Status.CANCELLED
        redemption.cancelled_at = now
        redemption.cancelled_by = by
        redemption.cancel_reason = reason[:200]
        redemption.save(update_fields=["status", "cancelled_at", "cancelled_by", "cancel_reason"])
    return redemption


# --- profile ----------------------------------------------------------------------------------


def leaderboard_opt_out_set(*, user: User, opt_out: bool) -> Holder:
    holder = holder_for_user(user.pk)
    Holder.objects.filter(pk=holder.pk).update(leaderboard_opt_out=opt_out)
    holder.leaderboard_opt_out = opt_out
    return holder
