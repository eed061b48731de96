"""The demo estate of the pilot story: 翰林苑, 56 households, its centre, company and committee,
four alliance organisations, and the demo accounts (see README for the password).

Every row is looked up by a natural key before it is created, so running the seed again changes
nothing. Later apps add their part of the story in their own `demo.py` (see seed_demo).
"""

import functools
import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.utils import timezone

from community import services
from community.models import (
    Activity,
    ActivityCheckin,
    ActivitySignup,
    Agreement,
    AllianceOrganisation,
    Announcement,
    AnnouncementRead,
    Ballot,
    Building,
    Centre,
    Community,
    Consultation,
    Household,
    OwnersCommittee,
    PropertyCompany,
    Residency,
    Role,
    RoleMembership,
    User,
)
from community.periods import Period
from community.permissions import CENTRE_ADMIN_GROUP

DEMO_PASSWORD = "linli2019"
PILOT_START = date(2019, 7, 1)
FEE_RATE = Decimal("1.20")
HOLDBACK_SHARE = Decimal("0.10")
BUILDINGS = 4
FLOORS = 7
UNITS_PER_FLOOR = 2  # 4 buildings x 7 floors x 2 = 56 households
AREA_MIN, AREA_MAX = 70, 140

ORGANISATIONS = [
    ("96811公众服务热线", AllianceOrganisation.Kind.HOTLINE),
    ("柯城农商银行信安支行", AllianceOrganisation.Kind.BANK),
    ("老娘舅调解工作室", AllianceOrganisation.Kind.MEDIATOR),
    ("浙江信安律师事务所", AllianceOrganisation.Kind.LAW_FIRM),
]


def default_demo_period() -> Period:
    """The story's month: the last full month before today."""
    return Period.current().previous()


@dataclass
class DemoWorld:
    period: Period
    centre: Centre
    company: PropertyCompany
    committee: OwnersCommittee
    community: Community
    households: list[Household]
    residents: list[User]
    organisations: list[AllianceOrganisation]
    agreement: Agreement
    accounts: dict[str, User]


def demo_areas() -> list[Decimal]:
    """56 floor areas between 70 and 140 m², the same on every run and every machine."""
    rng = random.Random(20190701)
    return [
        Decimal(rng.randint(AREA_MIN * 100, AREA_MAX * 100)) / 100
        for _ in range(BUILDINGS * FLOORS * UNITS_PER_FLOOR)
    ]


@functools.cache
def _demo_password_hash() -> str:
    # Hashed once for all 60 accounts: a password hash costs a noticeable fraction of a second.
    return make_password(DEMO_PASSWORD)


def _account(username: str, display_name: str) -> User:
    user, _ = User.objects.get_or_create(
        username=username,
        defaults={"display_name": display_name, "password": _demo_password_hash()},
    )
    return user


def _membership(user: User, role: str, is_manager: bool = False, **scope) -> None:
    RoleMembership.objects.get_or_create(
        user=user, role=role, **scope, defaults={"is_manager": is_manager}
    )


def seed(world: DemoWorld | None = None, *, period: Period | None = None) -> DemoWorld:
    """The first part of the demo: nothing comes before it, so `world` is always None here.
    `period` is the story's month that later apps fill with activity."""
    centre, _ = Centre.objects.get_or_create(
        name="柯城区邻礼未来社区服务中心",
        defaults={"address": "浙江省衢州市柯城区信安街道", "phone": "0570-96811"},
    )
    company, _ = PropertyCompany.objects.get_or_create(
        name="衢州信安物业服务有限公司", defaults={"phone": "0570-3049000"}
    )
    committee, _ = OwnersCommittee.objects.get_or_create(
        name="翰林苑业主委员会", defaults={"elected_on": date(2018, 11, 18)}
    )
    community, _ = Community.objects.get_or_create(
        centre=centre,
        name="翰林苑",
        defaults={
            "company": company,
            "committee": committee,
            "address": "浙江省衢州市柯城区信安街道恬静苑社区",
        },
    )
    organisations = [
        AllianceOrganisation.objects.get_or_create(
            centre=centre, name=name, defaults={"kind": kind}
        )[0]
        for name, kind in ORGANISATIONS
    ]

    agreement = Agreement.objects.filter(community=community, effective_from=PILOT_START).first()
    if agreement is None:
        agreement = services.agreement_create(
            community=community,
            effective_from=PILOT_START,
            fee_rate=FEE_RATE,
            holdback_share=HOLDBACK_SHARE,
            payout_day=5,
            bill_due_day=15,
            signed_on=date(2019, 6, 20),
        )

    areas = demo_areas()
    households = []
    for b in range(1, BUILDINGS + 1):
        building, _ = Building.objects.get_or_create(community=community, name=f"{b}幢")
        for floor in range(1, FLOORS + 1):
            for unit in range(1, UNITS_PER_FLOOR + 1):
                household, _ = Household.objects.get_or_create(
                    building=building,
                    unit=f"{floor}{unit:02d}",
                    defaults={"area": areas[len(households)]},
                )
                households.append(household)

    residents = []
    for number, household in enumerate(households, start=1):
        user = _account(f"resident{number:02d}", f"{household.building.name}{household.unit}业主")
        if not Residency.objects.filter(user=user, household=household).exists():
            services.residency_start(
                user=user,
                household=household,
                relation=Residency.Relation.OWNER,
                start_date=PILOT_START,
            )
        residents.append(user)

    accounts = {
        "centre": _account("centre", "邻礼中心管理员"),
        "staff": _account("staff", "物业客服"),
        "repairer": _account("repairer", "维修师傅"),
        "inspector": _account("inspector", "联盟督查员"),
        "committee": _account("committee", "业委会委员"),
    }
    centre_admin = accounts["centre"]
    if not centre_admin.is_staff:
        centre_admin.is_staff = True
        centre_admin.save(update_fields=["is_staff"])
    centre_admin.groups.add(Group.objects.get(name=CENTRE_ADMIN_GROUP))
    _membership(centre_admin, Role.CENTRE_ADMIN, centre=centre)
    _membership(accounts["staff"], Role.PROPERTY_STAFF, company=company, is_manager=True)
    _membership(accounts["repairer"], Role.PROPERTY_STAFF, company=company)
    _membership(accounts["inspector"], Role.ALLIANCE_INSPECTOR, organisation=organisations[0])
    _membership(accounts["committee"], Role.COMMITTEE_MEMBER, community=community)

    world = DemoWorld(
        period=period or default_demo_period(),
        centre=centre,
        company=company,
        committee=committee,
        community=community,
        households=households,
        residents=residents,
        organisations=organisations,
        agreement=agreement,
        accounts=accounts,
    )
    seed_community_life(world)
    return world


# --- Community life: announcements, activities and volunteering, consultations ----------------
#
# The story's month gets a volunteering morning and a neighbours' dinner with their check-ins,
# and a consultation that closed with its result; around today there is a volunteering session
# under way (a resident can sign up and be checked in at once), an event next week, and an open
# consultation a resident can vote in. Everything goes through the services with explicit times,
# and is found by its title before it is made, so a second run changes nothing. Rows placed
# around "today" keep the times of their first run.

VOLUNTEERING_MORNING = "楼道清理志愿服务"
NEIGHBOURS_DINNER = "邻里百家宴"
LIVE_VOLUNTEERING = "垃圾分类督导志愿服务"
NEXT_EVENT = "社区亲子运动会"
CLOSED_CONSULTATION = "关于增设电动自行车集中充电桩的决定"
OPEN_CONSULTATION = "关于使用小区公共收益更换单元门禁系统的决定"
VOTE_OPTIONS = [{"label": "同意", "approves": True}, {"label": "反对"}, {"label": "弃权"}]


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=timezone.get_default_timezone())


def _saturdays(period: Period) -> list[date]:
    days = (period.day(n) for n in range(1, period.last_day.day + 1))
    return [day for day in days if day.weekday() == 5]


def _announce(world: DemoWorld, *, title: str, **fields) -> Announcement:
    found = Announcement.objects.filter(centre=world.centre, title=title).first()
    return found or services.announcement_publish(title=title, **fields)


def _seed_announcements(world: DemoWorld, now: datetime) -> None:
    first, story_end = world.period.first_day, world.period.last_day
    recent = max(now - timedelta(days=1), _at(story_end, 23, 0))
    welcome = _announce(
        world,
        title="邻礼中心便民服务时间",
        author=world.accounts["centre"],
        centre=world.centre,
        body="邻礼中心每天 8:30–17:30 为各小区居民办理物业费缴纳、报事报修登记和积分兑换。"
        "物业费由中心托管，按服务考核结果支付给物业公司。",
        published_at=_at(first, 9),
    )
    _announce(
        world,
        title="二次供水水箱清洗停水通知",
        author=world.accounts["staff"],
        community=world.community,
        body="本月中旬将对小区二次供水水箱进行清洗消毒，当天 9:00–15:00 停水，请提前储水。",
        published_at=_at(world.period.day(10), 10),
    )
    # Expired: it left the board on its date (admin still lists it).
    _announce(
        world,
        title="中秋节物业值班安排",
        author=world.accounts["staff"],
        community=world.community,
        body="节日期间物业服务中心 24 小时值班，报修电话 0570-3049000。",
        published_at=_at(first, 10),
        expires_at=_at(world.period.day(8), 0),
    )
    result = _announce(
        world,
        title="充电桩增设事项表决结果公告",
        author=world.accounts["committee"],
        community=world.community,
        body="经业主共同表决，增设电动自行车集中充电桩的事项获得通过，表决结果详见“协商共建”。",
        pinned=True,
        published_at=_at(world.period.day(18), 9),
    )
    _announce(
        world,
        title="志愿者招募：垃圾分类督导",
        author=world.accounts["centre"],
        centre=world.centre,
        body="今天在各垃圾分类亭开展督导志愿服务，欢迎居民报名参加，签到后记录志愿时长。",
        published_at=recent,
    )
    # Most neighbours read the month's first notices; resident01 has not yet.
    for resident in world.residents[1:40]:
        for announcement, read_at in ((welcome, _at(first, 20)), (result, _at(story_end, 20))):
            AnnouncementRead.objects.get_or_create(
                announcement=announcement, user=resident, defaults={"read_at": read_at}
            )


def _activity(world: DemoWorld, *, title: str, at: datetime, **fields) -> Activity:
    found = Activity.objects.filter(community=world.community, title=title).first()
    return found or services.activity_create(
        community=world.community, title=title, at=at, **fields
    )


def _sign_up(activity: Activity, residents: list[User], at: datetime) -> None:
    for minutes, resident in enumerate(residents):
        if not ActivitySignup.objects.filter(activity=activity, user=resident).exists():
            services.activity_signup(
                activity=activity, user=resident, at=at + timedelta(minutes=minutes)
            )


def _check_in(activity: Activity, residents: list[User], *, at: datetime, by=None, hours=None):
    """By the door code (by=None) or by the organiser `by`, a few minutes apart."""
    for minutes, resident in enumerate(residents):
        if ActivityCheckin.objects.filter(activity=activity, user=resident).exists():
            continue
        services.activity_checkin(
            activity=activity,
            user=resident,
            recorded_by=by or resident,
            code=None if by else activity.checkin_code,
            hours=hours,
            at=at + timedelta(minutes=minutes),
        )


def _seed_activities(world: DemoWorld, now: datetime) -> None:
    residents, centre, staff = world.residents, world.accounts["centre"], world.accounts["staff"]
    saturdays = _saturdays(world.period)
    morning = _at(saturdays[1], 8, 30)
    if morning + timedelta(hours=3) < now:
        activity = _activity(
            world,
            title=VOLUNTEERING_MORNING,
            kind=Activity.Kind.VOLUNTEERING,
            organiser=centre,
            place="1幢至4幢楼道",
            description="清理楼道堆放杂物、擦拭扶手和信报箱，工具由邻礼中心准备。",
            starts_at=morning,
            ends_at=morning + timedelta(hours=3),
            capacity=20,
            at=_at(world.period.first_day, 9),
        )
        _sign_up(activity, residents[1:17], at=_at(world.period.day(2), 19))
        _check_in(activity, residents[1:13], at=morning + timedelta(minutes=2))
        # Two came late and left early: the organiser recorded their hours by hand.
        _check_in(
            activity,
            residents[13:15],
            at=morning + timedelta(hours=1),
            by=centre,
            hours=Decimal("2.0"),
        )
    dinner = _at(saturdays[-1], 17, 30)
    if dinner + timedelta(hours=2, minutes=30) < now:
        activity = _activity(
            world,
            title=NEIGHBOURS_DINNER,
            kind=Activity.Kind.EVENT,
            organiser=staff,
            place="中心花园",
            description="每户带一道拿手菜，邻里相聚。物业提供桌椅和饮品。",
            starts_at=dinner,
            ends_at=dinner + timedelta(hours=2, minutes=30),
            capacity=80,
            at=_at(world.period.first_day, 11),
        )
        _sign_up(activity, residents[0:40], at=_at(world.period.day(5), 20))
        _check_in(activity, residents[0:36], at=dinner + timedelta(minutes=1))

    # Under way now: sign up and be checked in during the walk-through.
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=30 + now.minute % 15)
    live = _activity(
        world,
        title=LIVE_VOLUNTEERING,
        kind=Activity.Kind.VOLUNTEERING,
        organiser=centre,
        place="各垃圾分类亭",
        description="在投放高峰时段引导居民正确分类投放，每班 3 小时。",
        starts_at=start,
        ends_at=start + timedelta(hours=3),
        capacity=12,
        at=start - timedelta(days=1),
    )
    _sign_up(live, residents[19:25], at=live.starts_at - timedelta(hours=20))
    today = timezone.localdate(now)
    next_saturday = today + timedelta(days=(5 - today.weekday()) % 7 + 7)
    _activity(
        world,
        title=NEXT_EVENT,
        kind=Activity.Kind.EVENT,
        organiser=staff,
        place="健身广场",
        description="亲子接力、跳绳和拔河，欢迎全家参加。",
        starts_at=_at(next_saturday, 9),
        ends_at=_at(next_saturday, 11, 30),
        capacity=30,
        at=now,
    )


def _consultation(world: DemoWorld, *, title: str, **fields) -> Consultation:
    found = Consultation.objects.filter(community=world.community, title=title).first()
    return found or services.consultation_create(
        creator=world.accounts["committee"],
        community=world.community,
        title=title,
        options=VOTE_OPTIONS,
        **fields,
    )


def _vote(consultation: Consultation, choices: list[tuple[int, int]], world, at: datetime):
    """`choices`: (resident number, option position) pairs, cast a few minutes apart."""
    options = {option.position: option for option in consultation.options.all()}
    for minutes, (number, position) in enumerate(choices):
        household = world.households[number - 1]
        if Ballot.objects.filter(consultation=consultation, household=household).exists():
            continue
        services.consultation_vote(
            consultation=consultation,
            user=world.residents[number - 1],
            option=options[position],
            household=household,
            at=at + timedelta(minutes=7 * minutes),
        )


def _seed_consultations(world: DemoWorld, now: datetime) -> None:
    opens, closes = _at(world.period.day(3), 9), _at(world.period.day(17), 18)
    if closes < now:
        closed = _consultation(
            world,
            title=CLOSED_CONSULTATION,
            description="拟在小区北侧非机动车棚增设 40 个电动自行车集中充电口，费用由充电运营商"
            "承担，充电收益的 10% 计入小区公共收益。请各户业主表决。",
            opens_at=opens,
            closes_at=closes,
            secret_ballot=False,
            at=opens - timedelta(days=1),
        )
        # 44 of 56 households vote: 33 agree, 7 disagree, 4 abstain (both majorities reached).
        rng = random.Random(f"linli-consultation-{world.period}")
        voters = rng.sample(range(1, len(world.households) + 1), 44)
        choices = [(n, 1) for n in voters[:33]] + [(n, 2) for n in voters[33:40]]
        choices += [(n, 3) for n in voters[40:]]
        _vote(closed, choices, world, at=opens + timedelta(hours=1))
        services.consultation_tally(consultation=closed, at=closes + timedelta(minutes=1))

    opened = now.replace(second=0, microsecond=0) - timedelta(days=2)
    open_one = _consultation(
        world,
        title=OPEN_CONSULTATION,
        description="单元门禁系统已使用 8 年，故障频繁。拟使用小区公共收益约 6.8 万元更换为"
        "人脸识别门禁。请各户业主在截止时间前表决；表决期间可以修改。",
        opens_at=opened,
        closes_at=opened + timedelta(days=14),
        at=opened - timedelta(hours=1),
    )
    _vote(open_one, [(n, 1 if n % 4 else 2) for n in range(30, 48)], world, at=opened)


def seed_community_life(world: DemoWorld) -> None:
    now = timezone.now()
    _seed_announcements(world, now)
    _seed_activities(world, now)
    _seed_consultations(world, now)
