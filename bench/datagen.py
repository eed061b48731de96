"""Set-based data for the benchmarks: every table is filled with INSERT … SELECT over
generate_series, never a Python loop per household, so 1,000,000 households take seconds and
almost no memory in this process. PostgreSQL only.

`generate(ctx)` makes the city: a centre, a property company, an alliance organisation,
`ctx.communities` estates (each with its tri-party agreement), buildings of 100 flats,
`ctx.households` households spread evenly, and one resident (owner) per household who can sign
in with BENCH_PASSWORD. Staff: a centre admin, a property staff member (manager) and an
inspector. The rest (`ensure_billed`, `ensure_paid`, `scorecard_inputs`, `dashboard_history`)
is made on demand by the scenarios that need it, so `--only bill_run` at 1,000,000 households
generates nothing else.

Residents hold no staff role: a resident is who has an open residency (community.selectors).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.hashers import make_password
from django.db import connection, transaction

from bench.core import BENCH_PASSWORD, Context
from billing.chain import chain_unchained
from community.periods import Period

FLATS_PER_BUILDING = 100
FEE_RATE = "1.2000"
HOLDBACK_SHARE = "0.1000"
PAYOUT_DAY = 5
BILL_DUE_DAY = 15
# Every tenth household leaves its bill unpaid (the payment rush and the dashboard need some).
UNPAID_EVERY = 10
TICKETS_PER_MONTH = 30  # per community
RATING_SHARE = 5  # one household in RATING_SHARE rates the month's service


@dataclass
class City:
    centre_id: int
    company_id: int
    organisation_id: int
    admin_username: str
    staff_username: str
    inspector_username: str
    community_ids: list[int]
    households: int
    per_community: int


def _execute(sql: str, params=None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.rowcount


def _scalar(sql: str, params=None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        row = cursor.fetchone()
    return row[0] if row else None


def resident_username(household_id: int) -> str:
    return f"bench-r{household_id}"


def _staff_user(username: str, password_hash: str) -> int:
    return _scalar(
        """
        INSERT INTO community_user (password, is_superuser, username, first_name, last_name,
                                    email, is_staff, is_active, date_joined, display_name, phone)
        VALUES (%s, FALSE, %s, '', '', '', FALSE, TRUE, NOW(), %s, '')
        RETURNING id
        """,
        [password_hash, username, username],
    )


def generate(ctx: Context) -> City:
    """Fill the (freshly migrated) database with the city. Returns what it made."""
    assert connection.vendor == "postgresql", "the benchmark data generator needs PostgreSQL"
    per_community = max(1, ctx.households // ctx.communities)
    households = per_community * ctx.communities
    # One hash for everyone: hashing a million passwords would benchmark PBKDF2, not Linli.
    password = make_password(BENCH_PASSWORD)
    start = ctx.period.plus(-12).first_day  # a year of history is possible
    with transaction.atomic():
        centre_id = _scalar(
            "INSERT INTO community_centre (name, address, phone) "
            "VALUES ('基准中心', '', '') RETURNING id"
        )
        company_id = _scalar(
            "INSERT INTO community_propertycompany (name, credit_code, phone) "
            "VALUES ('基准物业', '', '') RETURNING id"
        )
        organisation_id = _scalar(
            "INSERT INTO community_allianceorganisation (name, kind, centre_id) "
            "VALUES ('96811', 'hotline', %s) RETURNING id",
            [centre_id],
        )
        admin = _staff_user("bench-centre", password)
        staff = _staff_user("bench-staff", password)
        inspector = _staff_user("bench-inspector", password)
        _execute(
            """
            INSERT INTO community_rolemembership (role, created_at, centre_id, company_id,
                                                  organisation_id, user_id, is_manager)
            VALUES ('centre_admin', NOW(), %s, NULL, NULL, %s, FALSE),
                   ('property_staff', NOW(), NULL, %s, NULL, %s, TRUE),
                   ('alliance_inspector', NOW(), NULL, NULL, %s, %s, FALSE)
            """,
            [centre_id, admin, company_id, staff, organisation_id, inspector],
        )
        _execute(
            """
            INSERT INTO community_community (name, address, centre_id, company_id, public_token)
            SELECT '小区' || lpad(n::text, 5, '0'), '', %s, %s,
                   substr(md5(random()::text || clock_timestamp()::text), 1, 16)
              FROM generate_series(0, %s - 1) n
            """,
            [centre_id, company_id, ctx.communities],
        )
        _execute(
            """
            INSERT INTO community_agreement (effective_from, fee_rate, holdback_share, payout_day,
                                             bill_due_day, created_at, community_id)
            SELECT %s, %s, %s, %s, %s, NOW(), id
              FROM community_community WHERE centre_id = %s
            """,
            [start, FEE_RATE, HOLDBACK_SHARE, PAYOUT_DAY, BILL_DUE_DAY, centre_id],
        )
        buildings = -(-per_community // FLATS_PER_BUILDING)
        _execute(
            """
            INSERT INTO community_building (name, community_id)
            SELECT (b + 1) || '幢', c.id
              FROM community_community c, generate_series(0, %s - 1) b
             WHERE c.centre_id = %s
            """,
            [buildings, centre_id],
        )
        _execute("ANALYZE community_community, community_building")
        # Household i of the city is flat (i mod per) of community (i div per), in building
        # ((i mod per) div 100) + 1; areas from 60.00 to 139.75 m² so amounts differ.
        _execute(
            """
            WITH c AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS ord
                         FROM community_community WHERE centre_id = %(centre)s)
            INSERT INTO community_household (unit, area, building_id)
            SELECT lpad(((i %% %(per)s) %% %(flats)s + 1)::text, 3, '0'),
                   60 + (i %% 80) + (i %% 4) * 0.25,
                   b.id
              FROM generate_series(0, %(total)s - 1) i
              JOIN c ON c.ord = i / %(per)s
              JOIN community_building b
                ON b.community_id = c.id AND b.name = ((i %% %(per)s) / %(flats)s + 1) || '幢'
             ORDER BY i
            """,
            {
                "centre": centre_id,
                "per": per_community,
                "flats": FLATS_PER_BUILDING,
                "total": households,
            },
        )
        _execute("ANALYZE community_household")
        _execute(
            """
            INSERT INTO community_user (password, is_superuser, username, first_name, last_name,
                                        email, is_staff, is_active, date_joined, display_name,
                                        phone)
            SELECT %s, FALSE, 'bench-r' || h.id, '', '', '', FALSE, TRUE, NOW(), '', ''
              FROM community_household h
              JOIN community_building b ON b.id = h.building_id
              JOIN community_community c ON c.id = b.community_id
             WHERE c.centre_id = %s
             ORDER BY h.id
            """,
            [password, centre_id],
        )
        _execute("ANALYZE community_user")
        _execute(
            """
            INSERT INTO community_residency (relation, start_date, household_id, user_id)
            SELECT 'owner', %s, h.id, u.id
              FROM community_household h
              JOIN community_building b ON b.id = h.building_id
              JOIN community_community c ON c.id = b.community_id
              JOIN community_user u ON u.username = 'bench-r' || h.id
             WHERE c.centre_id = %s
            """,
            [start, centre_id],
        )
    _analyze()
    community_ids = list(
        _ids("SELECT id FROM community_community WHERE centre_id = %s ORDER BY id", [centre_id])
    )
    city = City(
        centre_id=centre_id,
        company_id=company_id,
        organisation_id=organisation_id,
        admin_username="bench-centre",
        staff_username="bench-staff",
        inspector_username="bench-inspector",
        community_ids=community_ids,
        households=households,
        per_community=per_community,
    )
    ctx.extra["city"] = city
    return city


def rebuild_summary() -> int:
    """Recount the dashboards' per-estate, per-month summary (alliance.summary): the bills and
    tickets written here in SQL bypass the services that keep it. Set-based (two grouped counts
    and one insert of a row per estate and month), and untimed like the rest of the data."""
    from alliance.summary import summary_rebuild

    return summary_rebuild()


def _ids(sql: str, params=None) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return [row[0] for row in cursor.fetchall()]


def _analyze() -> None:
    # Fresh tables have no statistics; autovacuum would get there, the benchmark cannot wait.
    _execute("ANALYZE")


def city(ctx: Context) -> City:
    return ctx.extra["city"]


# --- on demand --------------------------------------------------------------------------------


def ensure_billed(ctx: Context) -> int:
    """The period's bills, made by the real bill run if no scenario made them yet."""
    from billing.services import bill_generate_for_period

    if _scalar("SELECT EXISTS (SELECT 1 FROM billing_bill WHERE period = %s)", [str(ctx.period)]):
        return 0
    return bill_generate_for_period(period=ctx.period)


def ensure_paid(ctx: Context) -> int:
    """Pay the period's bills the way the gateway notifications would have, set-based: for
    every unpaid bill (but one household in UNPAID_EVERY, and bills inside a payment already) a
    succeeded sandbox payment, its item, its ledger transaction with two postings (Dr clearing,
    Cr escrow) and the accounts' cached balances moved by exactly those postings. The ledger
    checks stay clean. Returns how many bills were paid."""
    ensure_billed(ctx)
    period = str(ctx.period)
    paid_on = ctx.period.day(BILL_DUE_DAY) - timedelta(days=3)
    with transaction.atomic():
        _execute(
            """
            CREATE TEMP TABLE bench_to_pay ON COMMIT DROP AS
            SELECT bl.id AS bill_id, bl.community_id, bl.amount - bl.paid_amount AS amount,
                   r.user_id AS payer_id
              FROM billing_bill bl
              JOIN community_residency r ON r.household_id = bl.household_id
                                        AND r.end_date IS NULL AND r.relation = 'owner'
             WHERE bl.period = %s AND bl.status = 'unpaid' AND bl.household_id %% %s <> 0
               AND NOT EXISTS (SELECT 1 FROM billing_paymentitem i WHERE i.bill_id = bl.id)
            """,
            [period, UNPAID_EVERY],
        )
        count = _scalar("SELECT count(*) FROM bench_to_pay")
        if not count:
            return 0
        # Statistics after each step: without them the planner takes the just-filled tables
        # for empty and joins them by nested scans (minutes instead of seconds).
        _execute("ANALYZE bench_to_pay")
        _execute(
            """
            INSERT INTO billing_account (kind, key, gateway, method, balance, community_id,
                                         company_id)
            VALUES ('gateway_clearing', 'clearing:sandbox', 'sandbox', '', 0, NULL, NULL)
            ON CONFLICT (key) DO NOTHING
            """
        )
        _execute(
            """
            INSERT INTO billing_account (kind, key, gateway, method, balance, community_id,
                                         company_id)
            SELECT DISTINCT 'escrow', 'escrow:' || community_id, '', '', 0, community_id,
                   NULL::bigint
              FROM bench_to_pay
            ON CONFLICT (key) DO NOTHING
            """
        )
        _execute(
            """
            INSERT INTO billing_payment (gateway, out_trade_no, trade_no, amount, refunded_amount,
                                         status, failure_reason, pay_url, idempotency_key,
                                         request_fingerprint, created_at, expires_at, paid_at,
                                         payer_id, method, reference, in_suspense)
            SELECT 'sandbox', 'BENCH' || bill_id, 'BENCHT' || bill_id, amount, 0, 'succeeded', '',
                   '', 'bench-' || bill_id, '', %s::date, %s::date + 1, %s::date, payer_id,
                   'online', '', 0
              FROM bench_to_pay
            """,
            [paid_on, paid_on, paid_on],
        )
        _execute("ANALYZE billing_payment")
        _execute(
            """
            INSERT INTO billing_paymentitem (amount, is_open, refunded_amount, paid_out_to_company,
                                             held_back, released_to_company, forfeited_to_fund,
                                             refunded_from_company, refunded_from_fund, bill_id,
                                             payment_id)
            SELECT t.amount, FALSE, 0, 0, 0, 0, 0, 0, 0, t.bill_id, p.id
              FROM bench_to_pay t JOIN billing_payment p ON p.out_trade_no = 'BENCH' || t.bill_id
            """
        )
        _execute(
            """
            INSERT INTO billing_ledgertransaction (kind, idempotency_key, memo, created_at,
                                                   payment_id)
            SELECT 'payment', 'payment:' || p.id, 'sandbox ' || p.trade_no, %s::date, p.id
              FROM bench_to_pay t JOIN billing_payment p ON p.out_trade_no = 'BENCH' || t.bill_id
            """,
            [paid_on],
        )
        _execute("ANALYZE billing_ledgertransaction, billing_account")
        _execute(
            """
            INSERT INTO billing_posting (amount, created_at, account_id, bill_id, transaction_id)
            SELECT leg.amount, %s::date, leg.account_id, leg.bill_id, lt.id
              FROM bench_to_pay t
              JOIN billing_payment p ON p.out_trade_no = 'BENCH' || t.bill_id
              JOIN billing_ledgertransaction lt ON lt.idempotency_key = 'payment:' || p.id
              CROSS JOIN LATERAL (
                  SELECT t.amount AS amount,
                         (SELECT id FROM billing_account WHERE key = 'clearing:sandbox')
                             AS account_id,
                         NULL::bigint AS bill_id
                  UNION ALL
                  SELECT -t.amount,
                         (SELECT id FROM billing_account WHERE key = 'escrow:' || t.community_id),
                         t.bill_id
              ) leg
            """,
            [paid_on],
        )
        _execute(
            """
            UPDATE billing_account a SET balance = a.balance + s.total
              FROM (SELECT 'clearing:sandbox' AS key, sum(amount) AS total FROM bench_to_pay
                    UNION ALL
                    SELECT 'escrow:' || community_id, -sum(amount)
                      FROM bench_to_pay GROUP BY community_id) s
             WHERE a.key = s.key
            """
        )
        _execute(
            """
            UPDATE billing_bill bl SET paid_amount = bl.amount, status = 'paid'
              FROM bench_to_pay t WHERE bl.id = t.bill_id
            """
        )
        # The transactions written above join the ledger's hash chain, as ledger.post's would.
        chain_unchained()
        rebuild_summary()
    _analyze()
    return count


def payout_history(ctx: Context, months: int = 11) -> int:
    """The payouts and hold-back releases of the months before the period, as an estate in
    operation has them (their rows only: the money of those months is not generated). Without
    them the payout table is empty when the month's payouts start, and PostgreSQL plans the
    foreign-key check that each paid-out item makes against it (at commit, ~450 per estate) as
    a sequential scan, and keeps that plan while the table grows under it: every estate then
    costs more than the one before (4 → 12 ms for the payout's commit over 200 estates), which is
    the first month of a new deployment, not a district's month. The estates' company payable
    and public fund accounts, which those months' payouts and releases opened, are made too
    (with a zero balance: their money is not generated); otherwise every estate's payout and
    release would take the first-payout path of ledger.estate_accounts (an INSERT and a second
    read each), which an estate meets once in its life. Returns the payout rows made."""
    periods = []
    period = ctx.period
    for _ in range(months):
        period = period.previous()
        periods.append(str(period))
    made = _execute(
        """
        INSERT INTO billing_payout (community_id, period, kind, collected, to_company, held_back,
                                    to_public_fund, holdback_share, created_at)
        SELECT c.id, p.period, k.kind, 0, 0, 0, 0, 0.1000, now()
          FROM community_community c
         CROSS JOIN unnest(%s::text[]) AS p(period)
         CROSS JOIN unnest(ARRAY['regular', 'holdback_release']) AS k(kind)
        ON CONFLICT DO NOTHING
        """,
        [periods],
    )
    _execute(
        """
        INSERT INTO billing_account (kind, key, community_id, company_id, gateway, method,
                                     balance)
        SELECT k.kind, k.kind || ':' || c.id, c.id,
               CASE WHEN k.kind = 'company_payable' THEN c.company_id END, '', '', 0
          FROM community_community c
         CROSS JOIN unnest(ARRAY['company_payable', 'public_fund']) AS k(kind)
        ON CONFLICT (key) DO NOTHING
        """
    )
    _execute("ANALYZE billing_payout")
    _execute("ANALYZE billing_account")
    return made


def scorecard_inputs(ctx: Context) -> dict[str, int]:
    """What a month's scorecard is computed from, for every community: ratings by one household
    in RATING_SHARE, two spot checks, and TICKETS_PER_MONTH tickets (five in six handled in
    time). Made once per period."""
    period = ctx.period
    made = {"ratings": 0, "inspections": 0, "tickets": 0}
    done = "SELECT EXISTS (SELECT 1 FROM alliance_inspection WHERE period = %s)"
    if _scalar(done, [str(period)]):
        return made
    town = city(ctx)
    rated_at = period.day(20)
    with transaction.atomic():
        made["ratings"] = _execute(
            """
            INSERT INTO alliance_servicerating (period, cleaning, greening, security, reporting,
                                               repair, comment, created_at, community_id,
                                               household_id, rated_by_id)
            SELECT %s, 3 + h.id %% 3, 4, 3 + h.id %% 2, 5, 4, '', %s::date, b.community_id,
                   h.id, r.user_id
              FROM community_household h
              JOIN community_building b ON b.id = h.building_id
              JOIN community_residency r ON r.household_id = h.id AND r.end_date IS NULL
             WHERE h.id %% %s = 0 AND b.community_id = ANY(%s)
            """,
            [str(period), rated_at, RATING_SHARE, town.community_ids],
        )
        inspector = _scalar(
            "SELECT id FROM community_user WHERE username = %s", [town.inspector_username]
        )
        made["inspections"] = _execute(
            """
            INSERT INTO alliance_inspection (period, staff_on_duty, staff_rostered,
                                             grid_cooperation, major_matter_cooperation, note,
                                             created_at, community_id, inspector_id,
                                             organisation_id)
            SELECT %s, 8 + n, 10, 90, 80 + 10 * n, '', %s::date + n, c, %s, %s
              FROM unnest(%s::bigint[]) c, generate_series(0, 1) n
            """,
            [str(period), period.day(10), inspector, town.organisation_id, town.community_ids],
        )
        made["tickets"] = _tickets([period], town)
        rebuild_summary()
    _analyze()
    return made


def _category_id() -> int:
    existing = _scalar("SELECT id FROM repairs_ticketcategory WHERE kind = 'report' ORDER BY id")
    if existing:
        return existing
    return _scalar(
        """
        INSERT INTO repairs_ticketcategory (name, kind, response_hours, resolve_hours, is_active,
                                            position)
        VALUES ('路灯', 'report', 2, 24, TRUE, 0) RETURNING id
        """
    )


def _tickets(periods: list[Period], town: City) -> int:
    """TICKETS_PER_MONTH tickets a month in every community, filed by its first resident:
    five in six resolved in time, the sixth still waiting for its first response."""
    category = _category_id()
    made = 0
    for period in periods:
        made += _execute(
            """
            WITH filer AS (
                SELECT DISTINCT ON (b.community_id) b.community_id, r.user_id, h.id AS household_id
                  FROM community_household h
                  JOIN community_building b ON b.id = h.building_id
                  JOIN community_residency r ON r.household_id = h.id
                 WHERE b.community_id = ANY(%(communities)s)
                 ORDER BY b.community_id, h.id
            ), t AS (
                SELECT f.*, n,
                       (%(start)s::date + make_interval(hours => n * 20))::timestamptz AS at,
                       n %% 6 <> 0 AS handled
                  FROM filer f, generate_series(0, %(per)s - 1) n
            )
            INSERT INTO repairs_ticket (kind, location, title, description, status, created_at,
                                        updated_at, accepted_at, resolved_at, response_due,
                                        resolve_due, next_due, sla_breached, resolution_count,
                                        community_id, filed_by_id, household_id, category_id)
            SELECT 'report', '东门', '路灯不亮', '',
                   CASE WHEN handled THEN 'resolved' ELSE 'submitted' END,
                   at, at,
                   CASE WHEN handled THEN at + interval '1 hour' END,
                   CASE WHEN handled THEN at + interval '5 hours' END,
                   at + interval '2 hours', at + interval '24 hours',
                   CASE WHEN handled THEN NULL ELSE at + interval '2 hours' END,
                   FALSE, CASE WHEN handled THEN 1 ELSE 0 END,
                   community_id, user_id, household_id, %(category)s
              FROM t
            """,
            {
                "communities": town.community_ids,
                "start": period.first_day,
                "per": TICKETS_PER_MONTH,
                "category": category,
            },
        )
    return made


def dashboard_history(ctx: Context, months: int = 12) -> dict[str, int]:
    """A year up to the period for the centre dashboard: the earlier months' bills (paid but
    for one household in UNPAID_EVERY; a read benchmark, so without their payments), tickets
    and final scorecards. The period itself comes from the other scenarios (or is made here)."""
    town = city(ctx)
    ensure_billed(ctx)
    made = {"bills": 0, "tickets": 0, "scorecards": 0}
    earlier = [ctx.period.plus(-n) for n in range(months - 1, 0, -1)]
    with transaction.atomic():
        for period in earlier:
            made["bills"] += _execute(
                """
                INSERT INTO billing_bill (household_id, community_id, period, area, rate, amount,
                                          paid_amount, status, due_date, is_prepaid, created_at)
                SELECT h.id, b.community_id, %(period)s, h.area, %(rate)s,
                       ROUND(h.area * %(rate)s, 2),
                       CASE WHEN h.id %% %(every)s = 0 THEN 0 ELSE ROUND(h.area * %(rate)s, 2) END,
                       CASE WHEN h.id %% %(every)s = 0 THEN 'unpaid' ELSE 'paid' END,
                       %(due)s, FALSE, NOW()
                  FROM community_household h
                  JOIN community_building b ON b.id = h.building_id
                 WHERE b.community_id = ANY(%(communities)s)
                ON CONFLICT (household_id, period) WHERE NOT (status = 'void') DO NOTHING
                """,
                {
                    "period": str(period),
                    "rate": FEE_RATE,
                    "every": UNPAID_EVERY,
                    "due": period.day(BILL_DUE_DAY),
                    "communities": town.community_ids,
                },
            )
        with_tickets = _ids(
            "SELECT DISTINCT period FROM alliance_inspection"
        )  # months scorecard_inputs already made tickets for
        made["tickets"] = _tickets([p for p in earlier if str(p) not in with_tickets], town)
        made["scorecards"] = _execute(
            """
            INSERT INTO alliance_scorecard (period, revision, is_current, score, weights,
                                            rating_count, inspection_count, ticket_count,
                                            tickets_within_sla, computed_at, finalized_at,
                                            reason, community_id)
            SELECT p, 1, TRUE, 0.8 + (c %% 20) / 100.0, '{}', 0, 0, 0, 0, NOW(), NOW(), '', c
              FROM unnest(%s::bigint[]) c, unnest(%s::text[]) p
            ON CONFLICT DO NOTHING
            """,
            [town.community_ids, [str(p) for p in earlier]],
        )
        rebuild_summary()
    _analyze()
    return made
