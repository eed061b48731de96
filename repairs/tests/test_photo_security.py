"""How ticket photos are served: a safe content type that is never sniffed, shown inline under a
name of ours, stored under a random name that no ticket number leads to, and only to those who
may see the ticket (404 for everyone else, exactly as for a photo that does not exist)."""

import re

import pytest
from django.core.files.storage import default_storage
from django.urls import reverse

from repairs import services
from repairs.models import TicketPhoto
from repairs.tests.factories import Estate, jpeg_bytes, png_bytes, upload

pytestmark = pytest.mark.django_db


def photo_url(photo) -> str:
    return reverse("api-ticket-photo", args=[photo.ticket_id, photo.pk])


def add_photo(estate, ticket, content=None, name="IMG_0001.JPG", content_type="image/jpeg"):
    return services.ticket_photo_add(
        ticket=ticket,
        user=estate.filer,
        upload=upload(content or jpeg_bytes(), name, content_type),
    )


def test_a_photo_is_served_as_its_image_type_inline_under_our_name_and_never_sniffed(as_user):
    estate = Estate()
    ticket = estate.repair()
    photo = add_photo(estate, ticket, name='"><script>alert(1)</script>.jpg')

    response = as_user(estate.filer).get(photo_url(photo))

    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"] == (
        f'inline; filename="ticket-{ticket.pk}-photo-{photo.pk}.jpg"'
    )
    assert "script" not in response["Content-Disposition"]
    assert response["Cache-Control"] == "private, max-age=86400"


def test_a_png_keeps_its_type_and_extension(as_user):
    estate = Estate()
    ticket = estate.repair()
    photo = add_photo(estate, ticket, png_bytes(), "fix.png", "image/png")
    response = as_user(estate.staff).get(photo_url(photo))
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"].endswith(f'-photo-{photo.pk}.png"')


def test_a_row_with_an_unexpected_type_is_downloaded_as_bytes_not_rendered(as_user):
    """Defence in depth: should a row ever say text/html, the browser still gets no page."""
    estate = Estate()
    ticket = estate.repair()
    photo = add_photo(estate, ticket)
    TicketPhoto.objects.filter(pk=photo.pk).update(content_type="text/html")

    response = as_user(estate.filer).get(photo_url(photo))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"


def test_the_stored_name_is_random_and_names_no_ticket(as_user):
    estate = Estate()
    ticket = estate.repair()
    first, second = add_photo(estate, ticket), add_photo(estate, ticket)

    for photo in (first, second):
        assert re.fullmatch(r"repairs/photos/[0-9a-f]{32}\.jpg", photo.image.name)
        assert f"/{ticket.pk}/" not in photo.image.name
        assert "IMG_0001" not in photo.image.name
        assert default_storage.exists(photo.image.name)
    assert first.image.name != second.image.name
    # The storage path is not a URL anyone is served from.
    assert as_user(estate.filer).get(f"/media/{first.image.name}").status_code == 404


@pytest.mark.parametrize("who", ["neighbour", "other_staff", "committee"])
def test_someone_who_may_not_see_the_ticket_cannot_tell_the_photo_exists(as_user, who):
    estate = Estate()
    ticket = estate.repair()
    photo = add_photo(estate, ticket)
    client = as_user(getattr(estate, who))

    hidden = client.get(photo_url(photo))
    missing = client.get(reverse("api-ticket-photo", args=[ticket.pk, photo.pk + 1000]))

    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()
    assert not hidden.has_header("Content-Disposition")


def test_a_photo_is_served_through_its_own_ticket_only(as_user):
    estate = Estate()
    mine = estate.repair()
    neighbours = estate.repair(filed_by=estate.neighbour, household=estate.neighbour_household)
    theirs = services.ticket_photo_add(
        ticket=neighbours, user=estate.neighbour, upload=upload(jpeg_bytes())
    )
    # The filer sees their own ticket, but cannot reach the neighbour's photo through it.
    url = reverse("api-ticket-photo", args=[mine.pk, theirs.pk])
    assert as_user(estate.filer).get(url).status_code == 404
