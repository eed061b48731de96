"""The gateways' daily statements in Django admin: each gateway-day with its counts, its lines
(a centre admin sees those of their centres and those no centre owns), and one action, fetch
the statement again, for a day the gateway published late or corrected. Lines are written by
billing.reconciliation only."""

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy, ngettext

from billing import reconciliation
from billing.admin import ReadOnlyAdmin
from billing.models import Reconciliation, ReconciliationLine


class DifferencesOnlyFilter(admin.SimpleListFilter):
    title = gettext_lazy("result")
    parameter_name = "differs"

    def lookups(self, request, model_admin):
        return [("yes", gettext_lazy("Differences only"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(result__in=reconciliation.DIFFERENCES)
        return queryset


class ReconciliationLineInline(admin.TabularInline):
    model = ReconciliationLine
    extra = 0
    can_delete = False
    fields = [
        "kind",
        "result",
        "out_trade_no",
        "refund_no",
        "gateway_amount",
        "ledger_amount",
        "payment",
        "centre",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(reconciliation.reconciliation_line_scope(user=request.user))
            .select_related("payment", "centre")
        )

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Reconciliation)
class ReconciliationAdmin(ReadOnlyAdmin):
    list_display = [
        "day",
        "gateway",
        "status",
        "matched",
        "missing_in_ledger",
        "missing_at_gateway",
        "amount_differs",
        "error",
        "ran_at",
    ]
    list_filter = ["status", "gateway"]
    date_hierarchy = "day"
    inlines = [ReconciliationLineInline]
    actions = ["fetch_again"]

    def has_change_permission(self, request, obj=None):
        # On the list only, where it opens the action; a day's own page stays read-only.
        return obj is None and request.user.has_perm("billing.change_reconciliation")

    @admin.action(
        description=gettext_lazy("Fetch the selected days' statements again"),
        permissions=["change"],
    )
    def fetch_again(self, request, queryset):
        runs = [
            reconciliation.reconciliation_run(gateway=recon.gateway, day=recon.day)
            for recon in queryset.order_by("day", "gateway")
        ]
        differing = sum(1 for run in runs if run.status != Reconciliation.Status.MATCHED)
        messages.info(
            request,
            ngettext(
                "%(count)s statement fetched again; %(differing)s with differences or not "
                "available.",
                "%(count)s statements fetched again; %(differing)s with differences or not "
                "available.",
                len(runs),
            )
            % {"count": len(runs), "differing": differing},
        )


@admin.register(ReconciliationLine)
class ReconciliationLineAdmin(ReadOnlyAdmin):
    list_display = [
        "reconciliation",
        "kind",
        "result",
        "out_trade_no",
        "refund_no",
        "gateway_amount",
        "ledger_amount",
        "payment",
        "centre",
    ]
    list_filter = [DifferencesOnlyFilter, "result", "kind", "reconciliation__gateway", "centre"]
    search_fields = ["out_trade_no", "trade_no", "refund_no"]
    list_select_related = ["reconciliation", "payment", "centre"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(reconciliation.reconciliation_line_scope(user=request.user))
        )
