"""JSON API of the community app: token sign-in and the caller's own profile (/me); and community
life (contract: API.md, "activities" and "consultations" rows; announcements in the same style):

    GET, POST   /api/v1/announcements/                    the board; post (staff, committee)
    GET         /api/v1/announcements/{id}/
    POST        /api/v1/announcements/{id}/read/          mark read (204)
    GET, POST   /api/v1/activities/?community=&kind=&when=upcoming|past
    GET         /api/v1/activities/{id}/
    POST, DELETE /api/v1/activities/{id}/signup/          take a place (201) / give it back (204)
    POST        /api/v1/activities/{id}/checkin/          {"code"}; organisers {"user","hours"?}
    GET         /api/v1/activities/{id}/participants/     the organiser's list, with the door code
    GET, POST   /api/v1/consultations/?community=&status=
    GET         /api/v1/consultations/{id}/
    POST        /api/v1/consultations/{id}/vote/          {"option","household"?} -> 201 / 200
    GET         /api/v1/consultations/{id}/ballots/       who voted how (committee, open ballots)
"""

from fractions import Fraction

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import PermissionDenied, Throttled, ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from community import selectors, services, tally
from community.models import (
    Activity,
    ActivityCheckin,
    Announcement,
    Ballot,
    Centre,
    Community,
    Consultation,
    Household,
    User,
)
from config import security
from config.api import throttled_response

MAX_ID = 2**63 - 1  # the largest primary key: larger numbers are bad input, not a database error


class TokenObtainView(ObtainAuthToken):
    """POST username and password, get the token to send as `Authorization: Token <token>`.
    Wrong credentials answer 400; repeated attempts from one address are throttled (429), and
    after settings.AXES_FAILURE_LIMIT wrong passwords for one username from one address that pair
    is locked out by django-axes (429 with Retry-After, as the browser login)."""

    permission_classes = [AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"

    @extend_schema(
        request=AuthTokenSerializer,
        responses={
            200: inline_serializer("TokenObtained", fields={"token": serializers.CharField()}),
            429: throttled_response(),
        },
    )
    def post(self, request, *args, **kwargs):
        try:
            return super().post(request, *args, **kwargs)
        except ValidationError:
            # axes flags the DRF request it was given (AxesMiddleware only sees the Django
            # request underneath, so it cannot answer for us).
            if getattr(request, "axes_locked_out", False):
                raise Throttled(
                    wait=settings.AXES_COOLOFF_TIME.total_seconds(),
                    detail=security.lockout_message(),
                ) from None
            raise


class RoleSerializer(serializers.Serializer):
    role = serializers.CharField()
    scope_type = serializers.CharField()
    scope_id = serializers.IntegerField()
    scope_name = serializers.CharField(source="scope.name")


class MeHouseholdSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="household.id")
    community = serializers.IntegerField(source="household.building.community_id")
    community_name = serializers.CharField(source="household.building.community.name")
    building = serializers.CharField(source="household.building.name", help_text="Building label.")
    unit = serializers.CharField(source="household.unit")
    area = serializers.DecimalField(source="household.area", max_digits=8, decimal_places=2)
    relation = serializers.CharField()


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    display_name = serializers.CharField()
    roles = RoleSerializer(many=True)
    households = MeHouseholdSerializer(many=True)


class MeView(APIView):
    """Who the caller is: their staff roles with scopes, and the households they live in today."""

    @extend_schema(responses=MeSerializer)
    def get(self, request):
        user = request.user
        me = {
            "id": user.pk,
            "username": user.get_username(),
            "display_name": user.get_display_name(),
            "roles": selectors.membership_list_for_user(user=user),
            "households": selectors.residency_list_for_user(user=user),
        }
        return Response(MeSerializer(me).data)


# ==============================================================================================
# Community life
# ==============================================================================================

ERRORS = {
    400: OpenApiResponse(description="Bad input, with field errors."),
    403: OpenApiResponse(description="Visible, but not the caller's to do."),
    404: OpenApiResponse(description="Not in the caller's scope."),
    409: OpenApiResponse(description="The state forbids it (full, closed, twice)."),
}


def _errors(*codes: int) -> dict:
    return {code: ERRORS[code] for code in codes}


# --- announcements ------------------------------------------------------------------------------


class AnnouncementSerializer(serializers.ModelSerializer):
    publisher = serializers.CharField(source="publisher_name", read_only=True)
    read = serializers.BooleanField(source="is_read", read_only=True)

    class Meta:
        model = Announcement
        fields = [
            "id",
            "centre",
            "community",
            "source",
            "publisher",
            "title",
            "body",
            "pinned",
            "published_at",
            "expires_at",
            "read",
        ]
        read_only_fields = fields


class AnnouncementCreateSerializer(serializers.Serializer):
    """To one `community`, or with `centre` alone to every community of that centre. `source`
    (centre, company, committee) only when the poster holds more than one of these roles."""

    community = serializers.PrimaryKeyRelatedField(
        queryset=Community.objects.none(), required=False, allow_null=True, default=None
    )
    centre = serializers.PrimaryKeyRelatedField(
        queryset=Centre.objects.none(), required=False, allow_null=True, default=None
    )
    source = serializers.ChoiceField(
        choices=Announcement.Source.choices, required=False, allow_null=True, default=None
    )
    title = serializers.CharField(max_length=120)
    body = serializers.CharField(max_length=5000)
    pinned = serializers.BooleanField(required=False, default=False)
    published_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is None:  # the schema generator inspects the class without a request
            return
        visible = selectors.community_list(user=request.user)
        self.fields["community"].queryset = visible
        self.fields["centre"].queryset = Centre.objects.filter(pk__in=visible.values("centre_id"))

    def validate(self, data):
        if (data["community"] is None) == (data["centre"] is None):
            raise serializers.ValidationError(
                {"community": _("Choose the community, or the whole centre.")}
            )
        return data


class AnnouncementListCreateView(GenericAPIView):
    """GET: the caller's board (pinned first, newest first; `read` per announcement).
    POST: the centre (centre admins), the company (property staff) or the committee posts."""

    serializer_class = AnnouncementSerializer
    queryset = Announcement.objects.none()  # for the schema; the scoped list is the selector's

    @extend_schema(responses=AnnouncementSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(selectors.announcement_list(user=request.user))
        return self.get_paginated_response(AnnouncementSerializer(page, many=True).data)

    @extend_schema(
        request=AnnouncementCreateSerializer,
        responses={201: AnnouncementSerializer, **_errors(400, 403)},
    )
    def post(self, request):
        data = AnnouncementCreateSerializer(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        announcement = services.announcement_publish(author=request.user, **data.validated_data)
        announcement.is_read = False
        return Response(AnnouncementSerializer(announcement).data, status=status.HTTP_201_CREATED)


class AnnouncementDetailView(APIView):
    @extend_schema(responses={200: AnnouncementSerializer, **_errors(404)})
    def get(self, request, pk):
        announcement = selectors.announcement_get(user=request.user, announcement_id=pk)
        return Response(AnnouncementSerializer(announcement).data)


class AnnouncementReadView(APIView):
    """Mark the announcement read for the caller (again: no change)."""

    @extend_schema(request=None, responses={204: None, **_errors(404)})
    def post(self, request, pk):
        announcement = selectors.announcement_get(user=request.user, announcement_id=pk)
        services.announcement_mark_read(user=request.user, announcement=announcement)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- activities ---------------------------------------------------------------------------------


class MyActivitySerializer(serializers.Serializer):
    signed_up = serializers.BooleanField()
    checked_in = serializers.BooleanField()
    hours = serializers.DecimalField(max_digits=3, decimal_places=1, allow_null=True)


class ActivitySerializer(serializers.ModelSerializer):
    """An activity as the contract shows it, with the caller's own place (`me`)."""

    community_name = serializers.CharField(source="community.name", read_only=True)
    organiser_name = serializers.CharField(source="organiser.get_display_name", read_only=True)
    places_left = serializers.IntegerField(read_only=True)
    me = serializers.SerializerMethodField()

    class Meta:
        model = Activity
        fields = [
            "id",
            "community",
            "community_name",
            "title",
            "kind",
            "place",
            "starts_at",
            "ends_at",
            "capacity",
            "signed_up",
            "places_left",
            "description",
            "hours",
            "organiser",
            "organiser_name",
            "me",
        ]
        read_only_fields = fields

    @extend_schema_field(MyActivitySerializer)
    def get_me(self, activity) -> dict:
        mine = {
            "signed_up": bool(getattr(activity, "my_signup", False)),
            "checked_in": bool(getattr(activity, "my_checkin", False)),
            "hours": getattr(activity, "my_hours", None),
        }
        return MyActivitySerializer(mine).data


class ActivityCreateSerializer(serializers.Serializer):
    community = serializers.PrimaryKeyRelatedField(queryset=Community.objects.none())
    kind = serializers.ChoiceField(choices=Activity.Kind.choices)
    title = serializers.CharField(max_length=120)
    place = serializers.CharField(max_length=120)
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    capacity = serializers.IntegerField(min_value=1, max_value=10000)
    description = serializers.CharField(
        max_length=5000, required=False, allow_blank=True, default=""
    )
    hours = serializers.DecimalField(
        max_digits=3,
        decimal_places=1,
        min_value=0,
        max_value=24,
        required=False,
        allow_null=True,
        default=None,
        help_text="Volunteering: hours credited per volunteer (default: the session's length).",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            self.fields["community"].queryset = selectors.community_list(user=request.user)

    def validate(self, data):
        if data["ends_at"] <= data["starts_at"]:
            raise serializers.ValidationError({"ends_at": _("It must end after it starts.")})
        return data


class ActivityListQuerySerializer(serializers.Serializer):
    community = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False)
    kind = serializers.ChoiceField(choices=Activity.Kind.choices, required=False)
    when = serializers.ChoiceField(
        choices=[(selectors.UPCOMING, "upcoming"), (selectors.PAST, "past")], required=False
    )


def _activity_response(request, pk, code=status.HTTP_200_OK) -> Response:
    activity = selectors.activity_get(user=request.user, activity_id=pk)
    return Response(ActivitySerializer(activity).data, status=code)


class ActivityListCreateView(GenericAPIView):
    """GET: the activities of the caller's communities (`when=upcoming`: soonest first).
    POST: a centre admin or property staff member of the community creates one."""

    serializer_class = ActivitySerializer
    queryset = Activity.objects.none()

    @extend_schema(
        parameters=[ActivityListQuerySerializer], responses=ActivitySerializer(many=True)
    )
    def get(self, request):
        query = ActivityListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        qs = selectors.activity_filter(
            selectors.activity_list(user=request.user),
            community_id=params.get("community"),
            kind=params.get("kind"),
            when=params.get("when"),
        )
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(ActivitySerializer(page, many=True).data)

    @extend_schema(
        request=ActivityCreateSerializer,
        responses={201: ActivitySerializer, **_errors(400, 403)},
    )
    def post(self, request):
        data = ActivityCreateSerializer(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        activity = services.activity_create(organiser=request.user, **data.validated_data)
        return _activity_response(request, activity.pk, status.HTTP_201_CREATED)


class ActivityDetailView(APIView):
    @extend_schema(responses={200: ActivitySerializer, **_errors(404)})
    def get(self, request, pk):
        return _activity_response(request, pk)


class ActivitySignupView(APIView):
    """POST: take a place (residents of the community). DELETE: give it back."""

    @extend_schema(request=None, responses={201: ActivitySerializer, **_errors(403, 404, 409)})
    def post(self, request, pk):
        activity = selectors.activity_get(user=request.user, activity_id=pk)
        services.activity_signup(activity=activity, user=request.user)
        return _activity_response(request, pk, status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={204: None, **_errors(404, 409)})
    def delete(self, request, pk):
        activity = selectors.activity_get(user=request.user, activity_id=pk)
        # Not signed up: ActivitySignup.DoesNotExist, a 404 like any missing object.
        services.activity_signup_cancel(activity=activity, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CheckinSerializer(serializers.ModelSerializer):
    user_name = serializers.CharField(source="user.get_display_name", read_only=True)

    class Meta:
        model = ActivityCheckin
        fields = ["id", "activity", "user", "user_name", "method", "hours", "checked_in_at"]
        read_only_fields = fields


class CheckinRequestSerializer(serializers.Serializer):
    """Either `code` (the resident, at the door) or `user` (the organiser, with `hours` for
    volunteering; default the activity's)."""

    code = serializers.CharField(max_length=12, required=False)
    user = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.filter(is_active=True), required=False
    )
    hours = serializers.DecimalField(
        max_digits=3,
        decimal_places=1,
        min_value=0,
        max_value=24,
        required=False,
        allow_null=True,
        default=None,
    )

    def validate(self, data):
        if ("code" in data) == ("user" in data):
            raise serializers.ValidationError(
                {"code": _("Send the code shown at the door, or (organisers) the user.")}
            )
        return data


class ActivityCheckinView(APIView):
    """Check in: the resident with the door code, or the organiser for a resident. Once per
    person (409 the second time). Announces activity_checked_in (for points)."""

    @extend_schema(
        request=CheckinRequestSerializer,
        responses={201: CheckinSerializer, **_errors(400, 403, 404, 409)},
    )
    def post(self, request, pk):
        activity = selectors.activity_get(user=request.user, activity_id=pk)
        data = CheckinRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        params = data.validated_data
        if "code" in params:
            checkin = services.activity_checkin(
                activity=activity,
                user=request.user,
                recorded_by=request.user,
                code=params["code"],
                hours=params["hours"],
            )
        else:
            checkin = services.activity_checkin(
                activity=activity,
                user=params["user"],
                recorded_by=request.user,
                hours=params["hours"],
            )
        return Response(CheckinSerializer(checkin).data, status=status.HTTP_201_CREATED)


class ParticipantSerializer(serializers.Serializer):
    user = serializers.IntegerField(source="user_id")
    name = serializers.CharField(source="user.get_display_name")
    homes = serializers.SerializerMethodField()
    signed_up_at = serializers.DateTimeField(source="created_at")
    checked_in_at = serializers.DateTimeField(allow_null=True)
    hours = serializers.DecimalField(
        source="checkin_hours", max_digits=3, decimal_places=1, allow_null=True
    )

    def get_homes(self, signup) -> list[str]:
        return [f"{r.household.building.name} {r.household.unit}" for r in signup.user.homes]


class ParticipantsSerializer(serializers.Serializer):
    checkin_code = serializers.CharField()
    participants = ParticipantSerializer(many=True)


class ActivityParticipantsView(APIView):
    """The organiser's view: who signed up, who checked in with what hours, and the door code.
    Others who see the activity: 403."""

    @extend_schema(responses={200: ParticipantsSerializer, **_errors(403, 404)})
    def get(self, request, pk):
        activity = selectors.activity_get(user=request.user, activity_id=pk)
        if not selectors.may_organise(user=request.user, community=activity.community):
            raise PermissionDenied(_("Only the organisers see the participants."))
        body = {
            "checkin_code": activity.checkin_code,
            "participants": selectors.activity_participants(activity=activity),
        }
        return Response(ParticipantsSerializer(body).data)


# --- consultations ------------------------------------------------------------------------------


class ShareField(serializers.CharField):
    """A share as an exact fraction, written "2/3" (or "1" for the whole)."""

    def to_internal_value(self, data) -> Fraction:
        text = super().to_internal_value(data)
        try:
            numerator, _slash, denominator = text.partition("/")
            share = Fraction(int(numerator), int(denominator or 1))
        except (ValueError, ZeroDivisionError):
            raise serializers.ValidationError(_("Write a share as a fraction, e.g. 2/3.")) from None
        if not 0 <= share <= 1 or share.denominator > 100:
            raise serializers.ValidationError(
                _("A share between 0 and 1, with a denominator of at most 100.")
            )
        return share

    def to_representation(self, value) -> str:
        return tally.share_text(value)


class ThresholdSerializer(serializers.Serializer):
    share = ShareField(help_text='An exact fraction, e.g. "1/2", "2/3", "3/4".')
    inclusive = serializers.BooleanField(
        help_text="true: at least the share (以上); false: more than the share (过半数)."
    )


class RuleSerializer(serializers.Serializer):
    approval = ThresholdSerializer(
        required=False,
        help_text="Over the households that voted, by head and by area. Default: more than 1/2.",
    )
    participation = ThresholdSerializer(
        required=False,
        help_text="Over all households of the community, by head and by area. Default: at "
        "least 2/3.",
    )
    secret_ballot = serializers.BooleanField(required=False, default=True)


class OptionSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    label = serializers.CharField(max_length=100)
    approves = serializers.BooleanField(required=False, default=False)


class CountSerializer(serializers.Serializer):
    heads = serializers.IntegerField(help_text="Households (one owner by head each).")
    area = serializers.DecimalField(max_digits=12, decimal_places=2)


class ShareCountSerializer(serializers.Serializer):
    heads = serializers.DecimalField(max_digits=5, decimal_places=4, allow_null=True)
    area = serializers.DecimalField(max_digits=5, decimal_places=4, allow_null=True)


class OptionResultSerializer(serializers.Serializer):
    option = serializers.IntegerField()
    label = serializers.CharField()
    heads = serializers.IntegerField()
    area = serializers.DecimalField(max_digits=12, decimal_places=2)
    share_of_participating = ShareCountSerializer()
    share_of_total = ShareCountSerializer()
    reached = serializers.BooleanField(help_text="Reached the approval share by head and area.")


class ParticipationMetSerializer(serializers.Serializer):
    heads = serializers.BooleanField()
    area = serializers.BooleanField()


class ResultSerializer(serializers.Serializer):
    options = OptionResultSerializer(many=True)
    participating = CountSerializer()
    total = CountSerializer()
    turnout = ShareCountSerializer(help_text="Participating over total, by head and by area.")
    participation_met = serializers.BooleanField(help_text="By head and by area.")
    participation_met_by = ParticipationMetSerializer()
    passed = serializers.BooleanField()
    adopted_option = serializers.IntegerField(allow_null=True)
    tallied_at = serializers.DateTimeField()


class MyBallotSerializer(serializers.Serializer):
    household = serializers.IntegerField(source="household_id")
    household_name = serializers.SerializerMethodField()
    option = serializers.IntegerField(source="option_id")
    cast_at = serializers.DateTimeField()
    changed_at = serializers.DateTimeField(allow_null=True)

    def get_household_name(self, ballot) -> str:
        return f"{ballot.household.building.name} {ballot.household.unit}"


class ConsultationSerializer(serializers.ModelSerializer):
    community_name = serializers.CharField(source="community.name", read_only=True)
    options = OptionSerializer(many=True, read_only=True)
    status = serializers.SerializerMethodField()
    rule = serializers.SerializerMethodField()
    result = serializers.SerializerMethodField()
    my_ballots = serializers.SerializerMethodField()
    can_vote = serializers.SerializerMethodField()

    class Meta:
        model = Consultation
        fields = [
            "id",
            "community",
            "community_name",
            "title",
            "description",
            "options",
            "opens_at",
            "closes_at",
            "status",
            "rule",
            "result",
            "my_ballots",
            "can_vote",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=Consultation.Status.choices))
    def get_status(self, consultation) -> str:
        return consultation.status_at(self.context.get("now"))

    @extend_schema_field(RuleSerializer)
    def get_rule(self, consultation) -> dict:
        rule = consultation.rule
        return {
            "approval": {
                "share": tally.share_text(rule.approval.share),
                "inclusive": rule.approval.inclusive,
            },
            "participation": {
                "share": tally.share_text(rule.participation.share),
                "inclusive": rule.participation.inclusive,
            },
            "secret_ballot": consultation.secret_ballot,
        }

    @extend_schema_field(ResultSerializer(allow_null=True))
    def get_result(self, consultation):
        data = selectors.consultation_result_table(consultation=consultation)
        return ResultSerializer(data).data if data else None

    @extend_schema_field(MyBallotSerializer(many=True))
    def get_my_ballots(self, consultation) -> list:
        return MyBallotSerializer(getattr(consultation, "my_ballots", []), many=True).data

    def get_can_vote(self, consultation) -> bool:
        """The caller owns a household here and the vote is open."""
        owner_of = self.context.get("owner_of_communities", frozenset())
        return (
            consultation.community_id in owner_of
            and consultation.status_at(self.context.get("now")) == Consultation.Status.OPEN
        )


def _consultation_context(request) -> dict:
    owned = selectors.owned_households(user=request.user).values_list(
        "building__community_id", flat=True
    )
    return {"now": timezone.now(), "owner_of_communities": frozenset(owned)}


class ConsultationCreateSerializer(serializers.Serializer):
    community = serializers.PrimaryKeyRelatedField(queryset=Community.objects.none())
    title = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=10000)
    opens_at = serializers.DateTimeField()
    closes_at = serializers.DateTimeField()
    options = OptionSerializer(many=True)
    rule = RuleSerializer(required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            self.fields["community"].queryset = selectors.community_list(user=request.user)

    def validate(self, data):
        if data["closes_at"] <= data["opens_at"]:
            raise serializers.ValidationError({"closes_at": _("It must close after it opens.")})
        approval = data.get("rule", {}).get("approval")
        if approval and not (
            approval["share"] > Fraction(1, 2)
            or (approval["share"] == Fraction(1, 2) and not approval["inclusive"])
        ):
            raise serializers.ValidationError(
                {"rule": _("Approval needs more than half, or a larger share, of the voters.")}
            )
        return data


class ConsultationListQuerySerializer(serializers.Serializer):
    community = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False)
    status = serializers.ChoiceField(choices=Consultation.Status.choices, required=False)


def _consultation_response(request, pk, code=status.HTTP_200_OK) -> Response:
    consultation = selectors.consultation_get(user=request.user, consultation_id=pk)
    if services.consultation_tally_due(consultations=[consultation]):
        consultation = selectors.consultation_get(user=request.user, consultation_id=pk)
    body = ConsultationSerializer(consultation, context=_consultation_context(request)).data
    return Response(body, status=code)


class ConsultationListCreateView(GenericAPIView):
    """GET: the consultations of the caller's communities; `result` once closed.
    POST: the owners' committee or a centre admin opens one for a community."""

    serializer_class = ConsultationSerializer
    queryset = Consultation.objects.none()

    @extend_schema(
        parameters=[ConsultationListQuerySerializer],
        responses=ConsultationSerializer(many=True),
    )
    def get(self, request):
        query = ConsultationListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        qs = selectors.consultation_filter(
            selectors.consultation_list(user=request.user),
            community_id=params.get("community"),
            status=params.get("status"),
        )
        page = self.paginate_queryset(qs)
        if services.consultation_tally_due(consultations=page):
            page = list(qs.filter(pk__in=[c.pk for c in page]))
        data = ConsultationSerializer(page, many=True, context=_consultation_context(request)).data
        return self.get_paginated_response(data)

    @extend_schema(
        request=ConsultationCreateSerializer,
        responses={201: ConsultationSerializer, **_errors(400, 403)},
    )
    def post(self, request):
        data = ConsultationCreateSerializer(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        params = data.validated_data
        rule = params.get("rule", {})
        approval = rule.get("approval", {"share": Fraction(1, 2), "inclusive": False})
        participation = rule.get("participation", {"share": Fraction(2, 3), "inclusive": True})
        consultation = services.consultation_create(
            creator=request.user,
            community=params["community"],
            title=params["title"],
            description=params["description"],
            opens_at=params["opens_at"],
            closes_at=params["closes_at"],
            options=params["options"],
            approval=(approval["share"].numerator, approval["share"].denominator),
            approval_inclusive=approval["inclusive"],
            participation=(participation["share"].numerator, participation["share"].denominator),
            participation_inclusive=participation["inclusive"],
            secret_ballot=rule.get("secret_ballot", True),
        )
        return _consultation_response(request, consultation.pk, status.HTTP_201_CREATED)


class ConsultationDetailView(APIView):
    @extend_schema(responses={200: ConsultationSerializer, **_errors(404)})
    def get(self, request, pk):
        return _consultation_response(request, pk)


class VoteSerializer(serializers.Serializer):
    option = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    household = serializers.IntegerField(
        min_value=1,
        max_value=MAX_ID,
        required=False,
        allow_null=True,
        default=None,
        help_text="Only for an owner of several households in this community.",
    )


class BallotSerializer(serializers.ModelSerializer):
    class Meta:
        model = Ballot
        fields = ["consultation", "household", "option", "cast_at", "changed_at"]
        read_only_fields = fields


class ConsultationVoteView(APIView):
    """An owner of record casts their household's ballot (201) or changes it (200) while the
    consultation is open. Tenants and family members: 403; not open yet or closed: 409."""

    @extend_schema(
        request=VoteSerializer,
        responses={201: BallotSerializer, 200: BallotSerializer, **_errors(400, 403, 404, 409)},
    )
    def post(self, request, pk):
        consultation = selectors.consultation_get(user=request.user, consultation_id=pk)
        data = VoteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        params = data.validated_data
        options = {option.pk: option for option in consultation.options.all()}
        option = options.get(params["option"])
        if option is None:
            raise serializers.ValidationError({"option": _("Not an option of this consultation.")})
        household = None
        if params["household"] is not None:
            household = Household.objects.filter(pk=params["household"]).first()
            if household is None:
                raise serializers.ValidationError(
                    {"household": _("You are not an owner of this household.")}
                )
        ballot, created = services.consultation_vote(
            consultation=consultation, user=request.user, option=option, household=household
        )
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(BallotSerializer(ballot).data, status=code)


class CommitteeBallotSerializer(serializers.ModelSerializer):
    household_name = serializers.SerializerMethodField()
    option_label = serializers.CharField(source="option.label")
    cast_by_name = serializers.CharField(source="cast_by.get_display_name")

    class Meta:
        model = Ballot
        fields = [
            "household",
            "household_name",
            "option",
            "option_label",
            "cast_by",
            "cast_by_name",
            "cast_at",
            "changed_at",
        ]
        read_only_fields = fields

    def get_household_name(self, ballot) -> str:
        return f"{ballot.household.building.name} {ballot.household.unit}"


class ConsultationBallotsView(GenericAPIView):
    """Who voted how: the community's committee only, for a vote that is not secret, after it
    closed. Anyone else who sees the consultation: 403."""

    serializer_class = CommitteeBallotSerializer
    queryset = Ballot.objects.none()

    @extend_schema(responses={200: CommitteeBallotSerializer(many=True), **_errors(403, 404)})
    def get(self, request, pk):
        consultation = selectors.consultation_get(user=request.user, consultation_id=pk)
        page = self.paginate_queryset(
            selectors.ballot_list(user=request.user, consultation=consultation)
        )
        return self.get_paginated_response(CommitteeBallotSerializer(page, many=True).data)
