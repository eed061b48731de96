"""Consultations (协商共建): who creates, who votes (owners of record, one ballot per household,
changeable until closing), the frozen result with both majorities, and who sees the ballots."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from community import services
from community.models import Ballot, Consultation, ConsultationOption, Role
from community.tests.factories import (
    BuildingFactory,
    CommunityFactory,
    HouseholdFactory,
    member,
    resident,
)
from community.tests.life import build_estate, option

pytestmark = pytest.mark.django_db

LIST = reverse("api-consultations")


def vote_url(consultation) -> str:
    return reverse("api-consultation-vote", args=[consultation.pk])


def detail_url(consultation) -> str:
    return reverse("api-consultation", args=[consultation.pk])


def payload(estate, **overrides) -> dict:
    now = timezone.now()
    return {
        "community": estate.community.pk,
        "title": "增设充电桩",
        "description": "拟在北侧车棚增设 40 个充电口。",
        "opens_at": (now + timedelta(hours=1)).isoformat(),
        "closes_at": (now + timedelta(days=7)).isoformat(),
        "options": [{"label": "同意", "approves": True}, {"label": "反对"}, {"label": "弃权"}],
    } | overrides


# --- creating ------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["committee", "centre_admin"])
def test_the_committee_or_the_centre_opens_a_consultation_with_the_default_rule(as_user, who):
    estate = build_estate()
    response = as_user(getattr(estate, who)).post(LIST, payload(estate), format="json")

    assert response.status_code == 201, response.data
    body = response.data
    assert body["status"] == "draft"
    assert [o["label"] for o in body["options"]] == ["同意", "反对", "弃权"]
    assert body["rule"] == {
        "approval": {"share": "1/2", "inclusive": False},
        "participation": {"share": "2/3", "inclusive": True},
        "secret_ballot": True,
    }
    assert body["result"] is None
    consultation = Consultation.objects.get(pk=body["id"])
    assert consultation.options.get(approves=True).label == "同意"


def test_a_special_matter_rule_is_stored_as_exact_fractions(as_user):
    estate = build_estate()
    rule = {
        "approval": {"share": "3/4", "inclusive": True},
        "participation": {"share": "2/3", "inclusive": True},
        "secret_ballot": False,
    }
    response = as_user(estate.committee).post(LIST, payload(estate, rule=rule), format="json")
    assert response.status_code == 201, response.data
    assert response.data["rule"] == rule
    c = Consultation.objects.get()
    assert (c.approval_numerator, c.approval_denominator, c.approval_inclusive) == (3, 4, True)


@pytest.mark.parametrize("who", ["owner", "tenant", "staff"])
def test_residents_and_property_staff_may_not_open_one(as_user, who):
    estate = build_estate()
    response = as_user(getattr(estate, who)).post(LIST, payload(estate), format="json")
    assert response.status_code == 403
    assert not Consultation.objects.exists()


@pytest.mark.parametrize(
    "overrides",
    [
        {"options": [{"label": "同意"}]},  # one option
        {"options": [{"label": "同意"}, {"label": "同意"}]},  # the same label twice
        {"options": [{"label": "同意", "approves": True}, {"label": "反对", "approves": True}]},
        {"options": "同意,反对"},
        {"title": ""},
        {"closes_at": "yesterday"},
        {"closes_at": (timezone.now() - timedelta(days=2)).isoformat()},  # before it opens
        {"rule": {"approval": {"share": "1/3", "inclusive": True}}},  # less than half
        {"rule": {"approval": {"share": "1/2", "inclusive": True}}},  # two options could tie
        {"rule": {"approval": {"share": "abc", "inclusive": True}}},
        {"rule": {"participation": {"share": "3/2", "inclusive": True}}},
        {"rule": {"participation": {"share": "1/0", "inclusive": True}}},
        {"community": 999_999},
        {"community": 2**70},
    ],
)
def test_bad_input_is_400_and_creates_nothing(as_user, overrides):
    estate = build_estate()
    response = as_user(estate.committee).post(LIST, payload(estate, **overrides), format="json")
    assert response.status_code == 400, response.data
    assert not Consultation.objects.exists()


def test_a_consultation_that_would_be_closed_already_is_400(as_user):
    estate = build_estate()
    past = timezone.now() - timedelta(days=1)
    body = payload(
        estate,
        opens_at=(past - timedelta(days=7)).isoformat(),
        closes_at=past.isoformat(),
    )
    response = as_user(estate.committee).post(LIST, body, format="json")
    assert response.status_code == 400
    assert "closes_at" in response.data


def test_another_communitys_committee_cannot_open_one_here(as_user):
    estate = build_estate()
    theirs = member(Role.COMMITTEE_MEMBER, community=estate.other)
    response = as_user(theirs).post(LIST, payload(estate), format="json")
    assert response.status_code == 400  # our community is not one they can name
    assert "community" in response.data


# --- voting --------------------------------------------------------------------------------------


def test_an_owner_votes_once_for_the_household_and_a_change_replaces_the_vote(as_user):
    estate = build_estate()
    consultation = estate.consultation()
    agree, disagree = option(consultation, "同意"), option(consultation, "反对")

    first = as_user(estate.owner).post(vote_url(consultation), {"option": agree.pk})
    assert first.status_code == 201
    assert first.data["household"] == estate.flat.pk
    again = as_user(estate.owner).post(vote_url(consultation), {"option": disagree.pk})
    assert again.status_code == 200

    ballot = Ballot.objects.get(consultation=consultation)
    assert (ballot.household, ballot.option) == (estate.flat, disagree)
    assert ballot.changed_at is not None
    mine = as_user(estate.owner).get(detail_url(consultation)).data["my_ballots"]
    assert [(b["household"], b["option"]) for b in mine] == [(estate.flat.pk, disagree.pk)]


def test_a_second_owner_of_the_household_changes_the_same_ballot(as_user):
    estate = build_estate()
    co_owner = resident(estate.flat, user__username="co-owner")
    consultation = estate.consultation()

    as_user(estate.owner).post(vote_url(consultation), {"option": option(consultation, "同意").pk})
    response = as_user(co_owner).post(
        vote_url(consultation), {"option": option(consultation, "弃权").pk}
    )

    assert response.status_code == 200
    ballot = Ballot.objects.get(consultation=consultation)
    assert (ballot.option.label, ballot.cast_by) == ("弃权", co_owner)


@pytest.mark.parametrize("who", ["tenant", "family", "staff", "committee", "centre_admin"])
def test_only_owners_of_record_vote(as_user, who):
    estate = build_estate()
    consultation = estate.consultation()
    response = as_user(getattr(estate, who)).post(
        vote_url(consultation), {"option": option(consultation, "同意").pk}
    )
    assert response.status_code == 403
    assert not Ballot.objects.exists()


def test_a_former_owner_no_longer_votes(as_user):
    estate = build_estate()
    residency = estate.owner.residencies.get()
    services.residency_end(residency=residency, end_date=timezone.localdate() - timedelta(days=1))
    consultation = estate.consultation()
    response = as_user(estate.owner).post(
        vote_url(consultation), {"option": option(consultation, "同意").pk}
    )
    # They no longer see the community at all.
    assert response.status_code == 404
    assert not Ballot.objects.exists()


def test_voting_after_close_or_before_opening_is_409(as_user):
    estate = build_estate()
    now = timezone.now()
    closed = estate.consultation(opens_at=now - timedelta(days=8), closes_at=now - timedelta(1))
    draft = estate.consultation(opens_at=now + timedelta(days=1), title="下周开始")
    for consultation in (closed, draft):
        response = as_user(estate.owner).post(
            vote_url(consultation), {"option": option(consultation, "同意").pk}
        )
        assert response.status_code == 409
    assert not Ballot.objects.exists()


def test_a_changed_vote_after_close_is_409_and_the_ballot_stays(as_user):
    estate = build_estate()
    now = timezone.now()
    consultation = estate.consultation(opens_at=now - timedelta(days=8), closes_at=now)
    services.consultation_vote(
        consultation=consultation,
        user=estate.owner,
        option=option(consultation, "同意"),
        at=now - timedelta(days=2),
    )
    response = as_user(estate.owner).post(
        vote_url(consultation), {"option": option(consultation, "反对").pk}
    )
    assert response.status_code == 409
    assert Ballot.objects.get().option.label == "同意"


@pytest.mark.parametrize(
    "body",
    [{}, {"option": "yes"}, {"option": 2**70}, {"option": 999_999}, {"option": None}],
)
def test_a_bad_vote_is_400(as_user, body):
    estate = build_estate()
    consultation = estate.consultation()
    response = as_user(estate.owner).post(vote_url(consultation), body, format="json")
    assert response.status_code == 400
    assert not Ballot.objects.exists()


def test_an_option_of_another_consultation_is_400(as_user):
    estate = build_estate()
    consultation = estate.consultation()
    other = estate.consultation(title="另一件事")
    response = as_user(estate.owner).post(
        vote_url(consultation), {"option": option(other, "同意").pk}
    )
    assert response.status_code == 400
    assert not Ballot.objects.exists()


def test_an_owner_of_two_flats_names_the_household_for_each_vote(as_user):
    estate = build_estate()
    second = HouseholdFactory(building=estate.flat.building, unit="201")
    resident(second, user=estate.owner)
    consultation = estate.consultation()
    agree = option(consultation, "同意")
    client = as_user(estate.owner)

    assert client.post(vote_url(consultation), {"option": agree.pk}).status_code == 400
    not_mine = client.post(
        vote_url(consultation), {"option": agree.pk, "household": estate.rented.pk}
    )
    assert not_mine.status_code == 400
    assert not Ballot.objects.exists()

    for household in (estate.flat, second):
        response = client.post(
            vote_url(consultation), {"option": agree.pk, "household": household.pk}
        )
        assert response.status_code == 201
    assert Ballot.objects.filter(consultation=consultation).count() == 2


# --- the result ----------------------------------------------------------------------------------

AREAS = {
    "A": "100.00",
    "B": "80.50",
    "C": "120.25",
    "D": "95.00",
    "E": "60.00",
    "F": "110.75",
    "G": "70.00",
    "H": "88.00",
    "I": "75.50",
}


def example_vote(plan: list[tuple[str, str]]):
    """The example estate of test_tally (9 flats, 800.00 m², nothing else in it), a consultation
    that closed a minute ago, and `plan`'s (flat, option) votes cast an hour apart in order."""
    building = BuildingFactory(community=CommunityFactory(name="示例小区"))
    owners, flats = {}, {}
    for name, area in AREAS.items():
        flats[name] = HouseholdFactory(building=building, unit=name, area=Decimal(area))
        owners[name] = resident(flats[name], user__username=f"owner-{name}")
    now = timezone.now()
    consultation = services.consultation_create(
        creator=member(Role.COMMITTEE_MEMBER, community=building.community),
        community=building.community,
        title="增设充电桩",
        description="…",
        opens_at=now - timedelta(days=7),
        closes_at=now - timedelta(minutes=1),
        options=[{"label": "同意", "approves": True}, {"label": "反对"}, {"label": "弃权"}],
        at=now - timedelta(days=8),
    )
    for hours, (name, label) in enumerate(plan):
        services.consultation_vote(
            consultation=consultation,
            user=owners[name],
            option=option(consultation, label),
            at=now - timedelta(days=6) + timedelta(hours=hours),
        )
    return consultation, owners, flats


def test_the_worked_example_end_to_end(as_user):
    """The example of test_tally, with real households and ballots: 9 flats, 800.00 m²; A, C, F
    agree, B and D disagree, H abstains, then changes to agree before closing."""
    first = [("A", "同意"), ("B", "反对"), ("C", "同意"), ("D", "反对"), ("F", "同意")]
    consultation, _owners, flats = example_vote([*first, ("H", "弃权"), ("H", "同意")])

    # A tenant of flat E (who may not vote) sees the result too.
    tenant = resident(flats["E"], relation="tenant", user__username="tenant-E")
    response = as_user(tenant).get(detail_url(consultation))

    assert response.status_code == 200
    body = response.data
    assert body["status"] == "closed"
    result = body["result"]
    assert result["total"] == {"heads": 9, "area": "800.00"}
    assert result["participating"] == {"heads": 6, "area": "594.50"}
    assert result["turnout"] == {"heads": "0.6667", "area": "0.7431"}
    assert result["participation_met_by"] == {"heads": True, "area": True}  # 6/9 is 2/3
    by_label = {row["label"]: row for row in result["options"]}
    assert by_label["同意"]["heads"] == 4
    assert by_label["同意"]["area"] == "419.00"
    assert by_label["同意"]["share_of_participating"] == {"heads": "0.6667", "area": "0.7048"}
    assert by_label["同意"]["share_of_total"] == {"heads": "0.4444", "area": "0.5238"}
    assert by_label["同意"]["reached"] is True
    assert (by_label["反对"]["heads"], by_label["反对"]["area"]) == (2, "175.50")
    assert (by_label["弃权"]["heads"], by_label["弃权"]["area"]) == (0, "0.00")
    assert result["passed"] is True
    assert result["adopted_option"] == option(consultation, "同意").pk
    # H's first choice was replaced, not added: six ballots for six households.
    assert Ballot.objects.filter(consultation=consultation).count() == 6


def test_the_worked_example_before_h_changed_its_vote_does_not_pass(as_user):
    """The same estate, but H keeps its abstention: agree has 3 of 6 households, exactly half,
    which is not more than half (by area it has 331.00 of 594.50)."""
    consultation, owners, _flats = example_vote(
        [("A", "同意"), ("B", "反对"), ("C", "同意"), ("D", "反对"), ("F", "同意"), ("H", "弃权")]
    )

    result = as_user(owners["E"]).get(detail_url(consultation)).data["result"]

    agree = next(row for row in result["options"] if row["label"] == "同意")
    assert agree["share_of_participating"] == {"heads": "0.5000", "area": "0.5568"}
    assert agree["share_of_total"]["area"] == "0.4138"
    assert agree["reached"] is False
    assert result["participation_met"] is True
    assert (result["passed"], result["adopted_option"]) == (False, None)


def test_the_result_is_frozen_at_the_first_reading_after_closing(as_user):
    estate = build_estate(area=Decimal("100.00"))  # flat and rented: 200.00 m², 2 households
    now = timezone.now()
    consultation = estate.consultation(opens_at=now - timedelta(days=8), closes_at=now)
    services.consultation_vote(
        consultation=consultation,
        user=estate.owner,
        option=option(consultation, "同意"),
        at=now - timedelta(days=1),
    )
    first = as_user(estate.tenant).get(detail_url(consultation)).data["result"]
    assert first["total"] == {"heads": 2, "area": "200.00"}
    assert first["participating"] == {"heads": 1, "area": "100.00"}
    assert first["passed"] is False  # 1 of 2 households is less than two thirds

    # A flat added to the register later does not move the published result.
    HouseholdFactory(building=estate.flat.building, unit="301", area=Decimal("100.00"))
    again = as_user(estate.owner).get(detail_url(consultation)).data["result"]
    assert again == first
    assert Consultation.objects.get().tallied_at is not None


def test_a_passed_vote_of_the_whole_estate(as_user):
    estate = build_estate(area=Decimal("100.00"))
    now = timezone.now()
    consultation = estate.consultation(opens_at=now - timedelta(days=8), closes_at=now)
    # The tenant's flat has an owner of record too, who votes against.
    landlord = resident(estate.rented, user__username="landlord")
    for user, label in ((estate.owner, "同意"), (landlord, "同意")):
        services.consultation_vote(
            consultation=consultation,
            user=user,
            option=option(consultation, label),
            at=now - timedelta(days=1),
        )
    result = as_user(estate.family).get(detail_url(consultation)).data["result"]
    assert result["passed"] is True
    assert result["adopted_option"] == option(consultation, "同意").pk
    assert result["turnout"] == {"heads": "1.0000", "area": "1.0000"}


def test_no_result_while_open(as_user):
    estate = build_estate()
    consultation = estate.consultation()
    services.consultation_vote(
        consultation=consultation, user=estate.owner, option=option(consultation, "同意")
    )
    body = as_user(estate.committee).get(detail_url(consultation)).data
    assert (body["status"], body["result"]) == ("open", None)
    assert ConsultationOption.objects.filter(head_votes__isnull=False).count() == 0


# --- who sees the ballots ------------------------------------------------------------------------


def closed_with_a_vote(estate, *, secret: bool) -> Consultation:
    now = timezone.now()
    consultation = estate.consultation(
        opens_at=now - timedelta(days=8), closes_at=now, secret_ballot=secret
    )
    services.consultation_vote(
        consultation=consultation,
        user=estate.owner,
        option=option(consultation, "反对"),
        at=now - timedelta(days=1),
    )
    return consultation


def test_the_committee_sees_who_voted_how_when_the_ballot_is_not_secret(as_user):
    estate = build_estate()
    consultation = closed_with_a_vote(estate, secret=False)
    url = reverse("api-consultation-ballots", args=[consultation.pk])

    response = as_user(estate.committee).get(url)

    assert response.status_code == 200
    [ballot] = response.data["results"]
    assert (ballot["household"], ballot["option_label"]) == (estate.flat.pk, "反对")
    assert ballot["cast_by"] == estate.owner.pk


@pytest.mark.parametrize("who", ["owner", "tenant", "centre_admin", "staff"])
def test_nobody_else_sees_the_ballots(as_user, who):
    estate = build_estate()
    consultation = closed_with_a_vote(estate, secret=False)
    url = reverse("api-consultation-ballots", args=[consultation.pk])
    assert as_user(getattr(estate, who)).get(url).status_code == 403


def test_a_secret_ballot_is_secret_from_the_committee_too(as_user):
    estate = build_estate()
    consultation = closed_with_a_vote(estate, secret=True)
    url = reverse("api-consultation-ballots", args=[consultation.pk])
    assert as_user(estate.committee).get(url).status_code == 403


def test_the_committee_does_not_see_ballots_while_the_vote_is_open(as_user):
    estate = build_estate()
    consultation = estate.consultation(secret_ballot=False)
    url = reverse("api-consultation-ballots", args=[consultation.pk])
    assert as_user(estate.committee).get(url).status_code == 403


# --- scope and lists -----------------------------------------------------------------------------


def test_a_resident_of_another_community_sees_none_of_it(as_user):
    estate = build_estate()
    consultation = closed_with_a_vote(estate, secret=False)
    client = as_user(estate.outsider)

    assert client.get(LIST).data["count"] == 0
    assert client.get(detail_url(consultation)).status_code == 404
    agree = option(consultation, "同意")
    assert client.post(vote_url(consultation), {"option": agree.pk}).status_code == 404
    ballots = reverse("api-consultation-ballots", args=[consultation.pk])
    assert client.get(ballots).status_code == 404
    assert Ballot.objects.count() == 1


def test_the_list_shows_status_and_can_vote_per_consultation(as_user):
    estate = build_estate()
    now = timezone.now()
    estate.consultation(title="open")
    estate.consultation(title="draft", opens_at=now + timedelta(days=1))
    estate.consultation(title="closed", opens_at=now - timedelta(days=9), closes_at=now)

    owner = as_user(estate.owner).get(LIST).data
    rows = {row["title"]: (row["status"], row["can_vote"]) for row in owner["results"]}
    assert rows == {
        "open": ("open", True),
        "draft": ("draft", False),
        "closed": ("closed", False),
    }
    tenant = as_user(estate.tenant).get(LIST, {"status": "open"}).data
    assert [(r["title"], r["can_vote"]) for r in tenant["results"]] == [("open", False)]
    assert as_user(estate.owner).get(LIST, {"status": "sideways"}).status_code == 400


def test_the_list_costs_the_same_queries_for_many_consultations(
    as_user, django_assert_max_num_queries
):
    estate = build_estate()
    now = timezone.now()
    for number in range(12):
        consultation = estate.consultation(
            title=f"事项{number}", opens_at=now - timedelta(days=9), closes_at=now
        )
        if number % 2:
            services.consultation_vote(
                consultation=consultation,
                user=estate.owner,
                option=option(consultation, "同意"),
                at=now - timedelta(days=1),
            )
    client = as_user(estate.owner)
    first = client.get(LIST)  # tallies the twelve that closed: once
    assert first.status_code == 200
    assert Consultation.objects.filter(tallied_at__isnull=True).count() == 0

    with django_assert_max_num_queries(6):
        response = client.get(LIST)
    assert response.data["count"] == 12
    assert all(row["result"] is not None for row in response.data["results"])
