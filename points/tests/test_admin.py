"""The centre's admin for points: rules editable (but a rule that has awarded keeps what it
said), rewards and redemptions of their own centre only, cancelling through the service, and
manage.py check_points."""

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.urls import reverse

from community.permissions import CENTRE_ADMIN_GROUP
from points import services
from points.models import Balance, Currency, Event, Redemption, Rule
from points.tests.factories import Estate, contribution, give_contribution

pytestmark = pytest.mark.django_db


@pytest.fixture
def estate():
    return Estate()


@pytest.fixture
def admin_client(client, estate, settings):
    admin = estate.centre_admin
    admin.is_staff = True
    admin.save()
    admin.groups.add(Group.objects.get(name=CENTRE_ADMIN_GROUP))
    client.force_login(admin)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def test_the_centre_admins_may_edit_rules_and_rewards_and_only_read_entries():
    codenames = set(
        Group.objects.get(name=CENTRE_ADMIN_GROUP)
        .permissions.filter(content_type__app_label="points")
        .values_list("codename", flat=True)
    )
    assert codenames == {
        "view_rule",
        "add_rule",
        "change_rule",
        "view_reward",
        "add_reward",
        "change_reward",
        "view_redemption",
        "change_redemption",
        "view_entry",
        "view_balance",
    }


def test_the_reward_list_shows_only_the_centres_own(estate, admin_client):
    html = admin_client.get(reverse("admin:points_reward_changelist")).content.decode()
    assert estate.reward.name in html
    assert estate.other_reward.name not in html


def test_a_rule_that_has_awarded_keeps_its_terms(estate, admin_client):
    rule = Rule.objects.get(event=Event.ACTIVITY_CHECKIN)
    url = reverse("admin:points_rule_change", args=[rule.pk])
    form = admin_client.get(url).context["adminform"].form
    assert "amount" in form.fields

    services.award_for_checkin(
        checkin_id=1, user_id=estate.alice.pk, kind="event", hours="0", checked_in_at="2019-08-02"
    )
    form = admin_client.get(url).context["adminform"].form
    assert list(form.fields) == ["active_to"]


def test_cancelling_from_the_admin_returns_points_and_stock(estate, admin_client):
    give_contribution(estate.alice, 10)
    redemption, _ = services.reward_redeem(
        user=estate.alice, reward_id=estate.reward.pk, idempotency_key="k", fingerprint="f"
    )
    response = admin_client.post(
        reverse("admin:points_redemption_changelist"),
        {"action": "cancel", "_selected_action": [redemption.pk]},
        follow=True,
    )
    assert "1 redemption cancelled." in response.content.decode()
    redemption.refresh_from_db()
    assert redemption.status == Redemption.Status.CANCELLED
    assert contribution(estate.alice) == 10


def test_check_points_passes_on_a_sound_ledger_and_fails_on_a_wrong_balance(estate, capsys):
    give_contribution(estate.alice, 10)
    call_command("check_points")
    assert "Points are consistent." in capsys.readouterr().out

    balance = Balance.objects.get(holder__user=estate.alice, currency=Currency.CONTRIBUTION)
    Balance.objects.filter(pk=balance.pk).update(amount=11)
    with pytest.raises(CommandError, match="1 points problem"):
        call_command("check_points")
    assert "is 11, entries say 10" in capsys.readouterr().err
    Balance.objects.filter(pk=balance.pk).update(amount=10)  # sound again for the autouse check
