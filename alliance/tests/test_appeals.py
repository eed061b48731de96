"""Appeals against a finalized scorecard: the company's manager files, the alliance's mediator
decides, the decision and any revision are public (alliance/appeals.py, appeal_views.py)."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from alliance import appeals, services, trust
from alliance.models import Inspection, Scorecard, ScorecardAppeal
from alliance.tests.factories import AUGUST, Estate
from alliance.tests.test_races import run_together
from billing import selectors as billing_selectors
from billing.models import Payout
from community.models import AllianceOrganisation, Notice, Role
from community.tests.factories import AllianceOrganisationFactory, member
from config.api import Conflict

pytestmark = pytest.mark.django_db

GROUNDS = "The spot check on 21 August counted staff on leave as absent."


class Appealable:
    """The estate's August: two ratings, two spot checks from two organisations, paid out and
    finalized; the company's manager, and a mediator of the centre's alliance."""

    def __init__(self, finalize: bool = True):
        self.estate = Estate()
        self.estate.rate(0)
        self.estate.rate(
            1,
            stars={
                **dict.fromkeys(("cleaning", "greening", "security"), 4),
                "reporting": 3,
                "repair": 3,
            },
        )
        self.estate.inspect(on_duty=6, rostered=12, grid=50, major=50)
        self.community = self.estate.community
        self.manager = member(Role.PROPERTY_STAFF, company=self.community.company, is_manager=True)
        self.mediation = AllianceOrganisationFactory(
            centre=self.community.centre, kind=AllianceOrganisation.Kind.MEDIATOR, name="M"
        )
        self.mediator = member(Role.ALLIANCE_INSPECTOR, organisation=self.mediation)
        if finalize:
            self.estate.pay_out()
            self.card, _ = services.scorecard_finalize(community=self.community, period=AUGUST)
        else:
            self.card = services.scorecard_refresh(community=self.community, period=AUGUST)

    @property
    def url(self) -> str:
        return reverse("alliance-appeal", args=[self.card.pk])

    @property
    def decide_url(self) -> str:
        return reverse("alliance-appeal-decide", args=[self.card.pk])


def _file(client, world, user=None, grounds=GROUNDS):
    client.force_login(user or world.manager)
    return client.post(world.url, {"grounds": grounds})


def _decide(client, world, appeal, user=None, **data):
    client.force_login(user or world.mediator)
    body = {"appeal": appeal.pk, "outcome": "rejected", "decision": "The check stands.", **data}
    return client.post(world.decide_url, body)


def test_the_manager_files_an_appeal_and_the_mediator_and_centre_hear_of_it(client):
    world = Appealable()
    response = _file(client, world)
    assert response.status_code == 302
    appeal = ScorecardAppeal.objects.get()
    assert (appeal.scorecard, appeal.filed_by, appeal.grounds, appeal.status) == (
        world.card,
        world.manager,
        GROUNDS,
        "filed",
    )
    told = set(Notice.objects.filter(link=world.url).values_list("user_id", flat=True))
    assert told == {world.mediator.pk, world.estate.centre_admin.pk}


def test_empty_grounds_are_400_and_file_nothing(client):
    world = Appealable()
    response = _file(client, world, grounds="   ")
    assert response.status_code == 400
    assert ScorecardAppeal.objects.count() == 0


def test_a_draft_cannot_be_appealed_409(client):
    world = Appealable(finalize=False)
    assert _file(client, world).status_code == 409
    assert ScorecardAppeal.objects.count() == 0


def test_one_open_appeal_per_month_409(client):
    world = Appealable()
    assert _file(client, world).status_code == 302
    assert _file(client, world, grounds="Again.").status_code == 409
    assert ScorecardAppeal.objects.count() == 1


def test_the_database_allows_one_open_appeal_per_scorecard():
    world = Appealable()
    ScorecardAppeal.objects.create(scorecard=world.card, filed_by=world.manager, grounds="a")
    with pytest.raises(IntegrityError), transaction.atomic():
        ScorecardAppeal.objects.create(scorecard=world.card, filed_by=world.manager, grounds="b")


def test_only_the_companys_manager_files_and_outsiders_get_404(client):
    world = Appealable()
    estate = world.estate
    for user in (estate.staff, estate.residents[0], estate.committee, world.mediator):
        assert _file(client, world, user=user).status_code == 403, user
    for user in (estate.outsider, estate.other_staff, estate.outside_inspector):
        assert _file(client, world, user=user).status_code == 404, user
    assert ScorecardAppeal.objects.count() == 0


def test_the_mediator_rejects_and_the_decision_is_public(client):
    world = Appealable()
    _file(client, world)
    appeal = ScorecardAppeal.objects.get()
    response = _decide(client, world, appeal, decision="The roster was checked: no leave.")
    assert response.status_code == 302
    appeal.refresh_from_db()
    assert (appeal.status, appeal.decided_by, appeal.organisation, appeal.revision) == (
        "rejected",
        world.mediator,
        world.mediation,
        None,
    )
    assert list(trust.scorecard_appeals(scorecard=world.card)) == [appeal]
    # A resident of the estate reads the decision on the scorecard page.
    client.force_login(world.estate.residents[0])
    page = client.get(
        reverse("alliance-scorecard", args=[world.community.pk]), {"period": "2019-08"}
    ).content.decode()
    assert 'data-appeal-status="rejected"' in page
    assert "The roster was checked: no leave." in page
    assert GROUNDS in page
    assert world.manager.username not in page
    # The company's manager may appeal the month again now that nothing is open.
    assert _file(client, world, grounds="New facts.").status_code == 302


def test_upheld_with_a_revision_records_new_figures_and_moves_no_money(client):
    world = Appealable()
    first_score = world.card.score
    release = Payout.objects.get(kind=Payout.Kind.HOLDBACK_RELEASE)
    escrow = billing_selectors.escrow_summary(community=world.community)
    _file(client, world)
    appeal = ScorecardAppeal.objects.get()
    # The centre strikes out the disputed spot check; the mediator upholds and revises.
    Inspection.objects.filter(community=world.community).delete()
    response = _decide(
        client, world, appeal, outcome="upheld", decision="The check was wrong.", revise="on"
    )
    assert response.status_code == 302
    appeal.refresh_from_db()
    revision = appeal.revision
    assert (appeal.status, revision.revision, revision.is_current) == ("upheld", 2, True)
    assert revision.reason == "Appeal upheld: The check was wrong."
    # Without the check only satisfaction remains: 25 + 18 stars over 10 answers = 4.3 → 0.825.
    assert revision.attendance_rate is None
    assert revision.resident_satisfaction == Decimal("0.8250")
    assert revision.score == Decimal("0.8250")
    assert first_score != revision.score
    # No money moved: one release, at the first score, and the escrow as it was.
    assert list(Payout.objects.filter(kind=Payout.Kind.HOLDBACK_RELEASE)) == [release]
    assert billing_selectors.escrow_summary(community=world.community) == escrow
    assert (revision.released_to_company, revision.holdback_release) == (None, None)
    # The revision shows on the appeal page, for anyone in the estate.
    client.force_login(world.estate.committee)
    page = client.get(world.url).content.decode()
    assert "data-appeal-revision" in page
    assert "revision 2, score 0.8250" in page


def test_deciding_rules(client):
    world = Appealable()
    _file(client, world)
    appeal = ScorecardAppeal.objects.get()
    estate = world.estate
    other_mediator = member(
        Role.ALLIANCE_INSPECTOR,
        organisation=AllianceOrganisationFactory(kind=AllianceOrganisation.Kind.MEDIATOR),
    )
    for user in (estate.inspector, estate.centre_admin, world.manager, estate.residents[0]):
        assert _decide(client, world, appeal, user=user).status_code == 403, user
    assert _decide(client, world, appeal, user=other_mediator).status_code == 404
    assert _decide(client, world, appeal, decision=" ").status_code == 400
    assert _decide(client, world, appeal, revise="on").status_code == 400  # rejected + revise
    appeal.refresh_from_db()
    assert appeal.status == "filed"
    assert _decide(client, world, appeal).status_code == 302
    assert _decide(client, world, appeal).status_code == 409
    assert Scorecard.objects.filter(community=world.community).count() == 1
    client.force_login(world.mediator)
    assert client.get(world.decide_url).status_code == 405


def test_the_mediator_sees_the_decision_form_and_others_do_not(client):
    world = Appealable()
    _file(client, world)
    client.force_login(world.mediator)
    assert "data-decide-form" in client.get(world.url).content.decode()
    client.force_login(world.estate.inspector)
    page = client.get(world.url).content.decode()
    assert "data-decide-form" not in page
    assert GROUNDS in page


# --- races (PostgreSQL, real threads) ---------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_appeals_filed_at_once_open_one():
    world = Appealable()

    def file(i):
        return appeals.appeal_file(
            user=world.manager, scorecard_id=world.card.pk, grounds=f"{GROUNDS} {i}"
        )

    outcomes = run_together(4, file)
    filed = [o for o in outcomes if isinstance(o, ScorecardAppeal)]
    refused = [o for o in outcomes if isinstance(o, Conflict)]
    assert (len(filed), len(refused)) == (1, 3), outcomes
    assert ScorecardAppeal.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_mediators_deciding_at_once_decide_once_and_revise_once():
    world = Appealable()
    second = member(Role.ALLIANCE_INSPECTOR, organisation=world.mediation)
    appeal = appeals.appeal_file(user=world.manager, scorecard_id=world.card.pk, grounds=GROUNDS)

    def decide(i):
        return appeals.appeal_decide(
            user=[world.mediator, second][i],
            scorecard_id=world.card.pk,
            appeal_id=appeal.pk,
            upheld=True,
            decision=f"Upheld {i}.",
            revise=True,
        )

    outcomes = run_together(2, decide)
    decided = [o for o in outcomes if isinstance(o, ScorecardAppeal)]
    refused = [o for o in outcomes if isinstance(o, Conflict)]
    assert (len(decided), len(refused)) == (1, 1), outcomes
    assert Scorecard.objects.filter(community=world.community).count() == 2
