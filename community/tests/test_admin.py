"""A centre admin works in Django admin, but only on their own centre's estates."""

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _

from community.models import Household, Role
from community.permissions import CENTRE_ADMIN_GROUP
from community.tests.factories import CommunityFactory, HouseholdFactory, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def centre_admin_client(client):
    ours, other = CommunityFactory(name="翰林苑"), CommunityFactory(name="隔壁小区")
    admin = member(Role.CENTRE_ADMIN, centre=ours.centre)
    admin.is_staff = True
    admin.save()
    admin.groups.add(Group.objects.get(name=CENTRE_ADMIN_GROUP))
    client.force_login(admin)
    return client, ours, other


def test_the_centre_admin_group_exists_after_migrate():
    group = Group.objects.get(name=CENTRE_ADMIN_GROUP)
    codenames = set(group.permissions.values_list("codename", flat=True))
    assert {"add_household", "change_agreement", "view_community"} <= codenames
    assert "delete_household" not in codenames


def test_centre_admin_lists_only_their_centres_communities(centre_admin_client):
    client, ours, other = centre_admin_client
    html = client.get(reverse("admin:community_community_changelist")).content.decode()
    assert ours.name in html
    assert other.name not in html


def test_centre_admin_cannot_open_another_centres_household(centre_admin_client):
    client, _ours, other = centre_admin_client
    theirs = HouseholdFactory(building__community=other)
    url = reverse("admin:community_household_change", args=[theirs.pk])
    response = client.get(url)
    # Django admin treats a row outside get_queryset as missing: it redirects with a warning.
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:index")


def test_centre_admin_can_add_a_household_to_their_estate_only(centre_admin_client):
    client, ours, other = centre_admin_client
    our_building = ours.buildings.create(name="1幢")
    their_building = other.buildings.create(name="1幢")
    url = reverse("admin:community_household_add")
    base = {
        "unit": "101",
        "area": "88.60",
        "residencies-TOTAL_FORMS": "0",
        "residencies-INITIAL_FORMS": "0",
    }
    refused = client.post(url, {**base, "building": their_building.pk})
    assert refused.status_code == 200  # the form comes back with an error
    assert not Household.objects.filter(building=their_building).exists()

    accepted = client.post(url, {**base, "building": our_building.pk})
    assert accepted.status_code == 302
    assert Household.objects.get(building=our_building).unit == "101"


def test_centre_admin_cannot_import_a_workbook_into_another_centres_estate(centre_admin_client):
    # The full flow is in community/tests/test_imports.py; here the scoping, as for the forms.
    import io

    from django.core.files.uploadedfile import SimpleUploadedFile
    from openpyxl import Workbook

    client, ours, other = centre_admin_client
    other.buildings.create(name="1幢")
    book = Workbook()
    sheet = book.active
    sheet.title = "房屋"
    sheet.append(["小区", "楼栋", "单元/房号", "面积(㎡)"])
    sheet.append([other.name, "1幢", "101", "80"])
    data = io.BytesIO()
    book.save(data)
    url = reverse("admin:community_community_import_workbook")
    for centre in (ours.centre, other.centre):
        response = client.post(
            url, {"centre": centre.pk, "file": SimpleUploadedFile("e.xlsx", data.getvalue())}
        )
        assert response.status_code == 200
        assert response.context["token"] == ""
    refused = client.post(
        url, {"centre": ours.centre.pk, "file": SimpleUploadedFile("e.xlsx", data.getvalue())}
    ).context["report"]
    with translation.override(settings.LANGUAGE_CODE):  # the page's language
        unknown = _("Unknown community “%(name)s”.") % {"name": other.name}
    assert refused.sheets[0].refused[0].messages == [unknown]
    assert not Household.objects.filter(building__community=other).exists()
