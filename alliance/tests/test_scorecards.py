"""The monthly scorecard on a worked example: its figures, its score, finalizing once with the
hold-back released by the score, corrections as revisions, and the months without data.

The worked example (August 2019, default weights):
- two spot checks: 11 of 12 and 9 of 10 staff on duty, grid 95 and 80, major matters 90 and 70
  -> attendance (11/12 + 9/10) / 2 = 0.9083, grid 0.8750, major matters 0.8000;
- four incident reports, three handled within their deadlines, one never handled -> 0.7500;
- two ratings, 5+5+4+4+5 and 3+4+5+4+4 stars: 43 stars in 10 answers, mean 4.3
  -> satisfaction (4.3 - 1) / 4 = 0.8250;
- score 0.20 × 0.9083 + 0.20 × 0.75 + 0.15 × 0.875 + 0.15 × 0.80 + 0.30 × 0.825 = 0.83041
  -> 0.8304.
Money: the two paid bills, 120.00 and 121.20 yuan, were paid out with 10% held back: 12.00 and
12.12. Released at 0.8304: 24.12 × 0.8304 = 20.029… → 20.03 to the company (split over the bills
by largest remainder, 9.97 + 10.06), 24.12 - 20.03 = 4.09 to the public fund.
"""

from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.core.exceptions import ValidationError

from alliance import events, selectors, services
from alliance.models import DEFAULT_WEIGHTS, Scorecard, ScoreWeight
from alliance.tests.factories import AUGUST, FIVES, Estate, august
from billing import selectors as billing_selectors
from billing import services as billing_services
from billing.models import Account, LedgerTransaction, Payout
from community.models import Notice
from community.periods import Period
from community.tests.factories import UserFactory
from config.api import Conflict
from repairs import services as repairs_services
from repairs.models import Ticket

pytestmark = pytest.mark.django_db

URL = "/api/v1/scorecards/"
RATINGS = [
    {"cleaning": 5, "greening": 5, "security": 4, "reporting": 4, "repair": 5},
    {"cleaning": 3, "greening": 4, "security": 5, "reporting": 4, "repair": 4},
]


def worked_example(*, ratings=True, inspections=True, tickets=True, pay_out=True) -> Estate:
    estate = Estate()
    if ratings:
        for index, stars in enumerate(RATINGS):
            estate.rate(index, stars=stars)
    if inspections:
        estate.inspect(on_duty=11, rostered=12, grid=95, major=90)
        estate.inspect(on_duty=9, rostered=10, grid=80, major=70)
    if tickets:
        estate.tickets(handled=3, open_=1)
    if pay_out:
        estate.pay_out()
    return estate


@pytest.fixture
def finalized_events():
    """The scorecard_finalized events sent (after commit) during the test."""
    received = []
    events.scorecard_finalized.connect(
        lambda **kw: received.append(kw), weak=False, dispatch_uid="test-finalized"
    )
    yield received
    events.scorecard_finalized.disconnect(dispatch_uid="test-finalized")


def balances(community):
    return {
        kind: -balance
        for kind, balance in Account.objects.filter(community=community).values_list(
            "kind", "balance"
        )
    }


def test_the_default_weights_are_data_and_sum_to_one():
    weights = dict(ScoreWeight.objects.values_list("component", "weight"))
    assert weights == DEFAULT_WEIGHTS
    assert sum(weights.values()) == Decimal("1.0000")


def test_the_draft_of_the_worked_example():
    estate = worked_example()
    card = services.scorecard_refresh(community=estate.community, period=AUGUST)
    assert card.figures() == {
        "attendance_rate": Decimal("0.9083"),
        "handling_rate": Decimal("0.7500"),
        "grid_cooperation": Decimal("0.8750"),
        "major_matter_cooperation": Decimal("0.8000"),
        "resident_satisfaction": Decimal("0.8250"),
    }
    assert card.score == Decimal("0.8304")
    assert (card.rating_count, card.inspection_count, card.ticket_count) == (2, 2, 4)
    assert (card.tickets_within_sla, card.average_stars) == (3, Decimal("4.30"))
    assert card.weights == {
        "attendance_rate": "0.2000",
        "handling_rate": "0.2000",
        "grid_cooperation": "0.1500",
        "major_matter_cooperation": "0.1500",
        "resident_satisfaction": "0.3000",
    }
    assert (card.revision, card.is_current, card.finalized) == (1, True, False)
    # Recomputing a draft updates the same row.
    assert services.scorecard_refresh(community=estate.community, period=AUGUST).pk == card.pk
    assert Scorecard.objects.count() == 1


def test_finalizing_releases_the_hold_back_by_the_score(
    django_capture_on_commit_callbacks, finalized_events
):
    estate = worked_example()
    assert balances(estate.community)["escrow"] == Decimal("24.12")  # held back
    with (
        mock.patch(
            "billing.services.release_holdback", wraps=billing_services.release_holdback
        ) as release,
        django_capture_on_commit_callbacks(execute=True),
    ):
        card, created = services.scorecard_finalize(
            community=estate.community, period=AUGUST, by=estate.centre_admin
        )

    assert created
    release.assert_called_once_with(
        community=estate.community, period=AUGUST, score=Decimal("0.8304")
    )
    card.refresh_from_db()
    assert (card.finalized, card.score, card.finalized_by) == (
        True,
        Decimal("0.8304"),
        estate.centre_admin,
    )
    payout = Payout.objects.get(kind="holdback_release")
    assert (card.holdback_release, payout.score) == (payout, Decimal("0.8304"))
    # 24.12 × 0.8304 = 20.029… → 20.03 for the estate; the fen is split over the bills by largest
    # remainder (12.00 × 0.8304 = 9.9648 → 9.97, 12.12 × 0.8304 = 10.0644 → 10.06), not rounded
    # per bill (9.96 + 10.06 = 20.02 would drift a fen from the estate's figure); rest 4.09.
    assert (payout.held_back, payout.to_company, payout.to_public_fund) == (
        Decimal("24.12"),
        Decimal("20.03"),
        Decimal("4.09"),
    )
    assert (card.released_to_company, card.forfeited_to_fund) == (
        Decimal("20.03"),
        Decimal("4.09"),
    )
    assert balances(estate.community) == {
        "escrow": Decimal("0.00"),
        "company_payable": Decimal("237.11"),  # 217.08 paid out + 20.03 released
        "public_fund": Decimal("4.09"),
    }
    assert billing_selectors.escrow_summary(community=estate.community) == {
        "held": Decimal("0.00"),
        "released": Decimal("237.11"),
        "withheld": Decimal("0.00"),
        "forfeited_to_fund": Decimal("4.09"),
        "refunded": Decimal("0.00"),
    }
    assert finalized_events == [
        {
            "signal": events.scorecard_finalized,
            "sender": Scorecard,
            "scorecard_id": card.pk,
            "community_id": estate.community.pk,
            "company_id": estate.community.company_id,
            "period": "2019-08",
            "score": "0.8304",
            "revision": 1,
        }
    ]


def test_finalizing_twice_releases_once(django_capture_on_commit_callbacks, finalized_events):
    estate = worked_example()
    with django_capture_on_commit_callbacks(execute=True):
        first, created = services.scorecard_finalize(community=estate.community, period=AUGUST)
    with django_capture_on_commit_callbacks(execute=True):
        again, created_again = services.scorecard_finalize(
            community=estate.community, period=AUGUST
        )
    assert (created, created_again) == (True, False)
    assert again.pk == first.pk
    assert [e["scorecard_id"] for e in finalized_events] == [first.pk]  # announced once
    assert Payout.objects.filter(kind="holdback_release").count() == 1
    assert LedgerTransaction.objects.filter(kind="holdback_release").count() == 1
    assert balances(estate.community)["company_payable"] == Decimal("237.11")
    assert Scorecard.objects.count() == 1


def test_a_final_scorecard_is_never_recomputed():
    estate = worked_example()
    card, _ = services.scorecard_finalize(community=estate.community, period=AUGUST)
    estate.tickets(handled=0, open_=4, day=6)  # four more August tickets, none handled
    assert services.scorecard_refresh(community=estate.community, period=AUGUST).pk == card.pk
    card.refresh_from_db()
    assert (card.handling_rate, card.score, card.ticket_count) == (
        Decimal("0.7500"),
        Decimal("0.8304"),
        4,
    )


def test_a_correction_is_a_new_explained_revision_that_moves_no_money(
    django_capture_on_commit_callbacks, finalized_events
):
    estate = worked_example()
    first, _ = services.scorecard_finalize(community=estate.community, period=AUGUST)
    ledger_before = LedgerTransaction.objects.count()
    # The open ticket turns out to have been handled on time after all.
    ticket = Ticket.objects.get(status="submitted")
    for action in ("accept", "resolve"):
        repairs_services.ticket_transition(
            ticket=ticket, actor=estate.staff, action=action, at=august(5, 9, 30)
        )
    with django_capture_on_commit_callbacks(execute=True):
        revision = services.scorecard_revise(
            community=estate.community,
            period=AUGUST,
            reason="A report was closed on paper but not in the system.",
            by=estate.centre_admin,
        )

    first.refresh_from_db()
    assert (first.is_current, first.score) == (False, Decimal("0.8304"))
    # handling 4/4 = 1: 0.18166 + 0.2 + 0.13125 + 0.12 + 0.2475 = 0.88041 -> 0.8804
    assert (revision.revision, revision.is_current, revision.handling_rate, revision.score) == (
        2,
        True,
        Decimal("1.0000"),
        Decimal("0.8804"),
    )
    assert revision.finalized and revision.reason.startswith("A report")
    assert revision.holdback_release is None
    assert LedgerTransaction.objects.count() == ledger_before
    assert Payout.objects.filter(kind="holdback_release").count() == 1
    notice = Notice.objects.get(user=estate.centre_admin)
    assert "0.8304" in notice.body and "0.8804" in notice.body
    assert [(e["scorecard_id"], e["revision"], e["score"]) for e in finalized_events] == [
        (revision.pk, 2, "0.8804")
    ]
    published = selectors.scorecard_current(community=estate.community, period=AUGUST)
    assert published.pk == revision.pk


def test_a_revision_needs_a_reason_and_a_final_scorecard():
    estate = worked_example()
    with pytest.raises(Conflict):
        services.scorecard_revise(
            community=estate.community, period=AUGUST, reason="why", by=estate.centre_admin
        )
    services.scorecard_finalize(community=estate.community, period=AUGUST)
    with pytest.raises(ValidationError):
        services.scorecard_revise(
            community=estate.community, period=AUGUST, reason="  ", by=estate.centre_admin
        )
    assert Scorecard.objects.count() == 1


def test_a_month_without_ratings_leaves_satisfaction_out():
    estate = worked_example(ratings=False)
    card, created = services.scorecard_finalize(community=estate.community, period=AUGUST)
    assert created
    assert card.resident_satisfaction is None
    assert card.rating_count == 0
    # (0.18166 + 0.15 + 0.13125 + 0.12) / 0.70 = 0.832728… -> 0.8327
    assert card.score == Decimal("0.8327")
    assert Payout.objects.get(kind="holdback_release").score == Decimal("0.8327")


def test_a_month_without_an_inspection_leaves_the_inspection_components_out():
    estate = worked_example(inspections=False)
    card, _ = services.scorecard_finalize(community=estate.community, period=AUGUST)
    assert (card.attendance_rate, card.grid_cooperation, card.major_matter_cooperation) == (
        None,
        None,
        None,
    )
    # (0.20 × 0.75 + 0.30 × 0.825) / 0.50 = 0.795
    assert card.score == Decimal("0.7950")


def test_a_month_without_tickets_leaves_the_handling_rate_out():
    estate = worked_example(tickets=False)
    card = services.scorecard_refresh(community=estate.community, period=AUGUST)
    assert (card.handling_rate, card.ticket_count) == (None, 0)
    # (0.18166 + 0.13125 + 0.12 + 0.2475) / 0.80 = 0.8505125 -> 0.8505
    assert card.score == Decimal("0.8505")


def test_a_month_with_nothing_to_score_cannot_be_finalized():
    estate = worked_example(ratings=False, inspections=False, tickets=False)
    draft = services.scorecard_refresh(community=estate.community, period=AUGUST)
    assert draft.score is None
    with pytest.raises(Conflict):
        services.scorecard_finalize(community=estate.community, period=AUGUST)
    draft.refresh_from_db()
    assert not draft.finalized
    assert not Payout.objects.filter(kind="holdback_release").exists()


def test_a_month_not_over_or_not_paid_out_is_not_finalized():
    estate = worked_example(pay_out=False)
    with pytest.raises(ValidationError):
        services.scorecard_finalize(community=estate.community, period=Period.current())
    with pytest.raises(Conflict):
        services.scorecard_finalize(community=estate.community, period=AUGUST)
    # Everything rolled back: no final scorecard, no release, the draft can be made later.
    assert not Scorecard.objects.filter(finalized_at__isnull=False).exists()
    assert not Payout.objects.filter(kind="holdback_release").exists()
    estate.pay_out()
    card, created = services.scorecard_finalize(community=estate.community, period=AUGUST)
    assert created and card.score == Decimal("0.8304")


def test_changed_weights_apply_to_drafts_and_a_final_scorecard_keeps_its_own():
    estate = worked_example()
    card, _ = services.scorecard_finalize(community=estate.community, period=AUGUST)
    ScoreWeight.objects.filter(component="grid_cooperation").update(weight=Decimal("1"))
    ScoreWeight.objects.exclude(component="grid_cooperation").update(weight=Decimal("0"))
    september = Period(2019, 9)
    estate.inspect(grid=95, period=september, at=august(31, 23) + timedelta(hours=2))
    draft = services.scorecard_refresh(community=estate.community, period=september)
    assert draft.score == Decimal("0.9500")  # only grid cooperation counts now
    card.refresh_from_db()
    assert (card.score, card.weights["resident_satisfaction"]) == (Decimal("0.8304"), "0.3000")


# --- the API ----------------------------------------------------------------------------------


def test_the_scorecard_list_follows_the_contract(as_user):
    estate = worked_example()
    services.scorecard_finalize(community=estate.community, period=AUGUST)
    response = as_user(estate.residents[0]).get(
        URL, {"community": estate.community.pk, "period": "2019-08"}
    )
    assert response.status_code == 200
    data = response.json()
    assert (data["count"], data["next"], data["previous"]) == (1, None, None)
    row = data["results"][0]
    assert {
        key: row[key]
        for key in [
            "community",
            "period",
            "attendance_rate",
            "handling_rate",
            "grid_cooperation",
            "major_matter_cooperation",
            "resident_satisfaction",
            "score",
            "finalized",
        ]
    } == {
        "community": estate.community.pk,
        "period": "2019-08",
        "attendance_rate": "0.9083",
        "handling_rate": "0.7500",
        "grid_cooperation": "0.8750",
        "major_matter_cooperation": "0.8000",
        "resident_satisfaction": "0.8250",
        "score": "0.8304",
        "finalized": True,
    }
    assert (row["released_to_company"], row["forfeited_to_fund"]) == ("20.03", "4.09")


def test_everyone_in_the_communitys_scope_sees_it_and_nobody_else(as_user):
    estate = worked_example(pay_out=False)
    services.scorecard_refresh(community=estate.community, period=AUGUST)
    for user in (
        estate.residents[2],  # unpaid: may not rate, but sees the scorecard
        estate.committee,
        estate.staff,
        estate.inspector,
        estate.centre_admin,
    ):
        assert as_user(user).get(URL).json()["count"] == 1, user
    for user in (estate.outsider, estate.other_staff, estate.outside_inspector):
        response = as_user(user).get(URL, {"community": estate.community.pk})
        assert response.json()["count"] == 0, user


def test_a_draft_shows_null_for_components_without_data(as_user):
    estate = worked_example(ratings=False, inspections=False, tickets=False, pay_out=False)
    services.scorecard_refresh(community=estate.community, period=AUGUST)
    row = as_user(estate.committee).get(URL).json()["results"][0]
    assert (row["attendance_rate"], row["resident_satisfaction"], row["score"]) == (
        None,
        None,
        None,
    )
    assert row["finalized"] is False


@pytest.mark.parametrize("query", [{"period": "2019-8"}, {"community": "x"}, {"ordering": "score"}])
def test_bad_filters_are_400(as_user, query):
    estate = Estate()
    assert as_user(estate.committee).get(URL, query).status_code == 400


def test_the_list_ranks_and_stays_within_a_fixed_number_of_queries(
    as_user, django_assert_max_num_queries
):
    estate = worked_example(pay_out=False)
    services.scorecard_refresh(community=estate.community, period=AUGUST)
    for month in range(9, 13):
        services.scorecard_refresh(community=estate.community, period=Period(2019, month))
    other = Estate()
    other.rate(0, stars=FIVES)
    services.scorecard_refresh(community=other.community, period=AUGUST)
    client = as_user(UserFactory(is_superuser=True))
    with django_assert_max_num_queries(3):
        response = client.get(URL, {"ordering": "-score"})
    results = response.json()["results"]
    assert response.json()["count"] == 6
    assert [r["score"] for r in results][:2] == ["1.0000", "0.8304"]
    assert results[0]["community"] == other.community.pk
    assert [r["score"] for r in results][-4:] == [None] * 4
