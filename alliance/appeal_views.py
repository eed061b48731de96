"""Browser pages of scorecard appeals (alliance/appeals.py has the rules).

- alliance-appeal (GET): a month's appeals with their decisions and any revision, for everyone
  who sees the estate (residents included: the decision is public); the filing form for the
  property company's manager; the decision form for the alliance's mediator.
  (POST): the manager files an appeal: 400 without grounds, 409 for a draft or while another
  appeal is open, 403 for anyone else in scope, 404 outside it.
- alliance-appeal-decide (POST only): the mediator upholds or rejects the open appeal.
"""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from alliance import appeals, trust
from alliance.models import Scorecard, ScorecardAppeal
from config.api import Conflict


class AppealForm(forms.Form):
    grounds = forms.CharField(
        label=gettext_lazy("Grounds for the appeal"),
        max_length=appeals.GROUNDS_LENGTH,
        widget=forms.Textarea(attrs={"rows": 5}),
    )


class DecisionForm(forms.Form):
    appeal = forms.IntegerField(widget=forms.HiddenInput)
    outcome = forms.ChoiceField(
        label=gettext_lazy("Decision"),
        choices=[
            (ScorecardAppeal.Status.UPHELD, gettext_lazy("Uphold the appeal")),
            (ScorecardAppeal.Status.REJECTED, gettext_lazy("Reject the appeal")),
        ],
        widget=forms.RadioSelect,
    )
    decision = forms.CharField(
        label=gettext_lazy("Decision and reasons (published)"),
        max_length=appeals.DECISION_LENGTH,
        widget=forms.Textarea(attrs={"rows": 5}),
    )
    revise = forms.BooleanField(
        label=gettext_lazy(
            "Revise the scorecard: recompute it from the data as corrected, with this decision "
            "as the reason (moves no money)"
        ),
        required=False,
    )


def _card(request, scorecard_id: int) -> Scorecard:
    try:
        return appeals.scorecard_get(user=request.user, scorecard_id=scorecard_id)
    except Scorecard.DoesNotExist:
        raise Http404 from None


def _add_errors(form: forms.Form, exc: ValidationError) -> None:
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for field, errors in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)


def _render(request, card, *, appeal_form=None, decision_form=None, status=200):
    community = card.community
    appeal_list = list(trust.scorecard_appeals(scorecard=card))
    open_appeal = next((a for a in appeal_list if a.is_open), None)
    is_manager = trust.is_company_manager(user=request.user, community=community)
    is_mediator = trust.is_mediator(user=request.user, community=community)
    current = card.is_current and card.finalized
    if decision_form is None and open_appeal is not None:
        decision_form = DecisionForm(initial={"appeal": open_appeal.pk})
    context = {
        "card": card,
        "community": community,
        "appeals": appeal_list,
        "open_appeal": open_appeal,
        "may_file": is_manager and current and open_appeal is None,
        "is_manager": is_manager,
        "appeal_form": appeal_form or AppealForm(),
        "may_decide": is_mediator and open_appeal is not None,
        "decision_form": decision_form,
    }
    return render(request, "alliance/appeal.html", context, status=status)


@login_required
def appeal_page(request, scorecard_id: int):
    card = _card(request, scorecard_id)
    if request.method != "POST":
        return _render(request, card)
    form = AppealForm(request.POST)
    # The service decides 403 and 409 before the form's own checks are reported.
    grounds = request.POST.get("grounds", "")
    try:
        appeals.appeal_file(user=request.user, scorecard_id=card.pk, grounds=grounds)
    except ValidationError as exc:
        form.is_valid()
        _add_errors(form, exc)
        return _render(request, card, appeal_form=form, status=400)
    except Conflict as exc:
        messages.error(request, str(exc.detail))
        return _render(request, card, appeal_form=form, status=409)
    messages.success(request, _("Your appeal is filed. The alliance's mediator will decide it."))
    return redirect("alliance-appeal", scorecard_id=card.pk)


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


@login_required
@require_POST
def appeal_decide(request, scorecard_id: int):
    card = _card(request, scorecard_id)
    form = DecisionForm(request.POST)
    outcome = request.POST.get("outcome")
    try:
        appeals.appeal_decide(
            user=request.user,
            scorecard_id=card.pk,
            appeal_id=_int(request.POST.get("appeal")),
            upheld=outcome == ScorecardAppeal.Status.UPHELD,
            decision=request.POST.get("decision", "")
            if outcome in ScorecardAppeal.Status.values
            else "",
            revise=request.POST.get("revise") in ("on", "true", "1"),
        )
    except ScorecardAppeal.DoesNotExist:
        raise Http404 from None
    except ValidationError as exc:
        form.is_valid()
        _add_errors(form, exc)
        return _render(request, card, decision_form=form, status=400)
    except Conflict as exc:
        messages.error(request, str(exc.detail))
        return _render(request, card, status=409)
    messages.success(request, _("The decision is recorded and published with the scorecard."))
    return redirect("alliance-appeal", scorecard_id=card.pk)
