"""Spot checks: only the inspectors of the community's centre's alliance record them."""

import pytest
from django.core.exceptions import ValidationError

from alliance import services
from alliance.models import Inspection
from alliance.tests.factories import AUGUST, Estate
from community.models import Role
from community.periods import Period
from community.tests.factories import AllianceOrganisationFactory, RoleMembershipFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/inspections/"


def body(estate, **changes):
    return {
        "community": estate.community.pk,
        "period": "2019-08",
        "staff_on_duty": 11,
        "staff_rostered": 12,
        "grid_cooperation": 95,
        "major_matter_cooperation": 90,
        "note": "门岗1人病假",
        **changes,
    }


def test_an_inspector_of_the_centres_alliance_records_a_spot_check(as_user):
    estate = Estate()
    response = as_user(estate.inspector).post(URL, body(estate), format="json")
    assert response.status_code == 201, response.json()
    inspection = Inspection.objects.get()
    data = response.json()
    assert data["id"] == inspection.pk
    assert data["attendance_rate"] == "0.9167"  # 11 / 12
    assert (data["community"], data["period"], data["organisation"]) == (
        estate.community.pk,
        "2019-08",
        estate.organisation.pk,
    )
    assert (inspection.inspector, inspection.note) == (estate.inspector, "门岗1人病假")


def test_an_inspector_of_an_organisation_outside_the_centre_gets_404(as_user):
    estate = Estate()
    response = as_user(estate.outside_inspector).post(URL, body(estate), format="json")
    assert response.status_code == 404
    assert not Inspection.objects.exists()


def test_people_who_see_the_community_but_are_no_inspectors_get_403(as_user):
    estate = Estate()
    for user in (estate.residents[0], estate.staff, estate.centre_admin, estate.committee):
        response = as_user(user).post(URL, body(estate), format="json")
        assert response.status_code == 403, user
        assert "inspectors" in response.json()["detail"]
    assert not Inspection.objects.exists()


def test_an_inspector_who_also_sees_the_community_otherwise_still_gets_403(as_user):
    estate = Estate()
    # An inspector of another centre who also happens to live in the estate.
    RoleMembershipFactory(
        user=estate.residents[0],
        role=Role.ALLIANCE_INSPECTOR,
        organisation=AllianceOrganisationFactory(),
    )
    response = as_user(estate.residents[0]).post(URL, body(estate), format="json")
    assert response.status_code == 403
    assert not Inspection.objects.exists()


@pytest.mark.parametrize(
    "changes",
    [
        {"staff_on_duty": 13},  # more than rostered
        {"staff_on_duty": -1},
        {"staff_rostered": 0},
        {"staff_rostered": -3},
        {"grid_cooperation": 101},
        {"grid_cooperation": -1},
        {"major_matter_cooperation": 250},
        {"major_matter_cooperation": "a lot"},
        {"period": "2019/08"},
        {"period": "2019-00"},
        {"community": "翰林苑"},
        {"community": 2**64},
        {"note": "x" * 1001},
    ],
)
def test_bad_input_is_400_and_changes_nothing(as_user, changes):
    estate = Estate()
    response = as_user(estate.inspector).post(URL, body(estate, **changes), format="json")
    assert response.status_code == 400, response.json()
    assert set(response.json()) & set(changes)
    assert not Inspection.objects.exists()


def test_the_service_checks_the_figures_too():
    estate = Estate()
    with pytest.raises(ValidationError) as caught:
        estate.inspect(on_duty=5, rostered=4, grid=101)
    assert set(caught.value.message_dict) == {"staff_on_duty", "grid_cooperation"}
    assert not Inspection.objects.exists()


def test_a_month_not_begun_is_400_and_a_final_month_409(as_user):
    estate = Estate()
    client = as_user(estate.inspector)
    future = client.post(URL, body(estate, period=str(Period.current().next())), format="json")
    assert future.status_code == 400
    estate.inspect()
    estate.pay_out()
    services.scorecard_finalize(community=estate.community, period=AUGUST)
    late = client.post(URL, body(estate), format="json")
    assert late.status_code == 409
    assert Inspection.objects.count() == 1


def test_inspections_are_listed_to_the_estates_people_in_charge(as_user):
    estate = Estate()
    estate.inspect()
    for user in (estate.inspector, estate.staff, estate.centre_admin, estate.committee):
        assert as_user(user).get(URL).json()["count"] == 1, user
    for user in (estate.outside_inspector, estate.other_staff, estate.residents[0]):
        assert as_user(user).get(URL).json()["count"] == 0, user
    client = as_user(estate.inspector)
    assert client.get(URL, {"period": "2019-09"}).json()["count"] == 0
    assert client.get(URL, {"period": "nope"}).status_code == 400
