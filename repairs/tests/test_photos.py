"""Ticket photos: real images only (checked by content), size-limited, at most six, re-encoded
without EXIF, stored through Django's storage API and served only within the ticket's scope."""

import re
from io import BytesIO

import pytest
from django.core.files.storage import default_storage
from django.test import override_settings
from django.urls import reverse
from PIL import Image

from repairs import services
from repairs.models import MAX_PHOTOS, TicketEvent, TicketPhoto
from repairs.tests.factories import Estate, jpeg_bytes, png_bytes, upload

pytestmark = pytest.mark.django_db


PHOTO_FOLDER = "repairs/photos"  # flat, random names: no ticket number in the path


def stored_files() -> list[str]:
    try:
        return default_storage.listdir(PHOTO_FOLDER)[1]
    except FileNotFoundError:
        return []


def post_photo(client, ticket, content: bytes, name="photo.jpg", content_type="image/jpeg"):
    return client.post(
        reverse("api-ticket-photos", args=[ticket.pk]),
        {"image": upload(content, name, content_type)},
        format="multipart",
    )


def exif_with_gps() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x8825] = {1: "N", 2: (29.0, 0.0, 0.0)}  # GPS IFD
    return exif.tobytes()


def test_the_filer_adds_a_photo_and_it_is_stored_re_encoded_without_exif(as_user):
    estate = Estate()
    ticket = estate.repair()
    original = jpeg_bytes(size=(640, 480), exif=exif_with_gps())
    assert Image.open(BytesIO(original)).getexif()  # the phone's photo carries EXIF

    response = post_photo(as_user(estate.filer), ticket, original, name="IMG_0001.JPG")

    assert response.status_code == 201, response.data
    assert (response.data["width"], response.data["height"]) == (640, 480)
    assert response.data["content_type"] == "image/jpeg"
    photo = TicketPhoto.objects.get(ticket=ticket)
    assert re.fullmatch(rf"{PHOTO_FOLDER}/[0-9a-f]{{32}}\.jpg", photo.image.name)
    assert "IMG_0001" not in photo.image.name
    assert default_storage.exists(photo.image.name)
    with default_storage.open(photo.image.name) as stored:
        image = Image.open(stored)
        assert image.format == "JPEG"
        assert dict(image.getexif()) == {}
    assert ticket.events.filter(kind=TicketEvent.Kind.PHOTO_ADDED, actor=estate.filer).exists()


def test_a_png_stays_a_png(as_user):
    estate = Estate()
    ticket = estate.repair()
    response = post_photo(as_user(estate.staff), ticket, png_bytes(), "fix.png", "image/png")
    assert response.status_code == 201
    assert response.data["content_type"] == "image/png"


@pytest.mark.parametrize(
    ("content", "name"),
    [
        (b"%PDF-1.4 this is not a photo at all" * 20, "invoice.jpg"),
        (b"MZ\x90\x00 an executable renamed" * 20, "photo.jpg"),
        (b"GIF89a" + b"\x00" * 100, "photo.jpg"),
        (jpeg_bytes()[:200], "truncated.jpg"),
        (b"", "empty.jpg"),
    ],
    ids=["pdf", "exe", "broken-gif", "truncated-jpeg", "empty"],
)
def test_a_file_that_is_not_an_image_is_refused_and_nothing_is_stored(as_user, content, name):
    estate = Estate()
    ticket = estate.repair()
    events = ticket.events.count()

    response = post_photo(as_user(estate.filer), ticket, content, name)

    assert response.status_code == 400
    assert "image" in response.data
    assert TicketPhoto.objects.filter(ticket=ticket).count() == 0
    assert stored_files() == []
    assert ticket.events.count() == events


def test_a_real_gif_is_refused_too(as_user):
    buffer = BytesIO()
    Image.new("P", (10, 10)).save(buffer, format="GIF")
    estate = Estate()
    ticket = estate.repair()
    response = post_photo(as_user(estate.filer), ticket, buffer.getvalue(), "a.gif", "image/gif")
    assert response.status_code == 400
    assert TicketPhoto.objects.count() == 0


@override_settings(REPAIRS_PHOTO_MAX_BYTES=20_000)
def test_an_oversized_photo_is_refused_and_nothing_is_stored(as_user):
    estate = Estate()
    ticket = estate.repair()
    big = jpeg_bytes(size=(400, 400), noise=True)
    assert len(big) > 20_000
    small = jpeg_bytes(size=(40, 40))
    assert len(small) < 20_000

    response = post_photo(as_user(estate.filer), ticket, big)

    assert response.status_code == 400
    assert "image" in response.data
    assert TicketPhoto.objects.filter(ticket=ticket).count() == 0
    assert stored_files() == []
    # A photo under the limit is fine.
    assert post_photo(as_user(estate.filer), ticket, small).status_code == 201


def test_a_decompression_bomb_is_refused_without_decoding_it(as_user):
    buffer = BytesIO()
    Image.new("1", (8000, 8000)).save(buffer, format="PNG")  # 64 Mpx in a tiny file
    estate = Estate()
    ticket = estate.repair()
    response = post_photo(as_user(estate.filer), ticket, buffer.getvalue(), "b.png", "image/png")
    assert response.status_code == 400
    assert TicketPhoto.objects.count() == 0


def test_a_ticket_takes_at_most_six_photos(as_user):
    estate = Estate()
    ticket = estate.repair()
    client = as_user(estate.filer)
    for _ in range(MAX_PHOTOS):
        assert post_photo(client, ticket, jpeg_bytes()).status_code == 201

    response = post_photo(client, ticket, jpeg_bytes())

    assert response.status_code == 409
    assert TicketPhoto.objects.filter(ticket=ticket).count() == MAX_PHOTOS
    assert len(stored_files()) == MAX_PHOTOS


@pytest.mark.parametrize(
    ("who", "status"),
    [("housemate", 403), ("centre_admin", 403), ("neighbour", 404), ("other_staff", 404)],
)
def test_only_the_filer_and_the_staff_add_photos(as_user, who, status):
    estate = Estate()
    ticket = estate.repair()
    response = post_photo(as_user(getattr(estate, who)), ticket, jpeg_bytes())
    assert response.status_code == status
    assert TicketPhoto.objects.count() == 0
    assert stored_files() == []


def test_no_photos_on_a_finished_ticket(as_user):
    estate = Estate()
    ticket = estate.repair()
    services.ticket_transition(ticket=ticket, actor=estate.filer, action="cancel")
    assert post_photo(as_user(estate.filer), ticket, jpeg_bytes()).status_code == 409
    assert TicketPhoto.objects.count() == 0


def test_a_photo_without_the_file_field_is_bad_input(as_user):
    estate = Estate()
    ticket = estate.repair()
    response = as_user(estate.filer).post(
        reverse("api-ticket-photos", args=[ticket.pk]), {"picture": "x"}, format="multipart"
    )
    assert response.status_code == 400
    response = as_user(estate.filer).post(
        reverse("api-ticket-photos", args=[ticket.pk]), {"image": "x"}, format="json"
    )
    assert response.status_code == 415


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("filer", 200),
        ("housemate", 200),
        ("staff", 200),
        ("centre_admin", 200),
        ("neighbour", 404),
        ("other_staff", 404),
        ("committee", 404),
    ],
)
def test_a_photo_is_served_only_to_those_who_see_the_ticket(as_user, who, status):
    estate = Estate()
    ticket = estate.repair()
    photo = services.ticket_photo_add(ticket=ticket, user=estate.filer, upload=upload(jpeg_bytes()))
    url = reverse("api-ticket-photo", args=[ticket.pk, photo.pk])

    response = as_user(getattr(estate, who)).get(url, HTTP_ACCEPT="image/avif,image/webp,*/*")

    assert response.status_code == status
    if status == 200:
        assert response["Content-Type"] == "image/jpeg"
        assert "private" in response["Cache-Control"]
        body = b"".join(response.streaming_content)
        assert Image.open(BytesIO(body)).format == "JPEG"


def test_a_photo_of_another_ticket_is_not_found_through_this_one(as_user):
    estate = Estate()
    first, second = estate.repair(), estate.repair()
    photo = services.ticket_photo_add(ticket=second, user=estate.filer, upload=upload(jpeg_bytes()))
    url = reverse("api-ticket-photo", args=[first.pk, photo.pk])
    assert as_user(estate.filer).get(url).status_code == 404


def test_an_anonymous_request_gets_401():
    from rest_framework.test import APIClient

    estate = Estate()
    ticket = estate.repair()
    photo = services.ticket_photo_add(ticket=ticket, user=estate.filer, upload=upload(jpeg_bytes()))
    response = APIClient().get(reverse("api-ticket-photo", args=[ticket.pk, photo.pk]))
    assert response.status_code == 401
