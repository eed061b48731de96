"""Scoping: who sees which communities and households, in which role."""

from datetime import date, timedelta

import pytest
from django.utils import timezone

from community import selectors
from community.models import Community, Household, Role
from community.tests.factories import (
    AllianceOrganisationFactory,
    CommunityFactory,
    HouseholdFactory,
    ResidencyFactory,
    UserFactory,
    member,
    resident,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_estates():
    """Two communities under different centres and companies, two households in each."""
    a, b = CommunityFactory(), CommunityFactory()
    return {
        "a": a,
        "b": b,
        "a_homes": [HouseholdFactory(building__community=a) for _ in range(2)],
        "b_homes": [HouseholdFactory(building__community=b) for _ in range(2)],
    }


def ids(qs):
    return sorted(qs.values_list("pk", flat=True))


def test_resident_sees_only_their_own_household_and_community(two_estates):
    mine, neighbours = two_estates["a_homes"]
    user = resident(mine)
    assert ids(selectors.household_list(user=user)) == [mine.pk]
    assert ids(selectors.community_list(user=user)) == [two_estates["a"].pk]
    with pytest.raises(Household.DoesNotExist):
        selectors.household_get(user=user, household_id=neighbours.pk)


def test_a_former_resident_sees_nothing(two_estates):
    home = two_estates["a_homes"][0]
    yesterday = timezone.localdate() - timedelta(days=1)
    user = ResidencyFactory(household=home, start_date=date(2019, 7, 1), end_date=yesterday).user
    assert ids(selectors.household_list(user=user)) == []
    assert ids(selectors.community_list(user=user)) == []


def test_a_future_resident_sees_nothing_yet(two_estates):
    home = two_estates["a_homes"][0]
    tomorrow = timezone.localdate() + timedelta(days=1)
    user = ResidencyFactory(household=home, start_date=tomorrow).user
    assert ids(selectors.household_list(user=user)) == []


def test_property_staff_see_their_companys_communities_only(two_estates):
    staff = member(Role.PROPERTY_STAFF, company=two_estates["a"].company)
    assert ids(selectors.community_list(user=staff)) == [two_estates["a"].pk]
    assert ids(selectors.household_list(user=staff)) == sorted(h.pk for h in two_estates["a_homes"])
    with pytest.raises(Community.DoesNotExist):
        selectors.community_get(user=staff, community_id=two_estates["b"].pk)


def test_centre_admin_sees_every_community_of_their_centre(two_estates):
    sibling = CommunityFactory(centre=two_estates["a"].centre)
    admin = member(Role.CENTRE_ADMIN, centre=two_estates["a"].centre)
    assert ids(selectors.community_list(user=admin)) == sorted([two_estates["a"].pk, sibling.pk])


def test_inspector_sees_their_centres_communities_but_no_households(two_estates):
    organisation = AllianceOrganisationFactory(centre=two_estates["a"].centre)
    inspector = member(Role.ALLIANCE_INSPECTOR, organisation=organisation)
    assert ids(selectors.community_list(user=inspector)) == [two_estates["a"].pk]
    assert ids(selectors.household_list(user=inspector)) == []


def test_committee_member_sees_their_community_only(two_estates):
    committee = member(Role.COMMITTEE_MEMBER, community=two_estates["b"])
    assert ids(selectors.community_list(user=committee)) == [two_estates["b"].pk]
    assert ids(selectors.household_list(user=committee)) == sorted(
        h.pk for h in two_estates["b_homes"]
    )


def test_roles_can_be_narrowed(two_estates):
    """A staff member who also lives in the other estate sees it only as a resident."""
    user = member(Role.PROPERTY_STAFF, company=two_estates["a"].company)
    ResidencyFactory(user=user, household=two_estates["b_homes"][0])
    assert ids(selectors.community_list(user=user)) == sorted(
        [two_estates["a"].pk, two_estates["b"].pk]
    )
    assert ids(selectors.community_list(user=user, roles=[Role.PROPERTY_STAFF])) == [
        two_estates["a"].pk
    ]
    assert ids(selectors.household_list(user=user, roles=[selectors.RESIDENT])) == [
        two_estates["b_homes"][0].pk
    ]
    assert selectors.roles_in_community(user=user, community=two_estates["a"]) == {
        Role.PROPERTY_STAFF
    }
    assert selectors.roles_in_community(user=user, community=two_estates["b"]) == {
        selectors.RESIDENT
    }


def test_a_user_with_no_role_and_no_home_sees_nothing(two_estates):
    nobody = UserFactory()
    assert ids(selectors.community_list(user=nobody)) == []
    assert ids(selectors.household_list(user=nobody)) == []
    assert selectors.roles_in_community(user=nobody, community=two_estates["a"]) == frozenset()


def test_an_inactive_user_sees_nothing(two_estates):
    user = resident(two_estates["a_homes"][0])
    user.is_active = False
    assert ids(selectors.household_list(user=user)) == []


def test_unknown_role_is_a_programming_error(two_estates):
    with pytest.raises(ValueError):
        selectors.community_list(user=UserFactory(), roles=["landlord"])


def _resident_sql_ids(user):
    from django.db import connection

    sql, params = selectors.resident_households_sql(user=user)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return sorted(row[0] for row in cursor.fetchall())


def test_the_resident_scope_in_sql_is_household_lists(two_estates):
    """resident_households_sql is household_list(roles=[RESIDENT]) written out for the payment's
    locking statement: the same households for a residency in force, one ended yesterday, one
    ending today, one starting tomorrow, two homes, and a member of staff with no home."""
    a_home, a_other = two_estates["a_homes"]
    b_home, _ = two_estates["b_homes"]
    today = timezone.localdate()
    current = resident(a_home)
    ResidencyFactory(user=current, household=b_home, start_date=date(2019, 7, 1), end_date=today)
    former = ResidencyFactory(
        household=a_other, start_date=date(2019, 7, 1), end_date=today - timedelta(days=1)
    ).user
    future = ResidencyFactory(household=a_other, start_date=today + timedelta(days=1)).user
    staff = member(Role.PROPERTY_STAFF, company=two_estates["a"].company)
    expected = {current: [a_home.pk, b_home.pk], former: [], future: [], staff: []}
    for user, households in expected.items():
        scoped = selectors.household_list(user=user, roles=[selectors.RESIDENT])
        assert ids(scoped) == sorted(households)
        assert _resident_sql_ids(user) == sorted(households)


def test_the_resident_scope_in_sql_leaves_superusers_and_inactive_users_to_household_list(
    two_estates,
):
    home = two_estates["a_homes"][0]
    inactive = resident(home)
    inactive.is_active = False
    assert selectors.resident_households_sql(user=inactive) is None
    assert selectors.resident_households_sql(user=UserFactory(is_superuser=True)) is None
