"""Browser pages of the community app: the landing redirect, the resident home, the staff home."""

from django.contrib.auth.decorators import login_required
from django.db import DatabaseError, connection
from django.db.models import Count
from django.http import HttpResponse, HttpResponseServerError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from community import selectors, services


def _has_staff_home(user) -> bool:
    return user.is_superuser or selectors.membership_list_for_user(user=user).exists()


@login_required
def home(request):
    """Send each person to the home that fits them: staff roles first, then residents."""
    return redirect("staff-home" if _has_staff_home(request.user) else "resident-home")


@login_required
def resident_home(request):
    residencies = list(selectors.residency_list_for_user(user=request.user))
    unread = selectors.notice_list(user=request.user, unread_only=True)
    return render(
        request,
        "community/resident_home.html",
        {
            "residencies": residencies,
            "has_staff_home": _has_staff_home(request.user),
            "unread_notices": list(unread[:5]),
            "unread_count": unread.count(),
        },
    )


@login_required
def notices(request):
    return render(
        request,
        "community/notices.html",
        {"notices": selectors.notice_list(user=request.user)[:100]},
    )


@login_required
@require_POST
def notices_mark_read(request):
    services.notice_mark_read(user=request.user)
    return redirect("notices")


@login_required
def staff_home(request):
    memberships = list(selectors.membership_list_for_user(user=request.user))
    roles = {m.role for m in memberships}
    if roles or request.user.is_superuser:
        communities = (
            selectors.community_list(user=request.user, roles=roles or None)
            .annotate(household_count=Count("buildings__households"))
            .order_by("name")
        )
    else:
        communities = []
    has_households = selectors.residency_list_for_user(user=request.user).exists()
    return render(
        request,
        "community/staff_home.html",
        {"memberships": memberships, "communities": communities, "has_households": has_households},
    )


def healthz(request):
    """Liveness and readiness for the load balancer and docker-compose: the database answers."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return HttpResponseServerError("database unavailable", content_type="text/plain")
    return HttpResponse("ok", content_type="text/plain")
