"""The daily jobs: drafts every day, finalization from ALLIANCE_FINALIZE_DAY on; both idempotent."""

from decimal import Decimal

import pytest

from alliance import tasks
from alliance.models import Scorecard
from alliance.tests.factories import AUGUST, Estate
from billing.models import Payout
from community.models import Notice
from community.tests.factories import CommunityFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def estate():
    estate = Estate()
    estate.rate(0)
    estate.inspect()
    return estate


def test_the_daily_job_drafts_this_and_last_month_for_communities_under_agreement(estate):
    CommunityFactory()  # no agreement: not evaluated
    assert tasks.refresh_drafts.delay("2019-09-03").get() == 2
    cards = Scorecard.objects.order_by("period")
    assert [(c.community_id, c.period, c.finalized) for c in cards] == [
        (estate.community.pk, "2019-08", False),
        (estate.community.pk, "2019-09", False),
    ]
    august = cards[0]
    # 11/12 = 0.9167, grid 0.95, major 0.90, satisfaction 1, no tickets (handling left out):
    # (0.18334 + 0.1425 + 0.135 + 0.3) / 0.80 = 0.76084 / 0.8 = 0.95105 -> 0.9511 (half up)
    assert august.score == Decimal("0.9511")
    # Run again: the same two rows, recomputed.
    tasks.refresh_drafts.delay("2019-09-04").get()
    assert Scorecard.objects.count() == 2


def test_before_the_finalize_day_nothing_is_finalized(estate, settings):
    settings.ALLIANCE_FINALIZE_DAY = 10
    estate.pay_out()
    assert tasks.finalize_due_scorecards.delay("2019-09-09").get() == 0
    assert not Scorecard.objects.filter(finalized_at__isnull=False).exists()
    assert not Payout.objects.filter(kind="holdback_release").exists()


def test_from_the_finalize_day_the_previous_month_is_finalized_once(estate, settings):
    settings.ALLIANCE_FINALIZE_DAY = 10
    estate.pay_out()
    assert tasks.finalize_due_scorecards.delay("2019-09-10").get() == 1
    card = Scorecard.objects.get()
    assert (card.period, card.finalized, card.score) == ("2019-08", True, Decimal("0.9511"))
    release = Payout.objects.get(kind="holdback_release")
    assert release.score == Decimal("0.9511")
    # The next day (and again): nothing left to do, nothing released twice.
    assert tasks.finalize_due_scorecards.delay("2019-09-11").get() == 0
    assert tasks.finalize_scorecard.delay(estate.community.pk, "2019-08").get() == card.pk
    assert Payout.objects.filter(kind="holdback_release").count() == 1
    assert Scorecard.objects.count() == 1


def test_a_month_billing_is_not_ready_for_waits_and_the_admins_hear_once(estate, settings):
    settings.ALLIANCE_FINALIZE_DAY = 1
    tasks.finalize_due_scorecards.delay("2019-09-01").get()
    tasks.finalize_due_scorecards.delay("2019-09-02").get()
    assert not Scorecard.objects.filter(finalized_at__isnull=False).exists()
    notice = Notice.objects.get(user=estate.centre_admin)
    assert "2019-08" in notice.title
    assert "payout" in notice.body
    # Billing pays the month out; the next run finalizes it.
    estate.pay_out()
    tasks.finalize_due_scorecards.delay("2019-09-03").get()
    assert Scorecard.objects.get(period="2019-08").finalized


def test_an_older_month_left_a_draft_is_caught_up(estate, settings):
    settings.ALLIANCE_FINALIZE_DAY = 10
    tasks.refresh_scorecard.delay(estate.community.pk, "2019-08").get()
    estate.pay_out()
    # Long after: October 5th, before the finalize day, August is still a draft.
    assert tasks.finalize_due_scorecards.delay("2019-10-05").get() == 1
    assert Scorecard.objects.get(period="2019-08").finalized


def test_a_month_with_nothing_to_score_is_reported_not_crashed(settings):
    settings.ALLIANCE_FINALIZE_DAY = 10
    estate = Estate()
    estate.pay_out()
    assert tasks.finalize_due_scorecards.delay("2019-09-10").get() == 1
    assert not Scorecard.objects.filter(finalized_at__isnull=False).exists()
    assert "nothing to score" in Notice.objects.get(user=estate.centre_admin).body


def test_a_task_for_a_community_gone_returns_quietly():
    assert tasks.finalize_scorecard.delay(999999, str(AUGUST)).get() is None
    assert tasks.refresh_scorecard.delay(999999, str(AUGUST)).get() is None
