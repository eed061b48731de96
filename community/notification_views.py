"""The resident's page for their notification switches (community/notifications.py)."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from community import channels, notifications
from community.notification_models import Channel


class PreferenceForm(forms.Form):
    bill_reminders = forms.BooleanField(
        label=gettext_lazy("Bill reminders"),
        help_text=gettext_lazy("Before the due date, on the day, then weekly while unpaid."),
        required=False,
    )
    ticket_updates = forms.BooleanField(
        label=gettext_lazy("Updates on my reports and repairs"), required=False
    )
    email = forms.BooleanField(label=gettext_lazy("By e-mail"), required=False)
    sms = forms.BooleanField(label=gettext_lazy("By text message (SMS)"), required=False)
    wechat = forms.BooleanField(label=gettext_lazy("By WeChat message"), required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Offer only the channels this site has switched on.
        enabled = channels.enabled_channels()
        if Channel.SMS not in enabled:
            del self.fields["sms"]
        if Channel.WECHAT not in enabled:
            del self.fields["wechat"]


@login_required
def notification_settings(request):
    preference = notifications.preference_get(user=request.user)
    if request.method == "POST":
        form = PreferenceForm(request.POST)
        if form.is_valid():
            notifications.preference_set(user=request.user, **form.cleaned_data)
            messages.success(request, _("Your notification settings are saved."))
            return redirect("notification-settings")
    else:
        form = PreferenceForm(
            initial={name: getattr(preference, name) for name in notifications.PREFERENCE_FIELDS}
        )
    return render(
        request,
        "community/notification_settings.html",
        {
            "form": form,
            "quiet_hours": notifications.quiet_hours_display(),
            "has_phone": bool(request.user.phone.strip()),
        },
    )
