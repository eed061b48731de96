"""Browser pages of the alliance app, over the same selectors and services as the API.

- residents (phone): which months they may rate, and the rating form (five rows of stars);
- property staff and centre admins: a month's ratings per dimension with the comments, as they
  come in (the summary is a live region that static/js/repairs-live.js refreshes);
- alliance inspectors: the spot-check form and the checks recorded in their centre;
- everyone who sees an estate: its scorecard and its trend over twelve months (an inline SVG
  chart drawn here, with the same numbers in a table); centre admins: their estates ranked.
"""

from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from alliance import selectors, services, trust
from alliance.models import COMPONENTS, DIMENSIONS, Component, Dimension
from community import selectors as community_selectors
from community.models import Community, Role
from community.periods import Period
from config.api import Conflict

STAR_CHOICES = [(n, f"{n}★") for n in range(1, 6)]
TREND_MONTHS = 12


def _error_text(exc: Exception) -> str:
    if isinstance(exc, Conflict):
        return str(exc.detail)
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return " ".join(map(str, exc.args)) or _("Not allowed.")


def _period_or(text: str | None, default: Period) -> Period:
    """A period from the query string; anything unreadable falls back (never an error page)."""
    try:
        return Period.parse(text)
    except ValueError:
        return default


def _add_errors(form: forms.Form, exc: ValidationError) -> None:
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for field, errors in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)


# --- residents: rating ------------------------------------------------------------------------


def _stars_field(dimension: Dimension) -> forms.TypedChoiceField:
    return forms.TypedChoiceField(
        label=dimension.label, choices=STAR_CHOICES, coerce=int, widget=forms.RadioSelect
    )


class RatingForm(forms.Form):
    cleaning = _stars_field(Dimension.CLEANING)
    greening = _stars_field(Dimension.GREENING)
    security = _stars_field(Dimension.SECURITY)
    reporting = _stars_field(Dimension.REPORTING)
    repair = _stars_field(Dimension.REPAIR)
    comment = forms.CharField(
        label=gettext_lazy("Comment (optional)"),
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def star_fields(self):
        return [self[dimension] for dimension in DIMENSIONS]


@login_required
def my_ratings(request):
    """The months a resident's households may rate (this one and the last), and why not."""
    current = Period.current()
    slots = selectors.rating_slots(user=request.user, periods=[current, current.previous()])
    return render(request, "alliance/my_ratings.html", {"slots": slots})


@login_required
def rating_new(request, household_id: int, period: str):
    try:
        month = Period.parse(period)
    except ValueError:
        raise Http404 from None
    slots = [
        slot
        for slot in selectors.rating_slots(user=request.user, periods=[month])
        if slot.household.pk == household_id
    ]
    if not slots:
        raise Http404  # not a household the person lives in
    slot = slots[0]
    household = slot.household
    form = RatingForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.rating_create(
                user=request.user,
                household_id=household.pk,
                period=month,
                stars={dimension: data[dimension] for dimension in DIMENSIONS},
                comment=data["comment"],
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        except (Conflict, PermissionDenied) as exc:
            messages.error(request, _error_text(exc))
            return redirect("alliance-rate")
        else:
            messages.success(
                request, _("Thank you: your rating of %(period)s is in.") % {"period": month}
            )
            return redirect("alliance-rate")
    return render(
        request, "alliance/rating_form.html", {"form": form, "slot": slot, "period": month}
    )


# --- staff: ratings as they come in -----------------------------------------------------------


@login_required
def staff_ratings(request):
    """A month's ratings of one estate per dimension, with the comments; refreshed live."""
    communities = list(
        community_selectors.community_list(
            user=request.user, roles=selectors.RATING_READER_ROLES
        ).order_by("name")
    )
    if not communities:
        raise PermissionDenied(_("Ratings are for the property company's staff and centre admins."))
    by_id = {str(c.pk): c for c in communities}
    community = by_id.get(request.GET.get("community", ""), communities[0])
    period = _period_or(request.GET.get("period"), Period.current())
    query = f"?community={community.pk}&period={period}"
    context = {
        "communities": communities,
        "community": community,
        "period": period,
        "periods": [Period.current().plus(-n) for n in range(12)],
        "summary": selectors.rating_summary(community=community, period=period),
        "comments": list(selectors.rating_comments(community=community, period=period)[:100]),
        "live_url": f"{request.path}{query}&fragment=1",
        "refresh_seconds": settings.ALLIANCE_RATINGS_REFRESH_SECONDS,
    }
    fragment = request.GET.get("fragment") == "1"
    template = "alliance/_ratings_live.html" if fragment else "alliance/staff_ratings.html"
    return render(request, template, context)


# --- inspectors -------------------------------------------------------------------------------


class InspectionForm(forms.Form):
    community = forms.ModelChoiceField(
        label=gettext_lazy("Estate"), queryset=Community.objects.none()
    )
    period = forms.CharField(
        label=gettext_lazy("Month (YYYY-MM)"),
        max_length=7,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "pattern": r"\d{4}-\d{2}"}),
    )
    staff_on_duty = forms.IntegerField(label=gettext_lazy("Staff on duty"), min_value=0)
    staff_rostered = forms.IntegerField(label=gettext_lazy("Staff rostered"), min_value=1)
    grid_cooperation = forms.IntegerField(
        label=gettext_lazy("Grid cooperation (0–100)"), min_value=0, max_value=100
    )
    major_matter_cooperation = forms.IntegerField(
        label=gettext_lazy("Major-matter cooperation (0–100)"), min_value=0, max_value=100
    )
    note = forms.CharField(
        label=gettext_lazy("Note"),
        max_length=1000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def __init__(self, *args, communities, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["community"].queryset = communities

    def clean_period(self):
        try:
            return Period.parse(self.cleaned_data["period"])
        except ValueError:
            raise ValidationError(_("Use the form YYYY-MM.")) from None

    def clean(self):
        data = super().clean()
        on_duty, rostered = data.get("staff_on_duty"), data.get("staff_rostered")
        if on_duty is not None and rostered is not None and on_duty > rostered:
            self.add_error("staff_on_duty", _("Cannot be more than the staff rostered."))
        return data


@login_required
def inspections(request):
    communities = selectors.inspection_communities(user=request.user)
    if not communities.exists():
        raise PermissionDenied(_("Spot checks are recorded by the alliance's inspectors."))
    initial = {"period": str(Period.current())}
    only = list(communities[:2])
    if len(only) == 1:
        initial["community"] = only[0].pk
    form = InspectionForm(request.POST or None, communities=communities, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        community = data.pop("community")
        try:
            services.inspection_create(user=request.user, community_id=community.pk, **data)
        except ValidationError as exc:
            _add_errors(form, exc)
        except (Conflict, PermissionDenied) as exc:
            messages.error(request, _error_text(exc))
        else:
            messages.success(
                request,
                _("Spot check of %(community)s for %(period)s recorded.")
                % {"community": community.name, "period": data["period"]},
            )
            return redirect("alliance-inspections")
    recent = selectors.inspection_list(user=request.user).filter(
        community__in=communities.values("pk")
    )[:20]
    return render(request, "alliance/inspections.html", {"form": form, "recent": recent})


# --- scorecards -------------------------------------------------------------------------------


@login_required
def scorecards(request):
    """Every estate the person sees with its latest scorecard; centre admins also get their
    estates ranked for a month."""
    communities = list(community_selectors.community_list(user=request.user).order_by("name"))
    if not communities:
        raise PermissionDenied(_("You see no estate."))
    current = Period.current()
    latest = {}
    for card in selectors.scorecard_list(user=request.user).filter(
        period__gte=str(current.plus(-TREND_MONTHS))
    ):
        latest.setdefault(card.community_id, card)
    is_centre_admin = request.user.is_superuser or bool(
        community_selectors.community_list(user=request.user, roles=[Role.CENTRE_ADMIN]).exists()
    )
    if len(communities) == 1 and not is_centre_admin:
        return redirect("alliance-scorecard", community_id=communities[0].pk)
    period = _period_or(request.GET.get("period"), current.previous())
    context = {
        "rows": [(c, latest.get(c.pk)) for c in communities],
        "is_centre_admin": is_centre_admin,
        "period": period,
        "periods": [current.plus(-n) for n in range(TREND_MONTHS + 1)],
        "ranking": list(selectors.scorecard_ranking(user=request.user, period=period))
        if is_centre_admin
        else [],
    }
    return render(request, "alliance/scorecards.html", context)


def _components(card) -> list[dict]:
    """The card's components with their weights and the share each had in this month's score
    (after leaving out the ones without data)."""
    if card is None:
        return []
    weights = {name: Decimal(value) for name, value in (card.weights or {}).items()}
    present = sum(
        (weights.get(name, Decimal(0)) for name in COMPONENTS if getattr(card, name) is not None),
        Decimal(0),
    )
    rows = []
    for name in COMPONENTS:
        value = getattr(card, name)
        weight = weights.get(name)
        share = weight / present if value is not None and weight is not None and present else None
        rows.append(
            {
                "name": name,
                "label": Component(name).label,
                "value": value,
                "weight": weight,
                "share": share,
            }
        )
    return rows


# The trend chart's drawing area, in SVG user units (it scales to the screen's width).
CHART = {"width": 400, "height": 220, "left": 40, "right": 12, "top": 12, "bottom": 36}


def trend_chart(cards, *, until: Period, months: int = TREND_MONTHS) -> dict:
    """Points, line segments and axes of the score over `months` months up to `until`. A month
    without a score leaves a gap in the line. Floats are for drawing only."""
    width = CHART["width"] - CHART["left"] - CHART["right"]
    height = CHART["height"] - CHART["top"] - CHART["bottom"]
    by_period = {card.period: card for card in cards}
    step = width / (months - 1)
    points, segments, segment = [], [], []
    for index in range(months):
        period = until.plus(index - months + 1)
        card = by_period.get(str(period))
        x = CHART["left"] + index * step
        y = None
        if card is not None and card.score is not None:
            y = CHART["top"] + (1 - float(card.score)) * height
            segment.append(f"{x:.1f},{y:.1f}")
        elif segment:
            segments.append(" ".join(segment))
            segment = []
        points.append(
            {
                "period": period,
                "card": card,
                "x": f"{x:.1f}",
                "y": None if y is None else f"{y:.1f}",
                "label": f"{period.month:02d}",
                "year": str(period.year) if index == 0 or period.month == 1 else "",
            }
        )
    if segment:
        segments.append(" ".join(segment))
    grid = [
        {
            "y": f"{CHART['top'] + (1 - value) * height:.1f}",
            "label": f"{value:.2f}",
        }
        for value in (0, 0.25, 0.5, 0.75, 1)
    ]
    return {
        **CHART,
        "points": points,
        "segments": segments,
        "grid": grid,
        "plot_right": CHART["width"] - CHART["right"],
        "axis_y": CHART["height"] - CHART["bottom"],
        "label_y": CHART["height"] - CHART["bottom"] + 15,
        "year_y": CHART["height"] - CHART["bottom"] + 29,
    }


@login_required
def scorecard_detail(request, community_id: int):
    try:
        community = community_selectors.community_get(user=request.user, community_id=community_id)
    except Community.DoesNotExist:
        raise Http404 from None
    published = selectors.scorecard_list(user=request.user).filter(community=community)
    if "period" in request.GET:
        period = _period_or(request.GET["period"], Period.current().previous())
    else:
        newest = published.filter(finalized_at__isnull=False).first() or published.first()
        period = Period.parse(newest.period) if newest else Period.current().previous()
    card = selectors.scorecard_current(community=community, period=period)
    trend = selectors.scorecard_trend(community=community, until=period, months=TREND_MONTHS)
    roles = community_selectors.roles_in_community(user=request.user, community=community)
    is_centre_admin = request.user.is_superuser or Role.CENTRE_ADMIN in roles
    revisions = (
        list(selectors.scorecard_revisions(community=community, period=period))
        if card is not None and card.revision > 1
        else []
    )
    appeal_list = list(trust.scorecard_appeals(scorecard=card)) if card is not None else []
    context = {
        "trust": trust.scorecard_trust(scorecard=card) if card is not None else None,
        "burst_size": settings.ALLIANCE_RATING_BURST_SIZE,
        "show_burst_details": trust.may_see_burst_details(
            user=request.user, community=community, roles=roles
        ),
        "appeals": appeal_list,
        "may_appeal": card is not None
        and card.finalized
        and Role.PROPERTY_STAFF in roles
        and not any(a.is_open for a in appeal_list)
        and trust.is_company_manager(user=request.user, community=community),
        "community": community,
        "period": period,
        "previous_period": period.previous(),
        "next_period": period.next() if period < Period.current() else None,
        "card": card,
        "components": _components(card),
        "trend": trend,
        "chart": trend_chart(trend, until=period),
        "revisions": revisions,
        "is_centre_admin": is_centre_admin,
        "may_read_ratings": bool(roles & set(selectors.RATING_READER_ROLES))
        or request.user.is_superuser,
        "admin_url": reverse("admin:alliance_scorecard_change", args=[card.pk])
        if card is not None and is_centre_admin
        else "",
    }
    return render(request, "alliance/scorecard.html", context)
