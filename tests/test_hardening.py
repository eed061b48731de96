"""Hardening (issue 10): sign-in lock-out, per-user rate limits, security headers with a
Content-Security-Policy every page satisfies, and production's secure settings.

Photos are in repairs/tests/test_photo_security.py, the audit log in community/tests/test_audit.py.
"""

import json
import re
from datetime import timedelta
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from axes.models import AccessAttempt
from django.conf import settings as conf
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from billing.models import Payment
from billing.tests.factories import BillFactory, estate
from community.models import User
from community.tests.factories import UserFactory, resident
from config.security import client_ip
from repairs.models import Ticket
from repairs.tests.factories import Estate
from tests.test_settings import PRODUCTION_ENV, run_django

pytestmark = pytest.mark.django_db

PASSWORD = "pass-w0rd"  # community.tests.factories.UserFactory's


@pytest.fixture(autouse=True)
def _fresh_counts(settings):
    """Rate-limit counts live in the cache, which outlives a test's database."""
    settings.AXES_FAILURE_LIMIT = 3
    cache.clear()
    yield
    cache.clear()


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def browser_login(client, password, address="127.0.0.1", url=None):
    return client.post(
        url or reverse("login"),
        {"username": "zhang", "password": password},
        REMOTE_ADDR=address,
    )


def token_login(password, address="127.0.0.1"):
    return APIClient().post(
        "/api/v1/auth/token/",
        {"username": "zhang", "password": password},
        format="json",
        REMOTE_ADDR=address,
    )


# --- sign-in lock-out ---------------------------------------------------------------------------


def test_the_browser_login_locks_a_username_and_address_after_the_failure_limit():
    UserFactory(username="zhang")
    client = Client()

    codes = [browser_login(client, f"guess{i}").status_code for i in range(3)]

    assert codes == [200, 200, 429]
    locked = browser_login(client, PASSWORD)
    assert locked.status_code == 429
    assert locked["Retry-After"] == str(15 * 60)
    assert "15" in locked.content.decode()  # the page says how long to wait
    assert not signed_in(client)
    # The pair is locked, not the account: the owner signs in from elsewhere.
    elsewhere = Client()
    assert browser_login(elsewhere, PASSWORD, address="10.8.0.7").status_code == 302
    assert signed_in(elsewhere)


def test_the_admin_login_shares_the_lock_out():
    UserFactory(username="zhang", is_staff=True)
    client = Client()
    for i in range(3):
        browser_login(client, f"guess{i}")
    response = browser_login(client, PASSWORD, url="/admin/login/?next=/admin/")
    assert response.status_code == 429
    assert not signed_in(client)


def test_the_token_endpoint_locks_out_in_json_and_hands_out_no_token():
    UserFactory(username="zhang")

    codes = [token_login(f"guess{i}").status_code for i in range(2)]
    third = token_login("guess2")

    assert codes == [400, 400]
    assert third.status_code == 429
    assert third["Retry-After"] == str(15 * 60)
    assert "15" in third.json()["detail"]
    assert token_login(PASSWORD).status_code == 429
    assert Token.objects.count() == 0
    assert token_login(PASSWORD, address="10.8.0.7").status_code == 200


def test_failures_on_the_api_and_the_browser_add_up():
    UserFactory(username="zhang")
    token_login("guess0")
    token_login("guess1")
    assert browser_login(Client(), "guess2").status_code == 429


def test_a_successful_sign_in_forgets_earlier_failures():
    UserFactory(username="zhang")
    client = Client()
    browser_login(client, "guess0")
    browser_login(client, "guess1")
    assert browser_login(client, PASSWORD).status_code == 302
    client.logout()
    assert browser_login(client, "guess2").status_code == 200
    assert browser_login(client, "guess3").status_code == 200
    assert browser_login(client, PASSWORD).status_code == 302


def test_the_lock_out_ends_after_the_cool_off():
    UserFactory(username="zhang")
    client = Client()
    for i in range(3):
        browser_login(client, f"guess{i}")
    assert browser_login(client, PASSWORD).status_code == 429

    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))

    assert browser_login(client, PASSWORD).status_code == 302
    assert signed_in(client)


def test_a_forged_x_forwarded_for_does_not_dodge_the_lock_out():
    UserFactory(username="zhang")
    client = Client()
    codes = [
        client.post(
            reverse("login"),
            {"username": "zhang", "password": f"guess{i}"},
            HTTP_X_FORWARDED_FOR=f"203.0.113.{i}",
        ).status_code
        for i in range(3)
    ]
    assert codes == [200, 200, 429]


def test_the_client_address_believes_x_forwarded_for_only_behind_trusted_proxies(settings):
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.7"
    )
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_ip(request) == "10.0.0.2"
    settings.TRUSTED_PROXY_COUNT = 1
    assert client_ip(request) == "198.51.100.7"  # what our proxy saw, not what the client wrote
    settings.TRUSTED_PROXY_COUNT = 2
    assert client_ip(request) == "6.6.6.6"
    settings.TRUSTED_PROXY_COUNT = 3  # fewer hops than configured: only the socket is believed
    assert client_ip(request) == "10.0.0.2"


# --- per-user rate limits -----------------------------------------------------------------------


def english_browser(user) -> Client:
    """Pages are Chinese first; the language switch's cookie picks English."""
    client = Client()
    client.cookies[conf.LANGUAGE_COOKIE_NAME] = "en"
    client.force_login(user)
    return client


def start_payment(client, bill, key):
    return client.post(
        "/api/v1/payments/",
        {"bill_ids": [bill.pk], "gateway": "sandbox"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
        HTTP_ACCEPT_LANGUAGE="en",  # the API speaks the client's language
    )


def test_starting_payments_is_limited_per_user_across_api_and_pay_page(settings):
    settings.PAYMENT_THROTTLE_RATE = "2/min"
    _community, (home, other_home) = estate(2)
    payer, neighbour = resident(home), resident(other_home)
    bills = [BillFactory(household=home, period=p) for p in ("2019-08", "2019-09", "2019-10")]
    api = APIClient()
    api.force_authenticate(payer)

    first = start_payment(api, bills[0], "k1")
    second = start_payment(api, bills[1], "k2")
    third = start_payment(api, bills[2], "k3")

    assert (first.status_code, second.status_code, third.status_code) == (201, 201, 429)
    assert third.json()["detail"].startswith("Too many payments started in a short time.")
    assert 0 < int(third["Retry-After"]) <= 60
    assert Payment.objects.filter(payer=payer).count() == 2
    # The pay page counts against the same limit, and says so.
    browser = english_browser(payer)
    page = browser.post(reverse("bill-pay"), {"bill": [bills[2].pk]})
    assert page.status_code == 429
    assert "Too many payments started in a short time." in page.content.decode()
    assert Payment.objects.filter(payer=payer).count() == 2
    # Reading is not limited, and a neighbour has their own allowance.
    assert api.get(f"/api/v1/payments/{first.json()['id']}/").status_code == 200
    other = APIClient()
    other.force_authenticate(neighbour)
    neighbour_bill = BillFactory(household=other_home, period="2019-08")
    assert start_payment(other, neighbour_bill, "n1").status_code == 201


def file_ticket(client, estate_):
    return client.post(
        reverse("api-tickets"),
        {
            "kind": "repair",
            "category": estate_.repair_category.pk,
            "title": "卫生间水管漏水",
            "household": estate_.household.pk,
        },
        HTTP_ACCEPT_LANGUAGE="en",
    )


def test_filing_tickets_is_limited_per_user_across_api_and_form(settings):
    settings.TICKET_THROTTLE_RATE = "1/min"
    place = Estate()
    api = APIClient()
    api.force_authenticate(place.filer)

    assert file_ticket(api, place).status_code == 201
    second = file_ticket(api, place)

    assert second.status_code == 429
    assert second.json()["detail"].startswith("Too many tickets filed in a short time.")
    assert "Retry-After" in second
    assert Ticket.objects.filter(filed_by=place.filer).count() == 1
    assert api.get(reverse("api-tickets")).status_code == 200  # the list is not limited
    browser = english_browser(place.filer)
    form = browser.post(
        reverse("repairs-new", args=["repair"]),
        {
            "category": place.repair_category.pk,
            "title": "又漏水了",
            "household": place.household.pk,
        },
    )
    assert form.status_code == 429
    assert "Too many tickets filed in a short time." in form.content.decode()
    assert Ticket.objects.filter(filed_by=place.filer).count() == 1
    housemate = APIClient()
    housemate.force_authenticate(place.housemate)
    assert file_ticket(housemate, place).status_code == 201


# --- headers and the Content-Security-Policy ----------------------------------------------------


def parse_csp(header: str) -> dict[str, list[str]]:
    policy = {}
    for part in header.split(";"):
        name, *values = part.split()
        policy[name] = values
    return policy


class InlineCodeFinder(HTMLParser):
    """Everything a policy without 'unsafe-inline' would block: inline scripts, event-handler
    attributes, javascript: URLs, style attributes, and <style> blocks without the nonce."""

    def __init__(self, nonce: str | None):
        super().__init__()
        self.nonce = nonce
        self.problems: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for name, value in attributes.items():
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=...>")
            if name == "style":
                self.problems.append(f"<{tag} style=...>")
            if (value or "").strip().lower().startswith("javascript:"):
                self.problems.append(f"<{tag} {name}=javascript:...>")
        # A data block (json_script) is not run, so CSP does not apply to it.
        data_block = attributes.get("type") in ("application/json", "application/ld+json")
        if tag == "script" and not attributes.get("src") and not data_block:
            self.problems.append("inline <script>")
        if tag == "style" and (self.nonce is None or attributes.get("nonce") != self.nonce):
            self.problems.append("<style> without the nonce")
        if tag == "a" and attributes.get("href"):
            self.links.append(attributes["href"])


def check_page(client, url, response=None) -> InlineCodeFinder | None:
    response = response or client.get(url)
    if response.status_code != 200 or not response["Content-Type"].startswith("text/html"):
        return None
    header = response["Content-Security-Policy"]
    policy = parse_csp(header)
    assert policy["script-src"] == ["'self'"], url
    assert "'unsafe-inline'" not in header and "'unsafe-eval'" not in header, url
    assert policy["frame-ancestors"] == ["'none'"]
    nonces = re.findall(r"'nonce-([^']+)'", header)
    finder = InlineCodeFinder(nonces[0] if nonces else None)
    finder.feed(response.content.decode())
    assert finder.problems == [], (url, finder.problems)
    return finder


SKIP = re.compile(r"^/(accounts/logout|i18n|api/|admin/logout)|/export|\.(csv|xlsx)$|format=")


def crawl(client, start: list[str], limit: int) -> set[str]:
    """Follow the site's own links from `start`, one page per URL shape (ids ignored)."""
    queue, shapes, checked = list(start), set(), set()
    while queue and len(checked) < limit:
        url = queue.pop(0)
        path = urlsplit(url).path
        shape = re.sub(r"\d+", "N", path)
        if shape in shapes or SKIP.search(url):
            continue
        shapes.add(shape)
        response = client.get(url)
        if response.status_code in (301, 302):
            queue.insert(0, response["Location"])
            continue
        finder = check_page(client, url, response)
        if finder is None:
            continue
        checked.add(path)
        for href in finder.links:
            absolute = urljoin(url, href)
            parts = urlsplit(absolute)
            if parts.netloc in ("", "testserver") and parts.path.startswith("/"):
                queue.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    return checked


def test_every_page_of_every_role_satisfies_the_content_security_policy():
    """The demo, crawled from each role's home through the links people follow (and the admin
    for the centre admin): every HTML page carries the policy and nothing it would block."""
    call_command("seed_demo", stdout=None)
    pages = {}
    for username, start in [
        ("resident05", ["/", "/accounts/login/"]),
        ("staff", ["/", "/repairs/queue/"]),
        ("inspector", ["/"]),
        ("committee", ["/"]),
        ("centre", ["/", "/admin/", "/admin/community/household/", "/admin/billing/payout/"]),
    ]:
        client = Client()
        client.force_login(User.objects.get(username=username))
        pages[username] = crawl(client, start, limit=40)
    assert len(pages["resident05"]) >= 12, pages["resident05"]
    assert len(pages["staff"]) >= 5, pages["staff"]
    assert len(pages["centre"]) >= 20, pages["centre"]
    assert any(path.startswith("/admin/community/household/") for path in pages["centre"])
    # Anonymous: the login page.
    assert check_page(Client(), "/accounts/login/") is not None


def test_the_login_and_lock_out_pages_satisfy_the_policy():
    UserFactory(username="zhang")
    client = Client()
    assert check_page(client, reverse("login")) is not None
    for i in range(3):
        response = browser_login(client, f"guess{i}")
    assert response.status_code == 429
    finder = InlineCodeFinder(nonce=None)
    finder.feed(response.content.decode())
    assert finder.problems == []
    assert parse_csp(response["Content-Security-Policy"])["script-src"] == ["'self'"]


def test_the_api_docs_run_under_the_policy_from_script_files():
    client = Client()
    client.force_login(UserFactory())
    finder = check_page(client, "/api/docs/")
    assert finder is not None
    page = client.get("/api/docs/").content.decode()
    script = re.search(r'<script src="([^"]*\?[^"]*script[^"]*)"', page).group(1)
    setup = client.get(script.replace("&amp;", "&"))
    assert setup.status_code == 200
    assert setup["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in setup.content.decode()


def test_the_browsable_api_may_use_inline_styles_but_never_inline_scripts():
    """DRF's HTML view of the API has style attributes in its templates: those pages alone
    allow inline styles; scripts stay 'self' only, and nothing inline runs."""
    client = Client()
    client.force_login(UserFactory())
    response = client.get("/api/v1/me/", HTTP_ACCEPT="text/html")
    assert response["Content-Type"].startswith("text/html")
    policy = parse_csp(response["Content-Security-Policy"])
    assert policy["style-src"] == ["'self'", "'unsafe-inline'"]
    assert policy["script-src"] == ["'self'"]
    finder = InlineCodeFinder(nonce=None)
    finder.feed(response.content.decode())
    assert [p for p in finder.problems if "style" not in p] == []
    # JSON, and every other page, keep the strict policy.
    json_policy = parse_csp(client.get("/api/v1/me/")["Content-Security-Policy"])
    assert json_policy["style-src"] == ["'self'"]


def test_security_headers_on_pages_and_api():
    client = Client()
    for url in ["/accounts/login/", "/api/v1/me/", "/healthz/"]:
        response = client.get(url)
        assert response["X-Content-Type-Options"] == "nosniff", url
        assert response["Referrer-Policy"] == "same-origin", url
        assert response["X-Frame-Options"] == "DENY", url
        assert "camera=()" in response["Permissions-Policy"], url
        assert "geolocation=()" in response["Permissions-Policy"], url
        assert "default-src 'self'" in response["Content-Security-Policy"], url


# --- production settings ------------------------------------------------------------------------

SETTINGS_PROBE = (
    "import django, json; django.setup(); from django.conf import settings as s;"
    "print(json.dumps({'session_secure': s.SESSION_COOKIE_SECURE,"
    " 'csrf_secure': s.CSRF_COOKIE_SECURE, 'hsts': s.SECURE_HSTS_SECONDS,"
    " 'ssl_redirect': s.SECURE_SSL_REDIRECT, 'proxy_header': s.SECURE_PROXY_SSL_HEADER,"
    " 'cache': s.CACHES['default']['BACKEND'], 'failure_limit': s.AXES_FAILURE_LIMIT,"
    " 'cooloff': s.AXES_COOLOFF_TIME.total_seconds(), 'payments': s.PAYMENT_THROTTLE_RATE,"
    " 'tickets': s.TICKET_THROTTLE_RATE, 'proxies': s.TRUSTED_PROXY_COUNT,"
    " 'num_proxies': s.REST_FRAMEWORK['NUM_PROXIES'], 'form_action': s.SECURE_CSP['form-action']}))"
)


def test_production_settings_are_secure_and_read_the_limits_from_the_environment():
    defaults = run_django(["-c", SETTINGS_PROBE], PRODUCTION_ENV)
    assert defaults.returncode == 0, defaults.stderr
    values = json.loads(defaults.stdout.strip().splitlines()[-1])
    assert values["session_secure"] is values["csrf_secure"] is values["ssl_redirect"] is True
    assert values["hsts"] >= 365 * 24 * 3600
    assert values["proxy_header"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    # Throttle counts shared by every gunicorn worker.
    assert values["cache"] == "django.core.cache.backends.redis.RedisCache"
    assert (values["failure_limit"], values["cooloff"]) == (5, 15 * 60)
    assert (values["payments"], values["tickets"]) == ("30/min", "10/min")
    assert values["proxies"] == values["num_proxies"] == 0
    assert values["form_action"] == ["'self'"]

    tuned = run_django(
        ["-c", SETTINGS_PROBE],
        PRODUCTION_ENV
        | {
            "LOGIN_FAILURE_LIMIT": "8",
            "LOGIN_COOLOFF_MINUTES": "30",
            "PAYMENT_THROTTLE_RATE": "5000/min",
            "TICKET_THROTTLE_RATE": "800/min",
            "TRUSTED_PROXY_COUNT": "1",
        },
    )
    assert tuned.returncode == 0, tuned.stderr
    values = json.loads(tuned.stdout.strip().splitlines()[-1])
    assert (values["failure_limit"], values["cooloff"]) == (8, 30 * 60)
    assert (values["payments"], values["tickets"]) == ("5000/min", "800/min")
    assert values["proxies"] == values["num_proxies"] == 1


def test_check_deploy_warns_when_rate_limits_would_count_per_worker():
    env = {name: value for name, value in PRODUCTION_ENV.items() if name != "CACHE_URL"}
    result = run_django(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert result.returncode != 0
    assert "linli.W001" in result.stdout + result.stderr
