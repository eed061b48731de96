"""Django admin for repairs: centre admins edit the ticket categories (and their SLA hours) and
read the tickets of their own centre's estates. Tickets are read-only here: their state moves
only through repairs.services (the transitions table and its timeline)."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from community.admin import CentreScopedAdmin
from repairs.models import Ticket, TicketCategory, TicketEvent, TicketPhoto, TicketRating


@admin.register(TicketCategory)
class TicketCategoryAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "response_hours", "resolve_hours", "is_active", "position"]
    list_editable = ["is_active", "position"]
    list_filter = ["kind", "is_active"]
    search_fields = ["name"]

    def has_delete_permission(self, request, obj=None):
        # Tickets keep their category; one no longer offered is unticked instead.
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class TicketEventInline(ReadOnlyInline):
    model = TicketEvent
    fields = ["created_at", "kind", "actor", "from_status", "to_status", "assignee", "note"]
    readonly_fields = fields


class TicketPhotoInline(ReadOnlyInline):
    model = TicketPhoto
    fields = ["created_at", "uploaded_by", "content_type", "width", "height", "size"]
    readonly_fields = fields


class TicketRatingInline(ReadOnlyInline):
    model = TicketRating
    fields = ["created_at", "rated_by", "stars", "comment"]
    readonly_fields = fields


@admin.register(Ticket)
class TicketAdmin(CentreScopedAdmin):
    community_path = "community"
    list_display = [
        "id",
        "title",
        "kind",
        "category",
        "community",
        "status",
        "assignee",
        "created_at",
        "next_due",
        "sla_breached",
    ]
    list_filter = ["status", "kind", "sla_breached", "category", "community"]
    search_fields = ["=id", "title", "location", "filed_by__username", "filed_by__display_name"]
    list_select_related = ["category", "community", "assignee"]
    date_hierarchy = "created_at"
    inlines = [TicketEventInline, TicketPhotoInline, TicketRatingInline]
    readonly_fields = [
        "kind",
        "category",
        "community",
        "household",
        "location",
        "title",
        "description",
        "filed_by",
        "assignee",
        "status",
        "created_at",
        "updated_at",
        "accepted_at",
        "resolved_at",
        "closed_at",
        "response_due",
        "resolve_due",
        "next_due",
        "sla_breached",
        "response_escalated_at",
        "resolve_escalated_at",
    ]
    fieldsets = [
        (None, {"fields": ["title", "description", "kind", "category", "status"]}),
        (
            _("Where and who"),
            {"fields": ["community", "household", "location", "filed_by", "assignee"]},
        ),
        (
            _("Deadlines"),
            {
                "fields": [
                    "created_at",
                    "response_due",
                    "accepted_at",
                    "resolve_due",
                    "resolved_at",
                    "closed_at",
                    "next_due",
                    "sla_breached",
                    "response_escalated_at",
                    "resolve_escalated_at",
                ]
            },
        ),
    ]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
