"""Browser pages of points: the resident's points (balances, level, history), the rewards
catalogue with redeem, the monthly leaderboard, the company's reward points for property staff,
and the provider's page that accepts redemption codes. Thin: every write goes through
points.services, every read through points.selectors."""

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from rest_framework.exceptions import APIException

from billing.services import request_fingerprint
from community.periods import Period
from points import selectors, services

HISTORY_PAGE = 30


def _error_text(exc: APIException) -> str:
    return str(exc.detail)


@login_required
def points_home(request):
    mine = selectors.resident_points(user=request.user)
    history = Paginator(selectors.entry_list(holder=mine.holder), HISTORY_PAGE)
    page = history.get_page(request.GET.get("page"))
    return render(
        request,
        "points/home.html",
        {
            "mine": mine,
            "page": page,
            "opted_out": bool(mine.holder and mine.holder.leaderboard_opt_out),
            "has_company": selectors.company_points_list(user=request.user, history=0) != [],
        },
    )


@login_required
@require_POST
def profile_update(request):
    opt_out = request.POST.get("leaderboard_opt_out") == "1"
    services.leaderboard_opt_out_set(user=request.user, opt_out=opt_out)
    messages.success(
        request,
        _("You no longer appear on the leaderboard.")
        if opt_out
        else _("You appear on the leaderboard again."),
    )
    return redirect("points-home")


@login_required
def reward_list(request):
    mine = selectors.resident_points(user=request.user)
    rewards = list(selectors.reward_list(user=request.user))
    for reward in rewards:
        if reward.stock < 1:
            reward.blocked = _("Out of stock")
        elif mine.reputation < reward.min_reputation:
            reward.blocked = _("Needs %(points)s reputation") % {"points": reward.min_reputation}
        elif mine.contribution < reward.cost:
            reward.blocked = _("%(points)s more contribution points needed") % {
                "points": reward.cost - mine.contribution
            }
        else:
            reward.blocked = ""
    return render(
        request,
        "points/rewards.html",
        {
            "mine": mine,
            "rewards": rewards,
            "redemptions": list(selectors.redemption_list(user=request.user)[:50]),
            # A fresh key per rendered page: a double-submitted form redeems once.
            "idempotency_key": uuid.uuid4().hex,
        },
    )


@login_required
@require_POST
def reward_redeem(request, pk):
    key = request.POST.get("idempotency_key") or uuid.uuid4().hex
    try:
        redemption, _created = services.reward_redeem(
            user=request.user,
            reward_id=pk,
            idempotency_key=f"web:{key}:{pk}"[:100],
            fingerprint=request_fingerprint({"reward": pk}),
        )
    except ObjectDoesNotExist as exc:
        raise Http404 from exc
    except APIException as exc:
        messages.error(request, _error_text(exc))
        return redirect("points-rewards")
    messages.success(
        request,
        _("Redeemed %(reward)s. Show the code %(code)s to the provider.")
        % {"reward": redemption.reward.name, "code": redemption.code},
    )
    return redirect("points-rewards")


@login_required
def leaderboard(request):
    communities = list(selectors.leaderboard_communities(user=request.user)[:100])
    if not communities:
        raise Http404
    chosen = communities[0]
    wanted = request.GET.get("community")
    if wanted:
        chosen = next((c for c in communities if str(c.pk) == wanted), None)
        if chosen is None:
            raise Http404
    try:
        period = Period.parse(request.GET["period"]) if request.GET.get("period") else None
    except ValueError:
        period = None
    period = period or Period.current()
    holder = selectors.holder_of_user(user=request.user)
    return render(
        request,
        "points/leaderboard.html",
        {
            "communities": communities,
            "community": chosen,
            "period": period,
            "periods": [Period.current().plus(-n) for n in range(12)],
            "rows": selectors.leaderboard(community=chosen, period=period),
            "opted_out": bool(holder and holder.leaderboard_opt_out),
        },
    )


@login_required
def company_points(request):
    companies = selectors.company_points_list(user=request.user)
    if not companies:
        raise PermissionDenied
    return render(request, "points/company.html", {"companies": companies})


@login_required
def fulfil(request):
    if not selectors.is_provider(user=request.user):
        raise PermissionDenied
    if request.method == "POST":
        code = request.POST.get("code", "")
        try:
            redemption = services.redemption_fulfil(user=request.user, code=code)
        except ObjectDoesNotExist:
            messages.error(request, _("No reward of yours has this code."))
        except APIException as exc:
            messages.error(request, _error_text(exc))
        else:
            messages.success(
                request,
                _("Code %(code)s accepted: %(reward)s for %(resident)s.")
                % {
                    "code": redemption.code,
                    "reward": redemption.reward.name,
                    "resident": redemption.user.get_display_name(),
                },
            )
        return redirect("points-fulfil")
    recent = selectors.redemption_list_for_provider(user=request.user)[:30]
    return render(request, "points/fulfil.html", {"recent": recent})
