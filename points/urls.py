from django.urls import path

from points import api, views

# Mounted under /api/v1/ by config/urls.py.
api_urlpatterns = [
    path("points/", api.PointsView.as_view(), name="api-points"),
    path("points/profile/", api.PointsProfileView.as_view(), name="api-points-profile"),
    path("points/leaderboard/", api.LeaderboardView.as_view(), name="api-points-leaderboard"),
    path("rewards/", api.RewardListView.as_view(), name="api-reward-list"),
    path("rewards/<int:pk>/redeem/", api.RewardRedeemView.as_view(), name="api-reward-redeem"),
    path("redemptions/", api.RedemptionListView.as_view(), name="api-redemption-list"),
    path("redemptions/fulfil/", api.RedemptionFulfilView.as_view(), name="api-redemption-fulfil"),
    path(
        "redemptions/<int:pk>/cancel/",
        api.RedemptionCancelView.as_view(),
        name="api-redemption-cancel",
    ),
]

urlpatterns = [
    path("points/", views.points_home, name="points-home"),
    path("points/profile/", views.profile_update, name="points-profile"),
    path("points/rewards/", views.reward_list, name="points-rewards"),
    path("points/rewards/<int:pk>/redeem/", views.reward_redeem, name="points-redeem"),
    path("points/leaderboard/", views.leaderboard, name="points-leaderboard"),
    path("points/company/", views.company_points, name="points-company"),
    path("points/fulfil/", views.fulfil, name="points-fulfil"),
]
