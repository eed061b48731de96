from django.urls import path

from community import api, views

# Mounted under /api/v1/ by config/urls.py.
api_urlpatterns = [
    path("auth/token/", api.TokenObtainView.as_view(), name="api-token"),
    path("me/", api.MeView.as_view(), name="api-me"),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("resident/", views.resident_home, name="resident-home"),
    path("staff/", views.staff_home, name="staff-home"),
    path("notices/", views.notices, name="notices"),
    path("notices/read/", views.notices_mark_read, name="notices-mark-read"),
]
