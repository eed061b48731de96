"""The demo estate of the pilot story: 翰林苑, 56 households, its centre, company and committee,
four alliance organisations, and the demo accounts (see README for the password).

Every row is looked up by a natural key before it is created, so running the seed again changes
nothing. Later apps add their part of the story in their own `demo.py` (see seed_demo).
"""

import functools
import random
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group

from community import services
from community.models import (
    Agreement,
    AllianceOrganisation,
    Building,
    Centre,
    Community,
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

    return DemoWorld(
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
