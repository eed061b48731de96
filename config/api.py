"""Conventions every API endpoint shares: pagination, and one error shape for domain errors.

Services raise plain Python/Django exceptions (they know nothing of HTTP); this module maps them:
- django.core.exceptions.ValidationError -> 400 with field errors
- Conflict (a state conflict: paying a paid bill, an illegal transition) -> 409
- django.http.Http404 / ObjectDoesNotExist from a scoped selector -> 404
- the database gone mid-request (restart, failover, a killed connection) or a deadlock victim
  (django.db OperationalError / InterfaceError) -> 503 with Retry-After: every service runs in
  one transaction, which the database rolled back whole, so trying again is safe
"""

import logging

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import JsonResponse
from django.utils.translation import gettext_lazy as _
from django.views.defaults import page_not_found
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.views import exception_handler as drf_exception_handler


class StandardPagination(PageNumberPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100


class Conflict(exceptions.APIException):
    """The request is well-formed but the object's current state forbids it (HTTP 409)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = _("The request conflicts with the current state of the resource.")
    default_code = "conflict"


class ServiceUnavailable(exceptions.APIException):
    """The database failed mid-request; its transaction was rolled back (HTTP 503)."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = _("The service is briefly unavailable; please try again.")
    default_code = "unavailable"


RETRY_AFTER_SECONDS = 5
logger = logging.getLogger(__name__)


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        exc = exceptions.ValidationError(detail=detail)
    elif isinstance(exc, ObjectDoesNotExist):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        # Keep the reason ("this household has not paid for 2019-08") when a service gives one.
        exc = exceptions.PermissionDenied(detail=str(exc) or None)
    elif isinstance(exc, OperationalError | InterfaceError):
        logger.error("database failed during %s", context.get("view"), exc_info=exc)
        response = drf_exception_handler(ServiceUnavailable(), context)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return drf_exception_handler(exc, context)


def not_found(request, exception=None):
    """handler404: a path under /api/ that no view matches (/api/v1/tickets/abc/) answers in
    the API's JSON like every other 404; the pages keep Django's page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": str(exceptions.NotFound.default_detail)}, status=404)
    return page_not_found(request, exception)


class ThrottledSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What was limited, and in how many seconds to retry.")


def throttled_response() -> OpenApiResponse:
    """The 429 answer of a rate-limited or locked-out operation, for its OpenAPI schema."""
    return OpenApiResponse(
        response=ThrottledSerializer,
        description="Too many attempts: wait for the seconds in the Retry-After header.",
    )
