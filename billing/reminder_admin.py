"""Admin of the bill reminder schedule: the centre edits the steps (billing/reminder_models.py)."""

from django.contrib import admin

from billing.reminder_models import ReminderStep


@admin.register(ReminderStep)
class ReminderStepAdmin(admin.ModelAdmin):
    list_display = ["name", "offset_days", "repeat_every_days", "max_repeats", "is_active"]
    list_filter = ["is_active"]
    list_editable = ["is_active"]
