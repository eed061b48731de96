"""The points part of the demo: what the story's month earned, and a small rewards catalogue.

Every award goes through the same award_for_* service the event tasks call, with the same
references the events carry (payment id, ticket id, check-in id, rating id, community:period),
so when the events of this seed_demo run are delivered after its commit — or a worker delivers
them later — they find the awards made and add nothing. The figures are read from the other
apps through their selectors, as the events would have told them.

A resident who earned enough contribution redeems a parking day, so the catalogue, the code and
the history all have something to show. Running it again changes nothing.
"""

from django.utils import timezone

from alliance import selectors as alliance_selectors
from billing import selectors as billing_selectors
from community import selectors as community_selectors
from community.demo import PILOT_START, DemoWorld
from community.models import AllianceOrganisation
from points import services
from points.models import Balance, Currency, Redemption, Reward
from repairs import selectors as repairs_selectors

# (name, provider kind or None for the centre, cost, minimum reputation, stock, description)
CATALOGUE = [
    (
        "小区临时停车一天",
        None,
        10,
        0,
        30,
        "访客或家人来访时，小区地面临时车位免费停放一天（凭兑换码到物业登记）。",
    ),
    (
        "银行上门代办服务一次",
        AllianceOrganisation.Kind.BANK,
        20,
        0,
        20,
        "柯城农商银行信安支行工作人员上门办理社保卡、存折挂失等业务一次。",
    ),
    (
        "免费法律咨询（30分钟）",
        AllianceOrganisation.Kind.LAW_FIRM,
        30,
        10,
        10,
        "浙江信安律师事务所律师面对面法律咨询30分钟：物业纠纷、房产、婚姻家庭等。",
    ),
    (
        "家政保洁服务一小时",
        None,
        40,
        20,
        15,
        "邻礼中心合作家政人员上门保洁一小时，需提前三天预约。",
    ),
]
DEMO_REDEEMED = "小区临时停车一天"


def _catalogue(world: DemoWorld) -> dict[str, Reward]:
    by_kind = {organisation.kind: organisation for organisation in world.organisations}
    rewards = {}
    for name, kind, cost, min_reputation, stock, description in CATALOGUE:
        reward, _ = Reward.objects.get_or_create(
            centre=world.centre,
            name=name,
            defaults={
                "organisation": by_kind.get(kind) if kind else None,
                "cost": cost,
                "min_reputation": min_reputation,
                "stock": stock,
                "description": description,
                "active_from": PILOT_START,
            },
        )
        rewards[name] = reward
    return rewards


def _payments(world: DemoWorld) -> None:
    """payment_succeeded as billing announced it: on time as billing_selectors.paid_on_time
    says; the prepaid months counted."""
    for resident in world.residents:
        for payment in billing_selectors.payment_list(user=resident).filter(
            payer=resident, status="succeeded"
        ):
            bills = [item.bill for item in payment.items.all()]
            paid_day = timezone.localdate(payment.paid_at)
            services.award_for_payment(
                payment_id=payment.pk,
                payer_id=resident.pk,
                paid_at=payment.paid_at,
                on_time=billing_selectors.paid_on_time(bills, paid_day),
                months_prepaid=sum(1 for bill in bills if bill.is_prepaid),
            )


def _tickets(world: DemoWorld) -> None:
    """ticket_resolved and ticket_rated as repairs announced them."""
    tickets = (
        repairs_selectors.ticket_list(user=world.accounts["staff"])
        .filter(community=world.community, resolved_at__isnull=False)
        .select_related("rating")
        .order_by("pk")
    )
    for ticket in tickets:
        services.award_for_ticket_resolved(
            ticket_id=ticket.pk,
            community_id=ticket.community_id,
            resolved_at=ticket.resolved_at,
            within_sla=not ticket.sla_breached,
            first_resolution=ticket.resolution_count == 1,
        )
        rating = getattr(ticket, "rating", None)
        if rating is not None:
            services.award_for_ticket_rated(
                ticket_id=ticket.pk,
                community_id=ticket.community_id,
                rated_by_id=rating.rated_by_id,
                stars=rating.stars,
                rated_at=rating.created_at,
            )


def _checkins(world: DemoWorld) -> None:
    """activity_checked_in as community announced it."""
    for resident in world.residents:
        for checkin in community_selectors.checkin_list_for_user(user=resident).order_by("pk"):
            services.award_for_checkin(
                checkin_id=checkin.pk,
                user_id=resident.pk,
                kind=checkin.activity.kind,
                hours=str(checkin.hours),
                checked_in_at=checkin.checked_in_at,
            )


def _service_ratings(world: DemoWorld) -> None:
    """service_rated as alliance announced it (its time: when the rating was made)."""
    ratings = (
        alliance_selectors.rating_list(user=world.accounts["centre"])
        .filter(community=world.community)
        .order_by("pk")
    )
    for rating in ratings:
        services.award_for_service_rating(
            rating_id=rating.pk,
            user_id=rating.rated_by_id,
            period=rating.period,
            rated_at=rating.created_at,
        )


def _scorecards(world: DemoWorld) -> None:
    """scorecard_finalized as alliance announced it, revision by revision."""
    revisions = alliance_selectors.scorecard_revisions(
        community=world.community, period=world.period
    )
    for card in revisions:
        if card.finalized_at is None or card.score is None:
            continue
        services.award_for_scorecard(
            community_id=world.community.pk,
            company_id=world.community.company_id,
            period=card.period,
            score=f"{card.score:.4f}",
            revision=card.revision,
            finalized_at=card.finalized_at,
        )


def _redeem(world: DemoWorld, rewards: dict[str, Reward]) -> None:
    key = f"demo:{world.period}"
    if Redemption.objects.filter(idempotency_key=key).exists():
        return
    reward = rewards[DEMO_REDEEMED]
    richest = (
        Balance.objects.filter(
            currency=Currency.CONTRIBUTION,
            amount__gte=reward.cost,
            holder__user__in=world.residents,
        )
        .select_related("holder__user")
        .order_by("-amount", "holder__user_id")
        .first()
    )
    if richest is None or not reward.is_offered():
        return
    services.reward_redeem(
        user=richest.holder.user,
        reward_id=reward.pk,
        idempotency_key=key,
        fingerprint=f"demo:{reward.pk}",
    )


def seed(world: DemoWorld) -> DemoWorld:
    rewards = _catalogue(world)
    _payments(world)
    _tickets(world)
    _checkins(world)
    _service_ratings(world)
    _scorecards(world)
    _redeem(world, rewards)
    return world
