"""What PostgreSQL itself enforces (migration 0002): entries cannot be updated or deleted even by
raw SQL, and two rules for one event cannot be in force on the same day."""

from datetime import date

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction

from points.models import Entry, Rule
from points.tests.factories import Estate, give_contribution

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE points_entry SET amount = 1000 WHERE id = %s",
        "DELETE FROM points_entry WHERE id = %s",
    ],
)
def test_entries_refuse_update_and_delete_in_the_database(sql):
    estate = Estate()
    give_contribution(estate.alice, 10)
    entry_id = Entry.objects.get().pk

    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, [entry_id])

    assert Entry.objects.get().amount == 10


def test_two_rules_for_one_event_on_one_day_are_refused_by_the_database():
    with pytest.raises(IntegrityError), transaction.atomic():
        Rule.objects.create(
            event="payment_on_time", currency="reputation", amount=99, active_from=date(2021, 1, 1)
        )
    assert Rule.objects.filter(event="payment_on_time").count() == 1


def test_a_rule_starting_after_the_last_one_ends_is_accepted():
    Rule.objects.filter(event="payment_on_time").update(active_to=date(2020, 12, 31))
    Rule.objects.create(
        event="payment_on_time", currency="reputation", amount=12, active_from=date(2021, 1, 1)
    )
    assert Rule.objects.filter(event="payment_on_time").count() == 2
