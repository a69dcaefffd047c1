"""The rules `api.http.document` applies, read off the served document (what a client
generator or schemathesis reads)."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

METHODS = ("get", "post", "put", "delete", "patch")


@pytest.fixture
def document(client: TestClient[Litestar]) -> dict[str, Any]:
    return client.get("/api/openapi.json").json()


def operations(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{method.upper()} {path}", op)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def test_every_error_has_the_error_body_and_its_headers(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert not any("status_code" in s.get("properties", {}) for s in schemas.values()), "Litestar's error shape"
    for label, op in operations(document):
        for status, response in op["responses"].items():
            if int(status) < 400:
                continue
            assert response["content"] == {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
            if status == "401":
                assert response["headers"]["WWW-Authenticate"]["required"], label
            if status == "429":
                assert response["headers"]["Retry-After"]["schema"]["type"] == "integer", label


def test_authenticated_routes_document_credentials_scope_and_rate_limit(document: dict[str, Any]) -> None:
    for label, op in operations(document):
        public = op.get("security") == [{}]
        assert public == (label in {"GET /api/health", "POST /api/auth/login"}), label
        if not public:
            assert {"401", "403", "429"} <= set(op["responses"]), label
        if "{" in label:
            assert "404" in op["responses"], label


def test_204_has_no_body_and_streams_say_what_they_are(document: dict[str, Any]) -> None:
    paths = document["paths"]
    assert "content" not in paths["/api/auth/logout"]["post"]["responses"]["204"]
    assert "content" not in paths["/api/admin/teams/{team_id}/members/{user_id}"]["delete"]["responses"]["204"]
    for path in ("/api/operations/{op_id}/events", "/api/deployments/{name}/logs/stream"):
        content = paths[path]["get"]["responses"]["200"]["content"]
        assert list(content) == ["text/event-stream"], path
    logs = paths["/api/deployments/{name}/logs"]["get"]["responses"]["200"]["content"]
    assert set(logs) == {"application/json", "text/plain"}


def test_bodies_and_parameters_say_what_the_service_accepts(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for name in ("UserCreate", "CreateRequest", "NameRequest", "AutoUpdatePut", "OwnKeyCreate"):
        assert schemas[name]["additionalProperties"] is False, name
    env = schemas["ConfigUpdateRequest"]["properties"]["configData"]
    assert env["propertyNames"]["pattern"] == "^[A-Za-z_][A-Za-z0-9_]*$"
    paths = document["paths"]
    # Bodies the handlers read themselves are documented too.
    assert "$ref" in paths["/api/deployments/delete"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert paths["/api/deployments/auto-update"]["put"]["requestBody"]["required"] is True
    # An optional query parameter is optional, not nullable: "null" is not a value on the wire.
    for label, op in operations(document):
        for parameter in op.get("parameters", []):
            assert "oneOf" not in parameter["schema"] and parameter["schema"].get("type") != "null", (label, parameter)
    ids = {p["name"]: p["schema"] for p in paths["/api/admin/billing/events"]["get"]["parameters"]}
    assert ids["before_id"]["minimum"] == 1 and ids["before_id"]["maximum"] == 2**53 - 1
