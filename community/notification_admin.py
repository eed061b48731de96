"""Admin of the notifications layer: what was sent to whom and why not (read-only), and each
person's switches (where the WeChat openid can be set by hand). Superusers only: these rows are
not scoped to a centre, so the centre admins' group has no permission on them."""

from django.contrib import admin

from community.notification_models import Delivery, NotificationPreference


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["title", "user", "channel", "kind", "status", "attempts", "created_at"]
    list_filter = ["channel", "kind", "status"]
    search_fields = ["user__username", "key", "title"]
    list_select_related = ["user"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(NotificationPreference)
class NotificationPreferenceAdmin(admin.ModelAdmin):
    list_display = ["user", "bill_reminders", "ticket_updates", "email", "sms", "wechat"]
    search_fields = ["user__username", "wechat_openid"]
    raw_id_fields = ["user"]
