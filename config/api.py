"""Conventions every API endpoint shares: pagination, and one error shape for domain errors.

Services raise plain Python/Django exceptions (they know nothing of HTTP); this module maps them:
- django.core.exceptions.ValidationError -> 400 with field errors
- Conflict (a state conflict: paying a paid bill, an illegal transition) -> 409
- django.http.Http404 / ObjectDoesNotExist from a scoped selector -> 404
"""

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, status
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


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        exc = exceptions.ValidationError(detail=detail)
    elif isinstance(exc, ObjectDoesNotExist):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        # Keep the reason ("this household has not paid for 2019-08") when a service gives one.
        exc = exceptions.PermissionDenied(detail=str(exc) or None)
    return drf_exception_handler(exc, context)
