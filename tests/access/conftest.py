"""The world the access matrix runs in, built once per module with the apps' factories and
services (never by writing ledger or points rows directly).

Centre C1 serves two estates, "this" estate E1 and E2, both managed by company K1. Centre C2
serves E3, managed by K2. Every object a URL names (a bill, a payment, a ticket, an activity...)
belongs to "this" household H1 of E1, filed or paid by its resident. The twelve roles:

    anonymous        nobody signed in
    resident         owner of H1 (E1): the household every object belongs to
    neighbour        owner of H2, another household of E1
    other_estate     owner of H3 in E2 (same centre, same company)
    staff            property staff of K1, which manages E1 and E2
    other_staff      property staff of K2 (manages E3 only)
    inspector        alliance inspector of an organisation of C1
    other_inspector  alliance inspector of an organisation of C2
    committee        member of E1's owners' committee
    other_committee  member of E2's owners' committee
    centre_admin     centre admin of C1
    other_admin      centre admin of C2
"""

import importlib
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from alliance import services as alliance_services
from billing import services as billing_services
from billing.models import Bill, Payment
from billing.tests.factories import BillFactory, desk_pay, pay
from community import services as community_services
from community.models import Activity, Role
from community.periods import Period
from community.permissions import CENTRE_ADMIN_GROUP, sync_role_groups
from community.tests.factories import (
    AgreementFactory,
    AllianceOrganisationFactory,
    CentreFactory,
    CommunityFactory,
    HouseholdFactory,
    PropertyCompanyFactory,
    member,
    resident,
)
from points import services as points_services
from points.tests.factories import RewardFactory, give_contribution
from repairs import services as repairs_services
from repairs.models import Kind
from repairs.tests.factories import TicketCategoryFactory, jpeg_bytes, upload

ROLES = (
    "anonymous",
    "resident",
    "neighbour",
    "other_estate",
    "staff",
    "other_staff",
    "inspector",
    "other_inspector",
    "committee",
    "other_committee",
    "centre_admin",
    "other_admin",
)

DEFAULT_RULES = importlib.import_module("points.migrations.0003_default_rules")
OPTIONS = [{"label": "同意", "approves": True}, {"label": "反对"}]
NEIGHBOUR_COMMENT = "102室：楼道很干净"
TICKET_TITLE = "101室卫生间水管漏水"


@dataclass
class World:
    users: dict = field(default_factory=dict)  # role -> User (no entry for anonymous)
    objects: dict = field(default_factory=dict)  # name -> model instance or value


def _estate(centre, company, name):
    community = CommunityFactory(centre=centre, company=company, name=name)
    AgreementFactory(community=community, effective_from=date(2019, 7, 1))
    return community


def build_world() -> World:
    # A transactional test elsewhere in the run may have emptied the rules the data migration
    # made (as points/tests/conftest.py explains); awards need them.
    DEFAULT_RULES.forwards(django_apps, None)
    now = timezone.now()
    last_month = Period.current().previous()

    c1, c2 = CentreFactory(name="C1"), CentreFactory(name="C2")
    k1, k2 = PropertyCompanyFactory(name="K1"), PropertyCompanyFactory(name="K2")
    e1, e2, e3 = _estate(c1, k1, "E1"), _estate(c1, k1, "E2"), _estate(c2, k2, "E3")
    h1 = HouseholdFactory(building__community=e1, unit="101", area=Decimal("100.00"))
    h2 = HouseholdFactory(building=h1.building, unit="102", area=Decimal("90.00"))
    h3 = HouseholdFactory(building__community=e2, unit="201")
    h4 = HouseholdFactory(building__community=e3, unit="301")

    org1 = AllianceOrganisationFactory(centre=c1, name="O1")
    org2 = AllianceOrganisationFactory(centre=c2, name="O2")
    users = {
        "resident": resident(h1, user__username="resident"),
        "neighbour": resident(h2, user__username="neighbour"),
        "other_estate": resident(h3, user__username="other_estate"),
        "staff": member(Role.PROPERTY_STAFF, company=k1, user__username="staff"),
        "other_staff": member(Role.PROPERTY_STAFF, company=k2, user__username="other_staff"),
        "inspector": member(Role.ALLIANCE_INSPECTOR, organisation=org1, user__username="insp"),
        "other_inspector": member(
            Role.ALLIANCE_INSPECTOR, organisation=org2, user__username="other_insp"
        ),
        "committee": member(Role.COMMITTEE_MEMBER, community=e1, user__username="committee"),
        "other_committee": member(
            Role.COMMITTEE_MEMBER, community=e2, user__username="other_committee"
        ),
        "centre_admin": member(Role.CENTRE_ADMIN, centre=c1, user__username="centre_admin"),
        "other_admin": member(Role.CENTRE_ADMIN, centre=c2, user__username="other_admin"),
    }
    # Centre admins sign in to Django admin as the demo's do (is_staff, the centre admins' group).
    sync_role_groups()
    for role in ("centre_admin", "other_admin"):
        users[role].is_staff = True
        users[role].save(update_fields=["is_staff"])
        users[role].groups.add(Group.objects.get(name=CENTRE_ADMIN_GROUP))
    # Someone living in E3 too, so the other centre is not empty.
    resident(h4, user__username="e3_resident")
    res = users["resident"]

    # Bills of H1: last month paid, this month with a pending payment, next month unpaid.
    paid_bill = BillFactory(household=h1, period=str(last_month), due_date=last_month.day(15))
    this_month = last_month.next()
    pending_bill = BillFactory(household=h1, period=str(this_month), due_date=this_month.day(15))
    unpaid_bill = BillFactory(
        household=h1, period=str(this_month.next()), due_date=this_month.next().day(15)
    )
    pay(res, [paid_bill])
    payment = Payment.objects.get(items__bill=paid_bill, status=Payment.Status.SUCCEEDED)
    pending, _created = billing_services.payment_create(
        payer=res,
        bill_ids=[pending_bill.pk],
        gateway="sandbox",
        idempotency_key="world-pending",
        fingerprint=billing_services.request_fingerprint(
            {"bill_ids": [pending_bill.pk], "gateway": "sandbox"}
        ),
    )
    # Two months ahead, paid in cash at C1's desk by its centre admin (the desk's pages).
    desk_bill = BillFactory(
        household=h1, period=str(this_month.plus(2)), due_date=this_month.plus(2).day(15)
    )
    desk_payment = desk_pay(users["centre_admin"], [desk_bill])
    # The neighbour has paid last month too, and rated it (so rating lists are not empty).
    neighbour_bill = BillFactory(household=h2, period=str(last_month), due_date=last_month.day(15))
    pay(users["neighbour"], [neighbour_bill])
    neighbour_rating = alliance_services.rating_create(
        user=users["neighbour"],
        household_id=h2.pk,
        period=last_month,
        stars={"cleaning": 5, "greening": 4, "security": 5, "reporting": 5, "repair": 4},
        comment=NEIGHBOUR_COMMENT,
    )
    inspection = alliance_services.inspection_create(
        user=users["inspector"],
        community_id=e1.pk,
        period=last_month,
        staff_on_duty=9,
        staff_rostered=10,
        grid_cooperation=90,
        major_matter_cooperation=85,
    )
    scorecard = alliance_services.scorecard_refresh(community=e1, period=last_month)

    # Tickets of H1, filed by its resident: one new (with a photo), one resolved.
    repair = TicketCategoryFactory(kind=Kind.REPAIR, name="水电")
    TicketCategoryFactory(kind=Kind.REPORT, name="公共设施")
    ticket = repairs_services.ticket_create(
        filed_by=res, kind=Kind.REPAIR, category=repair, title=TICKET_TITLE, household=h1
    )
    photo = repairs_services.ticket_photo_add(ticket=ticket, user=res, upload=upload(jpeg_bytes()))
    resolved = repairs_services.ticket_create(
        filed_by=res, kind=Kind.REPAIR, category=repair, title="灯不亮", household=h1
    )
    for action in ("accept", "resolve"):
        repairs_services.ticket_transition(ticket=resolved, actor=users["staff"], action=action)

    # Community life in E1.
    announcement = community_services.announcement_publish(
        author=users["centre_admin"], community=e1, title="停水通知", body="周三停水。"
    )
    activity = community_services.activity_create(
        organiser=users["staff"],
        community=e1,
        kind=Activity.Kind.VOLUNTEERING,
        title="楼道清理",
        place="1幢",
        starts_at=now - timedelta(minutes=30),
        ends_at=now + timedelta(hours=3),
        capacity=10,
        at=now - timedelta(days=2),
    )
    community_services.activity_signup(activity=activity, user=res, at=now - timedelta(days=1))
    consultation = community_services.consultation_create(
        creator=users["committee"],
        community=e1,
        title="增设充电桩",
        description="拟增设电动自行车充电桩。",
        opens_at=now - timedelta(days=1),
        closes_at=now + timedelta(days=6),
        options=OPTIONS,
        at=now - timedelta(days=2),
    )
    closed = community_services.consultation_create(
        creator=users["committee"],
        community=e1,
        title="更换门禁",
        description="是否更换门禁系统。",
        opens_at=now - timedelta(days=10),
        closes_at=now - timedelta(days=1),
        options=OPTIONS,
        secret_ballot=False,
        at=now - timedelta(days=11),
    )
    community_services.consultation_vote(
        consultation=closed,
        user=res,
        option=closed.options.get(label="同意"),
        at=now - timedelta(days=5),
    )

    # Points: the resident has contribution to spend, and one redemption of C1's reward.
    give_contribution(res, 100)
    reward = RewardFactory(centre=c1, organisation=org1, cost=10, stock=10)
    redemption, _created = points_services.reward_redeem(
        user=res, reward_id=reward.pk, idempotency_key="world-redeem", fingerprint="world"
    )

    return World(
        users=users,
        objects={
            "centre": c1,
            "community": e1,
            "household": h1,
            "period": last_month,
            "paid_bill": paid_bill,
            "pending_bill": pending_bill,
            "unpaid_bill": Bill.objects.get(pk=unpaid_bill.pk),
            "payment": payment,
            "pending_payment": pending,
            "desk_payment": desk_payment,
            "desk_cash": f"{desk_payment.amount:.2f}",
            "scorecard": scorecard,
            "inspection": inspection,
            "neighbour_rating": neighbour_rating,
            "ticket": ticket,
            "photo": photo,
            "resolved_ticket": resolved,
            "category": repair,
            "announcement": announcement,
            "activity": activity,
            "consultation": consultation,
            "closed_consultation": closed,
            "reward": reward,
            "redemption": redemption,
            "org": org1,
            # Text that only a page showing this household's (or the neighbour's) rows contains.
            "ticket_title": TICKET_TITLE,
            "payment_link": f'href="{reverse("payment-detail-page", args=[payment.pk])}"',
            "unpaid_bill_box": f'name="bill" value="{unpaid_bill.pk}"',
            "neighbour_comment": NEIGHBOUR_COMMENT,
        },
    )


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    """Built once for the module inside a transaction that is rolled back at its end; each test
    then runs in a savepoint of its own (pytest-django's `db`), and each cell in another."""
    with django_db_blocker.unblock(), transaction.atomic():
        yield build_world()
        transaction.set_rollback(True)
