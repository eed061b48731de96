from django.urls import path

from community import api, notification_api, notification_views, views

# Mounted under /api/v1/ by config/urls.py.
api_urlpatterns = [
    path("auth/token/", api.TokenObtainView.as_view(), name="api-token"),
    path("me/", api.MeView.as_view(), name="api-me"),
    path(
        "me/notifications/",
        notification_api.NotificationPreferenceView.as_view(),
        name="api-notification-settings",
    ),
    # Community life.
    path("announcements/", api.AnnouncementListCreateView.as_view(), name="api-announcements"),
    path("announcements/<int:pk>/", api.AnnouncementDetailView.as_view(), name="api-announcement"),
    path(
        "announcements/<int:pk>/read/",
        api.AnnouncementReadView.as_view(),
        name="api-announcement-read",
    ),
    path("activities/", api.ActivityListCreateView.as_view(), name="api-activities"),
    path("activities/<int:pk>/", api.ActivityDetailView.as_view(), name="api-activity"),
    path(
        "activities/<int:pk>/signup/", api.ActivitySignupView.as_view(), name="api-activity-signup"
    ),
    path(
        "activities/<int:pk>/checkin/",
        api.ActivityCheckinView.as_view(),
        name="api-activity-checkin",
    ),
    path(
        "activities/<int:pk>/participants/",
        api.ActivityParticipantsView.as_view(),
        name="api-activity-participants",
    ),
    path("consultations/", api.ConsultationListCreateView.as_view(), name="api-consultations"),
    path("consultations/<int:pk>/", api.ConsultationDetailView.as_view(), name="api-consultation"),
    path(
        "consultations/<int:pk>/vote/",
        api.ConsultationVoteView.as_view(),
        name="api-consultation-vote",
    ),
    path(
        "consultations/<int:pk>/ballots/",
        api.ConsultationBallotsView.as_view(),
        name="api-consultation-ballots",
    ),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("resident/", views.resident_home, name="resident-home"),
    path("staff/", views.staff_home, name="staff-home"),
    path("notices/", views.notices, name="notices"),
    path("notices/read/", views.notices_mark_read, name="notices-mark-read"),
    path(
        "notices/settings/",
        notification_views.notification_settings,
        name="notification-settings",
    ),
    # Community life.
    path("announcements/", views.announcement_list, name="announcements"),
    path("announcements/new/", views.announcement_new, name="announcement-new"),
    path("announcements/read/", views.announcements_mark_read, name="announcements-mark-read"),
    path("announcements/<int:pk>/", views.announcement_detail, name="announcement-detail"),
    path("activities/", views.activity_list, name="activities"),
    path("activities/new/", views.activity_new, name="activity-new"),
    path("activities/<int:pk>/", views.activity_detail, name="activity-detail"),
    path("activities/<int:pk>/signup/", views.activity_signup, name="activity-signup"),
    path("activities/<int:pk>/cancel/", views.activity_cancel, name="activity-cancel"),
    path("activities/<int:pk>/checkin/", views.activity_checkin, name="activity-checkin"),
    path("activities/<int:pk>/manage/", views.activity_manage, name="activity-manage"),
    path(
        "activities/<int:pk>/manage/checkin/",
        views.activity_checkin_manual,
        name="activity-checkin-manual",
    ),
    path("consultations/", views.consultation_list, name="consultations"),
    path("consultations/new/", views.consultation_new, name="consultation-new"),
    path("consultations/<int:pk>/", views.consultation_detail, name="consultation-detail"),
    path("consultations/<int:pk>/vote/", views.consultation_vote, name="consultation-vote"),
]
