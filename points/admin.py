"""Points in Django admin. Earning rules and rewards are edited here; entries and balances are
read-only (they move only through points.services); redemptions are cancelled or marked used by
actions that call the services. A centre admin sees the rewards and redemptions of their own
centre; rules are the same for every centre."""

from django.contrib import admin, messages
from django.db.models import Q
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from rest_framework.exceptions import APIException

from community.models import AllianceOrganisation, Centre, Role, RoleMembership
from points import services
from points.models import Balance, Entry, Redemption, Reward, Rule


def _admin_centre_ids(user):
    return RoleMembership.objects.filter(user=user, role=Role.CENTRE_ADMIN).values("centre_id")


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    list_display = [
        "event",
        "currency",
        "amount",
        "per_hour",
        "threshold",
        "cap_per_month",
        "active_from",
        "active_to",
    ]
    list_filter = ["event", "currency"]
    fields = [
        "event",
        "currency",
        "amount",
        "per_hour",
        "threshold",
        "cap_per_month",
        "active_from",
        "active_to",
    ]

    def get_readonly_fields(self, request, obj=None):
        # A rule that has awarded points keeps what it said: end it and add a new one instead,
        # so the history can always say which rule gave what.
        if obj is not None and obj.entries.exists():
            return [f for f in self.fields if f != "active_to"]
        return []

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.entries.exists():
            return False
        return super().has_delete_permission(request, obj)


class CentreScoped:
    centre_path = "centre"

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        return qs.filter(**{f"{self.centre_path}__in": _admin_centre_ids(request.user)})


@admin.register(Reward)
class RewardAdmin(CentreScoped, admin.ModelAdmin):
    list_display = [
        "name",
        "provider_name",
        "cost",
        "min_reputation",
        "stock",
        "active_from",
        "active_to",
    ]
    list_filter = ["centre", "organisation"]
    search_fields = ["name"]
    list_select_related = ["centre", "organisation"]

    @admin.display(description=gettext_lazy("offered by"))
    def provider_name(self, reward):
        return reward.provider_name

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if not request.user.is_superuser:
            centres = _admin_centre_ids(request.user)
            if db_field.related_model is Centre:
                kwargs["queryset"] = Centre.objects.filter(pk__in=centres)
            elif db_field.related_model is AllianceOrganisation:
                kwargs["queryset"] = AllianceOrganisation.objects.filter(centre_id__in=centres)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_delete_permission(self, request, obj=None):
        return False  # end it with "offered until"; redemptions keep pointing at it


@admin.register(Redemption)
class RedemptionAdmin(CentreScoped, admin.ModelAdmin):
    centre_path = "reward__centre"
    list_display = ["code", "reward", "user", "cost", "status", "created_at", "fulfilled_at"]
    list_filter = ["status", "reward"]
    search_fields = ["code", "user__username", "user__display_name", "reward__name"]
    list_select_related = ["reward", "user"]
    actions = ["cancel", "mark_fulfilled"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Redemption._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(
        description=gettext_lazy("Cancel the selected redemptions (points and stock come back)"),
        permissions=["change"],
    )
    def cancel(self, request, queryset):
        done = 0
        for redemption in queryset:
            try:
                services.redemption_cancel(
                    redemption=redemption, by=request.user, reason=_("Cancelled by the centre")
                )
                done += 1
            except APIException as exc:
                self.message_user(request, f"{redemption}: {exc.detail}", messages.ERROR)
        self.message_user(
            request,
            ngettext("%(count)s redemption cancelled.", "%(count)s redemptions cancelled.", done)
            % {"count": done},
        )

    @admin.action(
        description=gettext_lazy("Mark the selected codes as used"), permissions=["change"]
    )
    def mark_fulfilled(self, request, queryset):
        done = 0
        for redemption in queryset:
            try:
                services.redemption_fulfil(user=request.user, code=redemption.code)
                done += 1
            except Redemption.DoesNotExist:
                self.message_user(
                    request,
                    _("%(code)s: not a reward you provide.") % {"code": redemption.code},
                    messages.ERROR,
                )
            except APIException as exc:
                self.message_user(request, f"{redemption}: {exc.detail}", messages.ERROR)
        self.message_user(
            request,
            ngettext("%(count)s code marked as used.", "%(count)s codes marked as used.", done)
            % {"count": done},
        )


class HolderScoped:
    """A centre admin sees the points of the residents of their centre's communities and of the
    companies serving them."""

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        centres = _admin_centre_ids(request.user)
        return qs.filter(
            Q(holder__user__residencies__household__building__community__centre_id__in=centres)
            | Q(holder__company__communities__centre_id__in=centres)
        ).distinct()


@admin.register(Entry)
class EntryAdmin(HolderScoped, ReadOnlyAdmin):
    list_display = ["occurred_at", "holder", "currency", "amount", "kind", "source", "reference"]
    list_filter = ["currency", "kind", "source", "period"]
    search_fields = ["holder__user__username", "holder__company__name", "reference"]
    list_select_related = ["holder__user", "holder__company"]
    date_hierarchy = "occurred_at"


@admin.register(Balance)
class BalanceAdmin(HolderScoped, ReadOnlyAdmin):
    list_display = ["holder", "currency", "amount"]
    list_filter = ["currency"]
    search_fields = ["holder__user__username", "holder__company__name"]
    list_select_related = ["holder__user", "holder__company"]
