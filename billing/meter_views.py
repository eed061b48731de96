"""Meter readings entered in the browser by the estate's staff, on a phone: choose a building,
then type this month's reading of each household's meter. Each reading is written by
billing.charges.meter_reading_record (one transaction per household: a refused reading writes
nothing and the others still go in), and a refused one is shown beside its household with the
value kept.

Who: property staff of the company that manages the estate, and the centre admins of its
centre. Someone who sees the estate in another role (a resident, an inspector, a committee
member) gets 403; an estate they cannot see at all is 404 (community/selectors.py).
"""

from decimal import Decimal

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from billing.charges import meter_reading_record
from billing.models import ChargeItem, MeterReading
from community import selectors as community_selectors
from community.models import Community, Household, Role
from community.periods import Period
from config.api import Conflict

ENTRY_ROLES = [Role.PROPERTY_STAFF, Role.CENTRE_ADMIN]


def entry_communities(user):
    """The estates whose meter readings `user` may enter."""
    return community_selectors.community_list(user=user, roles=ENTRY_ROLES).order_by("name")


def metered_items(community: Community, period: Period) -> list[ChargeItem]:
    agreement = community_selectors.agreement_in_force(community=community, on=period.first_day)
    if agreement is None:
        return []
    return list(
        agreement.charge_items.filter(method=ChargeItem.Method.METERED).order_by("position", "pk")
    )


def reading_rows(*, building, meter: str, period: Period) -> list[dict]:
    """The building's households with their meter's last reading before `period` and the one of
    `period`, if entered: two queries whatever the building's size."""
    households = list(Household.objects.filter(building=building).order_by("unit"))
    readings = MeterReading.objects.filter(
        household__building=building, meter=meter, period__lte=str(period)
    ).order_by("household_id", "period")
    last: dict[int, MeterReading] = {}
    this: dict[int, MeterReading] = {}
    for reading in readings:
        (this if reading.period == str(period) else last)[reading.household_id] = reading
    return [{"household": h, "last": last.get(h.pk), "this": this.get(h.pk)} for h in households]


class ChoiceForm(forms.Form):
    building = forms.TypedChoiceField(label=gettext_lazy("Building"), coerce=int)
    meter = forms.ChoiceField(label=gettext_lazy("Meter"))
    period = forms.CharField(
        label=gettext_lazy("Month"),
        max_length=7,
        help_text=gettext_lazy("YYYY-MM: the month whose closing reading this is."),
    )

    def __init__(self, *args, buildings, meters, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["building"].choices = [(b.pk, b.name) for b in buildings]
        self.fields["meter"].choices = [(item.code, item.name) for item in meters]
        self.fields["period"].widget.attrs.update(inputmode="numeric", pattern=r"\d{4}-\d{2}")

    def clean_period(self):
        try:
            return Period.parse(self.cleaned_data["period"])
        except ValueError:
            raise ValidationError(_("Enter a month as YYYY-MM, e.g. 2026-06.")) from None


def _messages_of(exc) -> str:
    if isinstance(exc, Conflict):
        return str(exc.detail)
    return " ".join(exc.messages)


@login_required
def meter_reading_estates(request):
    communities = list(entry_communities(request.user))
    if not communities:
        raise PermissionDenied(_("Only the estate's staff and centre admins enter readings."))
    return render(request, "billing/meter_estates.html", {"communities": communities})


@login_required
def meter_reading_entry(request, community_id: int):
    try:
        community = community_selectors.community_get(user=request.user, community_id=community_id)
    except ObjectDoesNotExist:
        raise Http404 from None
    if not entry_communities(request.user).filter(pk=community.pk).exists():
        raise PermissionDenied(_("Only the estate's staff and centre admins enter readings."))

    buildings = list(community.buildings.order_by("name"))
    data = request.POST if request.method == "POST" else request.GET
    period_text = data.get("period") or str(Period.current())
    try:
        meters = metered_items(community, Period.parse(period_text))
    except ValueError:
        meters = metered_items(community, Period.current())
    initial = {
        "building": buildings[0].pk if buildings else None,
        "meter": meters[0].code if meters else None,
        "period": str(Period.current()),
    }
    bound = {**initial, **{k: data[k] for k in ("building", "meter", "period") if data.get(k)}}
    # Nothing to choose from (no building, no metered item): an unbound form, no field errors.
    usable = request.method == "POST" or (buildings and meters)
    form = ChoiceForm(bound if usable else None, buildings=buildings, meters=meters)

    rows, errors, typed = [], {}, {}
    if form.is_valid():
        building = next(b for b in buildings if b.pk == form.cleaned_data["building"])
        meter, period = form.cleaned_data["meter"], form.cleaned_data["period"]
        rows = reading_rows(building=building, meter=meter, period=period)
        if request.method == "POST":
            saved = 0
            for row in rows:
                household = row["household"]
                reading = request.POST.get(f"reading-{household.pk}", "").strip()
                previous = request.POST.get(f"previous-{household.pk}", "").strip()
                typed[household.pk] = {"reading": reading, "previous": previous}
                if not reading:
                    continue
                try:
                    _saved, what = meter_reading_record(
                        household=household,
                        meter=meter,
                        period=period,
                        reading=reading,
                        previous_reading=previous or None,
                        recorded_by=request.user,
                        source=MeterReading.Source.STAFF,
                    )
                except (ValidationError, Conflict) as exc:
                    errors[household.pk] = _messages_of(exc)
                    continue
                saved += what != "unchanged"
            if saved:
                messages.success(
                    request,
                    ngettext("%(count)d reading saved.", "%(count)d readings saved.", saved)
                    % {"count": saved},
                )
            if not errors:
                query = urlencode({"building": building.pk, "meter": meter, "period": period})
                url = reverse("meter-reading-entry", args=[community.pk])
                return redirect(f"{url}?{query}")
            rows = reading_rows(building=building, meter=meter, period=period)
    elif request.method == "POST":
        messages.error(request, _("Choose a building, a meter and a month first."))

    for row in rows:
        pk = row["household"].pk
        row["error"] = errors.get(pk, "")
        this = row["this"]
        row["typed"] = typed.get(pk, {}).get("reading") or (
            _plain(this.reading) if this is not None else ""
        )
        row["typed_previous"] = typed.get(pk, {}).get("previous", "")
        row["needs_previous"] = row["last"] is None and this is None
    return render(
        request,
        "billing/meter_readings.html",
        {
            "community": community,
            "form": form,
            "rows": rows,
            "has_meters": bool(meters),
            "error_count": len(errors),
        },
        status=200,
    )


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f") if value == value.to_integral() else str(value)
