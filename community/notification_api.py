"""JSON API of the caller's notification switches (community/notifications.py):

GET, PATCH  /api/v1/me/notifications/   {"bill_reminders", "ticket_updates", "email", "sms",
                                          "wechat"}: booleans; unknown fields are refused
"""

from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from community import channels, notifications


class NotificationPreferenceSerializer(serializers.Serializer):
    bill_reminders = serializers.BooleanField(
        required=False, help_text="Bill reminders by e-mail, SMS and WeChat."
    )
    ticket_updates = serializers.BooleanField(
        required=False, help_text="Updates on the caller's tickets by e-mail, SMS and WeChat."
    )
    email = serializers.BooleanField(required=False)
    sms = serializers.BooleanField(required=False)
    wechat = serializers.BooleanField(required=False)
    channels = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text="The channels this site sends through (in_app, email, sms, wechat).",
    )
    quiet_hours = serializers.CharField(
        read_only=True, help_text="When SMS and WeChat messages are held, e.g. 21:00–08:00."
    )

    def validate(self, attrs):
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(
                {name: [_("No such notification setting.")] for name in unknown}
            )
        return attrs


def _answer(preference) -> dict:
    return {
        **{name: getattr(preference, name) for name in notifications.PREFERENCE_FIELDS},
        "channels": [str(channel) for channel in channels.enabled_channels()],
        "quiet_hours": notifications.quiet_hours_display(),
    }


class NotificationPreferenceView(APIView):
    """The caller's notification switches. In-app notices are always kept; these switch the
    outside channels (per channel, and per kind of message) off and on."""

    @extend_schema(responses=NotificationPreferenceSerializer)
    def get(self, request):
        return Response(_answer(notifications.preference_get(user=request.user)))

    @extend_schema(
        request=NotificationPreferenceSerializer,
        responses={
            200: NotificationPreferenceSerializer,
            400: OpenApiResponse(description="Not a boolean, or no such setting."),
        },
    )
    def patch(self, request):
        data = NotificationPreferenceSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        preference = notifications.preference_set(user=request.user, **data.validated_data)
        return Response(_answer(preference))
