"""Centre admins set the ticket categories and their SLA hours in Django admin, and read the
tickets of their own centre's estates; nobody edits a ticket's state there."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from community.permissions import CENTRE_ADMIN_GROUP
from repairs.models import TicketCategory
from repairs.tests.factories import Estate

pytestmark = pytest.mark.django_db


@pytest.fixture
def centre_admin_client(client):
    estate = Estate()
    admin = estate.centre_admin
    admin.is_staff = True
    admin.save()
    admin.groups.add(Group.objects.get(name=CENTRE_ADMIN_GROUP))
    client.force_login(admin)
    return client, estate


def test_the_centre_admin_group_may_edit_categories_and_read_tickets():
    codenames = set(
        Group.objects.get(name=CENTRE_ADMIN_GROUP).permissions.values_list("codename", flat=True)
    )
    assert {"add_ticketcategory", "change_ticketcategory", "view_ticket"} <= codenames
    assert not {"change_ticket", "delete_ticket", "delete_ticketcategory"} & codenames


def test_a_centre_admin_adds_a_category_with_its_hours(centre_admin_client):
    client, _estate = centre_admin_client
    response = client.post(
        reverse("admin:repairs_ticketcategory_add"),
        {
            "kind": "report",
            "name": "高空抛物",
            "response_hours": "1",
            "resolve_hours": "6",
            "is_active": "on",
            "position": "0",
        },
    )
    assert response.status_code == 302
    category = TicketCategory.objects.get(name="高空抛物")
    assert (category.response_hours, category.resolve_hours) == (1, 6)


def test_a_centre_admin_reads_only_their_centres_tickets(centre_admin_client):
    client, estate = centre_admin_client
    ours = estate.repair(title="我们的工单")
    theirs = Estate().repair(title="别人的工单")
    page = client.get(reverse("admin:repairs_ticket_changelist")).content.decode()
    assert ours.title in page
    assert theirs.title not in page
    assert client.get(reverse("admin:repairs_ticket_change", args=[ours.pk])).status_code == 200
    assert client.get(reverse("admin:repairs_ticket_change", args=[theirs.pk])).status_code == 302


def test_nobody_moves_a_ticket_in_admin(centre_admin_client, admin_user, client):
    _client, estate = centre_admin_client
    ticket = estate.repair()
    client.force_login(admin_user)  # even a superuser
    page = client.get(reverse("admin:repairs_ticket_change", args=[ticket.pk])).content.decode()
    assert 'name="status"' not in page
    assert client.get(reverse("admin:repairs_ticket_add")).status_code == 403
