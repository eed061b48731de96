from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from alliance import urls as alliance_urls
from billing import urls as billing_urls
from community import urls as community_urls
from config.health import healthz
from points import urls as points_urls
from repairs import urls as repairs_urls

# A path under /api/ that matches nothing answers JSON too (config.api.not_found).
handler404 = "config.api.not_found"

api_v1 = [
    *community_urls.api_urlpatterns,
    *billing_urls.api_urlpatterns,
    *repairs_urls.api_urlpatterns,
    *alliance_urls.api_urlpatterns,
    *points_urls.api_urlpatterns,
]

urlpatterns = [
    path("healthz/", healthz, name="healthz"),
    path("", include(community_urls.urlpatterns)),
    path("", include(billing_urls.urlpatterns)),
    path("", include(repairs_urls.urlpatterns)),
    path("", include(alliance_urls.urlpatterns)),
    path("", include(points_urls.urlpatterns)),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's set-up as a script file: no inline script (CSP).
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="api-schema", template_name="drf_spectacular/swagger_ui_csp.html"
        ),
        name="api-docs",
    ),
]
