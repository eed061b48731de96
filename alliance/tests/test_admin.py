"""The alliance in Django admin: centre admins read their centre's ratings, checks and scorecards,
finalize a month early or revise a final one with a reason; a superuser edits the weights."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from alliance import services
from alliance.models import Scorecard, ScoreWeight
from alliance.tests.factories import AUGUST, Estate
from billing.models import Payout
from community.permissions import CENTRE_ADMIN_GROUP
from community.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    estate = Estate()
    estate.rate(0)
    estate.inspect()
    estate.pay_out()
    admin = estate.centre_admin
    admin.is_staff = True
    admin.save()
    admin.groups.add(Group.objects.get(name=CENTRE_ADMIN_GROUP))
    client.force_login(admin)
    return client, estate


def test_the_centre_admin_group_reads_alliance_rows_and_may_finalize():
    codenames = set(
        Group.objects.get(name=CENTRE_ADMIN_GROUP).permissions.values_list("codename", flat=True)
    )
    assert {
        "view_servicerating",
        "view_inspection",
        "view_scorecard",
        "change_scorecard",
        "view_scoreweight",
    } <= codenames
    assert not {"change_scoreweight", "change_servicerating", "delete_scorecard"} & codenames


def test_a_centre_admin_sees_only_their_centres_scorecards(admin_client):
    client, estate = admin_client
    ours = Scorecard.objects.get(community=estate.community)
    elsewhere = Estate()
    elsewhere.rate(0)
    theirs = Scorecard.objects.get(community=elsewhere.community)
    page = client.get(reverse("admin:alliance_scorecard_changelist")).content.decode()
    assert f"/{ours.pk}/change/" in page and f"/{theirs.pk}/change/" not in page
    assert client.get(reverse("admin:alliance_scorecard_change", args=[ours.pk])).status_code == 200
    ratings = client.get(reverse("admin:alliance_servicerating_changelist")).content.decode()
    assert str(estate.households[0].unit) in ratings
    assert str(elsewhere.households[0].unit) not in ratings


def test_the_finalize_action_releases_the_hold_back_once(admin_client):
    client, estate = admin_client
    card = Scorecard.objects.get(community=estate.community)
    for _ in range(2):
        response = client.post(
            reverse("admin:alliance_scorecard_changelist"),
            {"action": "finalize", "_selected_action": [card.pk]},
            follow=True,
        )
        assert response.status_code == 200
    card.refresh_from_db()
    assert card.finalized and card.finalized_by == estate.centre_admin
    assert Payout.objects.filter(kind="holdback_release").count() == 1


def test_the_revise_form_needs_a_reason_and_publishes_a_revision(admin_client):
    client, estate = admin_client
    card, _ = services.scorecard_finalize(community=estate.community, period=AUGUST)
    url = reverse("admin:alliance_scorecard_revise", args=[card.pk])
    assert client.get(url).status_code == 200
    assert client.post(url, {"reason": ""}).status_code == 200  # the form again, with its error
    assert Scorecard.objects.count() == 1
    response = client.post(url, {"reason": "检查记录录错了月份"})
    revision = Scorecard.objects.get(revision=2)
    assert response.status_code == 302
    assert (revision.reason, revision.is_current, revision.finalized_by) == (
        "检查记录录错了月份",
        True,
        estate.centre_admin,
    )


def test_scorecard_rows_cannot_be_edited_in_admin(admin_client):
    client, estate = admin_client
    card = Scorecard.objects.get(community=estate.community)
    client.post(
        reverse("admin:alliance_scorecard_change", args=[card.pk]),
        {"score": "1.0000", "attendance_rate": "1.0000"},
    )
    card.refresh_from_db()
    assert card.score != Decimal("1.0000")


def test_only_a_superuser_edits_the_weights(admin_client, client):
    centre_client, _ = admin_client
    weight = ScoreWeight.objects.get(component="resident_satisfaction")
    url = reverse("admin:alliance_scoreweight_change", args=[weight.pk])
    centre_client.post(url, {"weight": "0.5000"})
    weight.refresh_from_db()
    assert weight.weight == Decimal("0.3000")

    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    response = client.post(url, {"weight": "0.5000"})
    assert response.status_code == 302
    weight.refresh_from_db()
    assert weight.weight == Decimal("0.5000")
    response = client.post(url, {"weight": "1.5"})
    assert response.status_code == 200  # refused: 0–1
    weight.refresh_from_db()
    assert weight.weight == Decimal("0.5000")
