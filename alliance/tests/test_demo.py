"""seed_demo's alliance part: the story's month rated by the paying households, one spot check,
and the scorecard finalized with its hold-back split between the company and the public fund."""

from decimal import Decimal

import pytest
from django.core.management import call_command

from alliance.models import Inspection, Scorecard, ServiceRating
from billing import selectors as billing_selectors
from billing.models import Bill, Payout
from community.demo import default_demo_period
from community.models import Community

pytestmark = pytest.mark.django_db


def test_the_story_month_is_rated_inspected_and_finalized():
    call_command("seed_demo", stdout=None)
    period = str(default_demo_period())
    community = Community.objects.get(name="翰林苑")

    paid = set(
        Bill.objects.filter(community=community, period=period, status="paid").values_list(
            "household_id", flat=True
        )
    )
    rated = set(ServiceRating.objects.filter(period=period).values_list("household_id", flat=True))
    assert len(paid) == 46
    assert rated == paid  # every paying household, and only they

    inspection = Inspection.objects.get(period=period)
    assert (inspection.staff_on_duty, inspection.staff_rostered) == (11, 12)
    assert inspection.inspector.username == "inspector"

    card = Scorecard.objects.get(community=community, period=period)
    assert card.finalized and card.revision == 1
    assert card.handling_rate == Decimal("1.0000")  # 28 of 28 within their deadlines
    assert card.attendance_rate == Decimal("0.9167")
    assert Decimal("0.9") < card.score < Decimal("1")

    release = Payout.objects.get(community=community, period=period, kind="holdback_release")
    assert release.score == card.score
    assert release.to_company + release.to_public_fund == release.held_back > 0
    summary = billing_selectors.escrow_summary(community=community)
    assert summary["forfeited_to_fund"] == release.to_public_fund > 0
    assert summary["withheld"] == Decimal("0.00")


def test_seeding_again_adds_nothing_to_the_alliance():
    call_command("seed_demo", stdout=None)
    before = (
        list(ServiceRating.objects.values_list()),
        list(Inspection.objects.values_list()),
        list(Scorecard.objects.values_list()),
    )
    call_command("seed_demo", stdout=None)
    after = (
        list(ServiceRating.objects.values_list()),
        list(Inspection.objects.values_list()),
        list(Scorecard.objects.values_list()),
    )
    assert after == before
