"""The alliance part of the story's month at 翰林苑: every household that paid for the month (46
of 56) rates the service, mostly 5 stars; the 96811 hotline's inspector makes one spot check; and
the month's scorecard is finalized, which releases the hold-back billing kept back when it paid
the month out (score × hold-back to the company, the rest to the estate's public fund).

All through the services, with explicit times inside the month (ratings after the payments,
which billing's demo places before the 15th). Idempotent: a household's rating, the inspector's
check and the final scorecard are each found before anything is made, so a second run changes
nothing.
"""

import random
from datetime import datetime, time

from django.conf import settings
from django.utils import timezone

from alliance import services
from alliance.models import DIMENSIONS, Inspection, ServiceRating
from billing import selectors as billing_selectors
from community.demo import DemoWorld

COMMENTS = [
    "保洁阿姨很负责，楼道每天都很干净。",
    "保安晚上巡逻很认真，感觉安全多了。",
    "报修当天就上门了，师傅态度很好。",
    "绿化修剪得不错，希望多种些花。",
    "地下车库的灯修好了，点赞。",
    "小程序报事很方便，处理也及时。",
]
INSPECTION = {
    "staff_on_duty": 11,
    "staff_rostered": 12,
    "grid_cooperation": 95,
    "major_matter_cooperation": 90,
    "note": "月度抽测：门岗、保洁、绿化到岗11人（排班12人，1人病假）；网格员走访配合良好，"
    "重大事项（消防通道整治）配合积极。",
}


def _at(world: DemoWorld, day: int, hour: int, minute: int) -> datetime:
    """A time of the story's month, never later than now."""
    moment = datetime.combine(world.period.day(day), time(hour, minute))
    return min(timezone.make_aware(moment), timezone.now())


def _stars(rng: random.Random) -> dict[str, int]:
    return {dimension: 5 if rng.random() < 0.85 else 4 for dimension in DIMENSIONS}


def _ratings(world: DemoWorld) -> None:
    for number, (user, household) in enumerate(
        zip(world.residents, world.households, strict=True), start=1
    ):
        if not billing_selectors.household_paid_for_period(
            household=household, period=world.period
        ):
            continue
        if ServiceRating.objects.filter(household=household, period=str(world.period)).exists():
            continue
        rng = random.Random(f"linli-alliance-{world.period}-{number}")
        services.rating_create(
            user=user,
            household_id=household.pk,
            period=world.period,
            stars=_stars(rng),
            comment=COMMENTS[(number // 4) % len(COMMENTS)] if number % 4 == 0 else "",
            at=_at(world, 16 + number % 12, 18 + number % 4, (number * 7) % 60),
        )


def _inspection(world: DemoWorld) -> None:
    inspector = world.accounts["inspector"]
    month = str(world.period)
    if Inspection.objects.filter(
        community=world.community, period=month, inspector=inspector
    ).exists():
        return
    services.inspection_create(
        user=inspector,
        community_id=world.community.pk,
        period=world.period,
        at=_at(world, 20, 10, 30),
        **INSPECTION,
    )


def seed(world: DemoWorld) -> DemoWorld:
    _ratings(world)
    _inspection(world)
    if world.period.last_day < timezone.localdate():
        # Finalized as the monthly job would have, on the finalize day of the next month (or
        # now, if that day has not come yet).
        finalize_at = timezone.make_aware(
            datetime.combine(world.period.next().day(settings.ALLIANCE_FINALIZE_DAY), time(3, 20))
        )
        services.scorecard_finalize(
            community=world.community,
            period=world.period,
            now=min(finalize_at, timezone.now()),
        )
    return world
