"""The tickets API against the contract (API.md): shapes, scoping (404 outside it), filters,
ratings, and bad input answered with 400/403/404/409, never 500."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from community.models import Role
from community.tests.factories import (
    CommunityFactory,
    HouseholdFactory,
    RoleMembershipFactory,
    resident,
)
from repairs import services
from repairs.models import Kind, Status, Ticket, TicketEvent, TicketRating
from repairs.tests.factories import Estate, TicketCategoryFactory, hours_ago

pytestmark = pytest.mark.django_db

CONTRACT_TICKET_FIELDS = {
    "id",
    "kind",
    "category",
    "title",
    "status",
    "created_at",
    "assignee",
    "response_due",
    "resolve_due",
}


def ids(response) -> set[int]:
    assert response.status_code == 200, response.data
    return {row["id"] for row in response.data["results"]}


# --- categories -------------------------------------------------------------------------------


def test_categories_list_the_offered_ones_with_their_hours(as_user):
    estate = Estate()
    TicketCategoryFactory(kind=Kind.REPORT, name="停用", is_active=False)
    response = as_user(estate.filer).get(reverse("api-ticket-categories"))
    assert response.status_code == 200
    assert isinstance(response.data, list)
    rows = {row["id"]: row for row in response.data}
    assert set(rows) == {estate.repair_category.pk, estate.report_category.pk}
    assert rows[estate.report_category.pk] == {
        "id": estate.report_category.pk,
        "kind": "report",
        "name": estate.report_category.name,
        "response_hours": 1,
        "resolve_hours": 8,
    }
    only_repairs = as_user(estate.filer).get(reverse("api-ticket-categories"), {"kind": "repair"})
    assert [r["id"] for r in only_repairs.data] == [estate.repair_category.pk]
    assert (
        as_user(estate.filer).get(reverse("api-ticket-categories"), {"kind": "x"}).status_code
        == 400
    )


def test_the_api_needs_a_sign_in(api_client):
    assert api_client.get(reverse("api-tickets")).status_code == 401
    assert api_client.get(reverse("api-ticket-categories")).status_code == 401


# --- filing -----------------------------------------------------------------------------------


def test_a_resident_files_a_repair_for_their_flat(as_user):
    estate = Estate()
    response = as_user(estate.filer).post(
        reverse("api-tickets"),
        {
            "kind": "repair",
            "category": estate.repair_category.pk,
            "title": "卫生间水管漏水",
            "description": "从天花板滴水",
            "household": estate.household.pk,
        },
    )
    assert response.status_code == 201, response.data
    body = response.data
    assert set(body) >= CONTRACT_TICKET_FIELDS
    ticket = Ticket.objects.get(pk=body["id"])
    assert (body["kind"], body["category"], body["status"], body["assignee"]) == (
        "repair",
        estate.repair_category.pk,
        "submitted",
        None,
    )
    assert (ticket.community, ticket.household, ticket.filed_by) == (
        estate.community,
        estate.household,
        estate.filer,
    )
    # Times are ISO 8601 with the offset.
    assert body["created_at"].endswith("+08:00")
    assert body["response_due"].endswith("+08:00")
    assert [e["event"] for e in body["timeline"]] == ["filed"]
    assert body["allowed_actions"] == ["cancel"]


def test_a_resident_reports_a_common_area_problem(as_user):
    estate = Estate()
    response = as_user(estate.filer).post(
        reverse("api-tickets"),
        {
            "kind": "report",
            "category": estate.report_category.pk,
            "title": "路灯不亮",
            "location": "3幢东侧",
        },
    )
    assert response.status_code == 201, response.data
    ticket = Ticket.objects.get(pk=response.data["id"])
    assert (ticket.community, ticket.household, ticket.location) == (
        estate.community,
        None,
        "3幢东侧",
    )


BAD_FILINGS = {
    "another household": lambda e: {"household": e.neighbour_household.pk},
    "unknown household": lambda e: {"household": 999999},
    "household of another estate": lambda e: {"household": HouseholdFactory().pk},
    "kind does not match the category": lambda e: {"kind": "report"},
    "unknown kind": lambda e: {"kind": "complaint"},
    "unknown category": lambda e: {"category": 999999},
    "category is not a number": lambda e: {"category": "lift"},
    "no title": lambda e: {"title": ""},
    "title too long": lambda e: {"title": "长" * 101},
    "neither flat nor place": lambda e: {"household": None, "location": ""},
    "blank place": lambda e: {"household": None, "location": "   "},
    "a community they do not live in": lambda e: {
        "household": None,
        "location": "门口",
        "community": CommunityFactory().pk,
    },
    "household is a list": lambda e: {"household": [e.household.pk]},
    "inactive category": lambda e: {
        "category": TicketCategoryFactory(kind=Kind.REPAIR, is_active=False).pk
    },
}


@pytest.mark.parametrize("case", list(BAD_FILINGS))
def test_bad_filings_are_400_and_create_nothing(as_user, case):
    estate = Estate()
    good = {
        "kind": "repair",
        "category": estate.repair_category.pk,
        "title": "漏水",
        "household": estate.household.pk,
    }
    response = as_user(estate.filer).post(
        reverse("api-tickets"), {**good, **BAD_FILINGS[case](estate)}
    )
    assert response.status_code == 400, response.data
    assert Ticket.objects.count() == 0


def test_another_households_id_reads_like_one_that_does_not_exist(as_user):
    estate = Estate()
    client = as_user(estate.filer)
    base = {"kind": "repair", "category": estate.repair_category.pk, "title": "漏水"}
    theirs = client.post(
        reverse("api-tickets"), {**base, "household": estate.neighbour_household.pk}
    )
    nobody = client.post(reverse("api-tickets"), {**base, "household": 999999})
    assert theirs.data["household"][0].code == nobody.data["household"][0].code == "does_not_exist"


def test_staff_who_live_nowhere_cannot_file(as_user):
    estate = Estate()
    response = as_user(estate.staff).post(
        reverse("api-tickets"),
        {
            "kind": "report",
            "category": estate.report_category.pk,
            "title": "路灯",
            "location": "东门",
            "community": estate.community.pk,
        },
    )
    assert response.status_code == 403
    assert Ticket.objects.count() == 0


def test_a_resident_of_two_estates_says_which_one(as_user):
    estate = Estate()
    second_home = HouseholdFactory()
    resident(second_home, user=estate.filer)
    client = as_user(estate.filer)
    base = {"kind": "report", "category": estate.report_category.pk, "title": "路灯"}

    unclear = client.post(reverse("api-tickets"), {**base, "location": "东门"})
    assert unclear.status_code == 400
    assert "community" in unclear.data

    chosen = second_home.building.community
    clear = client.post(
        reverse("api-tickets"), {**base, "location": "东门", "community": chosen.pk}
    )
    assert clear.status_code == 201
    assert Ticket.objects.get().community == chosen


@pytest.mark.parametrize(
    "body",
    ["not json", "[1, 2]", "null", '{"kind": null}', '"a string"'],
)
def test_malformed_bodies_are_400(as_user, body):
    estate = Estate()
    response = as_user(estate.filer).post(
        reverse("api-tickets"), body, content_type="application/json"
    )
    assert response.status_code == 400
    assert Ticket.objects.count() == 0


# --- scope ------------------------------------------------------------------------------------


def test_who_sees_which_tickets(as_user):
    estate = Estate()
    my_repair = estate.repair()
    my_report = estate.report()
    neighbour_repair = estate.repair(
        filed_by=estate.neighbour, household=estate.neighbour_household
    )
    neighbour_report = estate.report(filed_by=estate.neighbour)
    elsewhere = Estate()
    elsewhere_repair = elsewhere.repair()
    own_company_other_estate = CommunityFactory(
        company=estate.community.company, centre=elsewhere.community.centre
    )
    far_resident = resident(HouseholdFactory(building__community=own_company_other_estate))
    far_report = estate.report(filed_by=far_resident)
    url = reverse("api-tickets")

    assert ids(as_user(estate.filer).get(url)) == {my_repair.pk, my_report.pk}
    # A housemate sees the flat's repair, not the filer's common-area report.
    assert ids(as_user(estate.housemate).get(url)) == {my_repair.pk}
    assert ids(as_user(estate.neighbour).get(url)) == {neighbour_repair.pk, neighbour_report.pk}
    # Staff: every ticket of every estate their company manages, common-area reports included.
    assert ids(as_user(estate.staff).get(url)) == {
        my_repair.pk,
        my_report.pk,
        neighbour_repair.pk,
        neighbour_report.pk,
        far_report.pk,
    }
    # Centre admin: their centre's estates, whichever company.
    assert ids(as_user(estate.centre_admin).get(url)) == {
        my_repair.pk,
        my_report.pk,
        neighbour_repair.pk,
        neighbour_report.pk,
    }
    assert ids(as_user(elsewhere.centre_admin).get(url)) == {elsewhere_repair.pk, far_report.pk}
    assert ids(as_user(estate.other_staff).get(url)) == set()
    assert ids(as_user(estate.committee).get(url)) == set()


def test_another_households_repair_ticket_is_404_for_a_resident(as_user):
    estate = Estate()
    theirs = estate.repair(filed_by=estate.neighbour, household=estate.neighbour_household)
    client = as_user(estate.filer)
    for url in [
        reverse("api-ticket", args=[theirs.pk]),
        reverse("api-ticket", args=[999999]),
        reverse("api-ticket", args=[2**70]),
    ]:
        assert client.get(url).status_code == 404
    before = TicketEvent.objects.count()
    assert (
        client.post(
            reverse("api-ticket-transition", args=[theirs.pk]), {"action": "cancel"}
        ).status_code
        == 404
    )
    assert (
        client.post(reverse("api-ticket-rating", args=[theirs.pk]), {"stars": 1}).status_code == 404
    )
    assert TicketEvent.objects.count() == before
    assert Ticket.objects.get(pk=theirs.pk).status == Status.SUBMITTED


def test_common_area_reports_of_the_estate_are_visible_to_staff(as_user):
    estate = Estate()
    report = estate.report(filed_by=estate.neighbour)
    staff_view = as_user(estate.staff).get(reverse("api-ticket", args=[report.pk]))
    assert staff_view.status_code == 200
    assert staff_view.data["location"] == "3幢东侧"
    assert set(staff_view.data["allowed_actions"]) == {"accept", "reject"}
    # ...but not to another resident of the estate.
    assert as_user(estate.filer).get(reverse("api-ticket", args=[report.pk])).status_code == 404


# --- filters and the list's cost --------------------------------------------------------------


def test_list_filters(as_user):
    estate = Estate()
    overdue = estate.repair(at=hours_ago(3))
    fresh = estate.report()
    done = estate.repair()
    services.ticket_transition(ticket=done, actor=estate.staff, action="accept")
    services.ticket_transition(ticket=done, actor=estate.staff, action="resolve")
    client = as_user(estate.staff)
    url = reverse("api-tickets")

    assert ids(client.get(url, {"status": "open"})) == {overdue.pk, fresh.pk}
    assert ids(client.get(url, {"status": "resolved"})) == {done.pk}
    assert ids(client.get(url, {"kind": "report"})) == {fresh.pk}
    assert ids(client.get(url, {"overdue": "true"})) == {overdue.pk}
    assert ids(client.get(url, {"overdue": "false"})) == {fresh.pk, done.pk}
    assert ids(client.get(url, {"category": estate.report_category.pk})) == {fresh.pk}
    assert ids(client.get(url, {"community": estate.community.pk})) == {
        overdue.pk,
        fresh.pk,
        done.pk,
    }
    assert ids(client.get(url, {"household": estate.household.pk})) == {overdue.pk, done.pk}
    by_deadline = client.get(url, {"ordering": "deadline"}).data["results"]
    assert [row["id"] for row in by_deadline] == [overdue.pk, fresh.pk, done.pk]
    assert by_deadline[0]["overdue"] is True


@pytest.mark.parametrize(
    "query",
    [
        {"status": "lost"},
        {"kind": "x"},
        {"category": "abc"},
        {"community": "-1"},
        {"overdue": "perhaps"},
        {"ordering": "title"},
    ],
)
def test_bad_filters_are_400(as_user, query):
    estate = Estate()
    assert as_user(estate.staff).get(reverse("api-tickets"), query).status_code == 400


def _ticket_rows(estate: Estate, count: int) -> None:
    other = CommunityFactory(company=estate.community.company, centre=estate.community.centre)
    far = resident(HouseholdFactory(building__community=other))
    for number in range(count):
        ticket = estate.repair() if number % 2 else estate.report(filed_by=far)
        if number % 3 == 0:
            services.ticket_transition(ticket=ticket, actor=estate.staff, action="accept")
            services.ticket_transition(
                ticket=ticket, actor=estate.staff, action="assign", assignee=estate.colleague
            )


def test_the_list_costs_the_same_queries_for_any_page_size(as_user):
    estate = Estate()
    _ticket_rows(estate, 30)
    client = as_user(estate.staff)

    def queries(page_size: int) -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(reverse("api-tickets"), {"page_size": page_size})
        assert len(response.data["results"]) == page_size
        return len(captured)

    assert queries(2) == queries(30)


# --- ratings ----------------------------------------------------------------------------------


def resolved(estate: Estate) -> Ticket:
    ticket = estate.repair()
    services.ticket_transition(ticket=ticket, actor=estate.staff, action="accept")
    services.ticket_transition(ticket=ticket, actor=estate.staff, action="resolve")
    return ticket


def test_the_filer_rates_a_resolved_ticket_once(as_user):
    estate = Estate()
    ticket = resolved(estate)
    client = as_user(estate.filer)
    url = reverse("api-ticket-rating", args=[ticket.pk])

    first = client.post(url, {"stars": 5, "comment": "很及时"})
    assert first.status_code == 201, first.data
    assert (first.data["stars"], first.data["comment"]) == (5, "很及时")
    rating = TicketRating.objects.get(ticket=ticket)
    assert (rating.rated_by, rating.stars) == (estate.filer, 5)
    assert ticket.events.filter(kind=TicketEvent.Kind.RATED).count() == 1

    again = client.post(url, {"stars": 1, "comment": "改主意了"})
    assert again.status_code == 409
    assert TicketRating.objects.get(ticket=ticket).stars == 5
    assert ticket.events.filter(kind=TicketEvent.Kind.RATED).count() == 1
    detail = client.get(reverse("api-ticket", args=[ticket.pk])).data
    assert detail["rating"]["stars"] == 5


def test_a_closed_ticket_can_be_rated_too(as_user):
    estate = Estate()
    ticket = resolved(estate)
    services.ticket_transition(ticket=ticket, actor=estate.filer, action="close")
    response = as_user(estate.filer).post(
        reverse("api-ticket-rating", args=[ticket.pk]), {"stars": 4}
    )
    assert response.status_code == 201


@pytest.mark.parametrize("status", [Status.SUBMITTED, Status.ACCEPTED, Status.CANCELLED])
def test_no_rating_before_the_resolution(as_user, status):
    estate = Estate()
    ticket = estate.repair()
    if status == Status.ACCEPTED:
        services.ticket_transition(ticket=ticket, actor=estate.staff, action="accept")
    if status == Status.CANCELLED:
        services.ticket_transition(ticket=ticket, actor=estate.filer, action="cancel")
    response = as_user(estate.filer).post(
        reverse("api-ticket-rating", args=[ticket.pk]), {"stars": 5}
    )
    assert response.status_code == 409
    assert TicketRating.objects.count() == 0


@pytest.mark.parametrize(
    ("who", "status"),
    [("housemate", 403), ("staff", 403), ("centre_admin", 403), ("neighbour", 404)],
)
def test_only_the_filer_rates(as_user, who, status):
    estate = Estate()
    ticket = resolved(estate)
    response = as_user(getattr(estate, who)).post(
        reverse("api-ticket-rating", args=[ticket.pk]), {"stars": 5}
    )
    assert response.status_code == status
    assert TicketRating.objects.count() == 0


@pytest.mark.parametrize("stars", [0, 6, -1, "five", None, 4.5, ""])
def test_stars_must_be_1_to_5(as_user, stars):
    estate = Estate()
    ticket = resolved(estate)
    response = as_user(estate.filer).post(
        reverse("api-ticket-rating", args=[ticket.pk]), {"stars": stars}
    )
    assert response.status_code == 400
    assert TicketRating.objects.count() == 0


# --- transitions over HTTP --------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"action": "fly"},
        {"action": "assign", "assignee": 999999},
        {"action": "assign", "assignee": "me"},
        {"action": "accept", "note": "长" * 501},
    ],
)
def test_bad_transition_input_is_400_and_changes_nothing(as_user, body):
    estate = Estate()
    ticket = estate.repair()
    response = as_user(estate.staff).post(reverse("api-ticket-transition", args=[ticket.pk]), body)
    assert response.status_code == 400
    assert Ticket.objects.get(pk=ticket.pk).status == Status.SUBMITTED
    assert TicketEvent.objects.filter(ticket=ticket).count() == 1


def test_an_illegal_transition_is_409_with_a_reason(as_user):
    estate = Estate()
    ticket = estate.repair()
    response = as_user(estate.filer).post(
        reverse("api-ticket-transition", args=[ticket.pk]), {"action": "close"}
    )
    assert response.status_code == 409
    assert response.data["detail"]
    assert Ticket.objects.get(pk=ticket.pk).status == Status.SUBMITTED


def test_staff_walk_a_ticket_through_with_the_api(as_user):
    estate = Estate()
    ticket = estate.repair()
    staff = as_user(estate.staff)
    url = reverse("api-ticket-transition", args=[ticket.pk])
    assert staff.post(url, {"action": "accept"}).data["status"] == "accepted"
    assigned = staff.post(url, {"action": "assign", "assignee": estate.colleague.pk}).data
    assert (assigned["status"], assigned["assignee"]) == ("assigned", estate.colleague.pk)
    colleague = as_user(estate.colleague)
    assert colleague.post(url, {"action": "start"}).data["status"] == "in_progress"
    done = colleague.post(url, {"action": "resolve", "note": "换了阀门"}).data
    assert done["status"] == "resolved"
    assert [e["event"] for e in done["timeline"]] == [
        "filed",
        "accepted",
        "assigned",
        "started",
        "resolved",
    ]
    filer = as_user(estate.filer)
    assert filer.get(reverse("api-ticket", args=[ticket.pk])).data["allowed_actions"] == [
        "close",
        "reopen",
    ]
    assert filer.post(url, {"action": "close"}).data["status"] == "closed"


def test_staff_who_live_in_the_estate_file_as_residents_and_act_as_staff(as_user):
    estate = Estate()
    home = HouseholdFactory(building__community=estate.community)
    living_staff = resident(home)
    RoleMembershipFactory(
        user=living_staff, role=Role.PROPERTY_STAFF, company=estate.community.company
    )
    ticket = estate.repair()
    client = as_user(living_staff)
    accept = client.post(reverse("api-ticket-transition", args=[ticket.pk]), {"action": "accept"})
    assert accept.status_code == 200
    filed = client.post(
        reverse("api-tickets"),
        {
            "kind": "repair",
            "category": estate.repair_category.pk,
            "title": "门锁坏了",
            "household": home.pk,
        },
    )
    assert filed.status_code == 201
    # Their own ticket: they may cancel it as its filer, and accept it as staff.
    assert filed.data["allowed_actions"] == ["accept", "reject", "cancel"]


def test_the_schema_describes_the_ticket_endpoints(client):
    import yaml

    schema = yaml.safe_load(client.get("/api/schema/").content)
    paths = schema["paths"]
    assert {
        "/api/v1/ticket-categories/",
        "/api/v1/tickets/",
        "/api/v1/tickets/{id}/",
        "/api/v1/tickets/{id}/transition/",
        "/api/v1/tickets/{id}/rating/",
        "/api/v1/tickets/{id}/photos/",
        "/api/v1/tickets/{id}/photos/{photo_id}/",
    } <= set(paths)
    ticket = schema["components"]["schemas"]["Ticket"]["properties"]
    assert set(ticket) >= CONTRACT_TICKET_FIELDS
    transition = schema["components"]["schemas"]["Transition"]["properties"]
    assert {"action", "assignee", "note"} <= set(transition)
    assert set(paths["/api/v1/tickets/{id}/transition/"]["post"]["responses"]) >= {
        "200",
        "403",
        "404",
        "409",
    }


def test_a_500_character_comment_fits_the_timeline(as_user):
    estate = Estate()
    ticket = resolved(estate)
    response = as_user(estate.filer).post(
        reverse("api-ticket-rating", args=[ticket.pk]), {"stars": 5, "comment": "好" * 500}
    )
    assert response.status_code == 201
    assert len(ticket.events.get(kind=TicketEvent.Kind.RATED).note) == 500
    too_long = as_user(estate.filer).post(
        reverse("api-ticket-rating", args=[ticket.pk]), {"stars": 5, "comment": "好" * 501}
    )
    assert too_long.status_code == 400


HUGE = "9" * 30


@pytest.mark.parametrize(
    ("method", "url", "data"),
    [
        ("get", "/api/v1/tickets/", {"household": HUGE}),
        ("get", "/api/v1/tickets/", {"category": HUGE, "community": HUGE}),
        ("get", "/api/v1/tickets/", {"page": "abc"}),
        ("get", "/api/v1/tickets/", {"page_size": "-1"}),
        ("get", f"/api/v1/tickets/{HUGE}/", {}),
        ("get", f"/api/v1/tickets/{HUGE}/photos/{HUGE}/", {}),
        ("post", f"/api/v1/tickets/{HUGE}/transition/", {"action": "accept"}),
        ("post", "/api/v1/tickets/", {"kind": "repair", "category": HUGE, "title": "x"}),
        ("post", "/api/v1/tickets/", {"kind": "repair", "category": 1, "household": HUGE}),
    ],
)
def test_out_of_range_numbers_are_never_a_server_error(as_user, method, url, data):
    estate = Estate()
    estate.repair()
    response = getattr(as_user(estate.filer), method)(url, data)
    assert response.status_code < 500
    if response.status_code == 200:  # a filter nothing matches, or an ignored page size
        assert response.data["count"] in (0, 1)


def test_assigning_to_an_out_of_range_user_is_400(as_user):
    estate = Estate()
    ticket = estate.repair()
    services.ticket_transition(ticket=ticket, actor=estate.staff, action="accept")
    response = as_user(estate.staff).post(
        reverse("api-ticket-transition", args=[ticket.pk]), {"action": "assign", "assignee": HUGE}
    )
    assert response.status_code == 400
