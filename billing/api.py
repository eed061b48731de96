"""JSON API of billing (contract: API.md). Thin views: parse with a serializer, call one service or
selector, serialize. Scope comes from billing.selectors; errors map to 400/403/404/409 in
config.api."""

import copy
import uuid
from decimal import Decimal

import django_filters
from django.http import HttpResponse
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import selectors, services
from billing.gateways import UnknownGateway, enabled_gateways, get_gateway
from billing.gateways.base import NotificationRejected
from billing.models import Bill, BillLine, Payment, Payout, Refund
from community import selectors as community_selectors
from community.models import Role
from community.periods import Period
from config import security
from config.api import throttled_response

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=True,
    description="Any unique string per intended operation; retries reuse it.",
)


PREPAY_IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="Recommended: a retry with the same key returns the first prepayment. Without "
    "one, each request is a prepayment of its own (still at most 36 months in all).",
)


def idempotency_key(request, *, required: bool = True) -> str:
    """The request's Idempotency-Key. Where the contract does not require one (prepay), a
    request without it gets a key of its own: it is then a new operation, never a replay."""
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key and not required:
        return f"auto:{uuid.uuid4().hex}"
    if not key or len(key) > 100:
        raise exceptions.ValidationError(
            {"Idempotency-Key": [_("Send an Idempotency-Key header (1–100 characters).")]}
        )
    return key


class PeriodField(serializers.CharField):
    def to_internal_value(self, data):
        try:
            return Period.parse(super().to_internal_value(data))
        except ValueError as exc:
            raise serializers.ValidationError(_("Use the form YYYY-MM.")) from exc


# --- bills ------------------------------------------------------------------------------------


class BillLineSerializer(serializers.ModelSerializer):
    """One line of a bill: a charge item, the late fee, a prepayment discount (negative) or
    opening arrears. A waived late fee stays listed with `waived` true and counts for nothing."""

    waived = serializers.BooleanField(source="is_waived", read_only=True)

    class Meta:
        model = BillLine
        fields = [
            "kind",
            "name",
            "quantity",
            "unit",
            "unit_price",
            "amount",
            "settlement",
            "waived",
        ]


class BillSerializer(serializers.ModelSerializer):
    # Void bills are never served (selectors.bill_list), so the contract's four statuses.
    status = serializers.ChoiceField(choices=Bill.live_status_choices(), read_only=True)
    lines = BillLineSerializer(many=True, read_only=True)

    class Meta:
        model = Bill
        fields = [
            "id",
            "household",
            "community",
            "period",
            "amount",
            "paid_amount",
            "status",
            "due_date",
            "is_prepaid",
            "overdue_since",
            "lines",
        ]


class BillFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(
        choices=[c for c in Bill.Status.choices if c[0] in Bill.LIVE_STATUSES]
    )
    period = django_filters.CharFilter(method="filter_period")

    class Meta:
        model = Bill
        fields = ["status", "household", "period", "community"]

    def filter_period(self, queryset, name, value):
        try:
            return queryset.filter(period=str(Period.parse(value)))
        except ValueError as exc:
            raise exceptions.ValidationError({"period": [_("Use the form YYYY-MM.")]}) from exc


class BillListView(generics.ListAPIView):
    """Bills of the caller's households (residents) or of the communities they run (staff)."""

    serializer_class = BillSerializer
    filterset_class = BillFilter

    def get_queryset(self):
        return selectors.bill_list(user=self.request.user).prefetch_related("lines")


class PrepayInputSerializer(serializers.Serializer):
    household = serializers.IntegerField()
    months = serializers.IntegerField(min_value=1, max_value=services.MAX_PREPAY_MONTHS)
    gateway = serializers.ChoiceField(choices=[], required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["gateway"].choices = enabled_gateways()


class PrepaidBillSerializer(BillSerializer):
    """A bill a prepayment created, with the payment that pays it: pay it at `pay_url`. If
    that payment fails or expires, these bills are void and never shown again."""

    payment = serializers.SerializerMethodField()
    pay_url = serializers.SerializerMethodField()

    class Meta(BillSerializer.Meta):
        fields = [*BillSerializer.Meta.fields, "payment", "pay_url"]

    def get_payment(self, bill) -> int:
        return self.context["payment"].pk

    def get_pay_url(self, bill) -> str:
        return self.context["payment"].pay_url


class BillPrepayView(security.ThrottleMessageMixin, APIView):
    """Prepay months ahead: their bills and the payment that pays them, made together."""

    # Per user, shared with payments: each prepayment opens a gateway order.
    throttle_classes = [security.PaymentRateThrottle]

    @extend_schema(
        request=PrepayInputSerializer,
        responses={
            201: PrepaidBillSerializer(many=True),
            400: OpenApiResponse(
                description="Months outside 1–36, or an Idempotency-Key longer than 100 characters."
            ),
            404: OpenApiResponse(description="Not one of the caller's households."),
            409: OpenApiResponse(
                description="Past 36 months beyond this one in all, no agreement in force for "
                "all those months, an expired prepayment's key, or the Idempotency-Key was "
                "used for a different request."
            ),
            429: throttled_response(),
        },
        parameters=[PREPAY_IDEMPOTENCY_HEADER],
    )
    def post(self, request):
        key = idempotency_key(request, required=False)
        data = PrepayInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        gateway = data.validated_data.get("gateway") or enabled_gateways()[0]
        payment, _created = services.bill_prepay(
            user=request.user,
            household_id=data.validated_data["household"],
            months=data.validated_data["months"],
            gateway=gateway,
            idempotency_key=key,
            fingerprint=services.request_fingerprint({**data.validated_data, "gateway": gateway}),
        )
        bills = services.prepaid_bills(payment)
        response = Response(
            PrepaidBillSerializer(bills, many=True, context={"payment": payment}).data,
            status=status.HTTP_201_CREATED,
        )
        response["Location"] = reverse("api-payment-detail", args=[payment.pk])
        return response


# --- payments ---------------------------------------------------------------------------------


class PaymentCreateInputSerializer(serializers.Serializer):
    bill_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), min_length=1, max_length=60
    )
    gateway = serializers.ChoiceField(choices=[])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["gateway"].choices = enabled_gateways()


class PaymentCreatedSerializer(serializers.ModelSerializer):
    class Meta:
        model = Payment
        fields = ["id", "amount", "status", "gateway", "out_trade_no", "pay_url", "expires_at"]

    def get_fields(self):
        # ModelSerializer builds its fields from the model for every instance, about 0.2 ms of
        # CPU on every payment created; they depend on the class alone, so they are built once
        # and copied, as a plain Serializer's declared fields are.
        cls = type(self)
        if "_built_fields" not in cls.__dict__:
            cls._built_fields = super().get_fields()
        return copy.deepcopy(cls._built_fields)


class PaymentBillSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="bill.id")
    household = serializers.IntegerField(source="bill.household_id")
    period = serializers.CharField(source="bill.period")
    amount = serializers.DecimalField(max_digits=14, decimal_places=2)


class PaymentSerializer(serializers.ModelSerializer):
    bills = PaymentBillSerializer(source="items", many=True)
    receipt_number = serializers.CharField()

    class Meta:
        model = Payment
        fields = [
            "id",
            "amount",
            "status",
            "bills",
            "paid_at",
            "gateway",
            "out_trade_no",
            "pay_url",
            "refunded_amount",
            "receipt_number",
            "created_at",
            "expires_at",
        ]


class PaymentCreateView(security.ThrottleMessageMixin, APIView):
    # Per user, shared with the pay page: starting payments is costly (a gateway order each).
    throttle_classes = [security.PaymentRateThrottle]

    @extend_schema(
        request=PaymentCreateInputSerializer,
        responses={
            201: PaymentCreatedSerializer,
            404: OpenApiResponse(description="A bill that is not the caller's."),
            429: throttled_response(),
            409: OpenApiResponse(
                description="A bill already settled or in a pending payment, or the "
                "Idempotency-Key was used for a different request."
            ),
        },
        parameters=[IDEMPOTENCY_HEADER],
    )
    def post(self, request):
        key = idempotency_key(request)
        data = PaymentCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        payment, _created = services.payment_create(
            payer=request.user,
            bill_ids=data.validated_data["bill_ids"],
            gateway=data.validated_data["gateway"],
            idempotency_key=key,
            fingerprint=services.request_fingerprint(data.validated_data),
        )
        # The same key and body answer exactly as the first time.
        return Response(PaymentCreatedSerializer(payment).data, status=status.HTTP_201_CREATED)


class PaymentDetailView(APIView):
    @extend_schema(responses=PaymentSerializer)
    def get(self, request, pk):
        payment = selectors.payment_get(user=request.user, payment_id=pk)
        return Response(PaymentSerializer(payment).data)


class PaymentCancelView(APIView):
    """The payer abandons a pending payment so its bills can be paid again at once."""

    @extend_schema(
        request=None,
        responses={
            200: PaymentSerializer,
            409: OpenApiResponse(description="Only a pending payment can be cancelled."),
        },
    )
    def post(self, request, pk):
        payment = selectors.payment_get(user=request.user, payment_id=pk)
        if payment.payer_id != request.user.pk:
            raise exceptions.PermissionDenied()
        services.payment_cancel(payment=payment)
        payment = selectors.payment_get(user=request.user, payment_id=pk)
        return Response(PaymentSerializer(payment).data)


class PaymentNotifyView(APIView):
    """Server-to-server notification from a gateway. Authenticated by the gateway's signature,
    not by a user: 200 with the gateway's acknowledgement once recorded (duplicates included);
    400 and no change for anything untrustworthy or unknown."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=OpenApiTypes.BYTE,
        responses={(200, "text/plain"): OpenApiTypes.STR, (400, "text/plain"): OpenApiTypes.STR},
    )
    def post(self, request, gateway):
        try:
            services.payment_notification_receive(
                gateway=gateway, body=request.body, headers=request.headers
            )
            code, body, content_type = get_gateway(gateway).acknowledgement()
        except (NotificationRejected, UnknownGateway) as exc:
            return HttpResponse(f"rejected: {exc}", status=400, content_type="text/plain")
        return HttpResponse(body, status=code, content_type=content_type)


class RefundInputSerializer(serializers.Serializer):
    # Wider than any payment (14 digits) on purpose: more than is left is an over-refund, 409.
    amount = serializers.DecimalField(max_digits=20, decimal_places=2, min_value=Decimal("0.01"))
    reason = serializers.CharField(max_length=200)


class RefundSerializer(serializers.ModelSerializer):
    class Meta:
        model = Refund
        fields = [
            "id",
            "payment",
            "refund_no",
            "amount",
            "reason",
            "status",
            "from_escrow",
            "from_company",
            "created_at",
        ]


class PaymentRefundView(APIView):
    @extend_schema(
        request=RefundInputSerializer,
        responses={
            201: RefundSerializer,
            409: OpenApiResponse(
                description="More than is left to refund, a payment that has not succeeded, "
                "or the gateway refused."
            ),
        },
        parameters=[IDEMPOTENCY_HEADER],
    )
    def post(self, request, pk):
        key = idempotency_key(request)
        payment = selectors.payment_get(user=request.user, payment_id=pk)
        try:
            payment = selectors.payment_get_for_admin(user=request.user, payment_id=pk)
        except Payment.DoesNotExist as exc:
            raise exceptions.PermissionDenied(_("Only the centre admin can refund.")) from exc
        data = RefundInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        refund, _created = services.payment_refund(
            payment=payment,
            amount=data.validated_data["amount"],
            reason=data.validated_data["reason"],
            by=request.user,
            idempotency_key=key,
            fingerprint=services.request_fingerprint({"payment": pk, **data.validated_data}),
        )
        return Response(RefundSerializer(refund).data, status=status.HTTP_201_CREATED)


class TrailItemSerializer(serializers.Serializer):
    bill = serializers.IntegerField(source="bill.id")
    period = serializers.CharField(source="bill.period")
    amount = serializers.DecimalField(max_digits=14, decimal_places=2)
    held_in_escrow = serializers.DecimalField(max_digits=14, decimal_places=2)
    held_back = serializers.DecimalField(max_digits=14, decimal_places=2)
    paid_to_company = serializers.DecimalField(max_digits=14, decimal_places=2)
    forfeited_to_fund = serializers.DecimalField(max_digits=14, decimal_places=2)
    refunded = serializers.DecimalField(max_digits=14, decimal_places=2)


class TrailStepSerializer(serializers.Serializer):
    at = serializers.DateTimeField(allow_null=True)
    kind = serializers.CharField()
    bill = serializers.IntegerField(source="bill.id")
    period = serializers.CharField(source="bill.period")
    amount = serializers.DecimalField(max_digits=14, decimal_places=2)
    source = serializers.CharField()
    destination = serializers.CharField()


class TrailSerializer(serializers.Serializer):
    payment = serializers.IntegerField()
    amount = serializers.DecimalField(max_digits=14, decimal_places=2)
    items = TrailItemSerializer(many=True)
    steps = TrailStepSerializer(many=True)


class PaymentTrailView(APIView):
    """Where this payment's money is now: per bill, and each ledger step that moved it."""

    @extend_schema(responses=TrailSerializer)
    def get(self, request, pk):
        payment = selectors.payment_get(user=request.user, payment_id=pk)
        trail = selectors.payment_trail(payment=payment)
        return Response(
            TrailSerializer({"payment": payment.pk, "amount": payment.amount, **trail}).data
        )


# --- escrow and payouts -----------------------------------------------------------------------


def _community_for(request, community_id, roles):
    """404 if the community is outside everything the user sees; 403 if they see it but not in
    one of `roles` (a resident asking for the escrow summary)."""
    community = community_selectors.community_get(user=request.user, community_id=community_id)
    if not request.user.is_superuser and not (
        community_selectors.roles_in_community(user=request.user, community=community) & set(roles)
    ):
        raise exceptions.PermissionDenied()
    return community


class EscrowSummarySerializer(serializers.Serializer):
    held = serializers.DecimalField(max_digits=14, decimal_places=2)
    released = serializers.DecimalField(max_digits=14, decimal_places=2)
    withheld = serializers.DecimalField(max_digits=14, decimal_places=2)
    forfeited_to_fund = serializers.DecimalField(max_digits=14, decimal_places=2)
    refunded = serializers.DecimalField(max_digits=14, decimal_places=2)


class EscrowSummaryView(APIView):
    @extend_schema(responses=EscrowSummarySerializer)
    def get(self, request, pk):
        community = _community_for(request, pk, [Role.CENTRE_ADMIN, Role.COMMITTEE_MEMBER])
        return Response(EscrowSummarySerializer(selectors.escrow_summary(community=community)).data)


class PayoutRunInputSerializer(serializers.Serializer):
    community = serializers.IntegerField()
    period = PeriodField()


class PayoutSerializer(serializers.ModelSerializer):
    class Meta:
        model = Payout
        fields = [
            "id",
            "community",
            "period",
            "kind",
            "collected",
            "to_company",
            "held_back",
            "to_public_fund",
            "holdback_share",
            "score",
            "created_at",
        ]


class PayoutRunView(APIView):
    """Pay the company its share of a finished month; a second run returns the same payout."""

    @extend_schema(
        request=PayoutRunInputSerializer,
        responses={
            200: PayoutSerializer,
            201: PayoutSerializer,
            404: OpenApiResponse(description="A community outside the caller's scope."),
        },
    )
    def post(self, request):
        data = PayoutRunInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        community = _community_for(request, data.validated_data["community"], [Role.CENTRE_ADMIN])
        payout, created = services.payout_run(
            community=community, period=data.validated_data["period"]
        )
        return Response(
            PayoutSerializer(payout).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )
