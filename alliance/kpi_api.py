"""GET /api/v1/communities/{id}/kpis/?period=YYYY-MM (contract: API.md, row kpis).

Who may read an estate's key figures: its property staff, the centre's admins, its owners'
committee, and its residents (the figures are the estate's own, what the community page shows
them). Anyone else who sees the estate (an alliance inspector) gets 403; anyone who does not
see it, 404. `period` defaults to the current month; anything but YYYY-MM is 400.
"""

from django.core.exceptions import PermissionDenied
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from alliance import kpis
from billing.api import PeriodField
from community import selectors as community_selectors
from community.models import Community, Role
from community.periods import Period

KPI_READER_ROLES = frozenset(
    {
        community_selectors.RESIDENT,
        Role.PROPERTY_STAFF,
        Role.CENTRE_ADMIN,
        Role.COMMITTEE_MEMBER,
    }
)
MAX_ID = 2**63 - 1


def may_read_kpis(*, user, community) -> bool:
    roles = community_selectors.roles_in_community(user=user, community=community)
    return user.is_superuser or bool(roles & KPI_READER_ROLES)


class KpiQuerySerializer(serializers.Serializer):
    period = PeriodField(required=False)


class KpiSerializer(serializers.Serializer):
    households = serializers.IntegerField()
    bills_due = serializers.IntegerField()
    bills_paid = serializers.IntegerField()
    collection_rate = serializers.CharField(help_text="bills_paid ÷ bills_due, e.g. 0.8214")
    tickets_total = serializers.IntegerField()
    tickets_handled = serializers.IntegerField()
    handling_rate = serializers.CharField(help_text="tickets_handled ÷ tickets_total")
    satisfaction_rate = serializers.CharField(help_text="share of ticket ratings of 4–5 stars")


class CommunityKpiView(APIView):
    @extend_schema(
        parameters=[KpiQuerySerializer],
        responses={
            200: KpiSerializer,
            400: OpenApiResponse(description="Bad period"),
            403: OpenApiResponse(description="Sees the estate but may not read its figures"),
            404: OpenApiResponse(description="Outside the caller's scope"),
        },
    )
    def get(self, request, community_id: int):
        query = KpiQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        period = query.validated_data.get("period") or Period.current()
        if community_id > MAX_ID:
            raise Community.DoesNotExist
        community = community_selectors.community_get(user=request.user, community_id=community_id)
        if not may_read_kpis(user=request.user, community=community):
            raise PermissionDenied
        figures = kpis.community_kpis(community=community, period=period)
        return Response(KpiSerializer(figures.as_dict()).data)
