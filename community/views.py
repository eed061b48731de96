"""Browser pages of the community app: the landing redirect, the resident home, the staff home;
and community life (announcements, activities, consultations), phone first, over the same
selectors and services as the API."""

from decimal import Decimal
from urllib.parse import urlencode

import segno
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from community import selectors, services
from community.models import (
    Activity,
    ActivitySignup,
    Announcement,
    Centre,
    Community,
    Consultation,
    Household,
    Residency,
    Role,
    User,
)
from config.api import Conflict


def _has_staff_home(user) -> bool:
    return user.is_superuser or selectors.membership_list_for_user(user=user).exists()


@login_required
def home(request):
    """Send each person to the home that fits them: staff roles first, then residents."""
    return redirect("staff-home" if _has_staff_home(request.user) else "resident-home")


HOME_ANNOUNCEMENTS = 3


@login_required
def resident_home(request):
    residencies = list(selectors.residency_list_for_user(user=request.user))
    unread = selectors.notice_list(user=request.user, unread_only=True)
    board = selectors.announcement_list(user=request.user)
    return render(
        request,
        "community/resident_home.html",
        {
            "residencies": residencies,
            "has_staff_home": _has_staff_home(request.user),
            "unread_notices": list(unread[:5]),
            "unread_count": unread.count(),
            "announcements": list(board[:HOME_ANNOUNCEMENTS]),
            "announcements_unread": board.filter(is_read=False).count(),
        },
    )


@login_required
def notices(request):
    return render(
        request,
        "community/notices.html",
        {"notices": selectors.notice_list(user=request.user)[:100]},
    )


@login_required
@require_POST
def notices_mark_read(request):
    services.notice_mark_read(user=request.user)
    return redirect("notices")


@login_required
def staff_home(request):
    memberships = list(selectors.membership_list_for_user(user=request.user))
    roles = {m.role for m in memberships}
    if roles or request.user.is_superuser:
        communities = (
            selectors.community_list(user=request.user, roles=roles or None)
            .annotate(household_count=Count("buildings__households"))
            .order_by("name")
        )
    else:
        communities = []
    has_households = selectors.residency_list_for_user(user=request.user).exists()
    return render(
        request,
        "community/staff_home.html",
        {
            "memberships": memberships,
            "communities": communities,
            "has_households": has_households,
            # Community life: which of its staff pages this person has.
            "can_organise": request.user.is_superuser
            or bool(roles & selectors.ACTIVITY_ORGANISER_ROLES),
            "can_consult": request.user.is_superuser
            or bool(roles & selectors.CONSULTATION_CREATOR_ROLES),
            # Which of the staff pages of the later apps to offer (each checks again itself).
            "is_superuser": request.user.is_superuser,
            "is_centre_admin": Role.CENTRE_ADMIN in roles,
            "is_property_staff": Role.PROPERTY_STAFF in roles,
            "is_inspector": Role.ALLIANCE_INSPECTOR in roles,
        },
    )


# ==============================================================================================
# Community life: announcements, activities, consultations
# ==============================================================================================

PAGE_SIZE = 20


def _error_text(exc: Exception) -> str:
    if isinstance(exc, Conflict):
        return str(exc.detail)
    if isinstance(exc, ValidationError | PermissionDenied):
        return " ".join(getattr(exc, "messages", None) or [str(exc)])
    return str(exc)


def _form_errors(form: forms.Form, exc: ValidationError) -> None:
    """Put a service's ValidationError on the form's fields (or on the form)."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for field, errors in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)


def _get_or_404(getter, **kwargs):
    try:
        return getter(**kwargs)
    except (
        Announcement.DoesNotExist,
        Activity.DoesNotExist,
        Consultation.DoesNotExist,
    ):
        raise Http404 from None


class LocalDateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, **kwargs):
        super().__init__(format="%Y-%m-%dT%H:%M", **kwargs)


def _datetime_field(label, **kwargs) -> forms.DateTimeField:
    return forms.DateTimeField(
        label=label,
        widget=LocalDateTimeInput(),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
        **kwargs,
    )


# --- announcements ------------------------------------------------------------------------------


class AnnouncementForm(forms.Form):
    audience = forms.ChoiceField(label=gettext_lazy("To"))
    source = forms.ChoiceField(
        label=gettext_lazy("On behalf of"),
        required=False,
        choices=[("", gettext_lazy("My role there")), *Announcement.Source.choices],
    )
    title = forms.CharField(label=gettext_lazy("Title"), max_length=120)
    body = forms.CharField(
        label=gettext_lazy("Text"), max_length=5000, widget=forms.Textarea(attrs={"rows": 6})
    )
    pinned = forms.BooleanField(label=gettext_lazy("Pin to the top"), required=False)
    expires_at = _datetime_field(gettext_lazy("Remove from the board at"), required=False)

    def __init__(self, *args, communities, centres, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [(f"community:{c.pk}", c.name) for c in communities]
        choices += [
            (f"centre:{c.pk}", _("Every community of %(centre)s") % {"centre": c.name})
            for c in centres
        ]
        self.fields["audience"].choices = choices
        self._targets = {f"community:{c.pk}": c for c in communities} | {
            f"centre:{c.pk}": c for c in centres
        }

    def target(self) -> dict:
        chosen = self._targets[self.cleaned_data["audience"]]
        return {"community": chosen} if isinstance(chosen, Community) else {"centre": chosen}


def _posting_places(user: User) -> tuple[list[Community], list[Centre]]:
    communities = list(
        selectors.community_list(user=user, roles=list(selectors.ANNOUNCEMENT_SOURCE_OF_ROLE))
        .select_related(None)
        .order_by("name")
    )
    centres = (
        Centre.objects.all()
        if user.is_superuser
        else Centre.objects.filter(
            memberships__user=user, memberships__role=Role.CENTRE_ADMIN
        ).distinct()
    )
    return communities, list(centres.order_by("name"))


@login_required
def announcement_list(request):
    board = selectors.announcement_list(user=request.user)
    page = Paginator(board, PAGE_SIZE).get_page(request.GET.get("page"))
    communities, centres = _posting_places(request.user)
    return render(
        request,
        "community/announcements.html",
        {"page": page, "can_post": bool(communities or centres)},
    )


@login_required
def announcement_detail(request, pk: int):
    announcement = _get_or_404(selectors.announcement_get, user=request.user, announcement_id=pk)
    services.announcement_mark_read(user=request.user, announcement=announcement)
    return render(request, "community/announcement_detail.html", {"announcement": announcement})


@login_required
@require_POST
def announcements_mark_read(request):
    services.announcement_mark_all_read(user=request.user)
    return redirect("announcements")


@login_required
def announcement_new(request):
    communities, centres = _posting_places(request.user)
    if not (communities or centres):
        raise PermissionDenied(
            _("Only the centre, the property company or the committee post announcements.")
        )
    form = AnnouncementForm(
        request.POST if request.method == "POST" else None,
        communities=communities,
        centres=centres,
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            announcement = services.announcement_publish(
                author=request.user,
                title=data["title"],
                body=data["body"],
                source=data["source"] or None,
                pinned=data["pinned"],
                expires_at=data["expires_at"],
                **form.target(),
            )
        except (ValidationError, PermissionDenied) as exc:
            _form_errors(
                form, exc if isinstance(exc, ValidationError) else ValidationError(str(exc))
            )
        else:
            messages.success(request, _("Announcement posted."))
            return redirect("announcement-detail", pk=announcement.pk)
    return render(request, "community/announcement_form.html", {"form": form})


# --- activities ---------------------------------------------------------------------------------


class ActivityForm(forms.Form):
    community = forms.ModelChoiceField(
        label=gettext_lazy("Community"), queryset=Community.objects.none(), empty_label=None
    )
    kind = forms.ChoiceField(label=gettext_lazy("Kind"), choices=Activity.Kind.choices)
    title = forms.CharField(label=gettext_lazy("Title"), max_length=120)
    place = forms.CharField(label=gettext_lazy("Place"), max_length=120)
    starts_at = _datetime_field(gettext_lazy("Starts at"))
    ends_at = _datetime_field(gettext_lazy("Ends at"))
    capacity = forms.IntegerField(label=gettext_lazy("Places"), min_value=1, max_value=10000)
    hours = forms.DecimalField(
        label=gettext_lazy("Hours per volunteer"),
        required=False,
        min_value=0,
        max_value=24,
        max_digits=3,
        decimal_places=1,
        help_text=gettext_lazy("Volunteering only; empty: the length of the session."),
    )
    description = forms.CharField(
        label=gettext_lazy("Description"),
        max_length=5000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
    )

    def __init__(self, *args, user: User, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["community"].queryset = selectors.organiser_communities(user=user).order_by(
            "name"
        )


class CodeForm(forms.Form):
    code = forms.CharField(
        label=gettext_lazy("Check-in code"),
        max_length=12,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )


class ResidentChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        return obj.get_display_name()


class ManualCheckinForm(forms.Form):
    user = ResidentChoiceField(label=gettext_lazy("Resident"), queryset=User.objects.none())
    hours = forms.DecimalField(
        label=gettext_lazy("Hours"),
        required=False,
        min_value=0,
        max_value=24,
        max_digits=3,
        decimal_places=1,
    )

    def __init__(self, *args, activity: Activity, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = User.objects.filter(
            pk__in=Residency.objects.active()
            .filter(household__building__community_id=activity.community_id)
            .values("user_id")
        ).order_by("display_name", "username")


def _activity_or_404(request, pk) -> Activity:
    return _get_or_404(selectors.activity_get, user=request.user, activity_id=pk)


@login_required
def activity_list(request):
    """Upcoming activities of the person's communities (soonest first), then recent ones, and
    their own volunteering hours."""
    now = timezone.now()
    visible = selectors.activity_list(user=request.user)
    upcoming = list(selectors.activity_filter(visible, when=selectors.UPCOMING, at=now)[:50])
    past = Paginator(
        selectors.activity_filter(visible, when=selectors.PAST, at=now), PAGE_SIZE
    ).get_page(request.GET.get("page"))
    return render(
        request,
        "community/activities.html",
        {
            "upcoming": upcoming,
            "past": past,
            "now": now,
            "hours_total": selectors.volunteer_hours_total(user=request.user),
            "can_organise": selectors.organiser_communities(user=request.user).exists(),
        },
    )


def _checkin_open_for_code(activity: Activity, now) -> bool:
    return (
        activity.starts_at - services.CHECKIN_OPENS_BEFORE
        <= now
        <= activity.ends_at + services.CODE_CHECKIN_CLOSES_AFTER
    )


@login_required
def activity_detail(request, pk: int):
    activity = _activity_or_404(request, pk)
    now = timezone.now()
    is_resident = selectors.is_resident_of(user=request.user, community=activity.community)
    over = now >= activity.ends_at
    return render(
        request,
        "community/activity_detail.html",
        {
            "activity": activity,
            "now": now,
            "over": over,
            "started": now >= activity.starts_at,
            "is_resident": is_resident,
            "can_sign_up": is_resident
            and not over
            and not activity.my_signup
            and activity.places_left > 0,
            "can_cancel": activity.my_signup and not activity.my_checkin and not over,
            "can_check_in": is_resident
            and not activity.my_checkin
            and _checkin_open_for_code(activity, now),
            "code_form": CodeForm(),
            "can_manage": selectors.may_organise(user=request.user, community=activity.community),
        },
    )


def _act(request, action, success: str) -> bool:
    try:
        action()
    except (Conflict, ValidationError, PermissionDenied) as exc:
        messages.error(request, _error_text(exc))
        return False
    messages.success(request, success)
    return True


@login_required
@require_POST
def activity_signup(request, pk: int):
    activity = _activity_or_404(request, pk)
    _act(
        request,
        lambda: services.activity_signup(activity=activity, user=request.user),
        _("You have signed up. See you there!"),
    )
    return redirect("activity-detail", pk=pk)


@login_required
@require_POST
def activity_cancel(request, pk: int):
    activity = _activity_or_404(request, pk)

    def cancel():
        try:
            services.activity_signup_cancel(activity=activity, user=request.user)
        except ActivitySignup.DoesNotExist:
            raise Conflict(_("You have not signed up.")) from None

    _act(request, cancel, _("Your place is given back."))
    return redirect("activity-detail", pk=pk)


@login_required
def activity_checkin(request, pk: int):
    """The resident's check-in with the door code: the QR code at the door opens this page with
    the code filled in; the person confirms with one tap."""
    activity = _activity_or_404(request, pk)
    if request.method == "POST":
        form = CodeForm(request.POST)
        if form.is_valid():
            try:
                checkin = services.activity_checkin(
                    activity=activity,
                    user=request.user,
                    recorded_by=request.user,
                    code=form.cleaned_data["code"],
                )
            except ValidationError as exc:
                _form_errors(form, exc)
            except (Conflict, PermissionDenied) as exc:
                messages.error(request, _error_text(exc))
                return redirect("activity-detail", pk=pk)
            else:
                if checkin.hours:
                    text = _("Checked in: %(hours)s hours of volunteering recorded. Thank you!")
                    messages.success(request, text % {"hours": checkin.hours})
                else:
                    messages.success(request, _("Checked in. Enjoy!"))
                return redirect("activity-detail", pk=pk)
    else:
        form = CodeForm(initial={"code": request.GET.get("code", "")})
    return render(request, "community/activity_checkin.html", {"activity": activity, "form": form})


@login_required
def activity_new(request):
    if not selectors.organiser_communities(user=request.user).exists():
        raise PermissionDenied(_("Only the centre and the property company organise activities."))
    form = ActivityForm(request.POST if request.method == "POST" else None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            activity = services.activity_create(organiser=request.user, **data)
        except ValidationError as exc:
            _form_errors(form, exc)
        except PermissionDenied as exc:
            form.add_error(None, _error_text(exc))
        else:
            messages.success(request, _("Activity created."))
            return redirect("activity-manage", pk=activity.pk)
    return render(request, "community/activity_form.html", {"form": form})


def _qr_svg(url: str) -> str:
    """The check-in link as an inline SVG QR code, drawn on the server (segno, no script)."""
    svg = segno.make(url, error="m").svg_inline(
        scale=1, border=4, omitsize=True, dark="#1f2328", title=_("Check-in QR code")
    )
    # segno's own markup: paths and our translated title, no user input.
    return mark_safe(svg)


def _organised_or_403(request, pk) -> Activity:
    activity = _activity_or_404(request, pk)
    if not selectors.may_organise(user=request.user, community=activity.community):
        raise PermissionDenied(_("Only the organisers see this page."))
    return activity


@login_required
def activity_manage(request, pk: int):
    """The organiser's page: the door code (large digits and a QR code to scan), who signed up,
    who checked in with what hours, and manual check-in."""
    activity = _organised_or_403(request, pk)
    participants = list(selectors.activity_participants(activity=activity))
    link = request.build_absolute_uri(
        reverse("activity-checkin", args=[activity.pk])
        + "?"
        + urlencode({"code": activity.checkin_code})
    )
    return render(
        request,
        "community/activity_manage.html",
        {
            "activity": activity,
            "participants": participants,
            "checked_in": sum(1 for p in participants if p.checked_in_at),
            "hours_total": sum((p.checkin_hours or Decimal(0) for p in participants), Decimal(0)),
            "qr": _qr_svg(link),
            "checkin_link": link,
            "walk_in_form": ManualCheckinForm(activity=activity),
            "is_volunteering": activity.kind == Activity.Kind.VOLUNTEERING,
        },
    )


@login_required
@require_POST
def activity_checkin_manual(request, pk: int):
    activity = _organised_or_403(request, pk)
    form = ManualCheckinForm(request.POST, activity=activity)
    if not form.is_valid():
        messages.error(request, _("Choose a resident of this community, and hours from 0 to 24."))
    else:
        person = form.cleaned_data["user"]
        _act(
            request,
            lambda: services.activity_checkin(
                activity=activity,
                user=person,
                recorded_by=request.user,
                hours=form.cleaned_data["hours"],
            ),
            _("%(name)s is checked in.") % {"name": person.get_display_name()},
        )
    return redirect("activity-manage", pk=pk)


# --- consultations ------------------------------------------------------------------------------

RULE_CHOICES = [
    ("ordinary", gettext_lazy("Ordinary matter: more than half of the voters agree")),
    ("special", gettext_lazy("Special matter: at least three quarters of the voters agree")),
]


class ConsultationForm(forms.Form):
    community = forms.ModelChoiceField(
        label=gettext_lazy("Community"), queryset=Community.objects.none(), empty_label=None
    )
    title = forms.CharField(label=gettext_lazy("Title"), max_length=200)
    description = forms.CharField(
        label=gettext_lazy("Proposal"), max_length=10000, widget=forms.Textarea(attrs={"rows": 6})
    )
    options = forms.CharField(
        label=gettext_lazy("Options"),
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=gettext_lazy("One per line. The first one means “agree”."),
    )
    opens_at = _datetime_field(gettext_lazy("Opens at"))
    closes_at = _datetime_field(gettext_lazy("Closes at"))
    rule = forms.ChoiceField(label=gettext_lazy("Rule"), choices=RULE_CHOICES)
    secret_ballot = forms.BooleanField(
        label=gettext_lazy("Secret ballot"),
        required=False,
        initial=True,
        help_text=gettext_lazy("Unticked: the committee sees how each household voted."),
    )

    def __init__(self, *args, user: User, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["community"].queryset = selectors.consultation_creator_communities(
            user=user
        ).order_by("name")
        if not self.is_bound:
            self.initial.setdefault("options", "\n".join([_("Agree"), _("Disagree"), _("Abstain")]))

    def clean_options(self) -> list[dict]:
        labels = [line.strip() for line in self.cleaned_data["options"].splitlines()]
        labels = [label for label in labels if label]
        return [{"label": label, "approves": i == 0} for i, label in enumerate(labels)]


def _consultation_or_404(request, pk) -> Consultation:
    consultation = _get_or_404(selectors.consultation_get, user=request.user, consultation_id=pk)
    if services.consultation_tally_due(consultations=[consultation]):
        consultation = _get_or_404(
            selectors.consultation_get, user=request.user, consultation_id=pk
        )
    return consultation


@login_required
def consultation_list(request):
    qs = selectors.consultation_list(user=request.user)
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    if services.consultation_tally_due(consultations=page.object_list):
        page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    now = timezone.now()
    rows = [
        {
            "consultation": c,
            "status": c.status_at(now),
            "status_label": Consultation.Status(c.status_at(now)).label,
            "result": selectors.consultation_result_table(consultation=c),
        }
        for c in page.object_list
    ]
    return render(
        request,
        "community/consultations.html",
        {
            "page": page,
            "rows": rows,
            "can_create": selectors.consultation_creator_communities(user=request.user).exists(),
        },
    )


@login_required
def consultation_detail(request, pk: int):
    consultation = _consultation_or_404(request, pk)
    now = timezone.now()
    status = consultation.status_at(now)
    owned = list(selectors.owned_households(user=request.user, community=consultation.community_id))
    chosen = {ballot.household_id: ballot for ballot in consultation.my_ballots}
    ballots = (
        list(selectors.ballot_list(user=request.user, consultation=consultation))
        if selectors.may_see_ballots(user=request.user, consultation=consultation, at=now)
        else None
    )
    result = selectors.consultation_result_table(consultation=consultation)
    if result:
        labels = {o.pk: o.label for o in consultation.options.all()}
        result["adopted_label"] = labels.get(result["adopted_option"])
    return render(
        request,
        "community/consultation_detail.html",
        {
            "consultation": consultation,
            "status": status,
            "status_label": Consultation.Status(status).label,
            "is_open": status == Consultation.Status.OPEN,
            "households": [{"household": h, "ballot": chosen.get(h.pk)} for h in owned],
            "options": list(consultation.options.all()),
            "result": result,
            "ballots": ballots,
        },
    )


@login_required
@require_POST
def consultation_vote(request, pk: int):
    consultation = _consultation_or_404(request, pk)
    options = {str(o.pk): o for o in consultation.options.all()}
    option = options.get(request.POST.get("option", ""))
    household = None
    household_id = request.POST.get("household", "")
    if household_id.isdigit():
        household = Household.objects.filter(pk=household_id).first()
    if option is None:
        messages.error(request, _("Choose one of the options."))
    else:
        _act(
            request,
            lambda: services.consultation_vote(
                consultation=consultation, user=request.user, option=option, household=household
            ),
            _("Your household's vote is recorded: %(option)s.") % {"option": option.label},
        )
    return redirect("consultation-detail", pk=pk)


@login_required
def consultation_new(request):
    if not selectors.consultation_creator_communities(user=request.user).exists():
        raise PermissionDenied(_("Only the owners' committee and the centre open consultations."))
    form = ConsultationForm(request.POST if request.method == "POST" else None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        special = data["rule"] == "special"
        try:
            consultation = services.consultation_create(
                creator=request.user,
                community=data["community"],
                title=data["title"],
                description=data["description"],
                opens_at=data["opens_at"],
                closes_at=data["closes_at"],
                options=data["options"],
                approval=(3, 4) if special else (1, 2),
                approval_inclusive=special,
                secret_ballot=data["secret_ballot"],
            )
        except ValidationError as exc:
            _form_errors(form, exc)
        except PermissionDenied as exc:
            form.add_error(None, _error_text(exc))
        else:
            messages.success(request, _("Consultation created."))
            return redirect("consultation-detail", pk=consultation.pk)
    return render(request, "community/consultation_form.html", {"form": form})
