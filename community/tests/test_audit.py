"""The audit log (community.audit): money actions, role changes and admin edits, each with who,
what, when and from where; append-only; read by centre admins for their own centre only."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from billing import reconciliation
from billing import services as billing_services
from billing.models import SandboxTrade
from billing.tests.factories import BillFactory, estate, pay
from community.models import AuditEntry, Residency, Role, RoleMembership
from community.periods import Period
from community.permissions import CENTRE_ADMIN_GROUP
from community.tests.factories import (
    CommunityFactory,
    HouseholdFactory,
    UserFactory,
    member,
    resident,
)

pytestmark = pytest.mark.django_db

Action = AuditEntry.Action
AUGUST = Period(2019, 8)


@pytest.fixture
def paid():
    community, (home, _other) = estate(2)
    payer = resident(home)
    bills = [
        BillFactory(household=home, period="2019-08", amount=Decimal("120.00")),
        BillFactory(household=home, period="2019-09", amount=Decimal("121.20")),
    ]
    payment = pay(payer, bills)
    admin = member(Role.CENTRE_ADMIN, centre=community.centre)
    return {"community": community, "payment": payment, "admin": admin, "payer": payer}


def admin_client(user) -> Client:
    user.is_staff = True
    user.save()
    user.groups.add(Group.objects.get(name=CENTRE_ADMIN_GROUP))
    client = Client()
    client.force_login(user)
    return client


# --- money ----------------------------------------------------------------------------------


def test_a_payout_run_through_the_api_is_logged_with_who_what_when_and_where(paid, as_user):
    before = timezone.now()
    response = as_user(paid["admin"]).post(
        "/api/v1/payouts/run/",
        {"community": paid["community"].pk, "period": "2019-08"},
        format="json",
        REMOTE_ADDR="198.51.100.23",
    )
    assert response.status_code == 201

    entry = AuditEntry.objects.get(action=Action.PAYOUT)
    assert (entry.actor, entry.actor_name) == (paid["admin"], paid["admin"].username)
    assert entry.ip_address == "198.51.100.23"
    assert entry.centre == paid["community"].centre
    assert (entry.target_type, entry.target_id) == ("billing.payout", str(response.json()["id"]))
    assert entry.details == {
        "community": paid["community"].name,
        "period": "2019-08",
        "collected": "120.00",
        "to_company": "108.00",
        "held_back": "12.00",
    }
    assert before <= entry.created_at <= timezone.now()
    # Running it again pays nothing and logs nothing.
    as_user(paid["admin"]).post(
        "/api/v1/payouts/run/",
        {"community": paid["community"].pk, "period": "2019-08"},
        format="json",
    )
    assert AuditEntry.objects.filter(action=Action.PAYOUT).count() == 1


def test_a_hold_back_release_by_the_scheduled_job_is_logged_as_the_system(paid):
    billing_services.payout_run(community=paid["community"], period=AUGUST)
    billing_services.release_holdback(
        community=paid["community"], period=AUGUST, score=Decimal("0.85")
    )

    entry = AuditEntry.objects.get(action=Action.HOLDBACK_RELEASE)
    assert (entry.actor, entry.actor_name, entry.ip_address) == (None, "", None)
    assert entry.centre == paid["community"].centre
    assert entry.details["score"] == "0.85"
    assert (entry.details["to_company"], entry.details["to_public_fund"]) == ("10.20", "1.80")


def test_a_refund_is_logged_with_its_amount_and_reason(paid, as_user):
    response = as_user(paid["admin"]).post(
        f"/api/v1/payments/{paid['payment'].pk}/refund/",
        {"amount": "20.00", "reason": "moved out"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="r1",
        REMOTE_ADDR="203.0.113.9",
    )
    assert response.status_code == 201

    entry = AuditEntry.objects.get(action=Action.REFUND)
    assert (entry.actor, entry.ip_address) == (paid["admin"], "203.0.113.9")
    assert entry.centre == paid["community"].centre
    assert entry.details["amount"] == "20.00"
    assert entry.details["reason"] == "moved out"
    assert entry.details["payment"] == paid["payment"].out_trade_no


def test_a_refund_the_gateway_refuses_leaves_no_line(paid, as_user, monkeypatch):
    from billing.gateways.base import GatewayError
    from billing.gateways.sandbox import SandboxGateway

    def refuse(self, **kwargs):
        raise GatewayError("closed for the night")

    monkeypatch.setattr(SandboxGateway, "refund", refuse)
    response = as_user(paid["admin"]).post(
        f"/api/v1/payments/{paid['payment'].pk}/refund/",
        {"amount": "20.00", "reason": "moved out"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="r1",
    )
    assert response.status_code == 409
    assert not AuditEntry.objects.filter(action=Action.REFUND).exists()


def test_waiving_a_bill_is_logged():
    bill = BillFactory()
    billing_services.bill_waive(bill=bill)
    entry = AuditEntry.objects.get(action=Action.BILL_WAIVED)
    assert entry.target_id == str(bill.pk)
    assert entry.centre_id == bill.community.centre_id
    assert entry.details["amount"] == f"{bill.amount:.2f}"


def test_settlement_differences_are_logged_for_the_centre_concerned(paid):
    payment = paid["payment"]
    today = payment.paid_at.astimezone(timezone.get_current_timezone()).date()
    reconciliation.reconciliation_run(gateway="sandbox", day=today)
    assert not AuditEntry.objects.filter(action=Action.SETTLEMENT_DIFFERENCE).exists()

    SandboxTrade.objects.filter(out_trade_no=payment.out_trade_no).update(amount=payment.amount + 1)
    reconciliation.reconciliation_run(gateway="sandbox", day=today)

    entry = AuditEntry.objects.get(action=Action.SETTLEMENT_DIFFERENCE)
    assert entry.centre == paid["community"].centre
    assert (entry.details["gateway"], entry.details["day"], entry.details["trades"]) == (
        "sandbox",
        today.isoformat(),
        [payment.out_trade_no],
    )
    assert entry.details["lines"][0]["result"] == "amount_differs"


def test_granting_and_revoking_a_role_in_the_admin_is_logged_from_the_proxys_client(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    community = CommunityFactory()
    admin = member(Role.CENTRE_ADMIN, centre=community.centre)
    client = admin_client(admin)
    newcomer = UserFactory(username="xiaoli")
    start = AuditEntry.objects.count()

    response = client.post(
        reverse("admin:community_rolemembership_add"),
        {"user": newcomer.pk, "role": Role.COMMITTEE_MEMBER, "community": community.pk},
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.77",
    )
    assert response.status_code == 302, response.content.decode()[:2000]

    membership = RoleMembership.objects.get(user=newcomer)
    granted = AuditEntry.objects.get(action=Action.ROLE_GRANTED, target_id=str(membership.pk))
    assert (granted.actor, granted.ip_address) == (admin, "198.51.100.77")
    assert granted.centre == community.centre
    assert granted.details["user"] == "xiaoli"
    assert granted.details["role"] == Role.COMMITTEE_MEMBER
    added = AuditEntry.objects.get(action=Action.ADMIN_ADDED)
    assert (added.target_type, added.target_id) == ("community.rolemembership", str(membership.pk))
    assert (added.actor, added.ip_address, added.centre) == (
        admin,
        "198.51.100.77",
        community.centre,
    )

    response = client.post(
        reverse("admin:community_rolemembership_delete", args=[membership.pk]),
        {"post": "yes"},
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="198.51.100.78",
    )
    assert response.status_code == 302
    revoked = AuditEntry.objects.get(action=Action.ROLE_REVOKED)
    assert (revoked.actor, revoked.ip_address) == (admin, "198.51.100.78")
    assert revoked.details["user"] == "xiaoli"
    assert AuditEntry.objects.filter(action=Action.ADMIN_DELETED).count() == 1
    assert AuditEntry.objects.count() == start + 4


def test_admin_rights_and_permission_groups_given_and_taken_are_logged():
    user = UserFactory(username="laowang")
    user.is_staff = True
    user.save()
    group = Group.objects.get(name=CENTRE_ADMIN_GROUP)
    user.groups.add(group)
    user.groups.remove(group)
    user.groups.add(group)
    user.groups.clear()
    user.is_staff = False
    user.save()
    user.save(update_fields=["last_login"])  # an ordinary sign-in changes no rights

    lines = list(
        AuditEntry.objects.filter(target_type="community.user", target_id=str(user.pk))
        .order_by("pk")
        .values_list("action", "details")
    )
    assert lines == [
        (Action.ROLE_GRANTED, {"user": "laowang", "is_staff": [False, True]}),
        (Action.ROLE_GRANTED, {"user": "laowang", "groups": [CENTRE_ADMIN_GROUP]}),
        (Action.ROLE_REVOKED, {"user": "laowang", "groups": [CENTRE_ADMIN_GROUP]}),
        (Action.ROLE_GRANTED, {"user": "laowang", "groups": [CENTRE_ADMIN_GROUP]}),
        (Action.ROLE_REVOKED, {"user": "laowang", "groups": [CENTRE_ADMIN_GROUP]}),
        (Action.ROLE_REVOKED, {"user": "laowang", "is_staff": [True, False]}),
    ]


# --- admin edits ----------------------------------------------------------------------------


def test_an_admin_change_is_logged_with_what_changed():
    community = CommunityFactory()
    home = HouseholdFactory(building__community=community, area=Decimal("88.00"))
    client = admin_client(member(Role.CENTRE_ADMIN, centre=community.centre))

    response = client.post(
        reverse("admin:community_household_change", args=[home.pk]),
        {
            "building": home.building_id,
            "unit": home.unit,
            "area": "89.50",
            "residencies-TOTAL_FORMS": "0",
            "residencies-INITIAL_FORMS": "0",
        },
        REMOTE_ADDR="192.0.2.5",
    )
    assert response.status_code == 302

    entry = AuditEntry.objects.get(action=Action.ADMIN_CHANGED)
    assert (entry.target_type, entry.target_id) == ("community.household", str(home.pk))
    assert entry.centre == community.centre
    assert entry.ip_address == "192.0.2.5"
    assert entry.details == {"changes": [{"changed": {"fields": ["Floor area (m²)"]}}]}


def test_deleting_several_rows_at_once_logs_each(settings):
    community = CommunityFactory()
    homes = [HouseholdFactory(building__community=community) for _ in range(2)]
    residencies = [Residency.objects.get(user=resident(home), household=home) for home in homes]
    client = admin_client(member(Role.CENTRE_ADMIN, centre=community.centre))

    response = client.post(
        reverse("admin:community_residency_changelist"),
        {
            "action": "delete_selected",
            "_selected_action": [r.pk for r in residencies],
            "post": "yes",
        },
    )
    assert response.status_code == 302
    assert not Residency.objects.filter(pk__in=[r.pk for r in residencies]).exists()
    deleted = AuditEntry.objects.filter(action=Action.ADMIN_DELETED)
    assert sorted(deleted.values_list("target_id", flat=True)) == sorted(
        str(r.pk) for r in residencies
    )
    assert {e.centre_id for e in deleted} == {community.centre_id}


# --- append-only ----------------------------------------------------------------------------


def test_an_entry_cannot_be_changed_or_deleted_through_the_orm():
    entry = AuditEntry.objects.create(action=Action.PAYOUT, target_repr="x")
    entry.target_repr = "y"
    with pytest.raises(ValidationError):
        entry.save()
    with pytest.raises(ValidationError):
        entry.delete()
    with pytest.raises(ValidationError):
        AuditEntry.objects.filter(pk=entry.pk).update(target_repr="y")
    with pytest.raises(ValidationError):
        AuditEntry.objects.filter(pk=entry.pk).delete()
    assert AuditEntry.objects.get(pk=entry.pk).target_repr == "x"


@pytest.mark.postgres
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE community_auditentry SET target_repr = 'y' WHERE id = %s",
        "DELETE FROM community_auditentry WHERE id = %s",
    ],
)
def test_postgresql_refuses_to_change_or_delete_an_entry(sql):
    entry = AuditEntry.objects.create(action=Action.PAYOUT, target_repr="x")
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, [entry.pk])
    assert AuditEntry.objects.get(pk=entry.pk).target_repr == "x"


def test_deleting_an_account_keeps_its_history():
    community = CommunityFactory()
    gone = member(Role.CENTRE_ADMIN, centre=community.centre)
    entry = AuditEntry.objects.create(action=Action.PAYOUT, actor=gone, actor_name=gone.username)
    gone.delete()
    entry = AuditEntry.objects.get(pk=entry.pk)
    assert entry.actor_name == gone.username
    # Its role went with it, and that is on the record too.
    assert AuditEntry.objects.filter(action=Action.ROLE_REVOKED).exists()


# --- reading ----------------------------------------------------------------------------------


def test_a_centre_admin_reads_their_centres_lines_only_and_changes_nothing():
    ours, theirs = CommunityFactory(), CommunityFactory()
    mine = AuditEntry.objects.create(
        action=Action.PAYOUT, centre=ours.centre, target_repr="our payout"
    )
    other = AuditEntry.objects.create(
        action=Action.PAYOUT, centre=theirs.centre, target_repr="their payout"
    )
    site_wide = AuditEntry.objects.create(action=Action.PAYOUT, target_repr="site-wide")
    client = admin_client(member(Role.CENTRE_ADMIN, centre=ours.centre))

    listing = client.get(reverse("admin:community_auditentry_changelist"))
    assert listing.status_code == 200
    html = listing.content.decode()
    assert "our payout" in html
    assert "their payout" not in html and "site-wide" not in html
    assert (
        client.get(reverse("admin:community_auditentry_change", args=[mine.pk])).status_code == 200
    )
    for hidden in (other, site_wide):
        url = reverse("admin:community_auditentry_change", args=[hidden.pk])
        assert client.get(url).status_code == 302  # the admin's "not found"
    assert client.get(reverse("admin:community_auditentry_add")).status_code == 403
    delete = reverse("admin:community_auditentry_delete", args=[mine.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    change = reverse("admin:community_auditentry_change", args=[mine.pk])
    client.post(change, {"target_repr": "rewritten"})
    assert AuditEntry.objects.get(pk=mine.pk).target_repr == "our payout"


def test_a_resident_cannot_read_the_log():
    client = Client()
    client.force_login(resident())
    response = client.get(reverse("admin:community_auditentry_changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_lines_are_in_the_callers_transaction(paid):
    """A money action that rolls back leaves no line."""
    with pytest.raises(RuntimeError), transaction.atomic():
        billing_services.payout_run(community=paid["community"], period=AUGUST)
        raise RuntimeError("rolled back")
    assert not AuditEntry.objects.filter(action=Action.PAYOUT).exists()
