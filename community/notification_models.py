"""Models of the notifications layer (community/notifications.py): what each person wants to be
told through which channel, and one row per message per channel actually sent (or not).

Design overview
- A reminder or a ticket update is one call to `notifications.notify(..., key=...)`. It fans out to
  the channels: in-app (the Notice inbox), e-mail, SMS and the WeChat subscription message.
- Each (user, channel, key) gets exactly one Delivery row, guarded by a UniqueConstraint: a job
  that runs twice, two workers racing, or a retry can never send the same reminder twice, because
  the second insert fails in the database and the caller treats that as "already sent".
- External channels are sent after commit by a Celery task that first claims its row with a
  conditional UPDATE (pending -> sending). Whoever wins the claim sends; a row left in "sending"
  by a killed worker is not sent again: a text message is better missed than doubled.
- A Delivery that could not or should not be sent still gets its row, with the reason (opted
  out, no phone number...), so the centre can answer "why did I not get a text?".
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Channel(models.TextChoices):
    IN_APP = "in_app", _("in-app notice")
    EMAIL = "email", _("e-mail")
    SMS = "sms", _("text message (SMS)")
    WECHAT = "wechat", _("WeChat message")


class Kind(models.TextChoices):
    # Residents may switch each kind off (NotificationPreference); GENERAL (staff escalations,
    # scorecards) follows the channel switches only.
    BILL_REMINDER = "bill_reminder", _("bill reminder")
    TICKET_UPDATE = "ticket_update", _("ticket update")
    GENERAL = "general", _("general notice")


class NotificationPreference(models.Model):
    """One person's switches. No row means everything on: a resident is reminded until they say
    otherwise (the row is created the first time they change anything)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="notification_preference",
        verbose_name=_("user"),
    )
    email = models.BooleanField(_("e-mail"), default=True)
    sms = models.BooleanField(_("text messages (SMS)"), default=True)
    wechat = models.BooleanField(_("WeChat messages"), default=True)
    bill_reminders = models.BooleanField(_("bill reminders"), default=True)
    ticket_updates = models.BooleanField(_("ticket updates"), default=True)
    # The person's openid under our mini program / official account: WeChat's subscription
    # messages are addressed to it. Set when they sign in through WeChat (or by the centre).
    wechat_openid = models.CharField(_("WeChat openid"), max_length=64, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("notification preference")
        verbose_name_plural = _("notification preferences")

    def __str__(self) -> str:
        return str(self.user)


class Delivery(models.Model):
    """One message to one person through one channel."""

    class Status(models.TextChoices):
        PENDING = "pending", _("waiting to be sent")
        # Inside the quiet hours: kept, and sent when they end (not_before).
        DEFERRED = "deferred", _("held for the quiet hours")
        SENDING = "sending", _("sending")
        SENT = "sent", _("sent")
        FAILED = "failed", _("failed")
        OPTED_OUT = "opted_out", _("not sent: switched off by the person")
        UNREACHABLE = "unreachable", _("not sent: no address for this channel")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="deliveries",
        verbose_name=_("user"),
    )
    channel = models.CharField(_("channel"), max_length=10, choices=Channel.choices)
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    # NULL for one-off messages (each is its own); a key makes the message once-only per person.
    key = models.CharField(_("key"), max_length=160, null=True, blank=True)  # noqa: DJ001
    title = models.CharField(_("title"), max_length=200)
    body = models.TextField(_("message"), blank=True)
    link = models.CharField(_("link"), max_length=300, blank=True)
    # The provider template's variables (SMS TemplateParam, WeChat data), as given by the caller.
    params = models.JSONField(_("template variables"), default=dict, blank=True)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices)
    not_before = models.DateTimeField(_("not before"), null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    provider_reference = models.CharField(_("provider reference"), max_length=100, blank=True)
    error = models.TextField(_("error"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)

    class Meta:
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "channel", "key"], name="delivery_once_per_channel_and_key"
            ),
        ]
        indexes = [models.Index(fields=["status", "not_before"], name="delivery_due")]

    def __str__(self) -> str:
        return f"{self.channel}: {self.title}"
