"""Every error, ours or Litestar's, is {"error", "code"} with the right status and no internals."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from litestar import get
from litestar.testing import TestClient
from sqlalchemy.exc import IntegrityError, OperationalError

from api.auth.middleware import PUBLIC
from api.errors import Conflict
from stacks.settings import Settings
from tests.seed import MakeClient, Seed, bearer

SECRET = "s3cr3t-value-in-an-exception"


@get("/test/boom", opt={PUBLIC: True}, sync_to_thread=False)
def boom() -> None:
    raise RuntimeError(SECRET)


@get("/test/db-down", opt={PUBLIC: True}, sync_to_thread=False)
def db_down() -> None:
    raise OperationalError("SELECT secret", {"x": SECRET}, Exception(SECRET))


@get("/test/db-conflict", opt={PUBLIC: True}, sync_to_thread=False)
def db_conflict() -> None:
    raise IntegrityError("INSERT", {"x": SECRET}, Exception(SECRET))


@get("/test/teapot", opt={PUBLIC: True}, sync_to_thread=False)
def teapot() -> None:
    raise Conflict("An operation is already running", "operation_running")


@pytest.fixture
def errclient(make_settings: Callable[..., Settings], make_client: MakeClient) -> TestClient:
    return make_client(make_settings(), extra_route_handlers=[boom, db_down, db_conflict, teapot])


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/test/boom", 500, "internal_error"),
        ("/test/db-down", 503, "database_unavailable"),
        ("/test/db-conflict", 409, "conflict"),
        ("/test/teapot", 409, "operation_running"),
    ],
)
def test_exceptions_become_error_bodies(errclient: TestClient, path: str, status: int, code: str) -> None:
    response = errclient.get(path)
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error", "code"}
    assert body["code"] == code
    assert SECRET not in response.text
    assert "Traceback" not in response.text


def test_server_errors_are_logged_without_bound_values(errclient: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("ERROR"):
        errclient.get("/test/boom")
    assert any("GET /test/boom failed with RuntimeError" in r.getMessage() for r in caplog.records)


def test_router_errors(client: TestClient) -> None:
    not_found = client.get("/api/no-such-route")
    assert not_found.status_code == 404
    assert not_found.json() == {"error": "Not Found", "code": "not_found"}
    assert client.get("/nowhere").json()["code"] == "not_found"
    not_allowed = client.delete("/api/health")
    assert not_allowed.status_code == 405
    assert not_allowed.json()["code"] == "method_not_allowed"
    docs_miss = client.get("/api/docs/nothing-here")
    assert docs_miss.status_code == 404
    assert docs_miss.json()["code"] == "not_found"


def test_validation_errors_name_the_field_not_the_value(client: TestClient, seed: Seed) -> None:
    admin = bearer(seed.key(seed.user("root", admin=True), ("admin",)))
    bad_body = client.post("/api/admin/users", json={"name": "Bad Name!", "password": "hunter2-hunter2"}, headers=admin)
    assert bad_body.status_code == 400
    assert bad_body.json()["code"] == "bad_request"
    assert "name" in bad_body.json()["error"]
    assert "hunter2" not in bad_body.text and "Bad Name!" not in bad_body.text
    unknown_field = client.post("/api/admin/users", json={"name": "ok", "pasword": "x"}, headers=admin)
    assert unknown_field.status_code == 400
    bad_json = client.post(
        "/api/admin/users", content=b'{"name": ', headers={**admin, "content-type": "application/json"}
    )
    assert bad_json.status_code == 400
    assert bad_json.json()["code"] == "bad_request"
    bad_query = client.get("/api/admin/billing/events", params={"limit": "lots", "secret": SECRET}, headers=admin)
    assert bad_query.status_code == 400
    assert "limit" in bad_query.json()["error"]
    assert SECRET not in bad_query.text
    too_many = client.get("/api/admin/billing/events", params={"limit": 5000}, headers=admin)
    assert too_many.status_code == 400
    bad_path = client.put("/api/admin/users/abc/tier", json={"tier": "free"}, headers=admin)
    assert bad_path.status_code in (400, 404)
    assert set(bad_path.json()) == {"error", "code"}


def test_conflicts_are_409(client: TestClient, seed: Seed) -> None:
    admin = bearer(seed.key(seed.user("root", admin=True), ("admin",)))
    assert client.post("/api/admin/users", json={"name": "bob"}, headers=admin).status_code == 201
    again = client.post("/api/admin/users", json={"name": "bob"}, headers=admin)
    assert again.status_code == 409
    assert again.json() == {"error": "User name 'bob' is taken", "code": "conflict"}
