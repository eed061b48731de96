"""Benchmark: the centre dashboard for a centre of 200 estates × 500 households with a year of
bills and tickets renders in a bounded number of queries and under half a second on PostgreSQL.

Not part of `make test` (bench/ is outside the test paths). Run it against PostgreSQL:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/linli_bench \
        .venv/bin/pytest -q -s bench/bench_dashboard.py

The data is bulk-inserted (not through the services: a benchmark of the reads, not of the
writes); the bills with one INSERT … SELECT per month. Sizes: BENCH_COMMUNITIES (200),
BENCH_HOUSEHOLDS (500), BENCH_TICKETS a month per estate (30).
"""

import os
import statistics
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from alliance.models import Scorecard
from billing.models import Bill
from community.models import Building, Community, Household, Role
from community.periods import Period
from community.tests.factories import CentreFactory, PropertyCompanyFactory, UserFactory, member
from repairs.models import Status, Ticket
from repairs.selectors import period_bounds
from repairs.tests.factories import TicketCategoryFactory

COMMUNITIES = int(os.environ.get("BENCH_COMMUNITIES", 200))
HOUSEHOLDS = int(os.environ.get("BENCH_HOUSEHOLDS", 500))
TICKETS = int(os.environ.get("BENCH_TICKETS", 30))
MONTHS = 12
UNTIL = Period(2025, 12)
BUDGET_SECONDS = 0.5


def build():
    centre = CentreFactory()
    company = PropertyCompanyFactory()
    admin = member(Role.CENTRE_ADMIN, centre=centre)
    filer = UserFactory()
    category = TicketCategoryFactory(kind="report", response_hours=2, resolve_hours=24)
    communities = Community.objects.bulk_create(
        Community(name=f"小区{n:03d}", centre=centre, company=company) for n in range(COMMUNITIES)
    )
    buildings = Building.objects.bulk_create(Building(community=c, name="1幢") for c in communities)
    Household.objects.bulk_create(
        (
            Household(building=b, unit=f"{n:04d}", area=Decimal("90.00"))
            for b in buildings
            for n in range(HOUSEHOLDS)
        ),
        batch_size=5000,
    )
    with connection.cursor() as cursor:
        for index in range(MONTHS):
            period = UNTIL.plus(-index)
            # Every tenth household leaves its bill unpaid.
            cursor.execute(
                f"""
                INSERT INTO {Bill._meta.db_table}
                    (household_id, community_id, period, area, rate, amount, paid_amount,
                     status, due_date, is_prepaid, created_at)
                SELECT h.id, b.community_id, %s, h.area, 1.2, h.area * 1.2,
                       CASE WHEN h.id %% 10 = 0 THEN 0 ELSE h.area * 1.2 END,
                       CASE WHEN h.id %% 10 = 0 THEN 'unpaid' ELSE 'paid' END,
                       %s, false, now()
                FROM {Household._meta.db_table} h
                JOIN {Building._meta.db_table} b ON b.id = h.building_id
                WHERE b.community_id IN (SELECT id FROM {Community._meta.db_table}
                                         WHERE centre_id = %s)
                """,
                [str(period), period.day(15), centre.pk],
            )
    tickets, scorecards = [], []
    for index in range(MONTHS):
        period = UNTIL.plus(-index)
        start, _ = period_bounds(period)
        for community in communities:
            for n in range(TICKETS):
                at = start + timedelta(hours=n)
                handled = n % 6 != 0
                tickets.append(
                    Ticket(
                        community=community,
                        category=category,
                        kind="report",
                        title="路灯",
                        location="东门",
                        filed_by=filer,
                        status=Status.RESOLVED if handled else Status.SUBMITTED,
                        created_at=at,
                        updated_at=at,
                        response_due=at + timedelta(hours=2),
                        resolve_due=at + timedelta(hours=24),
                        next_due=None if handled else at + timedelta(hours=2),
                    )
                )
            scorecards.append(
                Scorecard(community=community, period=str(period), score=Decimal("0.9123"))
            )
    Ticket.objects.bulk_create(tickets, batch_size=5000)
    Scorecard.objects.bulk_create(scorecards, batch_size=5000)
    # Committed, then vacuumed as autovacuum would have: the visibility map lets PostgreSQL
    # count the bills from the (community, period, status) index alone.
    with connection.cursor() as cursor:
        for model in (Bill, Ticket, Household, Scorecard):
            cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")
    return admin


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_centre_dashboard_at_scale(client):
    admin = build()
    client.force_login(admin)
    path = reverse("dashboard-centre") + f"?period={UNTIL}"
    client.get(path)  # warm up
    timings = []
    for _ in range(5):
        with CaptureQueriesContext(connection) as queries:
            began = time.perf_counter()
            response = client.get(path)
            timings.append(time.perf_counter() - began)
        assert response.status_code == 200
        assert len(response.context["rows"]) == COMMUNITIES
    median = statistics.median(timings)
    print(
        f"\ncentre dashboard: {COMMUNITIES} estates × {HOUSEHOLDS} households, {MONTHS} months: "
        f"{len(queries)} queries, median {median * 1000:.0f} ms "
        f"(runs: {', '.join(f'{t * 1000:.0f}' for t in timings)} ms)"
    )
    if os.environ.get("BENCH_VERBOSE"):
        for query in queries.captured_queries:
            print(f"{float(query['time']) * 1000:8.1f} ms  {query['sql'][:160]}")
    assert len(queries) <= 11
    assert median < BUDGET_SECONDS
