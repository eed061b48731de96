"""The resident's payment history, PDF receipts and "pay all in one tap". Thin, like views.py:
the scoping is billing.selectors', the paying billing.services.payment_create's."""

import logging
import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_cache_control
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from rest_framework.exceptions import APIException

from billing import receipt_pdf, selectors, services
from billing.models import Payment
from billing.views import _error_text, _own_payment
from config import security

logger = logging.getLogger(__name__)

HISTORY_PAGE_SIZE = 20
RECEIPTED = (Payment.Status.SUCCEEDED, Payment.Status.REFUNDED)


@login_required
def payment_history(request):
    """All the payments the resident made, newest first, with the bills each covered."""
    payments = selectors.resident_payment_list(user=request.user)
    page = Paginator(payments, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "billing/payment_history.html", {"page": page, "receipted": RECEIPTED})


@login_required
def payment_receipt_pdf(request, pk):
    """The receipt as a PDF. Another person's payment → 404; one not (yet) paid → 409; no font
    to write Chinese with → 503 and a page that says so (and offers the printable page)."""
    payment = _own_payment(request, pk)
    if payment.status not in RECEIPTED:
        return render(request, "billing/receipt_unavailable.html", {"payment": payment}, status=409)
    try:
        pdf = receipt_pdf.render_receipt(
            payment=payment,
            items=list(selectors.payment_receipt_items(payment=payment)),
            refunds=list(selectors.refund_list(payment=payment)),
        )
    except receipt_pdf.ReceiptFontUnavailable as exc:
        logger.error("PDF receipt of payment %s not made: %s", payment.pk, exc)
        return render(
            request,
            "billing/receipt_unavailable.html",
            {"payment": payment, "no_font": True},
            status=503,
        )
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="{payment.receipt_number}.pdf"'
    patch_cache_control(response, private=True, no_store=True)
    return response


@login_required
@require_POST
def bill_pay_all(request):
    """One payment for every bill of one of the resident's households that is unpaid or partly
    paid and not already in a payment in progress. The form's Idempotency-Key makes a double tap
    one payment; a form from before everything was paid says so and changes nothing."""
    if (throttled := security.throttled_page(request, security.PaymentRateThrottle)) is not None:
        return throttled
    try:
        household_id = int(request.POST.get("household", ""))
        bill_ids = list(
            selectors.bill_payable_list(user=request.user, household_id=household_id).values_list(
                "pk", flat=True
            )
        )
    except ValueError:
        messages.error(request, _("Choose a household."))
        return redirect("bill-list")
    except ObjectDoesNotExist as exc:
        raise Http404 from exc
    key = request.POST.get("idempotency_key") or uuid.uuid4().hex
    try:
        # The same form again replays its payment (payment_create looks the key up first), so
        # the fingerprint names the household, not the bills, which a first tap has taken.
        payment, _created = services.payment_create(
            payer=request.user,
            bill_ids=bill_ids,
            gateway="sandbox",
            idempotency_key=f"web:{key}"[:100],
            fingerprint=services.request_fingerprint(
                {"pay_all": household_id, "gateway": "sandbox"}
            ),
        )
    except ObjectDoesNotExist as exc:
        raise Http404 from exc
    except (APIException, ValidationError) as exc:
        if not bill_ids:
            messages.error(
                request,
                _(
                    "Nothing is left to pay for this household: every bill is paid or already "
                    "in a payment in progress."
                ),
            )
        else:
            messages.error(request, _error_text(exc))
        return redirect("bill-list")
    if payment.status != Payment.Status.PENDING:
        return redirect("payment-detail-page", pk=payment.pk)
    return redirect(payment.pay_url)
