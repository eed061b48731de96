"""Django admin for the community app.

A superuser sees everything. A centre admin (is_staff, in the "Centre admins" group) sees and edits
only the communities of their own centre, and what hangs off them: buildings, households,
residencies, agreements, role memberships. The scoping comes from community.selectors, like
everywhere else; foreign-key choices are narrowed the same way so nothing can be attached to
another centre's estate.
"""

from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import ValidationError
from django.db.models import Count, Q, QuerySet
from django.forms.models import BaseInlineFormSet
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from community import audit, selectors, services
from community.import_admin import EstateWorkbookAdminMixin
from community.models import (
    Activity,
    ActivityCheckin,
    ActivitySignup,
    Agreement,
    AllianceOrganisation,
    Announcement,
    AuditEntry,
    Ballot,
    Building,
    Centre,
    Community,
    Consultation,
    ConsultationOption,
    Household,
    Notice,
    OwnersCommittee,
    PropertyCompany,
    Residency,
    Role,
    RoleMembership,
    User,
)

admin.site.site_header = _("Linli administration")
admin.site.site_title = _("Linli")
admin.site.index_title = _("Centre administration")


def _admin_communities(user) -> QuerySet[Community]:
    return selectors.community_list(user=user, roles=[Role.CENTRE_ADMIN])


def _admin_centre_ids(user) -> QuerySet:
    return RoleMembership.objects.filter(user=user, role=Role.CENTRE_ADMIN).values("centre_id")


class CentreScopedAdmin(admin.ModelAdmin):
    """Rows and choices limited to the centre admin's communities. `community_path` is the lookup
    from this model to its community ("" for Community itself)."""

    community_path: str = ""

    def scope_filter(self, request) -> Q:
        lookup = f"{self.community_path}__in" if self.community_path else "pk__in"
        return Q(**{lookup: _admin_communities(request.user).values("pk")})

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        return qs.filter(self.scope_filter(request))

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if not request.user.is_superuser:
            communities = _admin_communities(request.user)
            scoped = {
                Centre: Centre.objects.filter(pk__in=_admin_centre_ids(request.user)),
                Community: communities,
                Building: Building.objects.filter(community__in=communities),
                Household: Household.objects.filter(building__community__in=communities),
                AllianceOrganisation: AllianceOrganisation.objects.filter(
                    centre_id__in=_admin_centre_ids(request.user)
                ),
            }
            if db_field.related_model in scoped:
                kwargs["queryset"] = scoped[db_field.related_model]
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ["username", "display_name", "phone", "is_staff", "is_active", "last_login"]
    search_fields = ["username", "display_name", "phone", "first_name", "last_name", "email"]
    fieldsets = (
        *DjangoUserAdmin.fieldsets,
        (_("Linli"), {"fields": ("display_name", "phone")}),
    )
    add_fieldsets = (
        (None, {"fields": ("username", "display_name", "phone", "password1", "password2")}),
    )

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        communities = _admin_communities(request.user).values("pk")
        centres = _admin_centre_ids(request.user)
        return qs.filter(
            Q(residencies__household__building__community__in=communities)
            | Q(memberships__centre_id__in=centres)
            | Q(memberships__community__in=communities)
            | Q(memberships__organisation__centre_id__in=centres)
            | Q(memberships__company__communities__in=communities)
            # Accounts not yet attached anywhere, so a new resident can be linked to a household.
            | Q(residencies__isnull=True, memberships__isnull=True)
        ).distinct()

    def get_readonly_fields(self, request, obj=None):
        # Only a superuser hands out admin rights; a centre admin manages residents' accounts.
        if request.user.is_superuser:
            return super().get_readonly_fields(request, obj)
        return [
            "is_staff",
            "is_superuser",
            "groups",
            "user_permissions",
            "last_login",
            "date_joined",
        ]


@admin.register(Centre)
class CentreAdmin(admin.ModelAdmin):
    list_display = ["name", "address", "phone", "community_count"]
    search_fields = ["name", "address"]

    def get_queryset(self, request):
        qs = super().get_queryset(request).annotate(community_count=Count("communities"))
        if request.user.is_superuser:
            return qs
        return qs.filter(pk__in=_admin_centre_ids(request.user))

    @admin.display(description=_("communities"), ordering="community_count")
    def community_count(self, obj):
        return obj.community_count


@admin.register(PropertyCompany)
class PropertyCompanyAdmin(admin.ModelAdmin):
    list_display = ["name", "credit_code", "phone"]
    search_fields = ["name", "credit_code"]


@admin.register(OwnersCommittee)
class OwnersCommitteeAdmin(admin.ModelAdmin):
    list_display = ["name", "community", "elected_on"]
    search_fields = ["name", "community__name"]
    list_select_related = ["community"]


@admin.register(AllianceOrganisation)
class AllianceOrganisationAdmin(CentreScopedAdmin):
    list_display = ["name", "kind", "centre"]
    list_filter = ["kind", "centre"]
    search_fields = ["name"]
    list_select_related = ["centre"]

    def scope_filter(self, request) -> Q:
        return Q(centre_id__in=_admin_centre_ids(request.user))


class BuildingInline(admin.TabularInline):
    model = Building
    extra = 0
    show_change_link = True


@admin.register(Community)
class CommunityAdmin(EstateWorkbookAdminMixin, CentreScopedAdmin):
    list_display = ["name", "centre", "company", "committee", "household_count"]
    list_filter = ["centre", "company"]
    search_fields = ["name", "address"]
    list_select_related = ["centre", "company", "committee"]
    inlines = [BuildingInline]

    def get_queryset(self, request):
        return (
            super().get_queryset(request).annotate(household_count=Count("buildings__households"))
        )

    @admin.display(description=_("households"), ordering="household_count")
    def household_count(self, obj):
        return obj.household_count


@admin.register(Building)
class BuildingAdmin(CentreScopedAdmin):
    community_path = "community"
    list_display = ["name", "community"]
    list_filter = ["community"]
    search_fields = ["name", "community__name"]
    list_select_related = ["community"]


class ResidencyInline(admin.TabularInline):
    model = Residency
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Household)
class HouseholdAdmin(CentreScopedAdmin):
    community_path = "building__community"
    list_display = ["unit", "building", "community", "area"]
    list_filter = ["building__community"]
    search_fields = ["unit", "building__name", "building__community__name"]
    list_select_related = ["building__community"]
    inlines = [ResidencyInline]

    @admin.display(description=_("community"), ordering="building__community__name")
    def community(self, obj):
        return obj.building.community


@admin.register(Residency)
class ResidencyAdmin(CentreScopedAdmin):
    community_path = "household__building__community"
    list_display = ["user", "household", "relation", "start_date", "end_date"]
    list_filter = ["relation", "household__building__community"]
    search_fields = ["user__username", "user__display_name", "household__unit"]
    list_select_related = ["user", "household__building__community"]
    autocomplete_fields = ["user", "household"]
    date_hierarchy = "start_date"


@admin.register(RoleMembership)
class RoleMembershipAdmin(CentreScopedAdmin):
    list_display = ["user", "role", "centre", "company", "organisation", "community", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__username", "user__display_name"]
    list_select_related = ["user", "centre", "company", "organisation", "community"]
    autocomplete_fields = ["user"]

    def scope_filter(self, request) -> Q:
        communities = _admin_communities(request.user).values("pk")
        centres = _admin_centre_ids(request.user)
        return (
            Q(centre_id__in=centres)
            | Q(community__in=communities)
            | Q(organisation__centre_id__in=centres)
            | Q(company__communities__in=communities)
        )

    def get_queryset(self, request):
        return super().get_queryset(request).distinct()

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "company" and not request.user.is_superuser:
            communities = _admin_communities(request.user)
            kwargs["queryset"] = PropertyCompany.objects.filter(
                communities__in=communities
            ).distinct()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Agreement)
class AgreementAdmin(CentreScopedAdmin):
    community_path = "community"
    list_display = [
        "community",
        "effective_from",
        "effective_to",
        "fee_rate",
        "holdback_share",
        "payout_day",
        "signed_on",
    ]
    list_filter = ["community__centre", "community"]
    search_fields = ["community__name"]
    list_select_related = ["community"]
    date_hierarchy = "effective_from"

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        # New agreements go through the service: it locks the community while checking overlap.
        created = services.agreement_create(
            community=obj.community,
            effective_from=obj.effective_from,
            effective_to=obj.effective_to,
            fee_rate=obj.fee_rate,
            holdback_share=obj.holdback_share,
            payout_day=obj.payout_day,
            bill_due_day=obj.bill_due_day,
            signed_on=obj.signed_on,
        )
        obj.pk = created.pk


@admin.register(Notice)
class NoticeAdmin(admin.ModelAdmin):
    list_display = ["title", "user", "created_at", "read_at"]
    list_filter = ["read_at"]
    search_fields = ["title", "user__username"]
    list_select_related = ["user"]
    date_hierarchy = "created_at"
    readonly_fields = ["user", "title", "body", "link", "created_at", "read_at"]


# ==============================================================================================
# Community life: announcements, activities, consultations. A centre admin works on their own
# centre's rows. Sign-ups and check-ins are read-only here (their services keep the places and
# the points events right); ballots are shown to superusers only, because who voted how belongs
# to the committee alone (and only for a vote that is not secret: see the consultation pages).
# ==============================================================================================


@admin.register(Announcement)
class AnnouncementAdmin(CentreScopedAdmin):
    list_display = [
        "title",
        "source",
        "community",
        "centre",
        "pinned",
        "published_at",
        "expires_at",
        "author",
    ]
    list_filter = ["source", "pinned", "centre", "community"]
    search_fields = ["title", "body"]
    list_select_related = ["community", "centre", "author"]
    date_hierarchy = "published_at"
    readonly_fields = ["author", "created_at"]

    def scope_filter(self, request) -> Q:
        return Q(community__in=_admin_communities(request.user).values("pk")) | Q(
            community__isnull=True, centre_id__in=_admin_centre_ids(request.user)
        )

    def save_model(self, request, obj, form, change):
        if not change:
            obj.author = request.user
        super().save_model(request, obj, form, change)


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ActivitySignupInline(ReadOnlyInline):
    model = ActivitySignup
    fields = ["user", "created_at"]
    readonly_fields = fields


class ActivityCheckinInline(ReadOnlyInline):
    model = ActivityCheckin
    fk_name = "activity"
    fields = ["user", "method", "hours", "checked_in_at", "recorded_by"]
    readonly_fields = fields


@admin.register(Activity)
class ActivityAdmin(CentreScopedAdmin):
    community_path = "community"
    list_display = [
        "title",
        "kind",
        "community",
        "starts_at",
        "place",
        "signed_up",
        "capacity",
        "organiser",
    ]
    list_filter = ["kind", "community__centre", "community"]
    search_fields = ["title", "place", "description"]
    list_select_related = ["community", "organiser"]
    date_hierarchy = "starts_at"
    autocomplete_fields = ["organiser"]
    readonly_fields = ["signed_up", "checkin_code", "created_at"]
    inlines = [ActivitySignupInline, ActivityCheckinInline]

    def save_model(self, request, obj, form, change):
        # As activity_create does: volunteering without hours credits the session's length.
        if not change and obj.kind == Activity.Kind.VOLUNTEERING and not obj.hours:
            obj.hours = services.default_hours(obj.starts_at, obj.ends_at)
        super().save_model(request, obj, form, change)


@admin.register(ActivityCheckin)
class ActivityCheckinAdmin(CentreScopedAdmin):
    """Attendance and volunteering hours, to report on; recorded only through the services."""

    community_path = "activity__community"
    list_display = ["user", "activity", "method", "hours", "checked_in_at", "recorded_by"]
    list_filter = ["method", "activity__kind", "activity__community"]
    search_fields = ["user__username", "user__display_name", "activity__title"]
    list_select_related = ["user", "activity", "recorded_by"]
    date_hierarchy = "checked_in_at"
    readonly_fields = ["activity", "user", "method", "hours", "checked_in_at", "recorded_by"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class OptionFormSet(BaseInlineFormSet):
    def clean(self):
        super().clean()
        kept = [
            form.cleaned_data
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        if len(kept) < services.MIN_OPTIONS:
            raise ValidationError(_("A consultation needs at least two options."))
        if sum(bool(data.get("approves")) for data in kept) > 1:
            raise ValidationError(_("At most one option approves the proposal."))


class ConsultationOptionInline(admin.TabularInline):
    model = ConsultationOption
    formset = OptionFormSet
    fields = ["position", "label", "approves", "head_votes", "area_votes"]
    readonly_fields = ["head_votes", "area_votes"]
    extra = 0

    def _open(self, obj) -> bool:
        return obj is not None and obj.status_at() != Consultation.Status.DRAFT

    def has_add_permission(self, request, obj=None):
        return not self._open(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return not self._open(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not self._open(obj) and super().has_delete_permission(request, obj)

    def get_extra(self, request, obj=None, **kwargs):
        return 3 if obj is None else 0


@admin.register(Consultation)
class ConsultationAdmin(CentreScopedAdmin):
    """Editable until it opens; from then on the question, the options and the rule are fixed."""

    community_path = "community"
    list_display = [
        "title",
        "community",
        "opens_at",
        "closes_at",
        "status_label",
        "secret_ballot",
        "tallied_at",
    ]
    list_filter = ["community__centre", "community", "secret_ballot"]
    search_fields = ["title", "description"]
    list_select_related = ["community"]
    date_hierarchy = "opens_at"
    inlines = [ConsultationOptionInline]
    actions = ["tally"]
    fieldsets = (
        (None, {"fields": ("community", "title", "description", "opens_at", "closes_at")}),
        (
            _("Rule"),
            {
                "fields": (
                    ("approval_numerator", "approval_denominator", "approval_inclusive"),
                    (
                        "participation_numerator",
                        "participation_denominator",
                        "participation_inclusive",
                    ),
                    "secret_ballot",
                ),
                "description": _(
                    "Defaults (民法典 第278条): at least 2/3 of the owners by households and by "
                    "floor area take part; more than 1/2 of those taking part agree, by households "
                    "and by area. Special matters: at least 3/4 agree."
                ),
            },
        ),
        (
            _("Result"),
            {"fields": ("tallied_at", "electorate_households", "electorate_area", "created_by")},
        ),
    )
    result_fields = ["tallied_at", "electorate_households", "electorate_area", "created_by"]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status_at() != Consultation.Status.DRAFT:
            return [f for fields in self.fieldsets for f in _flatten(fields[1]["fields"])]
        return self.result_fields

    @admin.display(description=_("status"))
    def status_label(self, obj):
        return obj.get_status_label()

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    @admin.action(description=_("Tally the selected closed consultations"))
    def tally(self, request, queryset):
        done = services.consultation_tally_due(consultations=list(queryset))
        self.message_user(
            request,
            ngettext("%(count)d consultation tallied.", "%(count)d consultations tallied.", done)
            % {"count": done},
            messages.SUCCESS,
        )


def _flatten(fields) -> list[str]:
    flat = []
    for field in fields:
        flat.extend(field if isinstance(field, tuple | list) else [field])
    return flat


@admin.register(Ballot)
class BallotAdmin(admin.ModelAdmin):
    """Read-only, superusers only (see the section comment)."""

    list_display = ["consultation", "household", "option", "cast_by", "cast_at", "changed_at"]
    list_filter = ["consultation"]
    list_select_related = ["consultation", "household__building", "option", "cast_by"]
    readonly_fields = list_display

    def has_module_permission(self, request):
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# ==============================================================================================
# The audit log (community.audit): read-only for everyone; a centre admin reads their centre's.
# ==============================================================================================


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["created_at", "action", "actor_name", "ip_address", "target_repr", "centre"]
    list_filter = ["action"]
    search_fields = ["actor_name", "target_repr", "target_id"]
    list_select_related = ["centre"]
    date_hierarchy = "created_at"
    fields = [
        "created_at",
        "action",
        "actor",
        "actor_name",
        "ip_address",
        "centre",
        "target_type",
        "target_id",
        "target_repr",
        "details",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        return qs.filter(centre_id__in=_admin_centre_ids(request.user))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _audited_delete_selected(modeladmin, request, queryset):
    """Django's "delete selected" action, with an audit line per deleted row: Django logs a
    deletion of several rows with bulk_create, which sends no signal for community.audit to
    hear (a single row is logged with save(), and heard)."""
    doomed = list(queryset) if request.POST.get("post") else []
    response = django_delete_selected(modeladmin, request, queryset)
    # None: the rows are gone (otherwise a confirmation or a "protected" page is answered).
    if response is None and len(doomed) > 1:
        for obj in doomed:
            audit.admin_edit_record(
                actor=request.user, obj=obj, action=AuditEntry.Action.ADMIN_DELETED
            )
    return response


_audited_delete_selected.allowed_permissions = django_delete_selected.allowed_permissions
_audited_delete_selected.short_description = django_delete_selected.short_description
admin.site.add_action(_audited_delete_selected, "delete_selected")

# The notifications layer: deliveries and each person's switches.
from community import notification_admin  # noqa: E402, F401
