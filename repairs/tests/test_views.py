"""The browser pages: a resident files from the phone with photos and follows the timeline; staff
work the queue, which refreshes itself (a fragment polled by repairs-live.js) at a fixed number of
queries per page."""

import re
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from community.models import Notice
from community.periods import Period
from community.tests.factories import CommunityFactory, HouseholdFactory, resident
from repairs import selectors, services
from repairs.models import Status, Ticket, TicketPhoto, TicketRating
from repairs.tests.factories import Estate, hours_ago, jpeg_bytes, upload

pytestmark = pytest.mark.django_db


def html(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def test_pages_need_a_login(client):
    for url in [
        reverse("repairs-mine"),
        reverse("repairs-new", args=["repair"]),
        reverse("repairs-queue"),
        reverse("repairs-detail", args=[1]),
    ]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_a_resident_files_a_repair_with_photos_from_the_phone(client):
    estate = Estate()
    client.force_login(estate.filer)
    form = html(client.get(reverse("repairs-new", args=["repair"])))
    assert 'enctype="multipart/form-data"' in form
    assert 'accept="image/*"' in form and "multiple" in form
    assert estate.repair_category.name in form
    assert estate.report_category.name not in form  # only this kind's categories

    response = client.post(
        reverse("repairs-new", args=["repair"]),
        {
            "category": estate.repair_category.pk,
            "title": "卫生间水管漏水",
            "description": "从天花板滴水",
            "household": estate.household.pk,
            "location": "",
            "photos": [upload(jpeg_bytes(), "a.jpg"), upload(jpeg_bytes(), "b.jpg")],
        },
    )

    ticket = Ticket.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("repairs-detail", args=[ticket.pk])
    assert (ticket.household, ticket.filed_by, ticket.status) == (
        estate.household,
        estate.filer,
        Status.SUBMITTED,
    )
    assert ticket.photos.count() == 2
    page = html(client.get(response["Location"]))
    assert "卫生间水管漏水" in page
    for photo in ticket.photos.all():
        assert reverse("api-ticket-photo", args=[ticket.pk, photo.pk]) in page
    assert client.get(reverse("api-ticket-photo", args=[ticket.pk, photo.pk])).status_code == 200


def test_a_bad_photo_keeps_the_form_and_files_nothing(client):
    estate = Estate()
    client.force_login(estate.filer)
    response = client.post(
        reverse("repairs-new", args=["repair"]),
        {
            "category": estate.repair_category.pk,
            "title": "漏水",
            "household": estate.household.pk,
            "photos": [upload(jpeg_bytes(), "good.jpg"), upload(b"not an image", "bad.jpg")],
        },
    )
    page = html(response)
    assert "bad.jpg" in page
    assert 'role="alert"' in page
    assert Ticket.objects.count() == 0
    assert TicketPhoto.objects.count() == 0


def test_a_common_area_report_needs_a_place(client):
    estate = Estate()
    client.force_login(estate.filer)
    url = reverse("repairs-new", args=["report"])
    data = {"category": estate.report_category.pk, "title": "路灯不亮", "household": ""}
    assert 'role="alert"' in html(client.post(url, {**data, "location": ""}))
    assert Ticket.objects.count() == 0
    assert client.post(url, {**data, "location": "3幢东侧"}).status_code == 302
    assert Ticket.objects.get().location == "3幢东侧"


def test_filing_is_for_residents_and_known_kinds(client):
    estate = Estate()
    client.force_login(estate.staff)
    assert client.get(reverse("repairs-new", args=["repair"])).status_code == 403
    client.force_login(estate.filer)
    assert client.get(reverse("repairs-new", args=["complaint"])).status_code == 404


def test_my_tickets_shows_my_households_and_my_reports_only(client):
    estate = Estate()
    mine = estate.repair(title="我家的")
    theirs = estate.report(filed_by=estate.neighbour, title="邻居报的")
    client.force_login(estate.filer)
    page = html(client.get(reverse("repairs-mine")))
    assert mine.title in page
    assert theirs.title not in page


def test_the_detail_page_is_404_outside_the_scope(client):
    estate = Estate()
    ticket = estate.repair()
    client.force_login(estate.neighbour)
    assert client.get(reverse("repairs-detail", args=[ticket.pk])).status_code == 404
    assert (
        client.post(reverse("repairs-act", args=[ticket.pk]), {"action": "cancel"}).status_code
        == 404
    )
    assert Ticket.objects.get(pk=ticket.pk).status == Status.SUBMITTED


def test_the_resident_closes_and_rates_from_the_detail_page(client):
    estate = Estate()
    ticket = estate.repair()
    services.ticket_transition(ticket=ticket, actor=estate.staff, action="accept")
    services.ticket_transition(ticket=ticket, actor=estate.staff, action="resolve")
    client.force_login(estate.filer)
    detail = reverse("repairs-detail", args=[ticket.pk])
    page = html(client.get(detail))
    assert 'value="close"' in page and 'value="reopen"' in page
    assert reverse("repairs-rate", args=[ticket.pk]) in page

    client.post(reverse("repairs-act", args=[ticket.pk]), {"action": "close", "next": detail})
    client.post(reverse("repairs-rate", args=[ticket.pk]), {"stars": "5", "comment": "满意"})

    ticket.refresh_from_db()
    assert ticket.status == Status.CLOSED
    assert TicketRating.objects.get(ticket=ticket).stars == 5
    page = html(client.get(detail))
    assert "★★★★★" in page
    assert reverse("repairs-rate", args=[ticket.pk]) not in page  # once


def test_a_page_action_the_state_forbids_comes_back_as_a_message(client):
    estate = Estate()
    ticket = estate.repair()
    services.ticket_transition(ticket=ticket, actor=estate.staff, action="accept")
    client.force_login(estate.colleague)
    response = client.post(
        reverse("repairs-act", args=[ticket.pk]),
        {"action": "accept", "next": reverse("repairs-queue")},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("repairs-queue")
    assert [m.level_tag for m in get_messages(response.wsgi_request)] == ["error"]
    assert ticket.events.count() == 2


def test_a_page_action_the_person_may_not_take_is_403(client):
    estate = Estate()
    ticket = estate.repair()
    client.force_login(estate.filer)
    response = client.post(reverse("repairs-act", args=[ticket.pk]), {"action": "accept"})
    assert response.status_code == 403
    assert Ticket.objects.get(pk=ticket.pk).status == Status.SUBMITTED


def test_next_never_leaves_the_site(client):
    estate = Estate()
    ticket = estate.repair()
    client.force_login(estate.staff)
    response = client.post(
        reverse("repairs-act", args=[ticket.pk]),
        {"action": "accept", "next": "https://evil.example.org/"},
    )
    assert response["Location"] == reverse("repairs-detail", args=[ticket.pk])


# --- the staff console ------------------------------------------------------------------------


def test_the_queue_is_for_staff_and_centre_admins(client):
    estate = Estate()
    client.force_login(estate.filer)
    assert client.get(reverse("repairs-queue")).status_code == 403
    client.force_login(estate.committee)
    assert client.get(reverse("repairs-queue")).status_code == 403
    client.force_login(estate.centre_admin)
    assert client.get(reverse("repairs-queue")).status_code == 200


def test_the_queue_lists_open_tickets_most_urgent_first_with_their_actions(client):
    estate = Estate()
    later = estate.repair(title="晚到期", at=hours_ago(0.5))
    overdue = estate.report(title="已超时", at=hours_ago(2))
    done = estate.repair(title="已完成")
    services.ticket_transition(ticket=done, actor=estate.staff, action="accept")
    services.ticket_transition(ticket=done, actor=estate.staff, action="resolve")
    client.force_login(estate.staff)

    page = html(client.get(reverse("repairs-queue")))

    assert page.index("已超时") < page.index("晚到期")
    assert "已完成" not in page
    assert f'id="ticket-{overdue.pk}"' in page
    assert 'value="accept"' in page
    # The region refreshes itself: a live URL for the fragment and the script, no reload loop.
    assert 'data-live-url="/repairs/queue/?' in page
    assert "fragment=1" in page
    assert "js/repairs-live.js" in page
    assert 'http-equiv="refresh"' not in page
    assert later.title in page


def test_the_queue_fragment_is_the_live_region_only(client):
    estate = Estate()
    estate.repair(title="新报修")
    client.force_login(estate.staff)
    fragment = html(client.get(reverse("repairs-queue"), {"fragment": "1"}))
    assert "新报修" in fragment
    assert "<html" not in fragment
    assert '<form method="get"' not in fragment  # the filters are not refreshed


def test_queue_filters(client):
    estate = Estate()
    other_estate = CommunityFactory(
        company=estate.community.company, centre=estate.community.centre
    )
    far = resident(HouseholdFactory(building__community=other_estate))
    repair = estate.repair(title="甲报修")
    report = estate.report(title="乙报事", at=hours_ago(2))
    elsewhere = estate.report(title="丙外小区", filed_by=far)
    services.ticket_transition(ticket=repair, actor=estate.staff, action="accept")
    services.ticket_transition(ticket=repair, actor=estate.staff, action="assign")
    client.force_login(estate.staff)
    url = reverse("repairs-queue")

    def titles(query) -> set[str]:
        page = html(client.get(url, {**query, "fragment": "1"}))
        return {t.title for t in (repair, report, elsewhere) if t.title in page}

    assert titles({}) == {"甲报修", "乙报事", "丙外小区"}
    assert titles({"kind": "repair"}) == {"甲报修"}
    assert titles({"overdue": "on"}) == {"乙报事"}
    assert titles({"community": other_estate.pk}) == {"丙外小区"}
    assert titles({"category": estate.report_category.pk}) == {"乙报事", "丙外小区"}
    assert titles({"status": "assigned"}) == {"甲报修"}
    assert titles({"mine": "on"}) == {"甲报修"}
    assert titles({"status": "closed"}) == set()
    # Nonsense in the filters is ignored, never an error page.
    for nonsense in [{"status": "lost"}, {"category": "x"}, {"page": "99"}, {"page_size": "-3"}]:
        assert client.get(url, nonsense).status_code == 200


def test_a_centre_admin_watches_the_queue_without_action_buttons(client):
    estate = Estate()
    estate.repair(title="待处理")
    client.force_login(estate.centre_admin)
    page = html(client.get(reverse("repairs-queue")))
    assert "待处理" in page
    assert 'name="action"' not in page


def test_staff_assign_a_colleague_from_the_queue(client):
    estate = Estate()
    ticket = estate.repair()
    services.ticket_transition(ticket=ticket, actor=estate.staff, action="accept")
    client.force_login(estate.staff)
    page = html(client.get(reverse("repairs-queue")))
    assert f'<option value="{estate.colleague.pk}"' in page
    assert f'<option value="{estate.other_staff.pk}"' not in page

    queue_url = reverse("repairs-queue") + "?kind=repair"
    response = client.post(
        reverse("repairs-act", args=[ticket.pk]),
        {"action": "assign", "assignee": estate.colleague.pk, "next": queue_url},
    )

    assert response["Location"] == queue_url
    ticket.refresh_from_db()
    assert (ticket.status, ticket.assignee) == (Status.ASSIGNED, estate.colleague)


def _many_tickets(estate: Estate, count: int) -> None:
    other_estate = CommunityFactory(
        company=estate.community.company, centre=estate.community.centre
    )
    far = resident(HouseholdFactory(building__community=other_estate))
    for number in range(count):
        ticket = estate.repair() if number % 2 else estate.report(filed_by=far)
        if number % 3 == 0:
            services.ticket_transition(ticket=ticket, actor=estate.staff, action="accept")
        if number % 6 == 0:
            services.ticket_transition(
                ticket=ticket, actor=estate.staff, action="assign", assignee=estate.colleague
            )


@pytest.mark.parametrize("fragment", [False, True], ids=["page", "fragment"])
def test_the_queue_costs_the_same_queries_whatever_the_page_size(
    client, django_assert_max_num_queries, fragment
):
    estate = Estate()
    _many_tickets(estate, 40)
    client.force_login(estate.staff)

    def queries(page_size: int) -> int:
        query = {"page_size": page_size, **({"fragment": "1"} if fragment else {})}
        with CaptureQueriesContext(connection) as captured:
            page = html(client.get(reverse("repairs-queue"), query))
        assert len(re.findall(r'<article class="card ticket', page)) == page_size
        return len(captured)

    small, large = queries(2), queries(40)
    assert small == large
    with django_assert_max_num_queries(15):
        client.get(reverse("repairs-queue"), {"page_size": 40})


# --- the walk-through of issue 4's "done when" -------------------------------------------------


def test_the_walk_through(client):
    estate = Estate()
    # A resident files a repair with a photo.
    client.force_login(estate.filer)
    client.post(
        reverse("repairs-new", args=["repair"]),
        {
            "category": estate.repair_category.pk,
            "title": "厨房水龙头漏水",
            "household": estate.household.pk,
            "photos": [upload(jpeg_bytes(), "tap.jpg")],
        },
    )
    ticket = Ticket.objects.get()
    # The staff console's live region shows it on its next refresh.
    client.force_login(estate.staff)
    assert "厨房水龙头漏水" in html(client.get(reverse("repairs-queue"), {"fragment": "1"}))
    # Staff accept, assign, resolve (one tap each, posted from the queue).
    act = reverse("repairs-act", args=[ticket.pk])
    client.post(act, {"action": "accept"})
    client.post(act, {"action": "assign", "assignee": estate.colleague.pk})
    client.force_login(estate.colleague)
    client.post(act, {"action": "start"})
    client.post(act, {"action": "resolve", "note": "换了阀芯"})
    # The resident is told, closes and rates it.
    assert Notice.objects.filter(user=estate.filer, link=f"/repairs/{ticket.pk}/").exists()
    client.force_login(estate.filer)
    client.post(act, {"action": "close"})
    client.post(reverse("repairs-rate", args=[ticket.pk]), {"stars": "5"})
    # An overdue ticket is escalated by the job.
    late = estate.report()
    assert services.ticket_escalate_overdue(now=late.response_due + timedelta(minutes=1)) == 1
    assert Notice.objects.filter(user=estate.manager, link=f"/repairs/{late.pk}/").exists()
    # This month's figures: the late one is still open.
    ticket.refresh_from_db()
    assert ticket.status == Status.CLOSED
    figures = selectors.handling_figures(community=estate.community, period=Period.current())
    assert (figures.total, figures.handled, figures.average_stars) == (2, 1, 5)


@pytest.mark.parametrize(
    "query",
    [{"category": "9" * 30}, {"community": "9" * 30}, {"page": "9" * 30}, {"page_size": "9" * 30}],
)
def test_out_of_range_queue_filters_are_ignored(client, query):
    estate = Estate()
    client.force_login(estate.staff)
    assert client.get(reverse("repairs-queue"), query).status_code == 200


def test_out_of_range_ids_in_page_posts_are_not_server_errors(client):
    estate = Estate()
    ticket = estate.repair()
    services.ticket_transition(ticket=ticket, actor=estate.staff, action="accept")
    client.force_login(estate.staff)
    response = client.post(
        reverse("repairs-act", args=[ticket.pk]), {"action": "assign", "assignee": "9" * 30}
    )
    assert response.status_code == 302
    client.force_login(estate.filer)
    response = client.post(
        reverse("repairs-new", args=["repair"]),
        {"category": "9" * 30, "title": "x", "household": "9" * 30},
    )
    assert response.status_code == 200
    assert Ticket.objects.count() == 1
