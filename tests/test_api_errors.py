"""config.api maps what services raise onto the contract's status codes, never a 500."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from community import selectors
from community.tests.factories import CommunityFactory, HouseholdFactory, resident
from config.api import Conflict

pytestmark = pytest.mark.django_db


class ScopedCommunityView(APIView):
    """What every later endpoint does: look the object up through the scoping selector."""

    def get(self, request, pk):
        community = selectors.community_get(user=request.user, community_id=pk)
        return Response({"id": community.pk})


class FailingView(APIView):
    error: Exception | None = None

    def post(self, request):
        raise self.error


def call(view, user, method="get", **kwargs):
    request = getattr(APIRequestFactory(), method)("/")
    force_authenticate(request, user=user)
    return view(request, **kwargs)


def test_an_object_outside_the_callers_scope_answers_404():
    mine, other = CommunityFactory(), CommunityFactory()
    user = resident(HouseholdFactory(building__community=mine))
    view = ScopedCommunityView.as_view()
    assert call(view, user, pk=mine.pk).status_code == 200
    assert call(view, user, pk=other.pk).status_code == 404
    assert call(view, user, pk=999999).status_code == 404


@pytest.mark.parametrize(
    ("error", "status", "body"),
    [
        (ValidationError({"area": ["must be positive"]}), 400, {"area": ["must be positive"]}),
        (ValidationError("bad period"), 400, {"detail": ["bad period"]}),
        (Conflict("bill already paid"), 409, {"detail": "bill already paid"}),
        (
            PermissionDenied("this household has not paid"),
            403,
            {"detail": "this household has not paid"},
        ),
    ],
)
def test_service_errors_map_to_client_errors(error, status, body):
    view = FailingView.as_view(error=error)
    response = call(view, resident(HouseholdFactory()), method="post")
    assert response.status_code == status
    assert response.data == body
