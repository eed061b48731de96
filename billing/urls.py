from django.urls import path

from billing import (
    api,
    check_views,
    desk_views,
    history_views,
    meter_views,
    public_fund_api,
    views,
)

# Mounted under /api/v1/ by config/urls.py.
api_urlpatterns = [
    path("bills/", api.BillListView.as_view(), name="api-bill-list"),
    path("bills/prepay/", api.BillPrepayView.as_view(), name="api-bill-prepay"),
    path("payments/", api.PaymentCreateView.as_view(), name="api-payment-create"),
    path("payments/notify/<str:gateway>/", api.PaymentNotifyView.as_view(), name="payment-notify"),
    path("payments/<int:pk>/", api.PaymentDetailView.as_view(), name="api-payment-detail"),
    path("payments/<int:pk>/cancel/", api.PaymentCancelView.as_view(), name="api-payment-cancel"),
    path("payments/<int:pk>/refund/", api.PaymentRefundView.as_view(), name="api-payment-refund"),
    path("payments/<int:pk>/trail/", api.PaymentTrailView.as_view(), name="api-payment-trail"),
    path("communities/<int:pk>/escrow/", api.EscrowSummaryView.as_view(), name="api-escrow"),
    path("payouts/run/", api.PayoutRunView.as_view(), name="api-payout-run"),
    # The community public fund: spent only as its owners vote (billing/public_fund.py).
    path(
        "communities/<int:pk>/public-fund/",
        public_fund_api.PublicFundView.as_view(),
        name="api-public-fund",
    ),
    path(
        "communities/<int:pk>/public-fund/spends/",
        public_fund_api.PublicFundSpendProposeView.as_view(),
        name="api-public-fund-propose",
    ),
    path(
        "public-fund/spends/<int:pk>/post/",
        public_fund_api.PublicFundSpendPostView.as_view(),
        name="api-public-fund-post",
    ),
    # Anyone checks a receipt's check code (billing/chain.py, billing/check_views.py).
    path("receipts/check/", check_views.ReceiptCheckView.as_view(), name="api-receipt-check"),
]

urlpatterns = [
    path("bills/", views.bill_list, name="bill-list"),
    path("bills/pay/", views.bill_pay, name="bill-pay"),
    path("bills/prepay/", views.bill_prepay, name="bill-prepay"),
    path("payments/<int:pk>/", views.payment_detail, name="payment-detail-page"),
    path("payments/<int:pk>/receipt/", views.payment_receipt, name="payment-receipt"),
    path("money/", views.money_whereabouts, name="money-whereabouts"),
    # The resident's payment history, PDF receipts, paying all open bills in one tap.
    path("bills/pay-all/", history_views.bill_pay_all, name="bill-pay-all"),
    path("payments/", history_views.payment_history, name="payment-history"),
    path(
        "payments/<int:pk>/receipt.pdf",
        history_views.payment_receipt_pdf,
        name="payment-receipt-pdf",
    ),
    # Staff enter meter readings on a phone (billing/meter_views.py).
    path("meter-readings/", meter_views.meter_reading_estates, name="meter-reading-estates"),
    path(
        "meter-readings/<int:community_id>/",
        meter_views.meter_reading_entry,
        name="meter-reading-entry",
    ),
    path("check/", check_views.receipt_check_page, name="receipt-check"),
    path("desk/", desk_views.desk_page, name="desk"),
    path("desk/receipts/<int:pk>/", desk_views.desk_receipt, name="desk-receipt"),
    path("desk/close/", desk_views.desk_day_close, name="desk-day-close"),
    # The sandbox gateway's own pay page (it would live on the gateway's site).
    path("pay/sandbox/<str:out_trade_no>/", views.sandbox_pay, name="sandbox-pay"),
]
