"""The estate's public page (alliance/public_views.py) as a passer-by in the lobby opens it: from
the poster's QR code, on a phone, not signed in. It passes axe-core, fits 375 px without
sideways scrolling, its tap targets are 44 px, and the Content-Security-Policy holds (the
journey's context keeps it; the `browsing` fixture fails on any violation)."""

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import AXE_JS, E2E, PHONE
from tests.e2e.test_phone_first import _axe, _sideways, _too_small

pytestmark = E2E


@pytest.fixture
def axe_page(browsing):
    """A phone page whose context lets axe's inline <script> in (as test_phone_first's)."""
    if not AXE_JS.exists():
        pytest.fail("axe-core is missing: run `make e2e-deps` (npm ci in tests/e2e)")
    return browsing.context(viewport=PHONE, bypass_csp=True).new_page()


def test_the_public_page_on_a_phone_without_signing_in(browsing, axe_page, demo):
    from community.models import Community

    estate = Community.objects.get(name="翰林苑")
    path = f"/estates/{estate.public_token}/"

    # With the CSP in force: the poster and the page load their own stylesheet, nothing inline.
    strict = browsing.page(viewport=PHONE)
    strict.goto(path + "poster/")
    expect(strict.locator("h1")).to_have_text("翰林苑")
    expect(strict.locator(".poster-qr svg")).to_be_visible()
    strict.goto(path)
    expect(strict.locator("h1")).to_contain_text("翰林苑")
    expect(strict.locator(f"#month-{demo}")).to_be_visible()

    page = axe_page
    page.goto(path)
    problems = _axe(page) + _sideways(page) + _too_small(page)
    assert problems == [], "\n".join(problems)
    page.goto(path + "poster/")
    problems = _axe(page) + _sideways(page)
    assert problems == [], "\n".join(problems)
