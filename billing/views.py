"""Resident pages for fees: bills (select several, pay), prepay, payment status, receipt, "where my
money is", and the sandbox gateway's pay page. Thin: every write goes through billing.services."""

import uuid
from collections import defaultdict
from decimal import Decimal

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import transaction
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST
from rest_framework.exceptions import APIException

from billing import selectors, services, tasks
from billing.gateways.sandbox import SandboxGateway
from billing.models import Payment, SandboxTrade
from billing.money import ZERO
from community import selectors as community_selectors
from config import security


def _my_households(user):
    return community_selectors.household_list(user=user, roles=[community_selectors.RESIDENT])


@login_required
def bill_list(request):
    households = list(_my_households(request.user))
    bills = selectors.resident_bill_list(user=request.user, households=households)
    by_household = defaultdict(list)
    for bill in bills[:500]:
        by_household[bill.household_id].append(bill)
    groups = []
    for household in households:
        open_bills = [
            b for b in by_household[household.pk] if b.status in ("unpaid", "partially_paid")
        ]
        # What "pay all" would pay: the open bills not already inside a payment in progress.
        payable = [b for b in open_bills if not b.in_payment]
        groups.append(
            {
                "household": household,
                "open": open_bills,
                "settled": [
                    b for b in by_household[household.pk] if b.status in ("paid", "waived")
                ][:24],
                "payable_count": len(payable),
                "payable_total": sum((b.outstanding for b in payable), ZERO),
                "pay_all_key": uuid.uuid4().hex,  # one per household's "pay all" form
            }
        )
    return render(
        request,
        "billing/bill_list.html",
        {
            "groups": groups,
            # A fresh key per rendered form: submitting the same form twice pays once.
            "idempotency_key": uuid.uuid4().hex,
            "prepay_idempotency_key": uuid.uuid4().hex,
            "prepay_form": PrepayForm(households=households),
        },
    )


@login_required
@require_POST
def bill_pay(request):
    if (throttled := security.throttled_page(request, security.PaymentRateThrottle)) is not None:
        return throttled
    try:
        bill_ids = sorted({int(value) for value in request.POST.getlist("bill")})
    except ValueError:
        bill_ids = []
    if not bill_ids:
        messages.error(request, _("Choose at least one bill to pay."))
        return redirect("bill-list")
    key = request.POST.get("idempotency_key") or uuid.uuid4().hex
    try:
        payment, _created = services.payment_create(
            payer=request.user,
            bill_ids=bill_ids,
            gateway="sandbox",
            idempotency_key=f"web:{key}"[:100],
            fingerprint=services.request_fingerprint({"bill_ids": bill_ids, "gateway": "sandbox"}),
        )
    except ObjectDoesNotExist as exc:
        raise Http404 from exc
    except (APIException, ValidationError) as exc:
        messages.error(request, _error_text(exc))
        return redirect("bill-list")
    if payment.status != Payment.Status.PENDING:
        return redirect("payment-detail-page", pk=payment.pk)
    return redirect(payment.pay_url)


def _error_text(exc) -> str:
    if isinstance(exc, APIException):
        return str(exc.detail)
    return " ".join(exc.messages)


class PrepayForm(forms.Form):
    household = forms.TypedChoiceField(label=gettext_lazy("Household"), coerce=int)
    months = forms.TypedChoiceField(
        label=gettext_lazy("Months"),
        coerce=int,
        choices=[(n, n) for n in (3, 6, 12, 24, 36)],
        initial=12,
    )

    def __init__(self, *args, households=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["household"].choices = [(h.pk, str(h)) for h in households]


@login_required
@require_POST
def bill_prepay(request):
    """Prepay months ahead: the bills and their payment are made together, and the resident goes
    straight to the gateway's pay page. Abandoned there, the months vanish with the payment."""
    if (throttled := security.throttled_page(request, security.PaymentRateThrottle)) is not None:
        return throttled
    form = PrepayForm(request.POST, households=list(_my_households(request.user)))
    if not form.is_valid():
        messages.error(request, _("Choose a household and a number of months."))
        return redirect("bill-list")
    key = request.POST.get("idempotency_key") or uuid.uuid4().hex
    body = {**form.cleaned_data, "gateway": "sandbox"}
    try:
        payment, _created = services.bill_prepay(
            user=request.user,
            household_id=form.cleaned_data["household"],
            months=form.cleaned_data["months"],
            gateway="sandbox",
            idempotency_key=f"web:{key}"[:100],
            fingerprint=services.request_fingerprint(body),
        )
    except (APIException, ValidationError) as exc:
        messages.error(request, _error_text(exc))
        return redirect("bill-list")
    if payment.status != Payment.Status.PENDING:
        return redirect("payment-detail-page", pk=payment.pk)
    return redirect(payment.pay_url)


@login_required
def payment_detail(request, pk):
    payment = _own_payment(request, pk)
    trail = selectors.payment_trail(payment=payment)
    one_lines = selectors.payment_one_lines(payment=payment)
    return render(
        request,
        "billing/payment_detail.html",
        {"payment": payment, "trail": trail, "one_lines": one_lines},
    )


@login_required
def payment_receipt(request, pk):
    payment = _own_payment(request, pk)
    if payment.status not in (Payment.Status.SUCCEEDED, Payment.Status.REFUNDED):
        raise Http404
    items = payment.items.select_related("bill__household__building__community")
    return render(request, "billing/receipt.html", {"payment": payment, "items": items})


def _own_payment(request, pk) -> Payment:
    try:
        return selectors.payment_get(user=request.user, payment_id=pk)
    except Payment.DoesNotExist as exc:
        raise Http404 from exc


@login_required
def money_whereabouts(request):
    """For each of the resident's payments: held, paid to the company, held back, forfeited to
    the public fund, refunded."""
    payments = selectors.payment_list(user=request.user).filter(
        payer=request.user, status__in=[Payment.Status.SUCCEEDED, Payment.Status.REFUNDED]
    )
    rows, totals = [], defaultdict(lambda: ZERO)
    for payment in payments[:100]:
        parts = defaultdict(lambda: ZERO)
        for item in payment.items.all():
            where = selectors.whereabouts(item)
            for name in (
                "held_in_escrow",
                "held_back",
                "paid_to_company",
                "forfeited_to_fund",
                "refunded",
            ):
                parts[name] += getattr(where, name)
        for name, value in parts.items():
            totals[name] += value
        rows.append({"payment": payment, **parts})
    return render(request, "billing/money.html", {"rows": rows, "totals": dict(totals)})


def sandbox_pay(request, out_trade_no):
    """The sandbox gateway's pay page. Confirming marks the trade paid on the gateway's side and
    makes the gateway send its signed notification to the portal."""
    trade = get_object_or_404(SandboxTrade, out_trade_no=out_trade_no)
    payment = Payment.objects.filter(out_trade_no=out_trade_no).first()
    if request.method == "POST":
        action = request.POST.get("action")
        with transaction.atomic():
            trade = SandboxTrade.objects.select_for_update().get(pk=trade.pk)
            if action == "confirm":
                SandboxGateway.confirm(trade)
            elif action == "cancel":
                SandboxGateway.cancel(trade)
            transaction.on_commit(
                lambda: tasks.sandbox_deliver_notification.delay(trade.out_trade_no)
            )
        if payment is not None:
            return redirect("payment-detail-page", pk=payment.pk)
        return redirect("sandbox-pay", out_trade_no=out_trade_no)
    return render(
        request,
        "billing/sandbox_pay.html",
        {"trade": trade, "payment": payment, "amount": Decimal(trade.amount)},
    )
