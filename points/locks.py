"""Row locks for points, each kind in primary-key order, and the kinds always in this order:

    redemption  →  reward  →  balances

A redemption locks its reward and then the resident's balances; cancelling one locks the
redemption, its reward, then the balances; an award locks only balances. Nobody takes them the
other way round, so two transactions never wait for each other in a circle.
"""

from points.models import Balance, Redemption, Reward


def holder_balances_for_update(holder_id: int) -> dict[str, Balance]:
    """Every balance row of one holder (one per currency), locked; by currency. Every write
    for a holder takes all of them, so awards, caps, clawbacks and redemptions of one holder
    happen one after the other."""
    rows = (
        Balance.objects.filter(holder_id=holder_id).order_by("pk").select_for_update(of=("self",))
    )
    return {row.currency: row for row in rows}


def reward_for_update(reward_id: int) -> Reward:
    return Reward.objects.select_for_update(of=("self",)).get(pk=reward_id)


def redemption_for_update(redemption_id: int) -> Redemption:
    return Redemption.objects.select_for_update(of=("self",)).get(pk=redemption_id)
