"""JSON API of points (contract: API.md, "points" and "rewards"). Thin views: parse with a
serializer, call one service or selector, serialize. Errors map to 400/403/404/409 in
config.api; scope comes from points.selectors."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.api import IDEMPOTENCY_HEADER, PeriodField, idempotency_key
from billing.services import request_fingerprint
from community.periods import Period
from points import selectors, services
from points.models import Currency, Entry, Redemption, Reward


class EntrySerializer(serializers.ModelSerializer):
    kind = serializers.ChoiceField(
        source="currency", choices=Currency.choices, help_text="The currency the entry moves."
    )
    type = serializers.ChoiceField(source="kind", choices=Entry.Kind.choices)
    reason = serializers.CharField()

    class Meta:
        model = Entry
        fields = ["id", "kind", "amount", "reason", "type", "source", "occurred_at", "created_at"]


class CompanyPointsSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="company.id")
    name = serializers.CharField(source="company.name")
    reward_points = serializers.IntegerField()
    entries = EntrySerializer(many=True)


class PointsSerializer(serializers.Serializer):
    reputation = serializers.IntegerField()
    contribution = serializers.IntegerField()
    level = serializers.CharField(source="level.name")
    leaderboard_opt_out = serializers.BooleanField()
    entries = EntrySerializer(many=True)
    companies = CompanyPointsSerializer(
        many=True, help_text="Property staff: the reward points of the company they work for."
    )


class PointsView(APIView):
    """The caller's reputation and contribution with the latest 100 entries, and, for property
    staff, their company's reward points."""

    @extend_schema(responses=PointsSerializer)
    def get(self, request):
        mine = selectors.resident_points(user=request.user)
        data = {
            "reputation": mine.reputation,
            "contribution": mine.contribution,
            "level": mine.level,
            "leaderboard_opt_out": bool(mine.holder and mine.holder.leaderboard_opt_out),
            "entries": selectors.entry_list(holder=mine.holder)[: selectors.HISTORY_LIMIT],
            "companies": selectors.company_points_list(user=request.user),
        }
        return Response(PointsSerializer(data).data)


class ProfileSerializer(serializers.Serializer):
    leaderboard_opt_out = serializers.BooleanField()


class PointsProfileView(APIView):
    """Whether the caller appears on their community's monthly leaderboard."""

    @extend_schema(responses=ProfileSerializer)
    def get(self, request):
        holder = selectors.holder_of_user(user=request.user)
        return Response({"leaderboard_opt_out": bool(holder and holder.leaderboard_opt_out)})

    @extend_schema(request=ProfileSerializer, responses=ProfileSerializer)
    def patch(self, request):
        data = ProfileSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        holder = services.leaderboard_opt_out_set(
            user=request.user, opt_out=data.validated_data["leaderboard_opt_out"]
        )
        return Response({"leaderboard_opt_out": holder.leaderboard_opt_out})


class LeaderboardQuerySerializer(serializers.Serializer):
    community = serializers.IntegerField(min_value=1)
    period = PeriodField(required=False)


class LeaderboardRowSerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    name = serializers.CharField()
    contribution = serializers.IntegerField()
    reputation = serializers.IntegerField()


class LeaderboardSerializer(serializers.Serializer):
    community = serializers.IntegerField()
    period = serializers.CharField()
    results = LeaderboardRowSerializer(many=True)


class LeaderboardView(APIView):
    """The month's top 20 of a community the caller can see (residents who opted out never
    appear): contribution earned in the month, then reputation earned."""

    @extend_schema(
        parameters=[
            OpenApiParameter("community", OpenApiTypes.INT, required=True),
            OpenApiParameter("period", OpenApiTypes.STR, description="YYYY-MM; default: now"),
        ],
        responses={
            200: LeaderboardSerializer,
            404: OpenApiResponse(description="A community the caller cannot see."),
        },
    )
    def get(self, request):
        query = LeaderboardQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        community = selectors.leaderboard_communities(user=request.user).get(
            pk=query.validated_data["community"]
        )
        period = query.validated_data.get("period") or Period.current()
        rows = selectors.leaderboard(community=community, period=period)
        return Response(
            LeaderboardSerializer(
                {"community": community.pk, "period": str(period), "results": rows}
            ).data
        )


# --- rewards ----------------------------------------------------------------------------------


class RewardSerializer(serializers.ModelSerializer):
    provider = serializers.CharField(source="provider_name")
    provider_kind = serializers.SerializerMethodField()

    class Meta:
        model = Reward
        fields = [
            "id",
            "name",
            "description",
            "provider",
            "provider_kind",
            "cost",
            "min_reputation",
            "stock",
            "active_from",
            "active_to",
        ]

    def get_provider_kind(self, reward) -> str:
        return "organisation" if reward.organisation_id else "centre"


class RewardListView(generics.ListAPIView):
    """Rewards of the caller's centres offered today, cheapest first."""

    serializer_class = RewardSerializer

    def get_queryset(self):
        return selectors.reward_list(user=self.request.user)


class RedemptionSerializer(serializers.ModelSerializer):
    reward_name = serializers.CharField(source="reward.name")

    class Meta:
        model = Redemption
        fields = [
            "id",
            "reward",
            "reward_name",
            "cost",
            "status",
            "code",
            "created_at",
            "fulfilled_at",
            "cancelled_at",
        ]


class RewardRedeemView(APIView):
    """Spend contribution points on a reward. No body. The same Idempotency-Key again returns
    the same redemption; used for another reward → 409. Short balance, reputation under the
    reward's minimum, no stock, or not offered today → 409."""

    @extend_schema(
        request=None,
        responses={
            201: RedemptionSerializer,
            409: OpenApiResponse(
                description="Short balance or reputation, no stock, not offered today, or the "
                "Idempotency-Key was used for another reward."
            ),
        },
        parameters=[IDEMPOTENCY_HEADER],
    )
    def post(self, request, pk):
        key = idempotency_key(request)
        redemption, _created = services.reward_redeem(
            user=request.user,
            reward_id=pk,
            idempotency_key=key,
            fingerprint=request_fingerprint({"reward": pk}),
        )
        return Response(RedemptionSerializer(redemption).data, status=status.HTTP_201_CREATED)


class RedemptionListView(generics.ListAPIView):
    """The caller's redemptions with their codes, newest first."""

    serializer_class = RedemptionSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return Redemption.objects.none()
        return selectors.redemption_list(user=self.request.user)


class FulfilInputSerializer(serializers.Serializer):
    code = serializers.CharField(max_length=16)


class RedemptionFulfilView(APIView):
    """The provider (an inspector of the offering organisation, or an admin of the offering
    centre) marks a code as used: 200; a code not theirs → 404; used or cancelled → 409."""

    @extend_schema(
        request=FulfilInputSerializer,
        responses={
            200: RedemptionSerializer,
            404: OpenApiResponse(description="A code not the caller's to accept."),
            409: OpenApiResponse(description="The code was used or cancelled."),
        },
    )
    def post(self, request):
        if not selectors.is_provider(user=request.user):
            raise exceptions.PermissionDenied(_("Only the reward's provider can accept codes."))
        data = FulfilInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        redemption = services.redemption_fulfil(user=request.user, code=data.validated_data["code"])
        return Response(RedemptionSerializer(redemption).data)


class CancelInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True)


class RedemptionCancelView(APIView):
    """The centre admin cancels an unused redemption: its points and stock come back. The
    resident who redeemed sees it but may not cancel it (403); anyone else → 404."""

    @extend_schema(
        request=CancelInputSerializer,
        responses={
            200: RedemptionSerializer,
            409: OpenApiResponse(description="The redemption was used or cancelled already."),
        },
    )
    def post(self, request, pk):
        data = CancelInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            redemption = selectors.redemption_get_for_admin(user=request.user, redemption_id=pk)
        except Redemption.DoesNotExist:
            selectors.redemption_list(user=request.user).get(pk=pk)  # 404 unless their own
            raise exceptions.PermissionDenied(
                _("Only the centre can cancel a redemption.")
            ) from None
        redemption = services.redemption_cancel(
            redemption=redemption, by=request.user, reason=data.validated_data.get("reason", "")
        )
        return Response(RedemptionSerializer(redemption).data)
