"""The audit log: money actions, role changes and admin edits, with who, what, when and from where.

`record()` writes one AuditEntry (community.models) in the caller's transaction, so an action
that rolls back leaves no line and a line is never missing for an action that stood. Who and from
where come from the request being served (AuditContextMiddleware keeps it in a context variable,
so services need no request argument); a Celery job has neither and is logged as the system.

What calls it:
- billing.services: payouts, hold-back releases, refunds, waived bills, settlement differences;
- the receivers below: role memberships granted, changed or revoked, admin rights (is_staff,
  is_superuser) and permission groups given or taken, and every Django-admin addition, change
  and deletion (from the admin's own LogEntry, whoever's ModelAdmin made it; the bulk "delete
  selected" action, which Django logs without signals, is covered in community.admin).

Centre admins read their centre's lines in the admin (community.admin.AuditEntryAdmin).
"""

import ipaddress
import json
from contextvars import ContextVar
from decimal import Decimal

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.core.exceptions import FieldDoesNotExist, ObjectDoesNotExist
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save

from community.models import AuditEntry, Centre, Community, PropertyCompany, RoleMembership, User
from config.security import client_ip

Action = AuditEntry.Action

_current_request: ContextVar = ContextVar("linli_audit_request", default=None)


class AuditContextMiddleware:
    """Makes the request being served known to `record()` for the length of the request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _current_request.set(request)
        try:
            return self.get_response(request)
        finally:
            _current_request.reset(token)


def _from_request() -> tuple[User | None, str | None]:
    request = _current_request.get()
    if request is None:
        return None, None
    # DRF puts the token-authenticated user on the Django request too.
    user = getattr(request, "user", None)
    try:
        ip = str(ipaddress.ip_address(client_ip(request)))
    except ValueError:
        ip = None
    return (user if user is not None and user.is_authenticated else None), ip


# Forward relations followed, in this order, to find the centre a row belongs to.
_CENTRE_PATHS = (
    "community",
    "building",
    "household",
    "organisation",
    "ticket",
    "bill",
    "activity",
    "consultation",
    "payment",
)


def centre_id_of(obj, _depth: int = 0) -> int | None:
    """The centre a row belongs to, when it belongs to exactly one: a centre itself, anything
    with a `centre`, anything hanging off a community (through the relations above), a company
    serving one centre's estates only. None otherwise."""
    if obj is None or _depth > 4:
        return None
    if isinstance(obj, Centre):
        return obj.pk
    if isinstance(obj, PropertyCompany):
        centres = set(
            Community.objects.filter(company=obj).values_list("centre_id", flat=True).distinct()
        )
        return centres.pop() if len(centres) == 1 else None
    if isinstance(obj, RoleMembership):
        return centre_id_of(obj.scope, _depth + 1)
    if getattr(obj, "centre_id", None):
        return obj.centre_id
    for name in _CENTRE_PATHS:
        try:
            field = obj._meta.get_field(name)
        except (AttributeError, FieldDoesNotExist):
            continue
        if not (field.many_to_one or field.one_to_one) or field.auto_created:
            continue
        try:
            related = getattr(obj, name)
        except ObjectDoesNotExist:
            continue
        if related is not None:
            return centre_id_of(related, _depth + 1)
    return None


def _only_centre_of(user: User | None) -> int | None:
    """A centre admin of one centre acts for it: their edit of a row that belongs to no centre
    (a resident's account, say) is still their centre's business."""
    if user is None:
        return None
    centres = list(
        RoleMembership.objects.filter(user=user, role="centre_admin").values_list(
            "centre_id", flat=True
        )[:2]
    )
    return centres[0] if len(centres) == 1 else None


def _plain(value):
    """JSON-safe details: money stays exact as a string, never a float."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def record(
    *,
    action: str,
    target=None,
    target_type: str = "",
    target_id="",
    target_repr: str = "",
    centre_id: int | None = None,
    actor: User | None = None,
    details: dict | None = None,
) -> AuditEntry:
    """Append one line to the audit log, in the caller's transaction. The actor defaults to the
    signed-in user of the request being served (none for a scheduled job); the centre to the
    target's, else the acting centre admin's."""
    request_user, ip = _from_request()
    actor = actor or request_user
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or target.pk
        target_repr = target_repr or str(target)
        if centre_id is None:
            centre_id = centre_id_of(target)
    if centre_id is None:
        centre_id = _only_centre_of(actor)
    return AuditEntry.objects.create(
        action=action,
        actor=actor,
        actor_name=actor.get_username() if actor is not None else "",
        ip_address=ip,
        centre_id=centre_id,
        target_type=target_type,
        target_id="" if target_id is None else str(target_id),
        target_repr=str(target_repr)[:200],
        details=_plain(details or {}),
    )


# --- role changes ---------------------------------------------------------------------------


def _membership_details(membership: RoleMembership) -> dict:
    return {
        "user": membership.user.get_username(),
        "user_id": membership.user_id,
        "role": membership.role,
        "scope_type": membership.scope_type,
        "scope_id": membership.scope_id,
        "scope": str(membership.scope),
        "is_manager": membership.is_manager,
    }


def _membership_saved(sender, instance: RoleMembership, created: bool, raw=False, **kwargs):
    if raw:
        return
    action = Action.ROLE_GRANTED if created else Action.ROLE_CHANGED
    record(action=action, target=instance, details=_membership_details(instance))


def _membership_deleted(sender, instance: RoleMembership, **kwargs):
    record(action=Action.ROLE_REVOKED, target=instance, details=_membership_details(instance))


_ADMIN_FLAGS = ("is_staff", "is_superuser")


def _user_flags_before(sender, instance: User, raw=False, update_fields=None, **kwargs):
    # Saving last_login at every sign-in must not cost a query.
    if raw or (update_fields is not None and not set(update_fields) & set(_ADMIN_FLAGS)):
        instance._audit_flags_before = None
        return
    before = None
    if instance.pk is not None:
        before = User.objects.filter(pk=instance.pk).values(*_ADMIN_FLAGS).first()
    instance._audit_flags_before = before or dict.fromkeys(_ADMIN_FLAGS, False)


def _user_flags_after(sender, instance: User, created: bool, raw=False, **kwargs):
    before = getattr(instance, "_audit_flags_before", None)
    if raw or before is None:
        return
    changed = {
        flag: [before[flag], getattr(instance, flag)]
        for flag in _ADMIN_FLAGS
        if before[flag] != getattr(instance, flag)
    }
    if changed:
        granted = any(new for _old, new in changed.values())
        record(
            action=Action.ROLE_GRANTED if granted else Action.ROLE_REVOKED,
            target=instance,
            details={"user": instance.get_username(), **changed},
        )


def _user_groups_changed(sender, instance, action: str, reverse: bool, pk_set, **kwargs):
    from django.contrib.auth.models import Group

    if action == "pre_clear":  # user.groups.clear() / group.user_set.clear(): no pk_set given
        related = instance.user_set if reverse else instance.groups
        pk_set, action = set(related.values_list("pk", flat=True)), "post_remove"
    if action not in ("post_add", "post_remove") or not pk_set:
        return
    if reverse:  # group.user_set.add(...): the instance is the group, pk_set the users
        users, groups = list(User.objects.filter(pk__in=pk_set)), [instance.name]
    else:
        groups = sorted(Group.objects.filter(pk__in=pk_set).values_list("name", flat=True))
        users = [instance]
    for user in users:
        record(
            action=Action.ROLE_GRANTED if action == "post_add" else Action.ROLE_REVOKED,
            target=user,
            details={"user": user.get_username(), "groups": groups},
        )


# --- admin edits ----------------------------------------------------------------------------

_ADMIN_ACTIONS = {
    ADDITION: Action.ADMIN_ADDED,
    CHANGE: Action.ADMIN_CHANGED,
    DELETION: Action.ADMIN_DELETED,
}


def admin_edit_record(*, actor, obj, action: str, changes="") -> AuditEntry:
    """One admin edit of `obj` (deletions: called while the row still exists)."""
    return record(
        action=action,
        actor=actor,
        target=obj,
        details={"changes": _changes(changes)},
    )


def _changes(change_message):
    # The admin's change message is JSON (which fields changed, which inlines were added...).
    if not change_message:
        return []
    try:
        return json.loads(change_message)
    except (TypeError, ValueError):
        return change_message


def _admin_logged(sender, instance: LogEntry, created: bool, raw=False, **kwargs):
    if not created or raw:
        return
    content_type = instance.content_type
    try:
        obj = instance.get_edited_object() if content_type is not None else None
    except ObjectDoesNotExist:
        obj = None
    record(
        action=_ADMIN_ACTIONS.get(instance.action_flag, Action.ADMIN_CHANGED),
        actor=instance.user,
        target_type=f"{content_type.app_label}.{content_type.model}" if content_type else "",
        target_id=instance.object_id or "",
        target_repr=instance.object_repr,
        centre_id=centre_id_of(obj),
        details={"changes": _changes(instance.change_message)},
    )


def connect() -> None:
    """Called from CommunityConfig.ready()."""
    post_save.connect(_membership_saved, sender=RoleMembership, dispatch_uid="audit.membership")
    post_delete.connect(
        _membership_deleted, sender=RoleMembership, dispatch_uid="audit.membership_delete"
    )
    pre_save.connect(_user_flags_before, sender=User, dispatch_uid="audit.user_flags_before")
    post_save.connect(_user_flags_after, sender=User, dispatch_uid="audit.user_flags_after")
    m2m_changed.connect(
        _user_groups_changed, sender=User.groups.through, dispatch_uid="audit.user_groups"
    )
    post_save.connect(_admin_logged, sender=LogEntry, dispatch_uid="audit.admin_log")
