"""The centre desk's pages, for the centre's staff: find a household, take its payment (cash,
bank transfer or card) against the bills chosen, print the receipt; close the day with the cash
counted. Thin: every write goes through billing.desk.

Who: a centre admin works the desk of their centre's estates. Anyone else signed in gets 403;
a household, receipt or centre of another centre is 404 (community/selectors.py)."""

import uuid

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework.exceptions import APIException

from billing import desk, services
from billing.models import Payment
from billing.money import money_text


def _int_or_404(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise Http404 from None


def _error_text(exc) -> str:
    if isinstance(exc, APIException):
        return str(exc.detail)
    return " ".join(exc.messages)


def _add_errors(form: forms.Form, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for name, errors in exc.error_dict.items():
            field = name if name in form.fields else None
            for error in errors:
                form.add_error(field, error)
    else:
        form.add_error(None, exc)


# --- taking a payment -------------------------------------------------------------------------


class HouseholdSearchForm(forms.Form):
    building = forms.CharField(label=gettext_lazy("Building"), max_length=50, required=False)
    unit = forms.CharField(label=gettext_lazy("Unit"), max_length=20, required=False)


class DeskPaymentForm(forms.Form):
    method = forms.ChoiceField(
        label=gettext_lazy("Paid by"),
        choices=[(m.value, m.label) for m in Payment.DESK_METHODS],
        initial=Payment.Method.CASH,
        widget=forms.RadioSelect,
    )
    reference = forms.CharField(
        label=gettext_lazy("Reference"),
        max_length=64,
        required=False,
        help_text=gettext_lazy("For a bank transfer or a card: the bank's or terminal's number."),
    )
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=64)


def _bill_ids(request) -> list[int]:
    try:
        return sorted({int(value) for value in request.POST.getlist("bill")})
    except (TypeError, ValueError, OverflowError):
        return []


@login_required
def desk_page(request):
    """GET: search a household by building and unit; with ?household=<id>, its unpaid bills and
    the payment form. POST: record the payment, then go to its receipt."""
    desk.desk_check_cashier(user=request.user)
    search = HouseholdSearchForm(request.GET or None)
    households = []
    if search.is_valid():
        households = list(
            desk.desk_household_list(
                cashier=request.user,
                building=search.cleaned_data["building"],
                unit=search.cleaned_data["unit"],
            )
        )
    household_id = request.POST.get("household") or request.GET.get("household")
    household = None
    if household_id:
        try:
            household = desk.desk_household_get(
                cashier=request.user, household_id=_int_or_404(household_id)
            )
        except ObjectDoesNotExist:
            raise Http404 from None

    status = 200
    if request.method == "POST":
        if household is None:
            raise Http404
        form = DeskPaymentForm(request.POST)
        bill_ids = _bill_ids(request)
        if form.is_valid() and not bill_ids:
            form.add_error(None, _("Choose at least one bill."))
        if form.is_valid():
            data = form.cleaned_data
            body = {
                "household": household.pk,
                "bill_ids": bill_ids,
                "method": data["method"],
                "reference": data["reference"].strip(),
            }
            try:
                payment, _created = desk.desk_payment_record(
                    cashier=request.user,
                    household_id=household.pk,
                    bill_ids=bill_ids,
                    method=data["method"],
                    reference=data["reference"],
                    idempotency_key=f"web:{data['idempotency_key']}",
                    fingerprint=services.request_fingerprint(body),
                )
            except ObjectDoesNotExist:
                raise Http404 from None
            except ValidationError as exc:
                _add_errors(form, exc)
            except APIException as exc:
                form.add_error(None, _error_text(exc))
                status = exc.status_code
            else:
                messages.success(
                    request,
                    _("Received %(amount)s. Print the receipt for the resident.")
                    % {"amount": money_text(payment.amount)},
                )
                return redirect("desk-receipt", pk=payment.pk)
        if status == 200:
            status = 400
        # A fresh key for the corrected form: nothing was recorded under the old one.
        form.data = form.data.copy()
        form.data["idempotency_key"] = uuid.uuid4().hex
        chosen = set(bill_ids)
    else:
        form = DeskPaymentForm(initial={"idempotency_key": uuid.uuid4().hex})
        chosen = None

    context = {
        "search": search,
        "households": households,
        "household": household,
        "form": form,
        "today": desk.desk_payment_list(user=request.user, day=desk._today())[:50],
    }
    if household is not None:
        bills = list(desk.desk_bill_list(household=household))
        context.update(
            {
                "bills": bills,
                "chosen": chosen
                if chosen is not None
                else {b.pk for b in bills if not b.in_payment},
                "payer": desk.desk_payer(household=household),
                "centre": household.building.community.centre,
            }
        )
    return render(request, "billing/desk/desk.html", context, status=status)


@login_required
def desk_receipt(request, pk):
    desk.desk_check_cashier(user=request.user)
    try:
        payment = desk.desk_receipt_get(user=request.user, payment_id=pk)
    except Payment.DoesNotExist:
        raise Http404 from None
    items = list(payment.items.all())
    household = items[0].bill.household if items else None
    return render(
        request,
        "billing/desk/receipt.html",
        {
            "payment": payment,
            "items": items,
            "household": household,
            "centre": household.building.community.centre if household else None,
        },
    )


# --- closing the day --------------------------------------------------------------------------


class DayCloseForm(forms.Form):
    centre = forms.TypedChoiceField(label=gettext_lazy("Centre"), coerce=int)
    counted_cash = forms.DecimalField(
        label=gettext_lazy("Cash counted in the drawer (yuan)"),
        max_digits=14,
        decimal_places=2,
    )
    note = forms.CharField(label=gettext_lazy("Note"), max_length=200, required=False)

    def __init__(self, *args, centres=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["centre"].choices = [(c.pk, c.name) for c in centres]
        if len(self.fields["centre"].choices) == 1:
            self.fields["centre"].widget = forms.HiddenInput()


@login_required
def desk_day_close(request):
    """The cashier's day at one centre: the cash the ledger expects and the payments taken, and
    the form that closes the day with the cash counted. A count that differs is refused (409)
    with both figures; nothing is recorded."""
    centres = list(desk.desk_centres(user=request.user))
    if not centres:
        raise PermissionDenied(_("The desk is for the Linli centre's staff."))
    wanted = request.POST.get("centre") or request.GET.get("centre")
    if wanted:
        wanted = _int_or_404(wanted)
        centre = next((c for c in centres if c.pk == wanted), None)
        if centre is None:
            raise Http404
    else:
        centre = centres[0]
    form = DayCloseForm(request.POST or None, centres=centres, initial={"centre": centre.pk})
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                desk.desk_day_close(
                    cashier=request.user,
                    centre=centre,
                    counted_cash=form.cleaned_data["counted_cash"],
                    note=form.cleaned_data["note"],
                )
            except ObjectDoesNotExist:
                raise Http404 from None
            except ValidationError as exc:
                _add_errors(form, exc)
                status = 400
            except APIException as exc:
                form.add_error(None, _error_text(exc))
                status = exc.status_code
            else:
                messages.success(request, _("Your day is closed. Thank you!"))
                return redirect(reverse("desk-day-close") + f"?centre={centre.pk}")
        else:
            status = 400
    today = desk._today()
    expected, count = desk.desk_day_expected(cashier=request.user, centre=centre, day=today)
    payments = desk.desk_payment_list(user=request.user, day=today, centre=centre)[:200]
    return render(
        request,
        "billing/desk/day_close.html",
        {
            "form": form,
            "centre": centre,
            "centres": centres,
            "day": today,
            "expected": expected,
            "count": count,
            "closed": desk.desk_day_get(cashier=request.user, centre=centre, day=today),
            "payments": payments,
        },
        status=status,
    )
