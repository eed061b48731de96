"""Fixtures and markers shared by every app's tests and the cross-app tests in tests/.

Markers:
- `postgres`: the test needs PostgreSQL (row locks, triggers, exclusion constraints).
- `broker`: the test needs a live Celery broker (CELERY_BROKER_URL) and starts a real worker.
- `e2e`: the test drives the machine's Chromium (/usr/bin/chromium, Debian's `chromium`).
- `server_error_expected`: the test makes a request fail on purpose (a fault injected into a
  service); without it, any request that ends in an unhandled exception (a 500) fails the test.
On a machine with nothing but Python (SQLite, eager Celery) these are skipped with the reason.
With LINLI_REQUIRE_SERVICES=1 (set by .ci/run) a missing service fails them instead, so CI can
never pass by skipping them.
"""

import os
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

REQUIRE_SERVICES = os.environ.get("LINLI_REQUIRE_SERVICES") == "1"
CHROMIUM = Path("/usr/bin/chromium")


def _skip_or_fail(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (LINLI_REQUIRE_SERVICES=1: this run must not skip it)")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _service_markers(request):
    if request.node.get_closest_marker("postgres") and connection.vendor != "postgresql":
        _skip_or_fail("needs PostgreSQL: set DATABASE_URL=postgres://...")
    if request.node.get_closest_marker("broker") and not settings.CELERY_BROKER_URL:
        _skip_or_fail("needs a live Celery broker: set CELERY_BROKER_URL=redis://...")
    if request.node.get_closest_marker("e2e") and not CHROMIUM.exists():
        _skip_or_fail("needs Chromium at /usr/bin/chromium: apt-get install chromium")


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def as_user(api_client):
    """An API client authenticated as the given user: `as_user(user).get(...)`."""

    def login(user) -> APIClient:
        api_client.force_authenticate(user=user)
        return api_client

    return login


@pytest.fixture(autouse=True)
def _ledger_stays_sound(request):
    """After every test that touched the database: every ledger transaction balances and every
    cached account balance equals the sum of its postings (billing.selectors.ledger_problems)."""
    yield
    uses_db = {"db", "transactional_db", "django_db_setup"} & set(request.fixturenames) or (
        request.node.get_closest_marker("django_db")
    )
    if not uses_db:
        return
    from billing.charges import bill_totals_problems
    from billing.selectors import ledger_problems

    problems = ledger_problems() + bill_totals_problems()
    assert problems == [], f"ledger unsound after {request.node.nodeid}: {problems}"


@pytest.fixture(autouse=True)
def _summary_stays_right(request):
    """After every test that touched the database: the dashboards' per-estate, per-month summary
    equals a recount of the bills and tickets (alliance.summary.summary_problems), so a write
    that forgets to report its change to the summary fails the test that makes it."""
    yield
    uses_db = {"db", "transactional_db", "django_db_setup"} & set(request.fixturenames) or (
        request.node.get_closest_marker("django_db")
    )
    if not uses_db or request.node.get_closest_marker("summary_bypassed"):
        return
    from alliance.summary import summary_problems

    problems = summary_problems()
    assert problems == [], f"summary differs from a recount after {request.node.nodeid}: {problems}"


@pytest.fixture(autouse=True)
def _points_stay_sound(request):
    """After every test that touched the database: every points balance equals the sum of its
    entries and every redemption has exactly its debit (and refund) (points.selectors
    .points_problems, what `manage.py check_points` runs)."""
    yield
    uses_db = {"db", "transactional_db", "django_db_setup"} & set(request.fixturenames) or (
        request.node.get_closest_marker("django_db")
    )
    if not uses_db:
        return
    from points.selectors import points_problems

    problems = points_problems()
    assert problems == [], f"points unsound after {request.node.nodeid}: {problems}"


@pytest.fixture(autouse=True)
def _no_request_fails_with_a_500(request):
    """No request in the suite may end in an unhandled exception (what a client sees as a
    500): bad input answers 400/403/404/409. Django sends got_request_exception for each,
    from the test client and the live server alike; a test that injects a fault on purpose
    says so with @pytest.mark.server_error_expected."""
    from django.core.signals import got_request_exception

    failures = []

    def record(sender, request=None, **kwargs):
        path = getattr(request, "path", "?")
        failures.append(f"{getattr(request, 'method', '?')} {path}")

    got_request_exception.connect(record, weak=False, dispatch_uid="no-500s")
    yield
    got_request_exception.disconnect(dispatch_uid="no-500s")
    if failures and not request.node.get_closest_marker("server_error_expected"):
        pytest.fail(f"requests ended in a server error (500): {failures}")
