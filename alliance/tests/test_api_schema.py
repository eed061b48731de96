"""The OpenAPI schema describes the alliance's contract endpoints."""

import pytest
import yaml

pytestmark = pytest.mark.django_db


def test_the_schema_describes_ratings_inspections_and_scorecards(client):
    schema = yaml.safe_load(client.get("/api/schema/").content)
    paths = schema["paths"]
    assert {"post", "get"} <= set(paths["/api/v1/service-ratings/"])
    assert {"post", "get"} <= set(paths["/api/v1/inspections/"])
    assert "get" in paths["/api/v1/scorecards/"]
    assert {"403", "404", "409"} <= set(paths["/api/v1/service-ratings/"]["post"]["responses"])
    scorecard = schema["components"]["schemas"]["Scorecard"]["properties"]
    assert {
        "community",
        "period",
        "attendance_rate",
        "handling_rate",
        "grid_cooperation",
        "major_matter_cooperation",
        "resident_satisfaction",
        "score",
        "finalized",
    } <= set(scorecard)
