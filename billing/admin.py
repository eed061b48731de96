"""Billing in Django admin: read-only where money is concerned. Money moves only through the
services, reached from two small forms (run a payout; refund a payment) that a centre admin uses
for the communities of their own centre."""

import uuid
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from rest_framework.exceptions import APIException

from billing import services
from billing.models import (
    Account,
    Bill,
    LedgerTransaction,
    Payment,
    PaymentItem,
    Payout,
    Posting,
    Refund,
)
from billing.money import money_text
from community import selectors as community_selectors
from community.models import Community, Role
from community.periods import Period


def _administered(request):
    return community_selectors.community_list(user=request.user, roles=[Role.CENTRE_ADMIN])


class ReadOnlyAdmin(admin.ModelAdmin):
    """Money rows are written by services only."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class CommunityScopedReadOnly(ReadOnlyAdmin):
    community_path = "community"

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        return qs.filter(**{f"{self.community_path}__in": _administered(request).values("pk")})


@admin.register(Bill)
class BillAdmin(CommunityScopedReadOnly):
    list_display = [
        "household",
        "period",
        "amount",
        "paid_amount",
        "status",
        "due_date",
        "is_prepaid",
        "overdue_since",
    ]
    list_filter = ["status", "is_prepaid", "community", "period"]
    search_fields = ["household__unit", "household__building__name", "period"]
    list_select_related = ["household__building__community"]
    actions = ["waive"]

    def get_inlines(self, request, obj):
        from billing.charges_admin import BillLineInline

        return [BillLineInline]

    @admin.action(
        description=gettext_lazy("Waive the selected unpaid bills"), permissions=["change"]
    )
    def waive(self, request, queryset):
        waived = 0
        for bill in queryset:
            try:
                services.bill_waive(bill=bill)
                waived += 1
            except APIException as exc:
                self.message_user(request, f"{bill}: {exc.detail}", messages.ERROR)
        self.message_user(
            request,
            ngettext("%(count)s bill waived.", "%(count)s bills waived.", waived)
            % {"count": waived},
        )

    def has_change_permission(self, request, obj=None):
        # Needed for the waive action; the form itself shows every field read-only.
        return request.user.has_perm("billing.change_bill")

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Bill._meta.fields]


class PaymentItemInline(admin.TabularInline):
    model = PaymentItem
    extra = 0
    can_delete = False
    fields = [
        "bill",
        "amount",
        "refunded_amount",
        "payout",
        "paid_out_to_company",
        "held_back",
        "released_to_company",
        "forfeited_to_fund",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class RefundForm(forms.Form):
    amount = forms.DecimalField(
        label=gettext_lazy("Amount (yuan)"),
        min_value=Decimal("0.01"),
        decimal_places=2,
        max_digits=14,
    )
    reason = forms.CharField(label=gettext_lazy("Reason"), max_length=200)
    idempotency_key = forms.CharField(widget=forms.HiddenInput)


class InSuspenseFilter(admin.SimpleListFilter):
    """Money a gateway captured after the payment's bills were settled otherwise: booked to the
    gateway's suspense account, owed back to the payer until a centre admin refunds it."""

    title = gettext_lazy("suspense")
    parameter_name = "suspense"

    def lookups(self, request, model_admin):
        return [("yes", gettext_lazy("Captured, to be refunded"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(in_suspense__gt=0)
        return queryset


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = [
        "out_trade_no",
        "payer",
        "amount",
        "refunded_amount",
        "status",
        "gateway",
        "created_at",
        "paid_at",
        "in_suspense",
    ]
    list_filter = [InSuspenseFilter, "status", "gateway"]
    search_fields = ["out_trade_no", "trade_no", "payer__username"]
    list_select_related = ["payer"]
    date_hierarchy = "created_at"
    inlines = [PaymentItemInline]
    change_form_template = "admin/billing/payment/change_form.html"

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        return qs.filter(items__bill__community__in=_administered(request).values("pk")).distinct()

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("billing.view_payment")

    def get_urls(self):
        return [
            path(
                "<int:pk>/refund/",
                self.admin_site.admin_view(self.refund_view),
                name="billing_payment_refund",
            ),
            *super().get_urls(),
        ]

    def refund_view(self, request, pk):
        payment = self.get_queryset(request).filter(pk=pk).first()
        if payment is None or not request.user.has_perm("billing.add_refund"):
            messages.error(request, _("No such payment in your centre."))
            return redirect("admin:billing_payment_changelist")
        form = RefundForm(request.POST or None, initial={"idempotency_key": uuid.uuid4().hex})
        if request.method == "POST" and form.is_valid():
            try:
                refund, _created = services.payment_refund(
                    payment=payment,
                    amount=form.cleaned_data["amount"],
                    reason=form.cleaned_data["reason"],
                    by=request.user,
                    idempotency_key=f"admin:{form.cleaned_data['idempotency_key']}",
                    fingerprint=services.request_fingerprint(
                        {
                            "payment": payment.pk,
                            "amount": form.cleaned_data["amount"],
                            "reason": form.cleaned_data["reason"],
                        }
                    ),
                )
            except (APIException, ValidationError) as exc:
                form.add_error(None, getattr(exc, "detail", None) or " ".join(exc.messages))
            else:
                messages.success(
                    request, _("Refunded %(amount)s.") % {"amount": money_text(refund.amount)}
                )
                return redirect("admin:billing_payment_change", payment.pk)
        return render(
            request,
            "admin/billing/refund_form.html",
            {
                **self.admin_site.each_context(request),
                "form": form,
                "payment": payment,
                "title": _("Refund payment %(no)s") % {"no": payment.out_trade_no},
            },
        )


class PayoutRunForm(forms.Form):
    community = forms.ModelChoiceField(
        queryset=Community.objects.none(), label=gettext_lazy("Community")
    )
    period = forms.CharField(label=gettext_lazy("Month (YYYY-MM)"), max_length=7)

    def __init__(self, *args, communities, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["community"].queryset = communities
        self.fields["period"].initial = str(Period.current().previous())

    def clean_period(self):
        try:
            return Period.parse(self.cleaned_data["period"])
        except ValueError as exc:
            raise forms.ValidationError(_("Use the form YYYY-MM.")) from exc


@admin.register(Payout)
class PayoutAdmin(CommunityScopedReadOnly):
    list_display = [
        "community",
        "period",
        "kind",
        "collected",
        "to_company",
        "held_back",
        "to_public_fund",
        "score",
        "created_at",
    ]
    list_filter = ["kind", "community", "period"]
    change_list_template = "admin/billing/payout/change_list.html"

    def get_urls(self):
        return [
            path("run/", self.admin_site.admin_view(self.run_view), name="billing_payout_run"),
            *super().get_urls(),
        ]

    def run_view(self, request):
        if not request.user.has_perm("billing.add_payout"):
            return redirect("admin:index")
        communities = (
            Community.objects.all() if request.user.is_superuser else _administered(request)
        )
        form = PayoutRunForm(request.POST or None, communities=communities)
        if request.method == "POST" and form.is_valid():
            try:
                payout, created = services.payout_run(
                    community=form.cleaned_data["community"], period=form.cleaned_data["period"]
                )
            except (ValidationError, APIException, ObjectDoesNotExist) as exc:
                form.add_error(None, getattr(exc, "detail", None) or " ".join(exc.messages))
            else:
                if created:
                    messages.success(
                        request,
                        _("Paid %(amount)s to the company; %(held)s held back.")
                        % {
                            "amount": money_text(payout.to_company),
                            "held": money_text(payout.held_back),
                        },
                    )
                else:
                    messages.info(
                        request, _("This month was already paid out; nothing paid twice.")
                    )
                return redirect(reverse("admin:billing_payout_changelist"))
        return render(
            request,
            "admin/billing/payout_run.html",
            {
                **self.admin_site.each_context(request),
                "form": form,
                "title": _("Run a payout"),
            },
        )


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    list_display = [
        "refund_no",
        "payment",
        "amount",
        "from_escrow",
        "from_company",
        "reason",
        "created_by",
        "created_at",
    ]
    search_fields = ["refund_no", "payment__out_trade_no"]
    list_select_related = ["payment", "created_by"]

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        return qs.filter(
            payment__items__bill__community__in=_administered(request).values("pk")
        ).distinct()


@admin.register(Account)
class AccountAdmin(CommunityScopedReadOnly):
    list_display = ["key", "kind", "community", "company", "gateway", "balance"]
    list_filter = ["kind"]
    search_fields = ["key", "community__name", "company__name"]


class PostingInline(admin.TabularInline):
    model = Posting
    extra = 0
    can_delete = False
    fields = ["account", "amount", "bill", "created_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(LedgerTransaction)
class LedgerTransactionAdmin(ReadOnlyAdmin):
    list_display = ["idempotency_key", "kind", "memo", "created_at"]
    list_filter = ["kind"]
    search_fields = ["idempotency_key", "memo"]
    date_hierarchy = "created_at"
    inlines = [PostingInline]

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        return qs.filter(
            postings__account__community__in=_administered(request).values("pk")
        ).distinct()


# Registered by their own modules: the desk's closed days (and the desk-aware payment list), the
# gateways' daily statements.
# The bill reminder schedule. Fee items, meter readings, late-fee and discount rules.
from billing import (  # noqa: E402, F401
    charges_admin,
    desk_admin,
    reconciliation_admin,
    reminder_admin,
)
