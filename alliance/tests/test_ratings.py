"""Service ratings: only a paying household's residents rate a month, once; staff read them (with
the comments, without who gave them); bad input is 400 and changes nothing."""

import pytest

from alliance import events, services
from alliance.models import ServiceRating
from alliance.tests.factories import AUGUST, FIVES, Estate, august
from billing import services as billing_services
from billing.models import Bill
from billing.tests.factories import BillFactory
from community.models import Household, Residency
from community.periods import Period
from community.tests.factories import ResidencyFactory, UserFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/service-ratings/"


def body(estate, index=0, **changes):
    return {
        "household": estate.households[index].pk,
        "period": "2019-08",
        **FIVES,
        "comment": "楼道很干净",
        **changes,
    }


def test_a_paying_household_rates_once_and_the_event_goes_out_after_commit(
    as_user, django_capture_on_commit_callbacks
):
    estate = Estate()
    received = []
    events.service_rated.connect(lambda **kw: received.append(kw), weak=False, dispatch_uid="t")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = as_user(estate.residents[0]).post(
                URL, body(estate, greening=4, repair=3), format="json"
            )
    finally:
        events.service_rated.disconnect(dispatch_uid="t")

    assert response.status_code == 201, response.json()
    rating = ServiceRating.objects.get()
    assert response.json() == {
        "id": rating.pk,
        "household": estate.households[0].pk,
        "community": estate.community.pk,
        "period": "2019-08",
        "cleaning": 5,
        "greening": 4,
        "security": 5,
        "reporting": 5,
        "repair": 3,
        "comment": "楼道很干净",
        "created_at": response.json()["created_at"],
    }
    assert rating.rated_by == estate.residents[0]
    assert received == [
        {
            "signal": events.service_rated,
            "sender": ServiceRating,
            "rating_id": rating.pk,
            "household_id": estate.households[0].pk,
            "community_id": estate.community.pk,
            "user_id": estate.residents[0].pk,
            "period": "2019-08",
            "stars": {"cleaning": 5, "greening": 4, "security": 5, "reporting": 5, "repair": 3},
        }
    ]


def test_an_unpaid_household_cannot_rate_and_is_told_why(as_user):
    estate = Estate()
    response = as_user(estate.residents[2]).post(URL, body(estate, index=2), format="json")
    assert response.status_code == 403
    assert "2019-08" in response.json()["detail"]
    assert "not paid" in response.json()["detail"]
    assert not ServiceRating.objects.exists()


def test_no_bill_for_the_month_counts_as_not_paid(as_user):
    estate = Estate()
    response = as_user(estate.residents[0]).post(URL, body(estate, period="2019-07"), format="json")
    assert response.status_code == 403
    assert not ServiceRating.objects.exists()


def test_a_partly_paid_bill_is_not_paid_but_a_waived_one_is(as_user):
    estate = Estate()
    bill = Bill.objects.get(household=estate.households[2], period="2019-08")
    Bill.objects.filter(pk=bill.pk).update(paid_amount="10.00", status="partially_paid")
    client = as_user(estate.residents[2])
    assert client.post(URL, body(estate, index=2), format="json").status_code == 403

    september = BillFactory(household=estate.households[2], period="2019-09")
    billing_services.bill_waive(bill=september)
    response = client.post(URL, body(estate, index=2, period="2019-09"), format="json")
    assert response.status_code == 201
    assert ServiceRating.objects.get().period == "2019-09"


def test_rating_twice_for_the_same_household_and_month_is_409(as_user):
    estate = Estate()
    housemate = UserFactory()
    ResidencyFactory(user=housemate, household=estate.households[0], relation="family")
    first = as_user(estate.residents[0]).post(URL, body(estate), format="json")
    again = as_user(estate.residents[0]).post(URL, body(estate, cleaning=1), format="json")
    # Anyone of the household counts for it: the housemate's rating is the same household's.
    housemates = as_user(housemate).post(URL, body(estate, cleaning=1), format="json")
    assert (first.status_code, again.status_code, housemates.status_code) == (201, 409, 409)
    assert ServiceRating.objects.get().cleaning == 5


def test_the_database_refuses_a_second_rating_even_past_the_service():
    from django.db import IntegrityError, transaction

    estate = Estate()
    rating = estate.rate()
    with pytest.raises(IntegrityError), transaction.atomic():
        ServiceRating.objects.create(
            household=rating.household,
            community=rating.community,
            period=rating.period,
            rated_by=rating.rated_by,
            created_at=rating.created_at,
            **FIVES,
        )
    assert ServiceRating.objects.count() == 1


def test_a_resident_of_another_community_gets_404(as_user):
    estate = Estate()
    response = as_user(estate.outsider).post(URL, body(estate), format="json")
    assert response.status_code == 404
    assert (
        as_user(estate.outsider)
        .post(URL, body(estate, household=999999), format="json")
        .status_code
        == 404
    )
    assert not ServiceRating.objects.exists()


def test_someone_who_sees_the_household_but_does_not_live_there_gets_403(as_user):
    estate = Estate()
    for user in (estate.centre_admin, estate.staff, estate.committee):
        response = as_user(user).post(URL, body(estate), format="json")
        assert response.status_code == 403, user
        assert "resident" in response.json()["detail"]
    assert not ServiceRating.objects.exists()


def test_a_former_resident_no_longer_rates():
    estate = Estate()
    Residency.objects.filter(user=estate.residents[0]).update(end_date=august(1).date())
    with pytest.raises(Household.DoesNotExist):
        estate.rate()
    assert not ServiceRating.objects.exists()


@pytest.mark.parametrize(
    "changes",
    [
        {"cleaning": 0},
        {"greening": 6},
        {"security": "five"},
        {"reporting": None},
        {"repair": True},
        {"repair": 4.5},
        {"period": "2019-8"},
        {"period": "2019-13"},
        {"period": ""},
        {"household": "abc"},
        {"household": 2**64},
        {"comment": "长" * 501},
    ],
)
def test_bad_input_is_400_and_changes_nothing(as_user, changes):
    estate = Estate()
    response = as_user(estate.residents[0]).post(URL, body(estate, **changes), format="json")
    assert response.status_code == 400, response.json()
    assert set(response.json()) & set(changes)
    assert not ServiceRating.objects.exists()


def test_missing_stars_are_400(as_user):
    estate = Estate()
    data = body(estate)
    del data["security"]
    response = as_user(estate.residents[0]).post(URL, data, format="json")
    assert response.status_code == 400
    assert "security" in response.json()
    assert not ServiceRating.objects.exists()


def test_a_month_that_has_not_begun_cannot_be_rated(as_user):
    estate = Estate()
    future = Period.current().next()
    response = as_user(estate.residents[0]).post(
        URL, body(estate, period=str(future)), format="json"
    )
    assert response.status_code == 400
    assert "period" in response.json()
    assert not ServiceRating.objects.exists()


def test_a_month_whose_scorecard_is_final_takes_no_more_ratings(as_user):
    estate = Estate()
    estate.rate(0)
    estate.pay_out()
    services.scorecard_finalize(community=estate.community, period=AUGUST)
    response = as_user(estate.residents[1]).post(URL, body(estate, index=1), format="json")
    assert response.status_code == 409
    assert "final" in response.json()["detail"]
    assert ServiceRating.objects.count() == 1


def test_anonymous_is_401(api_client):
    estate = Estate()
    assert api_client.post(URL, body(estate), format="json").status_code == 401
    assert api_client.get(URL).status_code == 401


# --- reading ratings --------------------------------------------------------------------------


def test_staff_read_every_rating_of_their_estates_without_who_gave_it(as_user):
    estate = Estate()
    estate.rate(0, comment="保安很负责")
    estate.rate(1, stars={**FIVES, "greening": 2}, comment="草坪没人修剪")
    response = as_user(estate.staff).get(URL, {"community": estate.community.pk})
    assert response.status_code == 200
    results = response.json()["results"]
    assert response.json()["count"] == 2
    assert {r["comment"] for r in results} == {"保安很负责", "草坪没人修剪"}
    assert {r["household"] for r in results} == {None}
    # Another company's staff, and a resident of another estate, see none of them.
    assert as_user(estate.other_staff).get(URL).json()["count"] == 0
    assert as_user(estate.outsider).get(URL).json()["count"] == 0


def test_a_resident_reads_their_own_households_ratings_only(as_user):
    estate = Estate()
    estate.rate(0)
    estate.rate(1)
    results = as_user(estate.residents[0]).get(URL).json()["results"]
    assert [r["household"] for r in results] == [estate.households[0].pk]


def test_the_rating_list_filters_and_refuses_bad_filters(as_user):
    estate = Estate()
    estate.rate(0)
    client = as_user(estate.centre_admin)
    assert client.get(URL, {"period": "2019-08"}).json()["count"] == 1
    assert client.get(URL, {"period": "2019-09"}).json()["count"] == 0
    assert client.get(URL, {"period": "August"}).status_code == 400
    assert client.get(URL, {"community": "x"}).status_code == 400


def test_the_summary_gives_each_dimension_for_staff(as_user):
    estate = Estate()
    estate.rate(0, stars={**FIVES, "greening": 3})
    estate.rate(1, stars={**FIVES, "greening": 4, "repair": 1})
    query = {"community": estate.community.pk, "period": "2019-08"}
    response = as_user(estate.staff).get(URL + "summary/", query)
    assert response.status_code == 200
    data = response.json()
    assert (data["count"], data["period"]) == (2, "2019-08")
    by_dimension = {d["dimension"]: d for d in data["dimensions"]}
    assert by_dimension["greening"]["average"] == "3.50"
    assert by_dimension["greening"]["distribution"] == {"5": 0, "4": 1, "3": 1, "2": 0, "1": 0}
    assert by_dimension["repair"]["average"] == "3.00"
    assert by_dimension["cleaning"]["average"] == "5.00"
    # 50 stars possible; given 5+3+5+5+5 + 5+4+5+5+1 = 43 in 10 answers: (4.3 - 1) / 4 = 0.825
    assert data["resident_satisfaction"] == "0.8250"


def test_the_summary_is_for_staff_and_admins_only(as_user):
    estate = Estate()
    query = {"community": estate.community.pk, "period": "2019-08"}
    assert as_user(estate.residents[0]).get(URL + "summary/", query).status_code == 403
    assert as_user(estate.committee).get(URL + "summary/", query).status_code == 403
    assert as_user(estate.other_staff).get(URL + "summary/", query).status_code == 404
    assert as_user(estate.centre_admin).get(URL + "summary/", query).status_code == 200
    assert as_user(estate.staff).get(URL + "summary/", {"community": 1}).status_code == 400


@pytest.mark.summary_bypassed  # the third household's bill marked paid in SQL
def test_the_rating_list_has_a_bounded_number_of_queries(as_user, django_assert_max_num_queries):
    estate = Estate(households=3)
    Bill.objects.filter(household=estate.households[2]).update(paid_amount="122.40", status="paid")
    for index in range(3):
        estate.rate(index)
    client = as_user(estate.staff)
    with django_assert_max_num_queries(6):
        response = client.get(URL)
    assert response.json()["count"] == 3
