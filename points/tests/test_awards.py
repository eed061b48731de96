"""Awards from the other apps' events: each event through its receiver and task, once, with the
points the rule in force gives; caps, thresholds, rule changes, clawbacks."""

from datetime import date, timedelta

import pytest
from celery.exceptions import Retry
from django.core.exceptions import ValidationError
from django.db import OperationalError

from alliance import events as alliance_events
from billing import events as billing_events
from community import events as community_events
from points import services, tasks
from points.models import Currency, Entry, Event, Holder, Rule
from points.selectors import rule_in_force
from points.tests.factories import Estate, at, contribution, reputation
from repairs import events as repairs_events

pytestmark = pytest.mark.django_db


@pytest.fixture
def estate():
    return Estate()


def send(signal, captured, **payload):
    """Announce an event the way the apps do, and run what it scheduled for after commit (the
    receiver's task: exactly one, so a test that expects nothing cannot pass by running
    nothing)."""
    with captured(execute=True) as callbacks:
        signal.send(sender=None, **payload)
    assert len(callbacks) == 1


def payment_succeeded(user, *, payment_id=42, on_time=True, months_prepaid=0, when=None):
    return {
        "payment_id": payment_id,
        "payer_id": user.pk,
        "amount": "1200.00",
        "paid_at": (when or at()).isoformat(),
        "on_time": on_time,
        "bills": [],
        "months_prepaid": months_prepaid,
    }


def checked_in(user, *, checkin_id, kind="event", hours="0", when=None):
    return {
        "checkin_id": checkin_id,
        "activity_id": 7,
        "community_id": 1,
        "user_id": user.pk,
        "kind": kind,
        "hours": hours,
        "checked_in_at": (when or at()).isoformat(),
    }


def company_points(company) -> int:
    holder = Holder.objects.filter(company=company).first()
    return holder.balances.get().amount if holder else 0


# --- once per event ---------------------------------------------------------------------------


def test_the_same_payment_event_twice_awards_once(estate, django_capture_on_commit_callbacks):
    payload = payment_succeeded(estate.alice)

    send(billing_events.payment_succeeded, django_capture_on_commit_callbacks, **payload)
    send(billing_events.payment_succeeded, django_capture_on_commit_callbacks, **payload)

    entries = Entry.objects.filter(holder__user=estate.alice)
    assert list(entries.values_list("kind", "source", "reference", "currency", "amount")) == [
        ("award", "payment_on_time", "42", "reputation", 10)
    ]
    assert reputation(estate.alice) == 10


def test_the_same_check_in_twice_awards_once(estate, django_capture_on_commit_callbacks):
    payload = checked_in(estate.alice, checkin_id=5, kind="volunteering", hours="2.5")

    for _ in range(2):
        send(community_events.activity_checked_in, django_capture_on_commit_callbacks, **payload)

    assert Entry.objects.filter(holder__user=estate.alice).count() == 1
    assert contribution(estate.alice) == 25  # 10 an hour × 2.5 h


def test_the_award_waits_for_the_commit(estate, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        billing_events.payment_succeeded.send(sender=None, **payment_succeeded(estate.alice))
        assert Entry.objects.count() == 0
    assert len(callbacks) == 1
    assert Entry.objects.count() == 0  # a rolled-back transaction never runs its callbacks
    callbacks[0]()
    assert reputation(estate.alice) == 10


def test_a_payload_the_receiver_cannot_read_is_logged_not_raised(estate, caplog):
    responses = billing_events.payment_succeeded.send(sender=None, payment_id=1)
    assert all(result is None for _, result in responses)
    assert "could not schedule on_payment_succeeded" in caplog.text
    assert Entry.objects.count() == 0


# --- payments ---------------------------------------------------------------------------------


def test_a_late_payment_earns_nothing(estate, django_capture_on_commit_callbacks):
    payload = payment_succeeded(estate.alice, on_time=False)
    send(billing_events.payment_succeeded, django_capture_on_commit_callbacks, **payload)
    assert Entry.objects.count() == 0
    assert reputation(estate.alice) == 0


def test_prepaying_a_year_or_more_earns_the_prepayment_award(
    estate, django_capture_on_commit_callbacks
):
    send(
        billing_events.payment_succeeded,
        django_capture_on_commit_callbacks,
        **payment_succeeded(estate.alice, payment_id=1, months_prepaid=24),
    )
    send(
        billing_events.payment_succeeded,
        django_capture_on_commit_callbacks,
        **payment_succeeded(estate.bob, payment_id=2, months_prepaid=6),
    )

    assert sorted(
        Entry.objects.filter(holder__user=estate.alice).values_list("source", "amount")
    ) == [("payment_on_time", 10), ("prepayment", 30)]
    assert reputation(estate.alice) == 40
    # Six months is under the rule's threshold of 12.
    assert list(Entry.objects.filter(holder__user=estate.bob).values_list("source", flat=True)) == [
        "payment_on_time"
    ]


def test_a_refund_claws_back_the_payment_awards_once(estate, django_capture_on_commit_callbacks):
    send(
        billing_events.payment_succeeded,
        django_capture_on_commit_callbacks,
        **payment_succeeded(estate.alice, months_prepaid=12),
    )
    refunded = {
        "payment_id": 42,
        "refund_id": 3,
        "payer_id": estate.alice.pk,
        "amount": "100.00",
        "fully_refunded": False,
    }
    send(billing_events.payment_refunded, django_capture_on_commit_callbacks, **refunded)
    send(billing_events.payment_refunded, django_capture_on_commit_callbacks, **refunded)

    rows = list(
        Entry.objects.filter(holder__user=estate.alice)
        .order_by("pk")
        .values_list("kind", "source", "amount")
    )
    assert rows == [
        ("award", "payment_on_time", 10),
        ("award", "prepayment", 30),
        ("clawback", "payment_on_time", -10),
        ("clawback", "prepayment", -30),
    ]
    assert reputation(estate.alice) == 0


def test_a_clawback_is_never_refused_even_below_what_was_earned_since(estate):
    services.award_for_payment(
        payment_id=1, payer_id=estate.alice.pk, paid_at=at(), on_time=True, months_prepaid=0
    )
    # Reputation is standing, not a purse: the clawback goes through whatever the balance.
    services.clawback_for_refund(payment_id=1, payer_id=estate.alice.pk)
    services.clawback_for_refund(payment_id=1, payer_id=estate.alice.pk)
    assert reputation(estate.alice) == 0
    assert Entry.objects.filter(kind="clawback").count() == 1


def test_a_refund_with_nothing_to_claw_back_changes_nothing(estate):
    assert services.clawback_for_refund(payment_id=99, payer_id=estate.alice.pk) == []
    assert Entry.objects.count() == 0


# --- tickets ----------------------------------------------------------------------------------


def ticket_resolved(estate, *, ticket_id=11, within_sla=True, first_resolution=True):
    return {
        "ticket_id": ticket_id,
        "community_id": estate.community.pk,
        "kind": "repair",
        "category_id": 1,
        "household_id": estate.household.pk,
        "filed_by_id": estate.alice.pk,
        "assignee_id": estate.staff.pk,
        "resolved_by_id": estate.staff.pk,
        "resolved_at": at(),  # repairs sends an aware datetime
        "within_sla": within_sla,
        "first_resolution": first_resolution,
    }


def test_a_ticket_handled_within_sla_earns_the_company_reward_points_once(
    estate, django_capture_on_commit_callbacks
):
    payload = ticket_resolved(estate)
    send(repairs_events.ticket_resolved, django_capture_on_commit_callbacks, **payload)
    send(
        repairs_events.ticket_resolved,
        django_capture_on_commit_callbacks,
        **{**payload, "first_resolution": False},
    )
    send(
        repairs_events.ticket_resolved,
        django_capture_on_commit_callbacks,
        **ticket_resolved(estate, ticket_id=12, within_sla=False),
    )

    assert list(
        Entry.objects.values_list("holder__company", "currency", "source", "reference", "amount")
    ) == [(estate.company.pk, "reward", "ticket_within_sla", "11", 2)]
    assert company_points(estate.company) == 2


@pytest.mark.parametrize(("stars", "company_gets"), [(5, 3), (4, 0)])
def test_a_ticket_rating_earns_the_rater_reputation_and_a_top_one_the_company_points(
    estate, django_capture_on_commit_callbacks, stars, company_gets
):
    payload = {
        "ticket_id": 11,
        "community_id": estate.community.pk,
        "kind": "report",
        "household_id": None,
        "rated_by_id": estate.alice.pk,
        "stars": stars,
        "rated_at": at(),
    }
    send(repairs_events.ticket_rated, django_capture_on_commit_callbacks, **payload)
    send(repairs_events.ticket_rated, django_capture_on_commit_callbacks, **payload)

    assert reputation(estate.alice) == 2  # whatever the stars: an honest rating earns the same
    assert company_points(estate.company) == company_gets
    assert Entry.objects.count() == (2 if company_gets else 1)


# --- alliance ---------------------------------------------------------------------------------


def test_a_service_rating_earns_reputation_once(estate, django_capture_on_commit_callbacks):
    payload = {
        "rating_id": 8,
        "household_id": estate.household.pk,
        "community_id": estate.community.pk,
        "user_id": estate.alice.pk,
        "period": "2019-08",
        "stars": {"cleaning": 5, "greening": 4, "security": 5, "reporting": 3, "repair": 2},
    }
    send(alliance_events.service_rated, django_capture_on_commit_callbacks, **payload)
    send(alliance_events.service_rated, django_capture_on_commit_callbacks, **payload)

    entry = Entry.objects.get()
    assert (entry.source, entry.reference, entry.amount, entry.detail) == (
        "service_rating",
        "8",
        5,
        "2019-08",
    )
    assert reputation(estate.alice) == 5


def scorecard(estate, *, score, revision=1, scorecard_id=3):
    return {
        "scorecard_id": scorecard_id,
        "community_id": estate.community.pk,
        "company_id": estate.company.pk,
        "period": "2019-08",
        "score": score,
        "revision": revision,
    }


def test_a_good_scorecard_earns_the_company_points_once_per_month(
    estate, django_capture_on_commit_callbacks
):
    send(
        alliance_events.scorecard_finalized,
        django_capture_on_commit_callbacks,
        **scorecard(estate, score="0.9125"),
    )
    send(
        alliance_events.scorecard_finalized,
        django_capture_on_commit_callbacks,
        **scorecard(estate, score="0.9125"),
    )
    # A corrected revision (even as a new scorecard row) of the same month awards nothing more.
    send(
        alliance_events.scorecard_finalized,
        django_capture_on_commit_callbacks,
        **scorecard(estate, score="0.9500", revision=2, scorecard_id=4),
    )

    entry = Entry.objects.get()
    assert (entry.reference, entry.amount) == (f"{estate.community.pk}:2019-08", 100)
    assert company_points(estate.company) == 100


def test_a_scorecard_under_the_threshold_earns_nothing(estate, django_capture_on_commit_callbacks):
    send(
        alliance_events.scorecard_finalized,
        django_capture_on_commit_callbacks,
        **scorecard(estate, score="0.8999"),
    )
    assert Entry.objects.count() == 0


def test_a_correction_below_the_threshold_takes_the_award_back(
    estate, django_capture_on_commit_callbacks
):
    send(
        alliance_events.scorecard_finalized,
        django_capture_on_commit_callbacks,
        **scorecard(estate, score="0.9300"),
    )
    send(
        alliance_events.scorecard_finalized,
        django_capture_on_commit_callbacks,
        **scorecard(estate, score="0.8000", revision=2),
    )
    assert list(Entry.objects.order_by("pk").values_list("kind", "amount")) == [
        ("award", 100),
        ("clawback", -100),
    ]
    assert company_points(estate.company) == 0


# --- caps, rules ------------------------------------------------------------------------------


def test_at_most_three_activity_check_ins_count_per_month(
    estate, django_capture_on_commit_callbacks
):
    for checkin_id in range(1, 5):
        send(
            community_events.activity_checked_in,
            django_capture_on_commit_callbacks,
            **checked_in(estate.alice, checkin_id=checkin_id, when=at(day=checkin_id)),
        )
    assert contribution(estate.alice) == 15  # 3 × 5; the fourth is over the cap
    # The cap is per month (of the check-in) and per person.
    send(
        community_events.activity_checked_in,
        django_capture_on_commit_callbacks,
        **checked_in(estate.alice, checkin_id=5, when=at(day=1, month=9)),
    )
    send(
        community_events.activity_checked_in,
        django_capture_on_commit_callbacks,
        **checked_in(estate.bob, checkin_id=6, when=at(day=4)),
    )
    assert contribution(estate.alice) == 20
    assert contribution(estate.bob) == 5
    assert list(
        Entry.objects.filter(holder__user=estate.alice).values_list("period", flat=True)
    ) == ["2019-09", "2019-08", "2019-08", "2019-08"]


def test_changing_a_rule_never_rewrites_past_entries(estate):
    rule = rule_in_force(event=Event.ACTIVITY_CHECKIN, on=date(2019, 8, 1))
    services.award_for_checkin(
        checkin_id=1, user_id=estate.alice.pk, kind="event", hours="0", checked_in_at=at(day=1)
    )
    first = Entry.objects.get()

    # The centre doubles the points from September: the old rule ends, a new one starts.
    rule.active_to = date(2019, 8, 31)
    rule.full_clean()
    rule.save()
    new_rule = Rule(
        event=Event.ACTIVITY_CHECKIN,
        currency=Currency.CONTRIBUTION,
        amount=10,
        cap_per_month=3,
        active_from=date(2019, 9, 1),
    )
    new_rule.full_clean()
    new_rule.save()
    # Editing a rule's amount in place touches no entry either.
    Rule.objects.filter(pk=rule.pk).update(amount=7)

    services.award_for_checkin(
        checkin_id=2, user_id=estate.alice.pk, kind="event", hours="0", checked_in_at=at(day=2)
    )
    services.award_for_checkin(
        checkin_id=3,
        user_id=estate.alice.pk,
        kind="event",
        hours="0",
        checked_in_at=at(day=2, month=9),
    )

    first.refresh_from_db()
    assert (first.amount, first.rule_id) == (5, rule.pk)
    rows = list(Entry.objects.order_by("pk").values_list("reference", "amount", "rule_id"))
    assert rows == [("1", 5, rule.pk), ("2", 7, rule.pk), ("3", 10, new_rule.pk)]
    assert contribution(estate.alice) == 22


def test_the_rule_in_force_on_the_events_day_applies_when_delivered_late(estate):
    Rule.objects.filter(event=Event.ACTIVITY_CHECKIN).update(active_to=date(2019, 8, 31))
    Rule.objects.create(
        event=Event.ACTIVITY_CHECKIN,
        currency=Currency.CONTRIBUTION,
        amount=8,
        active_from=date(2019, 9, 1),
    )
    services.award_for_checkin(
        checkin_id=1, user_id=estate.alice.pk, kind="event", hours="0", checked_in_at=at(day=31)
    )
    assert contribution(estate.alice) == 5


def test_no_rule_in_force_awards_nothing(estate):
    Rule.objects.filter(event=Event.VOLUNTEER_HOUR).update(active_to=date(2019, 7, 31))
    entry = services.award_for_checkin(
        checkin_id=1,
        user_id=estate.alice.pk,
        kind="volunteering",
        hours="3",
        checked_in_at=at(),
    )
    assert entry is None
    assert Entry.objects.count() == 0


def test_volunteering_points_round_half_up_per_hour(estate):
    Rule.objects.filter(event=Event.VOLUNTEER_HOUR).update(amount=5)
    services.award_for_checkin(
        checkin_id=1, user_id=estate.alice.pk, kind="volunteering", hours="2.5", checked_in_at=at()
    )
    services.award_for_checkin(
        checkin_id=2, user_id=estate.bob.pk, kind="volunteering", hours="0", checked_in_at=at()
    )
    assert contribution(estate.alice) == 13  # 12.5 → 13
    assert contribution(estate.bob) == 0  # nothing volunteered, nothing written
    assert Entry.objects.count() == 1


def test_two_rules_for_one_event_on_the_same_day_are_refused():
    overlapping = Rule(
        event=Event.PAYMENT_ON_TIME,
        currency=Currency.REPUTATION,
        amount=20,
        active_from=date(2020, 1, 1),
    )
    with pytest.raises(ValidationError) as error:
        overlapping.full_clean()
    assert "active_from" in error.value.message_dict


def test_a_companys_rule_cannot_pay_in_residents_currency():
    rule = Rule(
        event=Event.SCORECARD,
        currency=Currency.CONTRIBUTION,
        amount=20,
        active_from=date(2030, 1, 1),
    )
    with pytest.raises(ValidationError) as error:
        rule.full_clean()
    assert "currency" in error.value.message_dict


def test_entries_are_append_only(estate):
    services.award_for_checkin(
        checkin_id=1, user_id=estate.alice.pk, kind="event", hours="0", checked_in_at=at()
    )
    entry = Entry.objects.get()
    entry.amount = 500
    with pytest.raises(ValidationError):
        entry.save()
    with pytest.raises(ValidationError):
        entry.delete()
    entry.refresh_from_db()
    assert entry.amount == 5


def test_entries_record_when_the_event_happened_not_when_it_arrived(estate):
    when = at(day=3) - timedelta(minutes=1)
    services.award_for_checkin(
        checkin_id=1, user_id=estate.alice.pk, kind="event", hours="0", checked_in_at=when
    )
    entry = Entry.objects.get()
    assert (entry.occurred_at, entry.period) == (when, "2019-08")


def test_an_award_for_someone_who_no_longer_exists_is_skipped_quietly():
    result = tasks.award_checkin.delay(1, 999_999, "event", "0", at().isoformat())
    assert result.get() == 0
    assert (Entry.objects.count(), Holder.objects.count()) == (0, 0)


def test_a_lost_database_connection_is_retried_a_bad_payload_is_not(estate, monkeypatch):
    calls = []

    def flaky(**kwargs):
        calls.append(kwargs)
        raise OperationalError("server closed the connection unexpectedly")

    args = (1, estate.alice.pk, "event", "0", at().isoformat())
    monkeypatch.setattr(services, "award_for_checkin", flaky)
    with pytest.raises(Retry):  # eager mode surfaces the scheduled retry
        tasks.award_checkin.apply(args=args)
    assert len(calls) == 1

    monkeypatch.setattr(services, "award_for_checkin", lambda **kwargs: 1 / 0)
    with pytest.raises(ZeroDivisionError):  # a bug is not retried
        tasks.award_checkin.apply(args=args)
