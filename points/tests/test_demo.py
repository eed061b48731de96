"""The demo: the story's month earns its points through the same services the events use, so the
events delivered after seed_demo's commit add nothing; the catalogue has its four rewards and one
resident has redeemed a parking day."""

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone

from alliance import selectors as alliance_selectors
from billing import selectors as billing_selectors
from community.demo import default_demo_period
from community.models import Community, User
from points import tasks
from points.models import Balance, Entry, Redemption, Reward

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo():
    call_command("seed_demo", stdout=None)
    return Community.objects.get(name="翰林苑")


def test_the_story_month_earns_residents_their_points(demo):
    period = str(default_demo_period())
    awards = Entry.objects.filter(kind="award")
    by_source = dict(
        awards.values("source").annotate(total=Sum("amount")).values_list("source", "total")
    )
    # 46 of 56 households paid on time, three of them prepaying two years.
    assert awards.filter(source="payment_on_time").count() == 46
    assert by_source["payment_on_time"] == 460
    assert awards.filter(source="prepayment").count() == 3
    assert by_source["prepayment"] == 90
    # Every one of the 28 tickets was rated by its filer (at most 5 count per resident a month).
    assert awards.filter(source="ticket_rating").count() == 28
    assert awards.filter(source__in=["payment_on_time", "service_rating"], period=period).exists()
    assert awards.filter(source__in=["volunteer_hour", "activity_checkin"]).exists()


def test_the_company_earns_for_its_tickets_and_its_scorecard(demo):
    company = demo.company.points_holder
    sources = dict(
        company.entries.values("source")
        .annotate(total=Sum("amount"))
        .values_list("source", "total")
    )
    assert sources["ticket_within_sla"] == 2 * 28
    assert sources["ticket_five_stars"] == 3 * 28
    card = alliance_selectors.scorecard_current(community=demo, period=default_demo_period())
    expected_scorecard = 100 if card.score >= Decimal("0.90") else None
    assert sources.get("scorecard") == expected_scorecard
    assert company.balances.get().amount == sum(sources.values())


def test_the_catalogue_and_one_redemption(demo):
    rewards = {r.name: r for r in Reward.objects.select_related("organisation")}
    assert set(rewards) == {
        "小区临时停车一天",
        "银行上门代办服务一次",
        "免费法律咨询（30分钟）",
        "家政保洁服务一小时",
    }
    assert rewards["免费法律咨询（30分钟）"].organisation.kind == "law_firm"
    assert rewards["银行上门代办服务一次"].organisation.kind == "bank"
    assert rewards["家政保洁服务一小时"].organisation is None  # the centre's own
    redemption = Redemption.objects.get()
    assert (redemption.reward.name, redemption.status) == ("小区临时停车一天", "issued")
    assert rewards["小区临时停车一天"].stock == 29


def test_the_events_delivered_after_the_seed_add_nothing(demo):
    before = Entry.objects.count()
    balances = list(Balance.objects.order_by("pk").values_list("amount", flat=True))
    resident = User.objects.get(username="resident01")
    for payment in billing_selectors.payment_list(user=resident).filter(payer=resident):
        bills = [item.bill for item in payment.items.all()]
        tasks.award_payment.delay(
            payment.pk,
            resident.pk,
            payment.paid_at.isoformat(),
            billing_selectors.paid_on_time(bills, timezone.localdate(payment.paid_at)),
            sum(1 for b in bills if b.is_prepaid),
        )
    card = alliance_selectors.scorecard_current(community=demo, period=default_demo_period())
    tasks.award_scorecard.delay(
        demo.pk, demo.company_id, card.period, f"{card.score:.4f}", card.revision
    )
    call_command("seed_demo", stdout=None)

    assert Entry.objects.count() == before
    assert list(Balance.objects.order_by("pk").values_list("amount", flat=True)) == balances


def test_the_redeemers_points_page_shows_each_way_of_earning_and_spending(demo, client, settings):
    redeemer = Redemption.objects.get().user
    client.force_login(redeemer)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"

    page = client.get(reverse("points-home") + "?page=1")

    mine = page.context["mine"]
    entries = Entry.objects.filter(holder__user=redeemer)
    assert mine.reputation == entries.filter(currency="reputation").aggregate(s=Sum("amount"))["s"]
    assert (
        mine.contribution == entries.filter(currency="contribution").aggregate(s=Sum("amount"))["s"]
    )
    html = page.content.decode()
    assert set(entries.values_list("source", flat=True)) >= {"payment_on_time", "redemption"}
    assert "Paid the property fee on time" in html
    assert "Redeemed: 小区临时停车一天" in html
