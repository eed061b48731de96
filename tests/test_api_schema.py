"""The OpenAPI schema describes the API, and its docs page works offline (no CDN)."""

import pytest
import yaml

pytestmark = pytest.mark.django_db


def test_schema_describes_the_contract_endpoints(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert {"/api/v1/auth/token/", "/api/v1/me/"} <= set(schema["paths"])
    me = schema["components"]["schemas"]["Me"]["properties"]
    assert {"id", "username", "display_name", "roles", "households"} <= set(me)


def test_api_docs_load_swagger_from_our_own_static_files(client):
    html = client.get("/api/docs/").content.decode()
    assert "swagger-ui" in html
    assert "/static/drf_spectacular_sidecar/" in html
    assert "cdn." not in html and "unpkg" not in html
