"""JSON API of the community app: token sign-in and the caller's own profile (/me)."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from community import selectors


class TokenObtainView(ObtainAuthToken):
    """POST username and password, get the token to send as `Authorization: Token <token>`.
    Wrong credentials answer 400; repeated attempts from one address are throttled (429)."""

    permission_classes = [AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"


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
