from django.urls import path

from repairs import api, views

# Mounted under /api/v1/ by config/urls.py.
api_urlpatterns = [
    path(
        "ticket-categories/",
        api.TicketCategoryListView.as_view(),
        name="api-ticket-categories",
    ),
    path("tickets/", api.TicketListCreateView.as_view(), name="api-tickets"),
    path("tickets/<int:pk>/", api.TicketDetailView.as_view(), name="api-ticket"),
    path(
        "tickets/<int:pk>/transition/",
        api.TicketTransitionView.as_view(),
        name="api-ticket-transition",
    ),
    path("tickets/<int:pk>/rating/", api.TicketRatingView.as_view(), name="api-ticket-rating"),
    path("tickets/<int:pk>/photos/", api.TicketPhotoCreateView.as_view(), name="api-ticket-photos"),
    path(
        "tickets/<int:pk>/photos/<int:photo_id>/",
        api.TicketPhotoFileView.as_view(),
        name="api-ticket-photo",
    ),
]

urlpatterns = [
    path("repairs/", views.my_tickets, name="repairs-mine"),
    path("repairs/new/<str:kind>/", views.ticket_new, name="repairs-new"),
    path("repairs/queue/", views.queue, name="repairs-queue"),
    path("repairs/<int:pk>/", views.ticket_detail, name="repairs-detail"),
    path("repairs/<int:pk>/act/", views.ticket_act, name="repairs-act"),
    path("repairs/<int:pk>/rate/", views.ticket_rate, name="repairs-rate"),
    path("repairs/<int:pk>/photos/", views.ticket_photo_add, name="repairs-photo-add"),
]
