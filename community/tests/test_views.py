"""The browser shell: session login, the two homes, Chinese first with English selectable."""

import pytest
from django.urls import reverse

from community.models import Role
from community.tests.factories import CommunityFactory, HouseholdFactory, member, resident

pytestmark = pytest.mark.django_db


def test_login_page_is_chinese_by_default(client):
    page = client.get(reverse("login"))
    assert page.status_code == 200
    html = page.content.decode()
    assert '<html lang="zh-hans">' in html
    assert "登录" in html
    assert 'name="viewport"' in html


def test_pages_need_a_login(client):
    for name in ["home", "resident-home", "staff-home"]:
        response = client.get(reverse(name))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_resident_logs_in_and_sees_their_own_household_only(client):
    community = CommunityFactory(name="翰林苑")
    mine = HouseholdFactory(building__community=community, building__name="2幢", unit="301")
    HouseholdFactory(building__community=community, building__name="4幢", unit="702")
    resident(mine, user__username="resident07")

    response = client.post(
        reverse("login"), {"username": "resident07", "password": "pass-w0rd"}, follow=True
    )

    assert response.redirect_chain[-1][0] == reverse("resident-home")
    html = response.content.decode()
    assert "翰林苑 · 2幢 301" in html
    assert "4幢 702" not in html
    assert "我的房屋" in html


def test_a_wrong_password_keeps_the_username_and_says_why(client):
    resident(HouseholdFactory(), user__username="resident07")
    response = client.post(reverse("login"), {"username": "resident07", "password": "nope"})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'value="resident07"' in html
    assert 'role="alert"' in html


def test_staff_land_on_the_staff_home_with_their_communities(client):
    mine, theirs = CommunityFactory(name="翰林苑"), CommunityFactory(name="别的小区")
    HouseholdFactory(building__community=mine)
    staff = member(Role.PROPERTY_STAFF, company=mine.company)
    client.force_login(staff)

    response = client.get(reverse("home"), follow=True)

    assert response.redirect_chain[-1][0] == reverse("staff-home")
    html = response.content.decode()
    assert "翰林苑" in html
    assert theirs.name not in html


def test_language_switch_remembers_english(client):
    client.force_login(resident(HouseholdFactory()))
    response = client.post(
        reverse("set_language"), {"language": "en", "next": reverse("resident-home")}, follow=True
    )
    html = response.content.decode()
    assert '<html lang="en">' in html
    assert "My households" in html
    # The choice is kept in a cookie, so the next visit is English too.
    assert '<html lang="en">' in client.get(reverse("resident-home")).content.decode()


def test_logout_is_a_post_and_ends_the_session(client):
    client.force_login(resident(HouseholdFactory()))
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("resident-home")).status_code == 302


def test_health_check_answers_ok_without_login(client):
    response = client.get("/healthz/")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_an_english_browser_still_gets_chinese_until_the_person_switches(client):
    html = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9").content.decode()
    assert '<html lang="zh-hans">' in html
    client.post(reverse("set_language"), {"language": "en", "next": "/"})
    html = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    assert '<html lang="en">' in html


def test_api_clients_choose_their_language_with_accept_language(api_client):
    response = api_client.get("/api/v1/me/", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 401
    assert response["Content-Language"] == "en"
    response = api_client.get("/api/v1/me/", HTTP_ACCEPT_LANGUAGE="zh-CN")
    assert response["Content-Language"] == "zh-hans"


def test_staff_home_offers_each_role_its_own_pages(client):
    community = CommunityFactory()
    staff = member(Role.PROPERTY_STAFF, company=community.company)
    admin = member(Role.CENTRE_ADMIN, centre=community.centre)
    client.force_login(staff)
    html = client.get(reverse("staff-home")).content.decode()
    assert reverse("repairs-queue") in html and reverse("dashboard-company") in html
    assert reverse("dashboard-centre") not in html
    client.force_login(admin)
    html = client.get(reverse("staff-home")).content.decode()
    assert reverse("dashboard-centre") in html
    assert reverse("dashboard-company") not in html
