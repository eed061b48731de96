"""The alliance in Django admin. Ratings, inspections and scorecards are read-only here: they are
written by the services. A centre admin (for their own centre's estates) may finalize a month's
draft scorecard early, recompute drafts, or revise a final scorecard with a reason; the weights
are edited by a superuser (they apply to every centre) and read by centre admins."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from rest_framework.exceptions import APIException

from alliance import services
from alliance.models import Inspection, Scorecard, ScoreWeight, ServiceRating
from billing.money import money_text
from community.admin import CentreScopedAdmin
from community.periods import Period


def _problem(exc: Exception) -> str:
    if isinstance(exc, APIException):
        return str(exc.detail)
    return " ".join(exc.messages)


class ReadOnlyMixin:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ScoreWeight)
class ScoreWeightAdmin(admin.ModelAdmin):
    list_display = ["component", "weight"]
    list_editable = ["weight"]
    readonly_fields = ["component"]

    def has_add_permission(self, request):
        return False  # the five components are fixed; their weights are the data

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ServiceRating)
class ServiceRatingAdmin(ReadOnlyMixin, CentreScopedAdmin):
    community_path = "community"
    list_display = [
        "community",
        "household",
        "period",
        "cleaning",
        "greening",
        "security",
        "reporting",
        "repair",
        "comment",
        "created_at",
    ]
    list_filter = ["period", "community"]
    search_fields = ["comment", "household__unit"]
    list_select_related = ["community", "household__building__community"]


@admin.register(Inspection)
class InspectionAdmin(ReadOnlyMixin, CentreScopedAdmin):
    community_path = "community"
    list_display = [
        "community",
        "period",
        "staff_on_duty",
        "staff_rostered",
        "grid_cooperation",
        "major_matter_cooperation",
        "inspector",
        "organisation",
        "created_at",
    ]
    list_filter = ["period", "community", "organisation"]
    list_select_related = ["community", "inspector", "organisation"]


class ReviseForm(forms.Form):
    reason = forms.CharField(
        label=gettext_lazy("Reason for the revision"),
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=gettext_lazy(
            "Published with the new revision. The figures are computed again from the data as "
            "it is now; no money moves (the month's hold-back was released once)."
        ),
    )


@admin.register(Scorecard)
class ScorecardAdmin(CentreScopedAdmin):
    community_path = "community"
    list_display = [
        "community",
        "period",
        "revision",
        "is_current",
        "score",
        "attendance_rate",
        "handling_rate",
        "grid_cooperation",
        "major_matter_cooperation",
        "resident_satisfaction",
        "finalized_at",
    ]
    list_filter = ["is_current", "period", "community"]
    list_select_related = ["community"]
    actions = ["finalize", "recompute"]
    change_form_template = "admin/alliance/scorecard/change_form.html"

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        # Needed for the actions and the revision form; every field is shown read-only.
        return request.user.has_perm("alliance.change_scorecard")

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Scorecard._meta.fields]

    @admin.action(
        description=gettext_lazy("Finalize the selected months and release their hold-back"),
        permissions=["change"],
    )
    def finalize(self, request, queryset):
        for card in queryset.select_related("community"):
            try:
                final, created = services.scorecard_finalize(
                    community=card.community, period=Period.parse(card.period), by=request.user
                )
            except (ValidationError, APIException) as exc:
                self.message_user(request, f"{card}: {_problem(exc)}", messages.ERROR)
                continue
            if created:
                self.message_user(
                    request,
                    _(
                        "%(card)s finalized at %(score)s: %(to_company)s to the company, "
                        "%(to_fund)s to the public fund."
                    )
                    % {
                        "card": final,
                        "score": final.score,
                        "to_company": money_text(final.released_to_company),
                        "to_fund": money_text(final.forfeited_to_fund),
                    },
                )
            else:
                self.message_user(request, _("%(card)s was already final.") % {"card": final})

    @admin.action(description=gettext_lazy("Recompute the selected drafts"), permissions=["change"])
    def recompute(self, request, queryset):
        count = 0
        for card in queryset.filter(finalized_at__isnull=True).select_related("community"):
            try:
                services.scorecard_refresh(
                    community=card.community, period=Period.parse(card.period)
                )
            except ValidationError as exc:
                self.message_user(request, f"{card}: {_problem(exc)}", messages.ERROR)
            else:
                count += 1
        self.message_user(
            request,
            ngettext("%(count)s draft recomputed.", "%(count)s drafts recomputed.", count)
            % {"count": count},
        )

    def get_urls(self):
        return [
            path(
                "<int:pk>/revise/",
                self.admin_site.admin_view(self.revise_view),
                name="alliance_scorecard_revise",
            ),
            *super().get_urls(),
        ]

    def revise_view(self, request, pk):
        card = self.get_queryset(request).filter(pk=pk).select_related("community").first()
        if card is None or not self.has_change_permission(request, card):
            messages.error(request, _("No such scorecard in your centre."))
            return redirect("admin:alliance_scorecard_changelist")
        form = ReviseForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                revision = services.scorecard_revise(
                    community=card.community,
                    period=Period.parse(card.period),
                    reason=form.cleaned_data["reason"],
                    by=request.user,
                )
            except (ValidationError, APIException) as exc:
                form.add_error(None, _problem(exc))
            else:
                messages.success(
                    request,
                    _("Revision %(revision)s published with score %(score)s; no money moved.")
                    % {"revision": revision.revision, "score": revision.score},
                )
                return redirect("admin:alliance_scorecard_change", revision.pk)
        return render(
            request,
            "admin/alliance/revise_form.html",
            {
                **self.admin_site.each_context(request),
                "form": form,
                "card": card,
                "title": _("Revise the scorecard %(card)s") % {"card": card},
            },
        )
