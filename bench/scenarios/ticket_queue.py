"""Staff ticket queue with 1,000,000 tickets against the same page with 1,000 tickets.

Two property companies in one database: the city's company (bench.datagen), whose estates get
tickets up to 1,000,000 across the city's households, and a small company with one estate and
1,000 tickets in the same proportions (one in fifty still open). Each company's manager opens
the same queue, open tickets most urgent first, through the same gunicorn:

- the JSON API  GET /api/v1/tickets/?status=open&ordering=deadline (token), and
- the console   GET /repairs/queue/ (session; its default is open tickets by deadline),

each also filtered to one estate. The p50 of the large queue must stay within 1.5× of the small
one (the indexes do the work), and the number of queries per page must not depend on the
table's size: counted in-process with CaptureQueriesContext for every page.
"""

from __future__ import annotations

from django.contrib.auth import SESSION_KEY
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from rest_framework.authtoken.models import Token

from bench import datagen
from bench import server as bench_server
from bench.core import Context, Outcome, Target, targets_met
from bench.httpload import run_loadgen
from community.models import (
    Building,
    Community,
    Household,
    PropertyCompany,
    Role,
    RoleMembership,
    User,
)

GOAL = (
    "p50 within 1.5× of the small table (indexes do the work); a fixed number of queries per page"
)
LIMIT = "the same pages with 1,000 tickets"
LARGE, SMALL = 1_000_000, 1_000
TINY_LARGE, TINY_SMALL = 3_000, 300
OPEN_EVERY = 50  # one ticket in fifty is still open: a busy but well-run estate
SECONDS, TINY_SECONDS = 10, 1
USERS = 2  # a couple of staff refreshing the queue: latency, not throughput


def _scalar(sql: str, params=None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        row = cursor.fetchone()
    return row[0] if row else None


def _small_company(city) -> tuple[int, int]:
    """A second company with one estate of 50 households and its manager (made once). Returns
    (staff user id, community id)."""
    with transaction.atomic():
        company, _ = PropertyCompany.objects.get_or_create(name="基准物业（小）")
        community, _ = Community.objects.get_or_create(
            name="工单小区", centre_id=city.centre_id, defaults={"company": company}
        )
        building, _ = Building.objects.get_or_create(name="1幢", community=community)
        if not Household.objects.filter(building=building).exists():
            Household.objects.bulk_create(
                Household(unit=f"{n:03d}", area=90, building=building) for n in range(1, 51)
            )
        staff, created = User.objects.get_or_create(username="bench-staff-small")
        if created:
            RoleMembership.objects.create(
                user=staff, role=Role.PROPERTY_STAFF, company=company, is_manager=True
            )
    return staff.pk, community.pk


def _category() -> int:
    existing = _scalar("SELECT id FROM repairs_ticketcategory WHERE kind = 'repair' ORDER BY id")
    return existing or _scalar(
        """
        INSERT INTO repairs_ticketcategory (name, kind, response_hours, resolve_hours, is_active,
                                            position)
        VALUES ('水电维修', 'repair', 2, 48, TRUE, 1) RETURNING id
        """
    )


def add_tickets(company_id: int, count: int, filer_id: int) -> int:
    """`count` more tickets spread over the company's households, set-based. One in
    OPEN_EVERY is open (its next deadline set, some already past), the rest finished; filed
    over the last year."""
    if count <= 0:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH hh AS (
                SELECT h.id, b.community_id, row_number() OVER (ORDER BY h.id) - 1 AS ord
                  FROM community_household h
                  JOIN community_building b ON b.id = h.building_id
                  JOIN community_community c ON c.id = b.community_id
                 WHERE c.company_id = %(company)s
            ), n AS (SELECT count(*) AS total FROM hh),
            t AS (
                SELECT i, NOW() - make_interval(mins => ((i::bigint * 7919) %% 525600)::int) AS at,
                       CASE WHEN i %% %(open_every)s = 0
                            THEN (ARRAY['submitted', 'accepted', 'assigned', 'in_progress'])
                                 [(i / %(open_every)s) %% 4 + 1]
                            ELSE (ARRAY['resolved', 'closed', 'closed', 'cancelled'])[i %% 4 + 1]
                       END AS status
                  FROM generate_series(1, %(count)s) i
            )
            INSERT INTO repairs_ticket (kind, location, title, description, status, created_at,
                                        updated_at, accepted_at, resolved_at, closed_at,
                                        response_due, resolve_due, next_due, sla_breached,
                                        resolution_count, community_id, filed_by_id,
                                        household_id, category_id)
            SELECT 'repair', '', '水管漏水', '', t.status, t.at, t.at,
                   CASE WHEN t.status NOT IN ('submitted', 'cancelled')
                        THEN t.at + interval '1 hour' END,
                   CASE WHEN t.status IN ('resolved', 'closed') THEN t.at + interval '20 hours' END,
                   CASE WHEN t.status = 'closed' THEN t.at + interval '30 hours' END,
                   t.at + interval '2 hours', t.at + interval '48 hours',
                   CASE WHEN t.status = 'submitted' THEN t.at + interval '2 hours'
                        WHEN t.status IN ('accepted', 'assigned', 'in_progress')
                        THEN t.at + interval '48 hours' END,
                   FALSE, CASE WHEN t.status IN ('resolved', 'closed') THEN 1 ELSE 0 END,
                   hh.community_id, %(filer)s, hh.id, %(category)s
              FROM t, n JOIN hh ON TRUE
             WHERE hh.ord = t.i %% n.total
            """,
            {
                "company": company_id,
                "count": count,
                "open_every": OPEN_EVERY,
                "filer": filer_id,
                "category": _category(),
            },
        )
        made = cursor.rowcount
        # What autovacuum does to a live table after a bulk load: statistics for the planner
        # and the visibility map that lets a count of the queue come from its index alone.
        cursor.execute("VACUUM ANALYZE repairs_ticket")
    datagen.rebuild_summary()  # tickets written around the services: recount the summary
    return made


def _tickets_of(company_id: int) -> int:
    return _scalar(
        """SELECT count(*) FROM repairs_ticket t JOIN community_community c
                ON c.id = t.community_id WHERE c.company_id = %s""",
        [company_id],
    )


def _pages(community_id: int) -> dict[str, str]:
    return {
        "api": "/api/v1/tickets/?status=open&ordering=deadline",
        "api_estate": f"/api/v1/tickets/?status=open&ordering=deadline&community={community_id}",
        "console": "/repairs/queue/",
        "console_estate": f"/repairs/queue/?community={community_id}",
    }


def count_queries(staff_id: int, pages: dict[str, str]) -> dict[str, int]:
    """Queries each page makes, in this process (the production settings of the run)."""
    user = User.objects.get(pk=staff_id)
    token, _ = Token.objects.get_or_create(user=user)
    counts = {}
    for name, path in pages.items():
        client = Client(SERVER_NAME="127.0.0.1")
        headers = {}
        if name.startswith("api"):
            headers["HTTP_AUTHORIZATION"] = f"Token {token.key}"
        else:
            client.force_login(user)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(path, **headers)
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code} to the queue's staff")
        counts[name] = len(queries.captured_queries)
    return counts


def _credentials(ctx: Context, staff_id: int, label: str) -> tuple:
    """Files with the staff member's API token and a session key gunicorn accepts (signed with
    its SECRET_KEY, which a test process does not share)."""
    user = User.objects.get(pk=staff_id)
    token, _ = Token.objects.get_or_create(user=user)
    client = Client(SERVER_NAME="127.0.0.1")
    with override_settings(SECRET_KEY=ctx.subprocess_env()["SECRET_KEY"]):
        client.force_login(user)
        assert client.session[SESSION_KEY] == str(user.pk)
    tokens = ctx.workdir / f"queue-token-{label}.txt"
    tokens.write_text(token.key + "\n")
    sessions = ctx.workdir / f"queue-session-{label}.txt"
    sessions.write_text(client.cookies["sessionid"].value + "\n")
    return tokens, sessions


def _time(ctx, server, pages, tokens, sessions, label, seconds) -> dict[str, dict]:
    timed = {}
    for name, path in pages.items():
        auth = (
            ["--tokens", str(tokens)] if name.startswith("api") else ["--sessions", str(sessions)]
        )
        report = run_loadgen(
            ctx,
            [
                "--base-url",
                server.base_url,
                "--users",
                str(USERS),
                "--seconds",
                str(seconds),
                "--warmup",
                "1",
                "get",
                "--path",
                path,
                *auth,
            ],
            name=f"queue-{label}-{name}",
        )
        bad = {k: v for k, v in report["statuses"].items() if not k.endswith(" 200")}
        if bad or report["errors"] or not report["requests"]:
            raise RuntimeError(f"{path}: {bad or report['errors'] or 'no answer'}")
        timed[name] = report
    return timed


def run(ctx: Context) -> Outcome:
    city = ctx.extra["city"]
    large, small = (TINY_LARGE, TINY_SMALL) if ctx.tiny else (LARGE, SMALL)
    large = int(ctx.extra.get("queue_tickets", large))
    seconds = TINY_SECONDS if ctx.tiny else SECONDS
    big_staff = User.objects.get(username=city.staff_username).pk
    big_estate = city.community_ids[0]
    small_staff, small_estate = _small_company(city)
    small_company = _scalar(
        "SELECT company_id FROM community_community WHERE id = %s", [small_estate]
    )
    add_tickets(small_company, small - _tickets_of(small_company), small_staff)
    add_tickets(city.company_id, large - _tickets_of(city.company_id), big_staff)

    small_pages, large_pages = _pages(small_estate), _pages(big_estate)
    queries_small = count_queries(small_staff, small_pages)
    queries_large = count_queries(big_staff, large_pages)
    small_auth = _credentials(ctx, small_staff, "small")
    large_auth = _credentials(ctx, big_staff, "large")
    # At tiny scale (the test suite) one page of each kind is timed: the point there is that
    # every part runs, not the figure.
    timed_names = ("api", "console") if ctx.tiny else tuple(small_pages)
    with bench_server.serve(ctx, name="ticket-queue", workers=2 if ctx.tiny else None) as server:
        timed_small = _time(
            ctx, server, {n: small_pages[n] for n in timed_names}, *small_auth, "small", seconds
        )
        timed_large = _time(
            ctx, server, {n: large_pages[n] for n in timed_names}, *large_auth, "large", seconds
        )

    figures: dict = {
        "tickets_large": _tickets_of(city.company_id),
        "tickets_small": _tickets_of(small_company),
        "open_large": _scalar(
            """SELECT count(*) FROM repairs_ticket t JOIN community_community c
                    ON c.id = t.community_id WHERE c.company_id = %s AND t.next_due IS NOT NULL""",
            [city.company_id],
        ),
    }
    ratios = {}
    for name in small_pages:
        figures[f"{name}_queries"] = queries_large[name]
    for name in timed_names:
        p50_small, p50_large = timed_small[name]["p50_ms"], timed_large[name]["p50_ms"]
        ratios[name] = p50_large / p50_small
        figures[f"{name}_p50_ms_large"] = round(p50_large, 1)
        figures[f"{name}_p50_ms_small"] = round(p50_small, 1)
        figures[f"{name}_p99_ms_large"] = round(timed_large[name]["p99_ms"], 1)
    worst = max(ratios, key=ratios.get)
    fixed = queries_small == queries_large
    checks = {
        "queries_fixed": []
        if fixed
        else [
            f"{name}: {queries_small[name]} → {queries_large[name]}"
            for name in small_pages
            if queries_small[name] != queries_large[name]
        ],
    }
    targets = [
        Target(
            f"worst page's p50 ÷ small table's ({worst})",
            "<=",
            1.5,
            round(ratios[worst], 2),
            limit=round(timed_small[worst]["p50_ms"], 1),
        ),
        Target(
            "pages whose queries grew with the table",
            "==",
            0,
            sum(queries_small[name] != queries_large[name] for name in small_pages),
        ),
    ]
    met = targets_met(targets)
    return Outcome(
        scenario="ticket_queue",
        goal=GOAL,
        limit=LIMIT,
        figures=figures,
        ratio=round(ratios[worst], 2),
        met=met,
        explanation=(
            f"worst page: {worst} ({ratios[worst]:.2f}× the small table); queries per page "
            f"small {queries_small}, large {queries_large}"
        ),
        checks=checks,
        targets=targets,
    )
