"""The project's URLs plus the payment rush's baseline: a bare authenticated DRF endpoint that
reads one row. Mounted only by bench.settings, never in production."""

from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from community.models import User
from config.urls import urlpatterns as project_urlpatterns


class OneRowView(APIView):
    """The cheapest useful authenticated request: token authentication (one indexed lookup of
    the token joined to its user) and one primary-key read. The default authentication,
    permission and renderer classes apply, exactly as on every API endpoint."""

    def get(self, request):
        row = User.objects.values("id", "username").get(pk=request.user.pk)
        return Response(row)


urlpatterns = [
    path("bench/one-row/", OneRowView.as_view(), name="bench-one-row"),
    *project_urlpatterns,
]
