"""Hardening shared by every app: the client's address (behind TRUSTED_PROXY_COUNT proxies),
per-user rate limits on the writes that are costly or can be abused (starting payments, filing
tickets), the answers and the backend of django-axes' sign-in lock-out, the Permissions-Policy
header, the one relaxation of the Content-Security-Policy (DRF's HTML pages), and a deploy check
that the rate limits count in a cache every worker shares.

The other headers come from Django itself (see config/settings/base.py, "Security"):
Content-Security-Policy from its CSP middleware, Referrer-Policy, X-Content-Type-Options and
Cross-Origin-Opener-Policy from SecurityMiddleware, X-Frame-Options from the clickjacking one.
"""

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.core import checks
from django.shortcuts import render
from django.utils.csp import CSP
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from rest_framework import renderers
from rest_framework.exceptions import Throttled
from rest_framework.permissions import SAFE_METHODS
from rest_framework.throttling import UserRateThrottle


def client_ip(request) -> str:
    """The address the request came from. X-Forwarded-For is believed only as far as the
    TRUSTED_PROXY_COUNT proxies in front of us wrote it: each appends the address it was called
    from, so the client is the entry that many places from the right; anything further left was
    sent by the client and could be anything."""
    remote = request.META.get("REMOTE_ADDR", "") or ""
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    forwarded = [part for part in forwarded if part]
    if len(forwarded) < proxies:
        # Fewer hops than configured: not our proxy chain; trust only the socket.
        return remote
    return forwarded[-proxies]


class PermissionsPolicyMiddleware:
    """Switch off the browser features no page uses (settings.PERMISSIONS_POLICY), so a script
    that got in anyway could not reach the camera, the microphone or the home's location."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if settings.PERMISSIONS_POLICY:
            response.headers.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        return response


# --- per-user rate limits --------------------------------------------------------------------


class WriteRateThrottle(UserRateThrottle):
    """Counts one user's writes (reads pass freely) against a rate read from settings on each
    request, so an environment variable sets it and a test can override it. Anonymous callers
    are counted by address, though the throttled views need a signed-in user anyway. The API
    and the browser pages share one count through the cache (Redis in production, so every
    gunicorn worker sees the same numbers)."""

    rate_setting: str
    message: str

    def get_rate(self):
        return getattr(settings, self.rate_setting)

    def get_ident(self, request):
        return client_ip(request)

    def allow_request(self, request, view):
        if request.method in SAFE_METHODS:
            return True
        return super().allow_request(request, view)


class PaymentRateThrottle(WriteRateThrottle):
    scope = "payments"
    rate_setting = "PAYMENT_THROTTLE_RATE"

    @property
    def message(self) -> str:
        return _("Too many payments started in a short time.")


class TicketRateThrottle(WriteRateThrottle):
    scope = "tickets"
    rate_setting = "TICKET_THROTTLE_RATE"

    @property
    def message(self) -> str:
        return _("Too many tickets filed in a short time.")


class ThrottleMessageMixin:
    """For an API view: say which limit was hit (429, with Retry-After and the wait in the
    message) rather than DRF's generic "Request was throttled"."""

    def throttled(self, request, wait):
        messages = [t.message for t in self.get_throttles() if isinstance(t, WriteRateThrottle)]
        raise Throttled(wait=wait, detail=messages[0] if messages else None)


def throttled_page(request, throttle_class: type[WriteRateThrottle]):
    """For a browser view: None if the user may go on; else the 429 page saying when to retry.
    Counts this request, like the API's throttle does."""
    throttle = throttle_class()
    if throttle.allow_request(request, None):
        return None
    wait = throttle.wait()
    seconds = max(1, round(wait)) if wait is not None else None
    response = render(
        request,
        "throttled.html",
        {"message": throttle.message, "seconds": seconds},
        status=429,
    )
    if seconds is not None:
        response["Retry-After"] = str(seconds)
    return response


# --- sign-in lock-out --------------------------------------------------------------------------


def lockout_minutes() -> int:
    return max(1, round(settings.AXES_COOLOFF_TIME.total_seconds() / 60))


def lockout_message() -> str:
    minutes = lockout_minutes()
    return ngettext(
        "Too many failed sign-ins for this account from your address. "
        "Please try again in %(minutes)d minute.",
        "Too many failed sign-ins for this account from your address. "
        "Please try again in %(minutes)d minutes.",
        minutes,
    ) % {"minutes": minutes}


def lockout_response(request, original_response=None, credentials=None):
    """django-axes' answer to a locked-out browser sign-in (the site's and the admin's login):
    429 with the wait in Retry-After and on the page. The token endpoint answers the same in
    JSON (community.api.TokenObtainView)."""
    response = render(
        request,
        "registration/locked_out.html",
        {"message": lockout_message()},
        status=429,
    )
    response["Retry-After"] = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    return response


class AxesBackend(AxesStandaloneBackend):
    """django-axes' lock-out check, for sign-ins that come with a request: the login pages, the
    admin's and the token endpoint all pass theirs. A call without one is code, not someone at a
    form (Django's test client `login()`, a management command, the shell): there is no client
    to count or lock, so it goes straight to the password check instead of failing."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


class BrowsableAPIRenderer(renderers.BrowsableAPIRenderer):
    """DRF's HTML pages for the API (what a browser sees at /api/v1/...): its templates carry
    style attributes and a <style> block, so these pages alone may use inline styles. Scripts
    stay as strict as everywhere else (the pages load theirs from files). No nonce in style-src
    here: a nonce would make the browser ignore 'unsafe-inline'."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        response = (renderer_context or {}).get("response")
        if response is not None:
            response._csp_config = {
                **settings.SECURE_CSP,
                "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
            }
        return super().render(data, accepted_media_type, renderer_context)


@checks.register(checks.Tags.security, deploy=True)
def shared_cache_check(app_configs, **kwargs):
    """Rate limits count in the cache: a cache of each process's own (the default without
    CACHE_URL) would let every gunicorn worker hand out the full allowance."""
    backend = settings.CACHES["default"]["BACKEND"]
    if backend.endswith(("LocMemCache", "DummyCache")):
        return [
            checks.Warning(
                "The default cache is not shared between processes, so rate limits would "
                "count per worker.",
                hint="Set CACHE_URL, e.g. rediscache://redis:6379/1.",
                id="linli.W001",
            )
        ]
    return []
