"""JSON API of the alliance app (contract: API.md, rows service-ratings, inspections, scorecards).
Thin views: a serializer reads the input, one service or selector does the work.

    POST /api/v1/service-ratings/                    a resident rates a paid month (once)
    GET  /api/v1/service-ratings/?community=&period= ratings: own households; staff: with comments
    GET  /api/v1/service-ratings/summary/?community=&period=   per-dimension averages (staff)
    GET, POST /api/v1/inspections/                   spot checks (inspectors record them)
    GET  /api/v1/scorecards/?community=&period=&ordering=      published scorecards

Rates are strings with 4 decimals ("0.8214"), 0–1, or null for a component without data that
month (see alliance.scoring).
"""

from contextlib import contextmanager

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from alliance import selectors, services
from alliance.models import DIMENSIONS, Inspection, Scorecard, ServiceRating
from billing.api import PeriodField
from community import selectors as community_selectors

MAX_ID = 2**63 - 1  # the largest primary key: larger numbers are bad input, not a database error
ERRORS = {
    400: OpenApiResponse(description="Bad input"),
    403: OpenApiResponse(description="Not allowed (the message says why)"),
    404: OpenApiResponse(description="Outside the caller's scope"),
    409: OpenApiResponse(description="Twice, or the month's scorecard is final"),
}


@contextmanager
def says_why():
    """config.api turns Django's PermissionDenied into a bare 403; these 403s carry the reason
    (for example that the household's bill is unpaid), so pass the message on."""
    try:
        yield
    except DjangoPermissionDenied as exc:
        raise exceptions.PermissionDenied(" ".join(map(str, exc.args)) or None) from exc


def _stars():
    return serializers.IntegerField(min_value=1, max_value=5)


# --- ratings ----------------------------------------------------------------------------------


class RatingCreateSerializer(serializers.Serializer):
    household = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    period = PeriodField(help_text="YYYY-MM: the month rated (its bill must be paid).")
    cleaning = _stars()
    greening = _stars()
    security = _stars()
    reporting = _stars()
    repair = _stars()
    comment = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class RatingSerializer(serializers.ModelSerializer):
    household = serializers.SerializerMethodField(
        help_text="Only for the caller's own households; null for staff, who do not see who rated."
    )

    class Meta:
        model = ServiceRating
        fields = ["id", "household", "community", "period", *DIMENSIONS, "comment", "created_at"]
        read_only_fields = fields

    def get_household(self, rating) -> int | None:
        own = self.context.get("own_households", frozenset())
        return rating.household_id if rating.household_id in own else None


class RatingQuerySerializer(serializers.Serializer):
    community = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False)
    period = PeriodField(required=False)


class SummaryQuerySerializer(serializers.Serializer):
    community = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    period = PeriodField()


class DimensionSummarySerializer(serializers.Serializer):
    dimension = serializers.ChoiceField(choices=DIMENSIONS)
    label = serializers.CharField()
    average = serializers.DecimalField(max_digits=3, decimal_places=2, allow_null=True)
    distribution = serializers.DictField(
        child=serializers.IntegerField(), help_text='Households per stars: {"5": 30, "4": 10, …}'
    )


class RatingSummarySerializer(serializers.Serializer):
    community = serializers.IntegerField(source="community.pk")
    period = serializers.CharField()
    count = serializers.IntegerField()
    resident_satisfaction = serializers.DecimalField(
        source="satisfaction", max_digits=5, decimal_places=4, allow_null=True
    )
    dimensions = DimensionSummarySerializer(many=True)


class RatingListCreateView(GenericAPIView):
    """POST: a resident rates a month's service for their household, once; only a household that
    has paid its bill for that month may (403 says so). GET: the ratings the caller may read."""

    serializer_class = RatingSerializer
    queryset = ServiceRating.objects.none()  # for the schema; the scoped list is the selector's

    def _own_households(self, request) -> frozenset[int]:
        own = community_selectors.residency_list_for_user(user=request.user)
        return frozenset(own.values_list("household_id", flat=True))

    @extend_schema(parameters=[RatingQuerySerializer], responses=RatingSerializer(many=True))
    def get(self, request):
        query = RatingQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        qs = selectors.rating_list(user=request.user)
        if "community" in query.validated_data:
            qs = qs.filter(community_id=query.validated_data["community"])
        if "period" in query.validated_data:
            qs = qs.filter(period=str(query.validated_data["period"]))
        page = self.paginate_queryset(qs)
        context = {"own_households": self._own_households(request)}
        return self.get_paginated_response(RatingSerializer(page, many=True, context=context).data)

    @extend_schema(request=RatingCreateSerializer, responses={201: RatingSerializer, **ERRORS})
    def post(self, request):
        data = RatingCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        with says_why():
            rating = services.rating_create(
                user=request.user,
                household_id=values["household"],
                period=values["period"],
                stars={dimension: values[dimension] for dimension in DIMENSIONS},
                comment=values["comment"],
            )
        context = {"own_households": frozenset({rating.household_id})}
        return Response(RatingSerializer(rating, context=context).data, status=201)


class RatingSummaryView(APIView):
    """A month's ratings of one community per dimension: the average and how many households
    gave each number of stars (property staff of the company and the centre's admins)."""

    @extend_schema(
        parameters=[SummaryQuerySerializer],
        responses={
            200: RatingSummarySerializer,
            400: ERRORS[400],
            403: ERRORS[403],
            404: ERRORS[404],
        },
    )
    def get(self, request):
        query = SummaryQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        community = community_selectors.community_get(
            user=request.user, community_id=query.validated_data["community"]
        )
        if not selectors.may_read_ratings(user=request.user, community=community):
            raise exceptions.PermissionDenied(
                _("Ratings are for the property company's staff and the centre's admins.")
            )
        summary = selectors.rating_summary(
            community=community, period=query.validated_data["period"]
        )
        return Response(RatingSummarySerializer(summary).data)


# --- inspections ------------------------------------------------------------------------------


class InspectionCreateSerializer(serializers.Serializer):
    community = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    period = PeriodField()
    staff_on_duty = serializers.IntegerField(min_value=0, max_value=100000)
    staff_rostered = serializers.IntegerField(min_value=1, max_value=100000)
    grid_cooperation = serializers.IntegerField(min_value=0, max_value=100)
    major_matter_cooperation = serializers.IntegerField(min_value=0, max_value=100)
    note = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")

    def validate(self, attrs):
        if attrs["staff_on_duty"] > attrs["staff_rostered"]:
            raise serializers.ValidationError(
                {"staff_on_duty": [_("Cannot be more than the staff rostered.")]}
            )
        return attrs


class InspectionSerializer(serializers.ModelSerializer):
    attendance_rate = serializers.DecimalField(max_digits=5, decimal_places=4, read_only=True)
    community_name = serializers.CharField(source="community.name", read_only=True)
    inspector_name = serializers.CharField(source="inspector.get_display_name", read_only=True)
    organisation_name = serializers.CharField(source="organisation.name", read_only=True)

    class Meta:
        model = Inspection
        fields = [
            "id",
            "community",
            "community_name",
            "period",
            "staff_on_duty",
            "staff_rostered",
            "attendance_rate",
            "grid_cooperation",
            "major_matter_cooperation",
            "note",
            "inspector",
            "inspector_name",
            "organisation",
            "organisation_name",
            "created_at",
        ]
        read_only_fields = fields


class InspectionListCreateView(GenericAPIView):
    """POST: an alliance inspector of a member organisation of the community's centre records a
    spot check (others: 404 when they cannot see the community, 403 when they can). GET: the
    spot checks of the communities the caller sees as inspector, centre admin, property staff or
    committee member."""

    serializer_class = InspectionSerializer
    queryset = Inspection.objects.none()

    @extend_schema(parameters=[RatingQuerySerializer], responses=InspectionSerializer(many=True))
    def get(self, request):
        query = RatingQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        qs = selectors.inspection_list(user=request.user)
        if "community" in query.validated_data:
            qs = qs.filter(community_id=query.validated_data["community"])
        if "period" in query.validated_data:
            qs = qs.filter(period=str(query.validated_data["period"]))
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(InspectionSerializer(page, many=True).data)

    @extend_schema(
        request=InspectionCreateSerializer, responses={201: InspectionSerializer, **ERRORS}
    )
    def post(self, request):
        data = InspectionCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        with says_why():
            inspection = services.inspection_create(
                user=request.user, community_id=values.pop("community"), **values
            )
        return Response(InspectionSerializer(inspection).data, status=status.HTTP_201_CREATED)


# --- scorecards -------------------------------------------------------------------------------


class ScorecardSerializer(serializers.ModelSerializer):
    community_name = serializers.CharField(source="community.name", read_only=True)
    finalized = serializers.BooleanField(read_only=True)

    class Meta:
        model = Scorecard
        fields = [
            "id",
            "community",
            "community_name",
            "period",
            "attendance_rate",
            "handling_rate",
            "grid_cooperation",
            "major_matter_cooperation",
            "resident_satisfaction",
            "score",
            "finalized",
            "finalized_at",
            "revision",
            "reason",
            "computed_at",
            "weights",
            "rating_count",
            "inspection_count",
            "ticket_count",
            "tickets_within_sla",
            "released_to_company",
            "forfeited_to_fund",
        ]
        read_only_fields = fields


class ScorecardQuerySerializer(serializers.Serializer):
    community = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False)
    period = PeriodField(required=False)
    ordering = serializers.ChoiceField(
        choices=[("-period", "newest month first"), ("-score", "best score first")],
        required=False,
        default="-period",
    )


class ScorecardListView(GenericAPIView):
    """The published scorecard (the latest revision, or the month's draft until it is final) of
    every month of every community the caller sees. Filter by community and period; order by
    score to rank a month's communities."""

    serializer_class = ScorecardSerializer
    queryset = Scorecard.objects.none()

    @extend_schema(parameters=[ScorecardQuerySerializer], responses=ScorecardSerializer(many=True))
    def get(self, request):
        query = ScorecardQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        qs = selectors.scorecard_list(user=request.user)
        if "community" in params:
            qs = qs.filter(community_id=params["community"])
        if "period" in params:
            qs = qs.filter(period=str(params["period"]))
        if params["ordering"] == "-score":
            qs = selectors.order_by_score(qs)
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(ScorecardSerializer(page, many=True).data)
