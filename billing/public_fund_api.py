"""The public fund's API (billing/public_fund.py): its balance and spendings, proposing a
spending (the committee or a centre admin), and posting a passed one (a centre admin)."""

from decimal import Decimal

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import public_fund, selectors
from billing.models import PublicFundSpend
from community import selectors as community_selectors


class PublicFundSpendRowSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=PublicFundSpend.Status.choices)
    amount = serializers.DecimalField(max_digits=14, decimal_places=2)
    payee = serializers.CharField()
    purpose = serializers.CharField()
    consultation = serializers.IntegerField()
    closes_at = serializers.DateTimeField()
    passed = serializers.BooleanField(allow_null=True)
    posted_at = serializers.DateTimeField(allow_null=True)


class PublicFundSerializer(serializers.Serializer):
    balance = serializers.DecimalField(max_digits=14, decimal_places=2)
    spends = PublicFundSpendRowSerializer(many=True)


class PublicFundSpendSerializer(serializers.ModelSerializer):
    class Meta:
        model = PublicFundSpend
        fields = [
            "id",
            "community",
            "consultation",
            "amount",
            "payee_name",
            "payee_account",
            "purpose",
            "status",
            "posted_at",
            "created_at",
        ]


class PublicFundSpendInputSerializer(serializers.Serializer):
    amount = serializers.DecimalField(
        max_digits=14, decimal_places=2, min_value=Decimal("0.01"), max_value=Decimal("1e11")
    )
    payee_name = serializers.CharField(max_length=100)
    payee_account = serializers.CharField(max_length=100)
    purpose = serializers.CharField(max_length=200)
    opens_at = serializers.DateTimeField()
    closes_at = serializers.DateTimeField()


class PublicFundView(APIView):
    """GET: what the estate's public fund holds and the spendings put to its owners (anyone who
    sees the estate: it is their common money)."""

    @extend_schema(
        responses={
            200: PublicFundSerializer,
            404: OpenApiResponse(description="An estate outside the caller's scope."),
        }
    )
    def get(self, request, pk):
        community = community_selectors.community_get(user=request.user, community_id=pk)
        body = {
            "balance": selectors.public_fund_balance(community=community),
            "spends": selectors.public_fund_spends(community=community),
        }
        return Response(PublicFundSerializer(body).data)


class PublicFundSpendProposeView(APIView):
    """POST: the owners' committee or a centre admin proposes a spending; the owners' vote (a
    consultation with the thresholds of 民法典 第278条 for common funds) opens with it."""

    @extend_schema(
        request=PublicFundSpendInputSerializer,
        responses={
            201: PublicFundSpendSerializer,
            403: OpenApiResponse(description="Not the estate's committee or centre admin."),
            404: OpenApiResponse(description="An estate outside the caller's scope."),
        },
    )
    def post(self, request, pk):
        community = community_selectors.community_get(user=request.user, community_id=pk)
        data = PublicFundSpendInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        spend = public_fund.public_fund_spend_propose(
            creator=request.user, community=community, **data.validated_data
        )
        return Response(PublicFundSpendSerializer(spend).data, status=status.HTTP_201_CREATED)


class PublicFundSpendPostView(APIView):
    """POST: a centre admin pays a spending the owners passed out of the public fund, once."""

    @extend_schema(
        request=None,
        responses={
            201: PublicFundSpendSerializer,
            403: OpenApiResponse(description="Not a centre admin of the estate."),
            404: OpenApiResponse(description="A spending outside the caller's scope."),
            409: OpenApiResponse(
                description="The vote has not closed or did not pass, the spending was paid or "
                "cancelled already, or the fund holds less."
            ),
        },
    )
    def post(self, request, pk):
        visible = community_selectors.community_list(user=request.user).values("pk")
        spend = (
            PublicFundSpend.objects.filter(community__in=visible, pk=pk)
            .select_related("community")
            .first()
        )
        if spend is None:
            raise exceptions.NotFound()
        spend = public_fund.public_fund_spend_post(spend=spend, by=request.user)
        return Response(PublicFundSpendSerializer(spend).data, status=status.HTTP_201_CREATED)
