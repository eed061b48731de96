from django.urls import path

from alliance import api, appeal_views, dashboards, kpi_api, public_views, views

# Mounted under /api/v1/ by config/urls.py.
api_urlpatterns = [
    path("service-ratings/", api.RatingListCreateView.as_view(), name="api-service-ratings"),
    path(
        "service-ratings/summary/",
        api.RatingSummaryView.as_view(),
        name="api-service-rating-summary",
    ),
    path("inspections/", api.InspectionListCreateView.as_view(), name="api-inspections"),
    path("scorecards/", api.ScorecardListView.as_view(), name="api-scorecards"),
    path(
        "communities/<int:community_id>/kpis/",
        kpi_api.CommunityKpiView.as_view(),
        name="api-community-kpis",
    ),
]

urlpatterns = [
    path("alliance/rate/", views.my_ratings, name="alliance-rate"),
    path(
        "alliance/rate/<int:household_id>/<str:period>/",
        views.rating_new,
        name="alliance-rate-form",
    ),
    path("alliance/ratings/", views.staff_ratings, name="alliance-ratings"),
    path("alliance/inspections/", views.inspections, name="alliance-inspections"),
    path("alliance/scorecards/", views.scorecards, name="alliance-scorecards"),
    path(
        "alliance/scorecards/<int:community_id>/",
        views.scorecard_detail,
        name="alliance-scorecard",
    ),
    path(
        "alliance/scorecards/<int:scorecard_id>/appeal/",
        appeal_views.appeal_page,
        name="alliance-appeal",
    ),
    path(
        "alliance/scorecards/<int:scorecard_id>/appeal/decide/",
        appeal_views.appeal_decide,
        name="alliance-appeal-decide",
    ),
    path("dashboards/centre/", dashboards.centre, name="dashboard-centre"),
    path(
        "dashboards/centre/export.<str:fmt>",
        dashboards.centre_export,
        name="dashboard-centre-export",
    ),
    path(
        "dashboards/centre/bills.<str:fmt>",
        dashboards.bills_export,
        name="dashboard-bills-export",
    ),
    path(
        "dashboards/communities/<int:community_id>/",
        dashboards.community,
        name="dashboard-community",
    ),
    path("dashboards/company/", dashboards.company, name="dashboard-company"),
    # Public, no sign-in: addressed by the estate's unguessable token (alliance/public_views.py).
    path("estates/<str:token>/", public_views.estate, name="public-estate"),
    path("estates/<str:token>/poster/", public_views.poster, name="public-estate-poster"),
]
