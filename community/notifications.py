"""The notifications layer: one `notify()` for every reminder and update that should reach a
person, fanned out to the channels they have (in-app, e-mail, SMS, WeChat). Models and the design
overview: community/notification_models.py; the providers: community/channels.py.

Rules, each enforced here and tested in community/tests/test_notifications.py:
- once per (person, channel, key): the Delivery row's UniqueConstraint decides, so re-runs and
  races send nothing twice;
- opt-out: a person may switch off a channel (e-mail, SMS, WeChat) or a kind (bill reminders,
  ticket updates) for the outside channels. The in-app notice is always written: it rings no
  phone, and it is where the portal shows what is owed and what changed;
- quiet hours (settings.NOTIFY_QUIET_HOURS, Asia/Shanghai): SMS and WeChat messages due inside
  the window are held (status deferred) until it ends, never dropped;
- outside channels are sent after commit by community.tasks.send_delivery: a rolled-back
  reminder never reaches a phone.
"""

import logging
from datetime import datetime, time, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from kombu.exceptions import OperationalError

from community import channels
from community.models import Notice, User
from community.notification_models import Channel, Delivery, Kind, NotificationPreference

logger = logging.getLogger(__name__)

# Outside channels that the quiet hours hold back.
RINGING = {Channel.SMS, Channel.WECHAT}
# A failed send is tried again this many times in all, BACKOFF_MINUTES apart times the attempt.
MAX_ATTEMPTS = 5
BACKOFF_MINUTES = 10
# A pending row the after-commit task never took (the broker was down) is picked up by the sweep
# after this long.
ORPHAN_MINUTES = 5

KIND_SWITCH = {Kind.BILL_REMINDER: "bill_reminders", Kind.TICKET_UPDATE: "ticket_updates"}
CHANNEL_SWITCH = {Channel.EMAIL: "email", Channel.SMS: "sms", Channel.WECHAT: "wechat"}
PREFERENCE_FIELDS = ("email", "sms", "wechat", "bill_reminders", "ticket_updates")


# --- quiet hours --------------------------------------------------------------------------------


def _parse_quiet_hours(value: str) -> tuple[time, time] | None:
    if not value:
        return None
    start, end = (time.fromisoformat(part.strip()) for part in value.split("-"))
    return start, end


def quiet_until(at: datetime) -> datetime | None:
    """If `at` falls inside the quiet hours, the moment they end (aware, local time); else None.
    The window may wrap past midnight (21:00-08:00)."""
    window = _parse_quiet_hours(settings.NOTIFY_QUIET_HOURS)
    if window is None:
        return None
    start, end = window
    local = timezone.localtime(at)
    now = local.time()
    if start <= end:
        inside = start <= now < end
        end_day = local.date()
    else:
        inside = now >= start or now < end
        end_day = local.date() + timedelta(days=1) if now >= start else local.date()
    if not inside:
        return None
    return timezone.make_aware(datetime.combine(end_day, end), timezone.get_current_timezone())


# --- preferences --------------------------------------------------------------------------------


def preference_get(*, user: User) -> NotificationPreference:
    """The person's switches; an unsaved all-on row when they never changed any."""
    return NotificationPreference.objects.filter(user=user).first() or NotificationPreference(
        user=user
    )


@transaction.atomic
def preference_set(*, user: User, **switches: bool) -> NotificationPreference:
    """Change some of the person's switches (the others keep their value)."""
    unknown = set(switches) - set(PREFERENCE_FIELDS)
    if unknown:
        raise ValidationError(
            {name: _("No such notification setting.") for name in sorted(unknown)}
        )
    for name, value in switches.items():
        if not isinstance(value, bool):
            raise ValidationError({name: _("Must be true or false.")})
    preference, _created = NotificationPreference.objects.select_for_update().get_or_create(
        user=user
    )
    for name, value in switches.items():
        setattr(preference, name, value)
    preference.save()
    return preference


def _wants(preference: NotificationPreference, channel: str, kind: str) -> bool:
    if channel == Channel.IN_APP:
        return True
    if kind in KIND_SWITCH and not getattr(preference, KIND_SWITCH[kind]):
        return False
    return getattr(preference, CHANNEL_SWITCH[channel])


def _reachable(user: User, preference: NotificationPreference, channel: str) -> bool:
    if channel == Channel.EMAIL:
        return bool(user.email)
    if channel == Channel.SMS:
        return bool(user.phone.strip())
    if channel == Channel.WECHAT:
        return bool(preference.wechat_openid)
    return True


# --- notify -------------------------------------------------------------------------------------


def notify(
    *,
    user: User,
    kind: str,
    title: str,
    body: str = "",
    link: str = "",
    key: str | None = None,
    params: dict | None = None,
    at: datetime | None = None,
) -> list[Delivery]:
    """Tell `user` through every enabled channel, once per `key` and channel. Returns the
    Delivery rows this call created (none when everything had been sent before).

    `params` are the variables of the provider templates (SMS and WeChat send only approved
    templates, filled with these). Runs in the caller's transaction if there is one.
    """
    if kind not in Kind.values:
        raise ValueError(f"unknown notification kind {kind!r}")
    at = at or timezone.now()
    params = params or {}
    preference = preference_get(user=user)
    hold_until = quiet_until(at)
    created: list[Delivery] = []
    with transaction.atomic():
        for channel in channels.enabled_channels():
            if not channels.kind_has_template(channel, kind):
                continue
            if not _wants(preference, channel, kind):
                status = Delivery.Status.OPTED_OUT
            elif not _reachable(user, preference, channel):
                status = Delivery.Status.UNREACHABLE
            elif channel == Channel.IN_APP:
                status = Delivery.Status.SENT
            elif channel in RINGING and hold_until:
                status = Delivery.Status.DEFERRED
            else:
                status = Delivery.Status.PENDING
            delivery = Delivery(
                user=user,
                channel=channel,
                kind=kind,
                key=key,
                title=title[:200],
                body=body,
                link=link,
                params=params,
                status=status,
                not_before=hold_until if status == Delivery.Status.DEFERRED else None,
                sent_at=at if status == Delivery.Status.SENT else None,
            )
            try:
                with transaction.atomic():
                    delivery.save()
            except IntegrityError:
                if key is None:
                    raise
                continue  # sent (or decided) before: the same reminder never goes twice
            created.append(delivery)
            if channel == Channel.IN_APP:
                _write_notice(user=user, title=title, body=body, link=link, key=key)
            elif status == Delivery.Status.PENDING:
                _send_after_commit(delivery.pk)
    return created


def _write_notice(*, user: User, title: str, body: str, link: str, key: str | None) -> None:
    try:
        with transaction.atomic():
            Notice.objects.create(
                user=user, title=title[:200], body=body, link=link, dedupe_key=key
            )
    except IntegrityError:
        # A notice with this key was written by community.services.notice_send before the
        # layer existed: the person has it already.
        if key is None:
            raise


def _send_after_commit(delivery_id: int) -> None:
    from community.tasks import send_delivery  # tasks import this module

    def queue():
        try:
            send_delivery.delay(delivery_id)
        except OperationalError:
            # The broker is down: the reminder is committed as pending, and the sweep
            # (send_due_deliveries) sends it after ORPHAN_MINUTES. The request that notified
            # must not fail for it.
            logger.warning("delivery %s not queued (broker unreachable)", delivery_id)

    transaction.on_commit(queue)


# --- sending ------------------------------------------------------------------------------------


def delivery_send(*, delivery_id: int, now: datetime | None = None) -> str | None:
    """Send one waiting Delivery through its channel and record the outcome; returns the new
    status, or None if the row is gone, not due, or someone else took it.

    The claim (pending/deferred -> sending) is one conditional UPDATE, so two workers (the
    after-commit task and the sweep) never both send. The provider is called outside any
    transaction: no row lock is held across the network.
    """
    now = now or timezone.now()
    waiting = [Delivery.Status.PENDING, Delivery.Status.DEFERRED]
    claimed = (
        Delivery.objects.filter(pk=delivery_id, status__in=waiting)
        .filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
        .update(status=Delivery.Status.SENDING, attempts=F("attempts") + 1)
    )
    if not claimed:
        return None
    delivery = Delivery.objects.select_related("user__notification_preference").get(pk=delivery_id)
    if delivery.channel in RINGING:
        # Held in a queue past the window's end and then delivered at 23:00? Hold it again.
        hold_until = quiet_until(now)
        if hold_until:
            Delivery.objects.filter(pk=delivery.pk).update(
                status=Delivery.Status.DEFERRED, not_before=hold_until
            )
            return Delivery.Status.DEFERRED
    try:
        reference = channels.send(delivery)
    except channels.SendError as exc:
        if exc.retryable and delivery.attempts < MAX_ATTEMPTS:
            status = Delivery.Status.PENDING
            not_before = now + timedelta(minutes=BACKOFF_MINUTES * delivery.attempts)
        else:
            status = Delivery.Status.FAILED
            not_before = None
        logger.warning(
            "delivery %s (%s) failed, attempt %s: %s",
            delivery.pk,
            delivery.channel,
            delivery.attempts,
            exc,
        )
        Delivery.objects.filter(pk=delivery.pk).update(
            status=status, not_before=not_before, error=str(exc)[:2000]
        )
        return status
    Delivery.objects.filter(pk=delivery.pk).update(
        status=Delivery.Status.SENT, sent_at=timezone.now(), provider_reference=reference[:100]
    )
    return Delivery.Status.SENT


def deliveries_due(*, now: datetime | None = None) -> list[int]:
    """Ids of rows the sweep should try: held past the quiet hours, waiting for a retry, or
    pending longer than ORPHAN_MINUTES (their after-commit task was lost)."""
    now = now or timezone.now()
    return list(
        Delivery.objects.filter(status__in=[Delivery.Status.PENDING, Delivery.Status.DEFERRED])
        .filter(
            Q(not_before__lte=now)
            | Q(not_before__isnull=True, created_at__lte=now - timedelta(minutes=ORPHAN_MINUTES))
        )
        .order_by("pk")
        .values_list("pk", flat=True)[:1000]
    )


def quiet_hours_display() -> str:
    """The quiet hours as people read them ("21:00–08:00"), or "" when there are none."""
    window = _parse_quiet_hours(settings.NOTIFY_QUIET_HOURS)
    if window is None:
        return ""
    return f"{window[0]:%H:%M}\u2013{window[1]:%H:%M}"
