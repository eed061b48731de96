"""JSON API of the repairs app (contract: API.md, "tickets" rows). Thin views: a serializer reads
the input, one selector or service does the work, a serializer writes the answer.

    GET  /api/v1/ticket-categories/?kind=                       offered categories (paginated)
    GET  /api/v1/tickets/?status=&kind=&category=&community=&household=&overdue=&ordering=
    POST /api/v1/tickets/                                       a resident files a ticket
    GET  /api/v1/tickets/{id}/                                  detail, timeline, photos, rating
    POST /api/v1/tickets/{id}/transition/                       accept, assign, start, resolve, …
    POST /api/v1/tickets/{id}/rating/                           the filer rates it, once
    POST /api/v1/tickets/{id}/photos/                           multipart `image`, up to 6
    GET  /api/v1/tickets/{id}/photos/{photo_id}/                the image itself (scoped)
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import FileResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.generics import GenericAPIView, ListAPIView
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from community import selectors as community_selectors
from community.models import Community, Household, User
from config import security
from config.api import throttled_response
from repairs import selectors, services, transitions
from repairs.models import Kind, Status, Ticket, TicketCategory, TicketEvent, TicketPhoto
from repairs.photos import FORMATS

MAX_ID = 2**63 - 1  # the largest primary key: larger numbers are bad input, not a database error


class TicketCategorySerializer(serializers.ModelSerializer):
    class Meta:
        model = TicketCategory
        fields = ["id", "kind", "name", "response_hours", "resolve_hours"]


class TicketSerializer(serializers.ModelSerializer):
    """A ticket as lists show it: the contract's fields, and where and how urgent it is."""

    category_name = serializers.CharField(source="category.name", read_only=True)
    community_name = serializers.CharField(source="community.name", read_only=True)
    place = serializers.CharField(read_only=True)
    assignee_name = serializers.SerializerMethodField()
    overdue = serializers.SerializerMethodField()

    class Meta:
        model = Ticket
        fields = [
            "id",
            "kind",
            "category",
            "category_name",
            "title",
            "status",
            "created_at",
            "updated_at",
            "assignee",
            "assignee_name",
            "response_due",
            "resolve_due",
            "next_due",
            "overdue",
            "community",
            "community_name",
            "household",
            "location",
            "place",
        ]
        read_only_fields = fields

    def get_assignee_name(self, ticket) -> str | None:
        return ticket.assignee.get_display_name() if ticket.assignee_id else None

    def get_overdue(self, ticket) -> bool:
        return ticket.is_overdue(self.context.get("now"))


class TicketEventSerializer(serializers.ModelSerializer):
    # "event", not "kind": the ticket's own `kind` (report / repair) is another set of values.
    event = serializers.ChoiceField(source="kind", choices=TicketEvent.Kind.choices, read_only=True)
    # Plain strings: the ticket's status values, or "" for events that do not move the ticket.
    from_status = serializers.CharField(read_only=True)
    to_status = serializers.CharField(read_only=True)
    actor_name = serializers.SerializerMethodField()
    assignee_name = serializers.SerializerMethodField()
    label = serializers.CharField(source="get_kind_display", read_only=True)

    class Meta:
        model = TicketEvent
        fields = [
            "event",
            "label",
            "actor",
            "actor_name",
            "from_status",
            "to_status",
            "assignee",
            "assignee_name",
            "note",
            "created_at",
        ]
        read_only_fields = fields

    def get_actor_name(self, event) -> str | None:
        return event.actor.get_display_name() if event.actor_id else None

    def get_assignee_name(self, event) -> str | None:
        return event.assignee.get_display_name() if event.assignee_id else None


class TicketPhotoSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = TicketPhoto
        fields = ["id", "url", "content_type", "width", "height", "size", "created_at"]
        read_only_fields = fields

    def get_url(self, photo) -> str:
        path = reverse("api-ticket-photo", args=[photo.ticket_id, photo.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class TicketRatingSerializer(serializers.Serializer):
    stars = serializers.IntegerField(min_value=1, max_value=5)
    comment = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    created_at = serializers.DateTimeField(read_only=True)


class TicketDetailSerializer(TicketSerializer):
    filed_by_name = serializers.CharField(source="filed_by.get_display_name", read_only=True)
    allowed_actions = serializers.SerializerMethodField()
    photos = TicketPhotoSerializer(many=True, read_only=True)
    timeline = TicketEventSerializer(source="events", many=True, read_only=True)
    rating = serializers.SerializerMethodField()

    class Meta(TicketSerializer.Meta):
        fields = [
            *TicketSerializer.Meta.fields,
            "description",
            "filed_by",
            "filed_by_name",
            "accepted_at",
            "resolved_at",
            "closed_at",
            "allowed_actions",
            "photos",
            "timeline",
            "rating",
        ]
        read_only_fields = fields

    def get_allowed_actions(self, ticket) -> list[str]:
        return selectors.ticket_available_actions(viewer=self.context["viewer"], ticket=ticket)

    @extend_schema_field(TicketRatingSerializer(allow_null=True))
    def get_rating(self, ticket):
        rating = getattr(ticket, "rating", None)
        return TicketRatingSerializer(rating).data if rating else None


class TicketCreateSerializer(serializers.Serializer):
    """What a resident sends to file a ticket: for one of their households, or for a common-area
    `location` (with `community` when they live in more than one)."""

    kind = serializers.ChoiceField(choices=Kind.choices)
    category = serializers.PrimaryKeyRelatedField(queryset=TicketCategory.objects.all())
    title = serializers.CharField(max_length=100)
    description = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, default=""
    )
    household = serializers.PrimaryKeyRelatedField(
        queryset=Household.objects.none(), required=False, allow_null=True, default=None
    )
    community = serializers.PrimaryKeyRelatedField(
        queryset=Community.objects.none(), required=False, allow_null=True, default=None
    )
    location = serializers.CharField(max_length=120, required=False, allow_blank=True, default="")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is None:  # the schema generator inspects the class without a request
            return
        user = request.user
        # Only the caller's own households and communities: another household's id reads the
        # same as one that does not exist.
        resident = [community_selectors.RESIDENT]
        self.fields["household"].queryset = community_selectors.household_list(
            user=user, roles=resident
        )
        self.fields["community"].queryset = community_selectors.community_list(
            user=user, roles=resident
        )


class TransitionSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=transitions.ACTIONS)
    assignee = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.filter(is_active=True),
        required=False,
        allow_null=True,
        default=None,
        help_text="For assign: the colleague to assign (default: yourself).",
    )
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class PhotoUploadSerializer(serializers.Serializer):
    image = serializers.FileField(
        help_text="A JPEG, PNG or WebP photo; checked by its content, re-encoded without EXIF."
    )


class TicketListQuerySerializer(serializers.Serializer):
    status = serializers.CharField(
        required=False,
        help_text="`open` (every status that still needs work), or one status: "
        + ", ".join(Status.values),
    )
    kind = serializers.ChoiceField(choices=Kind.choices, required=False)
    category = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False)
    community = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False)
    household = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False)
    overdue = serializers.BooleanField(required=False, allow_null=True, default=None)
    ordering = serializers.ChoiceField(
        choices=[("deadline", "deadline"), ("-created_at", "newest first")],
        required=False,
        default="-created_at",
    )

    def validate_status(self, value: str) -> str:
        if value != selectors.OPEN and value not in Status.values:
            raise serializers.ValidationError(_("Unknown status."))
        return value


class CategoryQuerySerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Kind.choices, required=False)


@extend_schema(parameters=[CategoryQuerySerializer])
class TicketCategoryListView(ListAPIView):
    """The ticket categories residents may choose from, with their deadlines in hours. A bare
    array, as API.md shows it: a short lookup list a form loads whole."""

    serializer_class = TicketCategorySerializer
    pagination_class = None

    def get_queryset(self):
        query = CategoryQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return selectors.ticket_category_list(kind=query.validated_data.get("kind"))


class TicketListCreateView(security.ThrottleMessageMixin, GenericAPIView):
    """GET: the tickets in the caller's scope (residents: their households' and their own
    common-area tickets; staff: their company's estates; centre admins: their centre's).
    POST: a resident files a report or repair (rate-limited per user, with the filing form)."""

    throttle_classes = [security.TicketRateThrottle]  # counts POSTs only

    serializer_class = TicketSerializer
    queryset = Ticket.objects.none()  # for the schema; the scoped list comes from the selector

    @extend_schema(parameters=[TicketListQuerySerializer], responses=TicketSerializer(many=True))
    def get(self, request):
        query = TicketListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        viewer = selectors.ticket_viewer(user=request.user)
        community = params.get("community")
        qs = selectors.ticket_filter(
            selectors.ticket_list(
                viewer=viewer, community_ids=None if community is None else [community]
            ),
            status=params.get("status"),
            kind=params.get("kind"),
            category_id=params.get("category"),
            community_id=params.get("community"),
            household_id=params.get("household"),
            overdue=params.get("overdue"),
        )
        if params["ordering"] == "deadline":
            qs = selectors.ticket_order_by_deadline(qs, status=params.get("status"))
        else:
            qs = qs.order_by("-created_at", "-pk")
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(TicketSerializer(page, many=True).data)

    @extend_schema(
        request=TicketCreateSerializer,
        responses={
            201: TicketDetailSerializer,
            400: OpenApiResponse(),
            403: OpenApiResponse(),
            429: throttled_response(),
        },
    )
    def post(self, request):
        if not selectors.may_file_tickets(user=request.user):
            raise PermissionDenied(_("Only residents can file reports and repairs."))
        data = TicketCreateSerializer(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        ticket = services.ticket_create(filed_by=request.user, **data.validated_data)
        return _detail_response(request, ticket.pk, status.HTTP_201_CREATED)


def _detail_response(request, ticket_id, code=status.HTTP_200_OK) -> Response:
    viewer = selectors.ticket_viewer(user=request.user)
    ticket = selectors.ticket_detail_get(viewer=viewer, ticket_id=ticket_id)
    context = {"request": request, "viewer": viewer}
    return Response(TicketDetailSerializer(ticket, context=context).data, status=code)


class TicketDetailView(APIView):
    """One ticket in the caller's scope, with its timeline, photos, rating and the actions the
    caller may take on it now. Outside the scope: 404."""

    @extend_schema(responses=TicketDetailSerializer)
    def get(self, request, pk):
        return _detail_response(request, pk)


class TicketTransitionView(APIView):
    """Move the ticket: staff accept, assign, start, resolve, reject; the filer closes, reopens or
    cancels. Not allowed from the ticket's state: 409; not the caller's to take: 403."""

    @extend_schema(
        request=TransitionSerializer,
        responses={
            200: TicketDetailSerializer,
            400: OpenApiResponse(),
            403: OpenApiResponse(),
            404: OpenApiResponse(),
            409: OpenApiResponse(),
        },
    )
    def post(self, request, pk):
        ticket = selectors.ticket_get(user=request.user, ticket_id=pk)
        data = TransitionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.ticket_transition(ticket=ticket, actor=request.user, **data.validated_data)
        return _detail_response(request, pk)


class TicketRatingView(APIView):
    """The resident who filed the ticket rates it, once it is resolved, once."""

    @extend_schema(
        request=TicketRatingSerializer,
        responses={
            201: TicketRatingSerializer,
            400: OpenApiResponse(),
            403: OpenApiResponse(),
            404: OpenApiResponse(),
            409: OpenApiResponse(),
        },
    )
    def post(self, request, pk):
        ticket = selectors.ticket_get(user=request.user, ticket_id=pk)
        data = TicketRatingSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        rating = services.ticket_rate(ticket=ticket, user=request.user, **data.validated_data)
        return Response(TicketRatingSerializer(rating).data, status=status.HTTP_201_CREATED)


class TicketPhotoCreateView(APIView):
    """Add a photo (multipart field `image`): the filer or the company's staff, at most 6 per
    ticket (409 beyond), until the ticket is closed. Not an image, or too large: 400."""

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": PhotoUploadSerializer},
        responses={
            201: TicketPhotoSerializer,
            400: OpenApiResponse(),
            403: OpenApiResponse(),
            404: OpenApiResponse(),
            409: OpenApiResponse(),
        },
    )
    def post(self, request, pk):
        ticket = selectors.ticket_get(user=request.user, ticket_id=pk)
        data = PhotoUploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            photo = services.ticket_photo_add(
                ticket=ticket, user=request.user, upload=data.validated_data["image"]
            )
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"image": exc.messages}) from exc
        body = TicketPhotoSerializer(photo, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED)


class AnyAccept(BaseContentNegotiation):
    """The photo endpoint answers an image whatever the client accepts (an <img> tag asks for
    image/*); errors are still JSON."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class TicketPhotoFileView(APIView):
    """The photo's image, for anyone who may see the ticket (404 otherwise)."""

    content_negotiation_class = AnyAccept

    @extend_schema(responses={(200, "image/*"): OpenApiTypes.BINARY})
    def get(self, request, pk, photo_id):
        viewer = selectors.ticket_viewer(user=request.user)
        photo = selectors.ticket_photo_get(viewer=viewer, ticket_id=pk, photo_id=photo_id)
        # Only the image types repairs.photos writes; never a type a browser would run, and
        # (with nosniff) never guessed from the bytes. The name is ours, not the uploader's.
        content_type = photo.content_type if photo.content_type in SAFE_PHOTO_TYPES else None
        extension = SAFE_PHOTO_TYPES.get(photo.content_type, "")
        response = FileResponse(
            photo.image.open("rb"),
            content_type=content_type or "application/octet-stream",
            as_attachment=content_type is None,
            filename=f"ticket-{photo.ticket_id}-photo-{photo.pk}{extension}",
        )
        response["X-Content-Type-Options"] = "nosniff"
        # The stored file never changes; only the signed-in browser may keep it.
        response["Cache-Control"] = "private, max-age=86400"
        return response


# Content type -> file extension, of every format repairs.photos stores.
SAFE_PHOTO_TYPES = {kind: extension for kind, extension, _options in FORMATS.values()}
