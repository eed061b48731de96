"""The repairs part of the demo: ticket categories, and the story's month at 翰林苑 — 22 incident
reports and 6 repair requests, every one accepted, assigned, worked, resolved within its
deadlines, confirmed and rated 5 stars by the resident who filed it. All through the services,
with explicit times inside the month, so the timeline, the SLA marks and the handling figures are
exactly what the app would have recorded (the figures read 28 / 28 / 100%).

Two tickets of today are left open for the walk-through: a street lamp reported yesterday that
nobody accepted (the SLA job escalates it on its next run) and a fresh repair request.

Idempotent: categories are found by kind and name, tickets by who filed them and when (or, for
today's two, by title), so a second run changes nothing.
"""

import random
from datetime import datetime, time, timedelta

from django.utils import timezone

from community import selectors as community_selectors
from community import services as community_services
from community.demo import DemoWorld
from repairs import services
from repairs.models import Kind, Ticket, TicketCategory

# (kind, name, response hours, resolve hours)
CATEGORIES = [
    (Kind.REPORT, "公共设施损坏", 2, 48),
    (Kind.REPORT, "消防通道占用", 1, 4),
    (Kind.REPORT, "环境卫生", 4, 24),
    (Kind.REPORT, "违规停车", 2, 8),
    (Kind.REPORT, "邻里纠纷", 8, 72),
    (Kind.REPORT, "其他报事", 8, 72),
    (Kind.REPAIR, "水电维修", 2, 24),
    (Kind.REPAIR, "电梯故障", 1, 12),
    (Kind.REPAIR, "门窗维修", 8, 72),
    (Kind.REPAIR, "管道疏通", 2, 24),
    (Kind.REPAIR, "其他维修", 8, 72),
]

# (category, title, location); the resident filing each is chosen below.
REPORTS = [
    ("公共设施损坏", "路灯不亮", "3幢东侧路灯"),
    ("消防通道占用", "消防通道被私家车堵住", "2幢北侧消防通道"),
    ("环境卫生", "垃圾桶满了没人清运", "1幢垃圾分类亭"),
    ("违规停车", "电动车停在楼道里充电", "4幢1单元楼道"),
    ("公共设施损坏", "单元门门禁失灵", "2幢单元门"),
    ("邻里纠纷", "楼上深夜噪音", "1幢"),
    ("环境卫生", "绿化带里有建筑垃圾", "中心花园"),
    ("公共设施损坏", "儿童滑梯螺丝松动", "儿童游乐区"),
    ("违规停车", "车辆占用盲道", "小区东门"),
    ("其他报事", "流浪猫受伤", "3幢车棚"),
    ("公共设施损坏", "地下车库灯坏了三盏", "地下车库B区"),
    ("环境卫生", "化粪池有异味", "4幢西侧"),
    ("消防通道占用", "杂物堆放在消防通道", "1幢南侧"),
    ("公共设施损坏", "健身器材损坏", "健身广场"),
    ("邻里纠纷", "空调外机滴水到楼下", "2幢"),
    ("环境卫生", "楼道小广告", "3幢2单元"),
    ("公共设施损坏", "信报箱门脱落", "4幢大堂"),
    ("其他报事", "有陌生人推销上门", "2幢"),
    ("违规停车", "外来车辆长期占用车位", "地面停车场"),
    ("公共设施损坏", "雨水井盖松动", "小区主干道"),
    ("环境卫生", "树枝遮挡路灯", "1幢北侧"),
    ("其他报事", "快递柜屏幕不亮", "小区西门"),
]
REPAIRS = [
    ("水电维修", "卫生间水管漏水"),
    ("门窗维修", "阳台推拉门卡住"),
    ("管道疏通", "厨房下水道堵塞"),
    ("水电维修", "客厅插座没电"),
    ("电梯故障", "电梯按键失灵"),
    ("门窗维修", "入户门锁不好用"),
]
LIVE_OVERDUE = ("公共设施损坏", "单元门口路灯一直闪", "2幢1单元门口", 5)
LIVE_NEW = ("水电维修", "厨房水龙头漏水", 12)


def _categories() -> dict[str, TicketCategory]:
    found = {}
    for kind, name, response_hours, resolve_hours in CATEGORIES:
        category, _ = TicketCategory.objects.get_or_create(
            kind=kind,
            name=name,
            defaults={
                "response_hours": response_hours,
                "resolve_hours": resolve_hours,
                "position": len(found),
            },
        )
        found[name] = category
    return found


def _story_days(world: DemoWorld, now: datetime) -> list:
    """Days of the story's month whose tickets can be finished by now (two days' margin)."""
    tz = timezone.get_default_timezone()
    period = world.period
    return [
        day
        for number in range(1, period.last_day.day + 1)
        if (day := period.day(number))
        and datetime.combine(day, time(20), tzinfo=tz) + timedelta(days=2) < now
    ]


def _handle_and_rate(ticket: Ticket, *, staff, filer, at: datetime, rng: random.Random) -> None:
    """Accept, assign, start, resolve (inside the deadlines), confirm, rate 5 stars."""
    category = ticket.category
    at += timedelta(minutes=rng.randint(5, min(50, category.response_hours * 60 - 5)))
    services.ticket_transition(ticket=ticket, actor=staff, action="accept", at=at)
    at += timedelta(minutes=rng.randint(2, 10))
    services.ticket_transition(ticket=ticket, actor=staff, action="assign", assignee=staff, at=at)
    at += timedelta(minutes=rng.randint(5, 30))
    services.ticket_transition(ticket=ticket, actor=staff, action="start", at=at)
    at += timedelta(minutes=rng.randint(20, 90))
    services.ticket_transition(ticket=ticket, actor=staff, action="resolve", note="已处理", at=at)
    at += timedelta(hours=rng.randint(1, 20))
    services.ticket_transition(ticket=ticket, actor=filer, action="close", at=at)
    services.ticket_rate(
        ticket=ticket, user=filer, stars=5, comment="处理及时，满意", at=at + timedelta(minutes=1)
    )
    # The "your ticket is resolved" notice belongs to the story's month: already read.
    link_notices = community_selectors.notice_list(user=filer, unread_only=True).filter(
        link__endswith=f"/repairs/{ticket.pk}/"
    )
    community_services.notice_mark_read(
        user=filer, notice_ids=list(link_notices.values_list("pk", flat=True))
    )


def _story_tickets(world: DemoWorld, categories: dict[str, TicketCategory], now: datetime):
    days = _story_days(world, now)
    if not days:
        return  # the story's month is not over yet: nothing can have been finished in it
    tz = timezone.get_default_timezone()
    staff = world.accounts["staff"]
    plan = [(Kind.REPORT, *report) for report in REPORTS]
    plan += [(Kind.REPAIR, category, title, "") for category, title in REPAIRS]
    random.Random(f"linli-repairs-{world.period}").shuffle(plan)
    for number, (kind, category_name, title, location) in enumerate(plan):
        # One generator per ticket: skipping a ticket made before leaves the others unchanged.
        rng = random.Random(f"linli-repairs-{world.period}-{number}")
        day = days[number * len(days) // len(plan)]
        at = datetime.combine(day, time(rng.randint(8, 18), rng.randint(0, 59)), tzinfo=tz)
        # Repairs come from inside a flat; reports from any resident.
        index = rng.randrange(len(world.residents))
        filer = world.residents[index]
        household = world.households[index] if kind == Kind.REPAIR else None
        if Ticket.objects.filter(community=world.community, filed_by=filer, created_at=at).exists():
            continue
        ticket = services.ticket_create(
            filed_by=filer,
            kind=kind,
            category=categories[category_name],
            title=title,
            household=household,
            community=world.community,
            location=location,
            at=at,
        )
        _handle_and_rate(ticket, staff=staff, filer=filer, at=at, rng=rng)


def _live_tickets(world: DemoWorld, categories: dict[str, TicketCategory], now: datetime):
    tz = timezone.get_default_timezone()
    month_end = datetime.combine(world.period.next().first_day, time.min, tzinfo=tz)
    category_name, title, location, resident = LIVE_OVERDUE
    filer = world.residents[resident - 1]
    filed_at = max(now - timedelta(hours=20), month_end + timedelta(minutes=1))
    if filed_at < now and not Ticket.objects.filter(filed_by=filer, title=title).exists():
        services.ticket_create(
            filed_by=filer,
            kind=Kind.REPORT,
            category=categories[category_name],
            title=title,
            community=world.community,
            location=location,
            at=filed_at,
        )
    category_name, title, resident = LIVE_NEW
    filer = world.residents[resident - 1]
    filed_at = max(now - timedelta(minutes=30), month_end + timedelta(minutes=1))
    if filed_at < now and not Ticket.objects.filter(filed_by=filer, title=title).exists():
        services.ticket_create(
            filed_by=filer,
            kind=Kind.REPAIR,
            category=categories[category_name],
            title=title,
            description="水龙头根部一直滴水，关不紧。",
            household=world.households[resident - 1],
            at=filed_at,
        )


def seed(world: DemoWorld) -> DemoWorld:
    now = timezone.now()
    categories = _categories()
    _story_tickets(world, categories, now)
    _live_tickets(world, categories, now)
    return world
