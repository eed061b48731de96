"""Fee items, meter readings, late-fee and discount rules in Django admin.

A centre admin sets the charge items of their estates' agreements and the rules of their
estates; the rules for every estate (community empty) are a superuser's. Bill lines are written
by billing.charges only: the one thing an admin does to a line is waive a late fee, with a
reason, through billing.charges.late_fee_waive (audited)."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework.exceptions import APIException

from billing import charges

# billing.admin imports this module at its end, after CommunityScopedReadOnly is defined.
from billing.admin import CommunityScopedReadOnly
from billing.models import (
    BillLine,
    ChargeItem,
    ChargeSubscription,
    ChargeTier,
    LateFeeRule,
    MeterReading,
    PrepayDiscountRule,
)
from community import selectors as community_selectors
from community.models import Agreement, Household, Role


def _administered(request):
    return community_selectors.community_list(user=request.user, roles=[Role.CENTRE_ADMIN])


class ScopedAdmin(admin.ModelAdmin):
    """Rows of the estates the user administers (a superuser: all)."""

    community_path = "community"

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        return qs.filter(**{f"{self.community_path}__in": _administered(request).values("pk")})


class ChargeTierInline(admin.TabularInline):
    model = ChargeTier
    extra = 0
    fields = ["up_to", "unit_price"]


@admin.register(ChargeItem)
class ChargeItemAdmin(ScopedAdmin):
    community_path = "agreement__community"
    list_display = ["name", "code", "agreement", "method", "unit_price", "unit", "settlement"]
    list_filter = ["method", "settlement", "agreement__community"]
    search_fields = ["name", "code", "agreement__community__name"]
    list_select_related = ["agreement__community"]
    inlines = [ChargeTierInline]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "agreement" and not request.user.is_superuser:
            kwargs["queryset"] = Agreement.objects.filter(
                community__in=_administered(request).values("pk")
            ).select_related("community")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(ChargeSubscription)
class ChargeSubscriptionAdmin(ScopedAdmin):
    community_path = "household__building__community"
    list_display = ["household", "item", "quantity"]
    list_select_related = ["household__building", "item"]
    search_fields = ["household__unit", "household__building__name", "item__name"]
    raw_id_fields = ["household"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if not request.user.is_superuser:
            scope = _administered(request).values("pk")
            if db_field.name == "item":
                kwargs["queryset"] = ChargeItem.objects.filter(
                    agreement__community__in=scope, by_subscription=True
                )
            if db_field.name == "household":
                kwargs["queryset"] = Household.objects.filter(building__community__in=scope)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(MeterReading)
class MeterReadingAdmin(CommunityScopedReadOnly):
    """Readings are entered on the staff page or imported (billing.charges.meter_reading_record
    checks them and bills late ones); here they are read."""

    community_path = "household__building__community"
    list_display = ["household", "meter", "period", "previous_reading", "reading", "source"]
    list_filter = ["meter", "period", "source"]
    list_select_related = ["household__building"]
    search_fields = ["household__unit", "household__building__name"]


class RuleAdmin(ScopedAdmin):
    """An estate's own rules are its centre admin's; the rules for every estate a superuser's."""

    def get_queryset(self, request):
        qs = admin.ModelAdmin.get_queryset(self, request)
        if request.user.is_superuser:
            return qs
        return qs.filter(community__in=_administered(request).values("pk"))

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "community" and not request.user.is_superuser:
            kwargs["queryset"] = _administered(request)
            kwargs["required"] = True
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(LateFeeRule)
class LateFeeRuleAdmin(RuleAdmin):
    list_display = ["name", "community", "grace_days", "daily_rate", "cap_rate", "is_active"]
    list_filter = ["is_active"]


@admin.register(PrepayDiscountRule)
class PrepayDiscountRuleAdmin(RuleAdmin):
    list_display = ["name", "community", "months_paid", "months_free", "is_active"]
    list_filter = ["is_active"]


class BillLineInline(admin.TabularInline):
    """A bill's lines on its admin page, read-only."""

    model = BillLine
    extra = 0
    can_delete = False
    fields = [
        "name",
        "kind",
        "quantity",
        "unit",
        "unit_price",
        "amount",
        "settlement",
        "waived_at",
        "waive_reason",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class WaiveForm(forms.Form):
    reason = forms.CharField(label=gettext_lazy("Reason"), max_length=200)


@admin.register(BillLine)
class LateFeeAdmin(ScopedAdmin):
    """The late fees of the centre's bills, each with a "waive" form (an audited decision)."""

    community_path = "bill__community"
    list_display = ["bill", "name", "amount", "quantity", "waived_at", "waived_by", "waive_link"]
    list_filter = [("waived_at", admin.EmptyFieldListFilter)]
    list_select_related = ["bill__household__building", "waived_by"]
    search_fields = ["bill__household__unit", "bill__household__building__name", "bill__period"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(kind=BillLine.Kind.LATE_FEE)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in BillLine._meta.fields]

    @admin.display(description=gettext_lazy("Waive"))
    def waive_link(self, line):
        if line.is_waived:
            return ""
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:billing_billline_waive", args=[line.pk]),
            _("Waive…"),
        )

    def get_urls(self):
        return [
            path(
                "<int:pk>/waive/",
                self.admin_site.admin_view(self.waive_view),
                name="billing_billline_waive",
            ),
            *super().get_urls(),
        ]

    def waive_view(self, request, pk):
        line = self.get_queryset(request).filter(pk=pk).select_related("bill").first()
        if line is None or not request.user.has_perm("billing.change_billline"):
            messages.error(request, _("No such late fee in your centre."))
            return redirect("admin:billing_billline_changelist")
        form = WaiveForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                charges.late_fee_waive(
                    line=line, by=request.user, reason=form.cleaned_data["reason"]
                )
            except (APIException, ValidationError) as exc:
                detail = getattr(exc, "detail", None)
                form.add_error(None, detail if detail is not None else " ".join(exc.messages))
            else:
                messages.success(request, _("The late fee is waived."))
                return redirect("admin:billing_billline_change", line.pk)
        return render(
            request,
            "admin/billing/waive_late_fee.html",
            {
                **self.admin_site.each_context(request),
                "form": form,
                "line": line,
                "title": _("Waive the late fee of %(bill)s") % {"bill": line.bill},
            },
        )
