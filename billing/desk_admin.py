"""The centre desk in Django admin: cashiers' closed days (read-only, scoped to the admin's
centres), and the payment list made filterable by how and by whom a desk payment was taken.
Money is recorded at the desk's own page (billing.desk_views), through billing.desk."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy

from billing.admin import PaymentAdmin, ReadOnlyAdmin, _administered
from billing.models import DeskDayClose, Payment


@admin.register(DeskDayClose)
class DeskDayCloseAdmin(ReadOnlyAdmin):
    list_display = [
        "day",
        "centre",
        "cashier",
        "expected_cash",
        "counted_cash",
        "payments",
        "note",
        "closed_at",
    ]
    list_filter = ["centre", ("cashier", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["cashier__username", "cashier__display_name", "note"]
    list_select_related = ["centre", "cashier"]
    date_hierarchy = "day"

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        return qs.filter(centre__in=_administered(request).values("centre_id"))


class DeskAwarePaymentAdmin(PaymentAdmin):
    """PaymentAdmin with the desk's columns and filters: the method, who took it, the bank's
    or terminal's reference."""

    list_display = [*PaymentAdmin.list_display, "method", "recorded_by", "desk_receipt"]
    list_filter = [
        *PaymentAdmin.list_filter,
        "method",
        ("recorded_by", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = [*PaymentAdmin.search_fields, "reference", "recorded_by__username"]
    list_select_related = [*PaymentAdmin.list_select_related, "recorded_by"]

    @admin.display(description=gettext_lazy("receipt"))
    def desk_receipt(self, obj: Payment):
        if obj.gateway != Payment.DESK_GATEWAY or obj.paid_at is None:
            return ""
        return format_html(
            '<a href="{}">{}</a>', reverse("desk-receipt", args=[obj.pk]), obj.receipt_number
        )


if admin.site.is_registered(Payment):
    admin.site.unregister(Payment)
admin.site.register(Payment, DeskAwarePaymentAdmin)
