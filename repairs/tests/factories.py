"""factory_boy factories and small helpers for the repairs tests, on top of community's."""

from datetime import datetime, timedelta
from io import BytesIO

import factory
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image

from community.models import Role
from community.tests.factories import CommunityFactory, HouseholdFactory, member, resident
from repairs import services
from repairs.models import Kind, TicketCategory


class TicketCategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TicketCategory

    kind = Kind.REPAIR
    name = factory.Sequence(lambda n: f"类别{n}")
    response_hours = 2
    resolve_hours = 24


class Estate:
    """One community with a filer's household, a neighbour's, two staff of the company (one of
    them its manager), a centre admin, and staff of another company."""

    def __init__(self):
        self.community = CommunityFactory()
        self.household = HouseholdFactory(building__community=self.community)
        self.neighbour_household = HouseholdFactory(building=self.household.building)
        self.filer = resident(self.household)
        self.housemate = resident(self.household)
        self.neighbour = resident(self.neighbour_household)
        self.staff = member(Role.PROPERTY_STAFF, company=self.community.company)
        self.colleague = member(Role.PROPERTY_STAFF, company=self.community.company)
        self.manager = member(Role.PROPERTY_STAFF, company=self.community.company)
        self.manager.memberships.update(is_manager=True)
        self.centre_admin = member(Role.CENTRE_ADMIN, centre=self.community.centre)
        self.committee = member(Role.COMMITTEE_MEMBER, community=self.community)
        other = CommunityFactory()
        self.other_staff = member(Role.PROPERTY_STAFF, company=other.company)
        self.repair_category = TicketCategoryFactory(
            kind=Kind.REPAIR, response_hours=2, resolve_hours=24
        )
        self.report_category = TicketCategoryFactory(
            kind=Kind.REPORT, response_hours=1, resolve_hours=8
        )

    def repair(self, *, at: datetime | None = None, **kwargs):
        """A repair request filed by `filer` for their flat."""
        fields = {
            "filed_by": self.filer,
            "kind": Kind.REPAIR,
            "category": self.repair_category,
            "title": "卫生间水管漏水",
            "household": self.household,
            "at": at,
        }
        return services.ticket_create(**{**fields, **kwargs})

    def report(self, *, at: datetime | None = None, **kwargs):
        """A common-area incident report filed by `filer`."""
        fields = {
            "filed_by": self.filer,
            "kind": Kind.REPORT,
            "category": self.report_category,
            "title": "路灯不亮",
            "location": "3幢东侧",
            "at": at,
        }
        return services.ticket_create(**{**fields, **kwargs})


def jpeg_bytes(size=(64, 48), color=(200, 30, 40), exif: bytes | None = None, noise=False) -> bytes:
    image = Image.new("RGB", size, color)
    if noise:
        image = Image.effect_noise(size, 100).convert("RGB")
    buffer = BytesIO()
    options = {"exif": exif} if exif else {}
    image.save(buffer, format="JPEG", **options)
    return buffer.getvalue()


def png_bytes(size=(32, 32)) -> bytes:
    buffer = BytesIO()
    Image.new("RGBA", size, (0, 128, 0, 128)).save(buffer, format="PNG")
    return buffer.getvalue()


def upload(content: bytes, name="photo.jpg", content_type="image/jpeg") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type=content_type)


def hours_ago(hours: float) -> datetime:
    return timezone.now() - timedelta(hours=hours)
