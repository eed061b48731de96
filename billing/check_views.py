"""Anyone checks a receipt's check code (billing/chain.py): /check/?code=… (a page) and
/api/v1/receipts/check/?code=… (JSON). No sign-in; rate limited per client address, since a
code is 50 bits and guessing must stay hopeless. A valid code shows only the amount, the estate
and the months: nothing about who paid or for which flat."""

from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView

from billing import chain
from config import security
from config.api import throttled_response


class ReceiptCheckThrottle(security.WriteRateThrottle):
    """Counts every check, reads included: a check is what a guesser would repeat."""

    scope = "receipt_check"
    rate_setting = "RECEIPT_CHECK_THROTTLE_RATE"

    def allow_request(self, request, view):
        return UserRateThrottle.allow_request(self, request, view)

    @property
    def message(self) -> str:
        return _("Too many receipts checked in a short time.")


@require_safe
def receipt_check_page(request):
    code = (request.GET.get("code") or "")[:40]
    result = None
    if code:
        refused = security.throttled_page(request, ReceiptCheckThrottle)
        if refused is not None:
            return refused
        result = chain.receipt_check(code)
    return render(
        request,
        "billing/receipt_check.html",
        {"code": code, "checked": bool(code), "result": result},
    )


class ReceiptCheckQuerySerializer(serializers.Serializer):
    code = serializers.CharField(max_length=40)


class ReceiptCheckSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    code = serializers.CharField(required=False)
    amount = serializers.DecimalField(max_digits=14, decimal_places=2, required=False)
    estate = serializers.CharField(required=False)
    periods = serializers.ListField(child=serializers.CharField(), required=False)


class ReceiptCheckView(security.ThrottleMessageMixin, APIView):
    """Is this check code a receipt in the ledger? `valid`, and for a valid one only the amount,
    the estate and the months (YYYY-MM) it paid."""

    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = [ReceiptCheckThrottle]

    @extend_schema(
        parameters=[ReceiptCheckQuerySerializer],
        responses={
            200: ReceiptCheckSerializer,
            429: throttled_response(),
        },
    )
    def get(self, request):
        query = ReceiptCheckQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        result = chain.receipt_check(query.validated_data["code"])
        body = {"valid": False} if result is None else {"valid": True, **result}
        return Response(ReceiptCheckSerializer(body).data)
