"""Browser pages of the repairs app, over the same selectors and services as the API.

Residents (phone): their tickets, filing a report or repair with photos, a ticket's timeline with
close / reopen / cancel and the rating. Staff: the queue, filtered and sorted by deadline, with
the actions a person may take on each ticket one or two taps away.

Live updates: a region of a page marked `data-live-url` is fetched again every few seconds by
static/js/repairs-live.js and swapped in (the server renders the same template with
`?fragment=1`); forms inside it post through fetch and the region is swapped from the answer.
Without JavaScript the pages are plain forms and redirects, and the queue has a refresh link.
"""

from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_POST

from community import selectors as community_selectors
from community.models import Community, User
from config import security
from config.api import Conflict
from repairs import selectors, services, transitions
from repairs.models import MAX_PHOTOS, Kind, Status, Ticket, TicketCategory

QUEUE_PAGE_SIZE = 20
QUEUE_MAX_PAGE_SIZE = 100


# --- forms ------------------------------------------------------------------------------------


class MultiplePhotoInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultiplePhotoField(forms.FileField):
    """Several files in one input; the content checks are the service's (repairs.photos)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultiplePhotoInput(attrs={"accept": "image/*"}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        if not data:
            return []
        files = data if isinstance(data, list | tuple) else [data]
        if len(files) > MAX_PHOTOS:
            raise ValidationError(
                ngettext("At most %(count)d photo.", "At most %(count)d photos.", MAX_PHOTOS)
                % {"count": MAX_PHOTOS}
            )
        return [super(MultiplePhotoField, self).clean(f, initial) for f in files]


class TicketForm(forms.Form):
    category = forms.ModelChoiceField(
        label=gettext_lazy("Category"), queryset=TicketCategory.objects.none()
    )
    title = forms.CharField(label=gettext_lazy("What is wrong"), max_length=100)
    description = forms.CharField(
        label=gettext_lazy("Details"),
        max_length=2000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
    )
    household = forms.ModelChoiceField(
        label=gettext_lazy("Where"),
        queryset=None,
        required=False,
        empty_label=gettext_lazy("A common area of the estate"),
    )
    community = forms.ModelChoiceField(
        label=gettext_lazy("Estate"), queryset=Community.objects.none(), required=False
    )
    location = forms.CharField(
        label=gettext_lazy("Location"),
        max_length=120,
        required=False,
        help_text=gettext_lazy("For a common area: building, entrance, floor, landmark."),
    )
    photos = MultiplePhotoField(
        label=gettext_lazy("Photos"),
        required=False,
        help_text=gettext_lazy("Up to 6 photos."),
    )

    def __init__(self, *args, user: User, kind: str, **kwargs):
        super().__init__(*args, **kwargs)
        resident = [community_selectors.RESIDENT]
        self.fields["category"].queryset = selectors.ticket_category_list(kind=kind)
        self.fields["household"].queryset = community_selectors.household_list(
            user=user, roles=resident
        )
        if kind == Kind.REPAIR:
            # A repair is usually inside the flat: preselect it when there is only one.
            own = list(self.fields["household"].queryset[:2])
            if len(own) == 1:
                self.fields["household"].initial = own[0].pk
        communities = community_selectors.community_list(user=user, roles=resident)
        self.fields["community"].queryset = communities
        if communities.count() < 2:
            # Only one estate: nothing to choose.
            del self.fields["community"]


class ActionForm(forms.Form):
    action = forms.ChoiceField(choices=[(a, a) for a in transitions.ACTIONS])
    assignee = forms.ModelChoiceField(queryset=User.objects.filter(is_active=True), required=False)
    note = forms.CharField(max_length=500, required=False)


class RatingForm(forms.Form):
    stars = forms.TypedChoiceField(
        label=gettext_lazy("Stars"),
        choices=[(n, "★" * n) for n in range(5, 0, -1)],
        coerce=int,
        widget=forms.RadioSelect,
    )
    comment = forms.CharField(
        label=gettext_lazy("Comment"),
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class PhotoForm(forms.Form):
    image = forms.FileField(
        label=gettext_lazy("Add a photo"),
        widget=forms.ClearableFileInput(attrs={"accept": "image/*"}),
    )


class QueueFilterForm(forms.Form):
    status = forms.ChoiceField(
        label=gettext_lazy("Status"),
        required=False,
        choices=[
            (selectors.OPEN, gettext_lazy("Open")),
            *Status.choices,
            ("all", gettext_lazy("Any status")),
        ],
    )
    kind = forms.ChoiceField(
        label=gettext_lazy("Kind"),
        required=False,
        choices=[("", gettext_lazy("Both kinds")), *Kind.choices],
    )
    category = forms.ModelChoiceField(
        label=gettext_lazy("Category"),
        required=False,
        queryset=TicketCategory.objects.all(),
        empty_label=gettext_lazy("Any category"),
    )
    community = forms.ModelChoiceField(
        label=gettext_lazy("Estate"),
        required=False,
        queryset=Community.objects.none(),
        empty_label=gettext_lazy("All my estates"),
    )
    overdue = forms.BooleanField(label=gettext_lazy("Overdue only"), required=False)
    mine = forms.BooleanField(label=gettext_lazy("Assigned to me"), required=False)
    page_size = forms.IntegerField(
        required=False, min_value=1, max_value=QUEUE_MAX_PAGE_SIZE, widget=forms.HiddenInput
    )

    def __init__(self, *args, viewer: selectors.TicketViewer, **kwargs):
        super().__init__(*args, **kwargs)
        ids = viewer.staff_community_ids | viewer.admin_community_ids
        self.fields["community"].queryset = Community.objects.filter(pk__in=ids).order_by("name")


# --- helpers ----------------------------------------------------------------------------------


def _ticket_or_404(viewer, pk, detail=False) -> Ticket:
    try:
        if detail:
            return selectors.ticket_detail_get(viewer=viewer, ticket_id=pk)
        return selectors.ticket_get(viewer=viewer, ticket_id=pk)
    except Ticket.DoesNotExist:
        raise Http404 from None


def _safe_next(request, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


def _error_text(exc: Exception) -> str:
    if isinstance(exc, Conflict):
        return str(exc.detail)
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc)


def _fragment(request) -> bool:
    return request.GET.get("fragment") == "1"


# --- resident pages ---------------------------------------------------------------------------


@login_required
def my_tickets(request):
    """The tickets of the person's households and the ones they filed, newest first."""
    viewer = selectors.ticket_viewer(user=request.user)
    mine = selectors.ticket_list(viewer=viewer).filter(
        Q(household_id__in=viewer.household_ids) | Q(filed_by=request.user)
    )
    page = Paginator(mine.order_by("-created_at", "-pk"), 20).get_page(request.GET.get("page"))
    return render(
        request,
        "repairs/my_tickets.html",
        {
            "page": page,
            "is_resident": bool(viewer.household_ids),
            "has_queue": viewer.watches_tickets,
        },
    )


@login_required
def ticket_new(request, kind: str):
    if kind not in Kind.values:
        raise Http404
    if not selectors.may_file_tickets(user=request.user):
        raise PermissionDenied(_("Only residents can file reports and repairs."))
    posted = request.method == "POST"
    form = TicketForm(
        request.POST if posted else None,
        request.FILES if posted else None,
        user=request.user,
        kind=kind,
    )
    if posted and form.is_valid():
        if (throttled := security.throttled_page(request, security.TicketRateThrottle)) is not None:
            return throttled
        data = form.cleaned_data
        try:
            ticket = services.ticket_create(
                filed_by=request.user,
                kind=kind,
                category=data["category"],
                title=data["title"],
                description=data["description"],
                household=data["household"],
                community=data.get("community"),
                location=data["location"],
                photos=data["photos"],
            )
        except ValidationError as exc:
            if not hasattr(exc, "error_dict"):
                form.add_error(None, exc)
            else:
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(request, _("Thank you: your ticket has been filed."))
            return redirect("repairs-detail", pk=ticket.pk)
    return render(
        request,
        "repairs/ticket_form.html",
        {"form": form, "kind": kind, "kind_label": Kind(kind).label},
    )


@login_required
def ticket_detail(request, pk: int):
    viewer = selectors.ticket_viewer(user=request.user)
    ticket = _ticket_or_404(viewer, pk, detail=True)
    now = timezone.now()
    roles = viewer.roles_on(ticket)
    actions = selectors.ticket_available_actions(viewer=viewer, ticket=ticket, now=now)
    can_rate = (
        transitions.FILER in roles
        and ticket.status in (Status.RESOLVED, Status.CLOSED)
        and not hasattr(ticket, "rating")
    )
    can_add_photo = (
        bool(roles & {transitions.FILER, transitions.STAFF})
        and ticket.status in services.PHOTO_STATUSES
        and len(ticket.photos.all()) < MAX_PHOTOS
    )
    colleagues = []
    if "assign" in actions:
        colleagues = selectors.assignee_choices(community_ids=[ticket.community_id])[
            ticket.community_id
        ]
    context = {
        "ticket": ticket,
        "actions": _labelled(actions),
        "colleagues": colleagues,
        "can_rate": can_rate,
        "rating_form": RatingForm() if can_rate else None,
        "can_add_photo": can_add_photo,
        "photo_form": PhotoForm() if can_add_photo else None,
        "overdue": ticket.is_overdue(now),
        "is_staff_view": bool(roles & {transitions.STAFF, transitions.CENTRE_ADMIN}),
        "refresh_seconds": settings.REPAIRS_QUEUE_REFRESH_SECONDS,
        "here": request.path,
    }
    template = "repairs/_ticket_live.html" if _fragment(request) else "repairs/ticket_detail.html"
    return render(request, template, context)


@login_required
@require_POST
def ticket_act(request, pk: int):
    """Take one action on a ticket (the transitions table decides), then back to `next`."""
    viewer = selectors.ticket_viewer(user=request.user)
    ticket = _ticket_or_404(viewer, pk)
    back = _safe_next(request, reverse("repairs-detail", args=[ticket.pk]))
    form = ActionForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("That action is not available."))
        return redirect(back)
    data = form.cleaned_data
    try:
        services.ticket_transition(
            ticket=ticket,
            actor=request.user,
            action=data["action"],
            assignee=data["assignee"] if data["action"] == "assign" else None,
            note=data["note"],
        )
    except (Conflict, ValidationError) as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(
            request,
            _("Ticket #%(id)s: %(action)s.")
            % {"id": ticket.pk, "action": ACTION_DONE[data["action"]]},
        )
    return redirect(back)


# Button labels, in the order of the transitions table.
ACTION_LABELS = {
    "accept": gettext_lazy("Accept"),
    "assign": gettext_lazy("Assign"),
    "start": gettext_lazy("Start work"),
    "resolve": gettext_lazy("Resolve"),
    "close": gettext_lazy("Confirm it is fixed"),
    "reopen": gettext_lazy("Not fixed: reopen"),
    "reject": gettext_lazy("Reject"),
    "cancel": gettext_lazy("Withdraw"),
}


def _labelled(actions: list[str]) -> list[tuple[str, str]]:
    return [(action, ACTION_LABELS[action]) for action in actions]


ACTION_DONE = {
    "accept": gettext_lazy("accepted"),
    "assign": gettext_lazy("assigned"),
    "start": gettext_lazy("work started"),
    "resolve": gettext_lazy("resolved"),
    "close": gettext_lazy("confirmed and closed"),
    "reopen": gettext_lazy("reopened"),
    "reject": gettext_lazy("rejected"),
    "cancel": gettext_lazy("cancelled"),
}


@login_required
@require_POST
def ticket_rate(request, pk: int):
    viewer = selectors.ticket_viewer(user=request.user)
    ticket = _ticket_or_404(viewer, pk)
    form = RatingForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose 1 to 5 stars."))
    else:
        try:
            services.ticket_rate(
                ticket=ticket,
                user=request.user,
                stars=form.cleaned_data["stars"],
                comment=form.cleaned_data["comment"],
            )
        except (Conflict, ValidationError) as exc:
            messages.error(request, _error_text(exc))
        else:
            messages.success(request, _("Thank you for your rating."))
    return redirect("repairs-detail", pk=ticket.pk)


@login_required
@require_POST
def ticket_photo_add(request, pk: int):
    viewer = selectors.ticket_viewer(user=request.user)
    ticket = _ticket_or_404(viewer, pk)
    form = PhotoForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, _("Choose a photo to add."))
    else:
        try:
            services.ticket_photo_add(
                ticket=ticket, user=request.user, upload=form.cleaned_data["image"]
            )
        except (Conflict, ValidationError) as exc:
            messages.error(request, _error_text(exc))
        else:
            messages.success(request, _("Photo added."))
    return redirect("repairs-detail", pk=ticket.pk)


# --- staff console ----------------------------------------------------------------------------


@login_required
def queue(request):
    """The staff console: tickets of the person's estates, most urgent first. The number of
    queries does not depend on the page size: rows come with their relations joined, the actions
    on each row are worked out from the viewer read once, and the colleagues one may assign to
    come in one query for the whole page."""
    viewer = selectors.ticket_viewer(user=request.user)
    if not viewer.watches_tickets:
        raise PermissionDenied(_("The ticket queue is for property staff and centre admins."))
    data = request.GET.copy()
    data.setdefault("status", selectors.OPEN)
    form = QueueFilterForm(data, viewer=viewer)
    form.is_valid()  # invalid filters are left out, never an error page
    filters = form.cleaned_data
    now = timezone.now()
    status = filters.get("status") or selectors.OPEN
    qs = selectors.ticket_filter(
        selectors.ticket_list(
            viewer=viewer,
            community_ids=viewer.staff_community_ids | viewer.admin_community_ids,
        ),
        status=None if status == "all" else status,
        kind=filters.get("kind") or None,
        category_id=filters["category"].pk if filters.get("category") else None,
        community_id=filters["community"].pk if filters.get("community") else None,
        assignee_id=request.user.pk if filters.get("mine") else None,
        overdue=True if filters.get("overdue") else None,
        now=now,
    )
    page_size = filters.get("page_size") or QUEUE_PAGE_SIZE
    ordered = selectors.ticket_order_by_deadline(qs, status=status)
    page = Paginator(ordered, page_size).get_page(request.GET.get("page"))
    tickets = list(page.object_list)
    colleagues = selectors.assignee_choices(
        community_ids={
            t.community_id for t in tickets if t.community_id in viewer.staff_community_ids
        }
    )
    rows = [
        {
            "ticket": ticket,
            "actions": _labelled(
                selectors.ticket_available_actions(viewer=viewer, ticket=ticket, now=now)
            ),
            "overdue": ticket.is_overdue(now),
            "colleagues": colleagues.get(ticket.community_id, []),
        }
        for ticket in tickets
    ]
    query = {k: v for k, v in request.GET.items() if k not in ("page", "fragment") and v}
    here = request.path + (f"?{urlencode(query)}" if query else "")
    context = {
        "form": form,
        "page": page,
        "rows": rows,
        "here": here,
        "page_query": urlencode(query),
        "live_url": f"{request.path}?{urlencode({**query, 'fragment': '1', 'page': page.number})}",
        "refresh_seconds": settings.REPAIRS_QUEUE_REFRESH_SECONDS,
        "now": now,
    }
    template = "repairs/_queue_live.html" if _fragment(request) else "repairs/queue.html"
    return render(request, template, context)
