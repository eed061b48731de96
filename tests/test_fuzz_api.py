"""Fuzzing the JSON API with schemathesis, against the OpenAPI schema the app serves itself.

For each main role (resident, property staff, alliance inspector, committee member, centre
admin) every operation of /api/schema/ gets schema-generated requests, valid ones and invalid
ones, sent through the real WSGI application with the role's token. Every response must be
something other than a 5xx, and must match the schema: a documented status code, the
documented content type and headers, and a body that validates against the documented shape.

The world is small but complete (bills paid and unpaid, a payment, tickets with a photo,
an activity, a consultation, a reward, points), and path ids are drawn partly from the real
rows of that world, so the requests reach real objects and not only 404s. Each request runs in
a savepoint that is rolled back afterwards (and the cache is cleared, so throttles start
afresh): every case meets the same world, which keeps a derandomized run reproducible.
"""

from collections import Counter
from datetime import timedelta

import pytest
import schemathesis
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from alliance.tests.factories import AUGUST, Estate
from billing.models import Payment
from billing.tests.factories import BillFactory
from community import services as community_services
from points.tests.factories import RewardFactory, give_contribution
from repairs import services as repairs_services
from repairs.tests.factories import TicketCategoryFactory, jpeg_bytes, upload

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

EXAMPLES_PER_OPERATION = 6
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
ROLES = ["resident", "staff", "inspector", "committee", "centre_admin"]
CASES_RUN: Counter = Counter()
ANSWERED: dict[str, set] = {role: set() for role in ROLES}  # operations that answered 2xx


@pytest.fixture
def wsgi_app():
    """Django's WSGI handler, with the per-request connection closing switched off as Django's
    own test client does: closing the connection would end the test's transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield WSGIHandler()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(wsgi_app):
    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", wsgi_app)


def build_world():
    """The seeded world: the alliance test estate (three households, two August bills paid,
    one not; an inspector, the company's staff, a centre admin, the committee) with a
    September bill to pay, tickets (one with a photo, one resolved), an activity, an open
    consultation, an announcement, a reward and points, a rating, a spot check and August's
    payout. Returns the users by role and the real values to draw ids from."""
    estate = Estate()
    resident = estate.residents[0]
    home = estate.households[0]
    now = timezone.now()
    september = BillFactory(household=home, period="2019-09")
    category = TicketCategoryFactory(kind="repair")
    ticket = repairs_services.ticket_create(
        filed_by=resident,
        kind="repair",
        category=category,
        title="水管漏水",
        household=home,
        photos=[upload(jpeg_bytes())],
    )
    resolved = repairs_services.ticket_create(
        filed_by=resident, kind="repair", category=category, title="门禁坏了", household=home
    )
    for action in ("accept", "resolve"):
        repairs_services.ticket_transition(ticket=resolved, actor=estate.staff, action=action)
    activity = community_services.activity_create(
        organiser=estate.staff,
        community=estate.community,
        kind="volunteering",
        title="楼道清理",
        place="1幢",
        starts_at=now + timedelta(days=1),
        ends_at=now + timedelta(days=1, hours=3),
        capacity=10,
    )
    consultation = community_services.consultation_create(
        creator=estate.committee,
        community=estate.community,
        title="增设充电桩",
        description="拟增设电动自行车充电桩。",
        opens_at=now - timedelta(days=1),
        closes_at=now + timedelta(days=6),
        options=[{"label": "同意", "approves": True}, {"label": "反对"}],
    )
    announcement = community_services.announcement_publish(
        author=estate.centre_admin, title="停水通知", body="周三停水。", community=estate.community
    )
    reward = RewardFactory(centre=estate.community.centre, cost=5)
    give_contribution(resident, 50)
    estate.rate(0)
    estate.inspect()
    estate.pay_out(AUGUST)
    users = {
        "resident": resident,
        "staff": estate.staff,
        "inspector": estate.inspector,
        "committee": estate.committee,
        "centre_admin": estate.centre_admin,
    }
    communities = [estate.community.pk, estate.other_community.pk]
    real = {
        # path parameters, by the collection they follow or by name
        "activities": [activity.pk],
        "announcements": [announcement.pk],
        "communities": communities,
        "community_id": communities,
        "consultations": [consultation.pk],
        "payments": list(Payment.objects.values_list("pk", flat=True)),
        "rewards": [reward.pk],
        "tickets": [ticket.pk, resolved.pk],
        "photo_id": list(ticket.photos.values_list("pk", flat=True)),
        "gateway": ["sandbox"],
        # body and query fields
        "community": communities,
        "household": [h.pk for h in estate.households],
        "bill_ids": [september.pk, *(b.pk for b in estate.bills)],
        "category": [category.pk],
        "option": list(consultation.options.values_list("pk", flat=True)),
        "user": [u.pk for u in estate.residents],
        "assignee": [estate.staff.pk],
        "period": ["2019-08", "2019-09"],
    }
    return users, real


def real_path_values(path: str, name: str, real: dict) -> list:
    if name in ("id", "pk"):
        return real.get(path.removeprefix("/api/v1/").split("/", 1)[0], [])
    return real.get(name, [])


def draw_real_values(case, data, real: dict, user) -> None:
    """Swap some generated values for real ones, so requests also reach real objects."""
    for name in case.path_parameters or {}:
        values = real_path_values(case.operation.path, name, real)
        if values and data.draw(st.booleans()):
            case.path_parameters[name] = data.draw(st.sampled_from(values))
    for container in (case.query, case.body):
        if not isinstance(container, dict):
            continue
        for name in list(container):
            if name == "bill_ids" and data.draw(st.booleans()):
                container[name] = data.draw(
                    st.lists(st.sampled_from(real[name]), min_size=1, max_size=2, unique=True)
                )
            elif name == "gateway" and data.draw(st.booleans()):
                container[name] = "sandbox"
            elif name in real and data.draw(st.booleans()):
                container[name] = data.draw(st.sampled_from(real[name]))
    signing_in = case.operation.path == "/api/v1/auth/token/" and isinstance(case.body, dict)
    if signing_in and data.draw(st.booleans()):
        case.body.update(username=user.username, password="pass-w0rd")


def fuzz(operation, *, user, headers: dict, real: dict, role: str) -> None:
    strategy = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy, data=st.data())
    def run(case, data):
        draw_real_values(case, data, real, user)
        cache.clear()
        CASES_RUN[role] += 1
        with transaction.atomic():
            try:
                response = case.call_and_validate(headers=headers, checks=CHECKS)
            finally:
                transaction.set_rollback(True)
        if response.status_code < 300:
            ANSWERED[role].add(operation.label)

    run()


def test_every_operation_answers_every_role_within_its_schema(api_schema):
    users, real = build_world()
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 50
    failures = []
    for role in ROLES:
        headers = {"Authorization": f"Token {Token.objects.create(user=users[role]).key}"}
        for operation in operations:
            try:
                fuzz(operation, user=users[role], headers=headers, real=real, role=role)
            except (Exception, BaseExceptionGroup) as exc:  # report every broken one at once
                failures.append(f"{role}: {operation.label}: {exc}")
    print("fuzz cases per role:", dict(CASES_RUN), "operations:", len(operations))
    print("operations that answered 2xx:", {role: len(ANSWERED[role]) for role in ROLES})
    assert not failures, "\n\n".join(failures)
    # The cases got past authentication and reached the views, not only their refusals.
    for role in ROLES:
        assert {"GET /api/v1/me/", "GET /api/v1/bills/"} <= ANSWERED[role], role
        assert len(ANSWERED[role]) >= 20, (role, sorted(ANSWERED[role]))
    # Every role met every operation with the full number of examples.
    assert all(CASES_RUN[role] >= len(operations) * EXAMPLES_PER_OPERATION for role in ROLES)
