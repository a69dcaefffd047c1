"""Authorization matrix for the deployment routes: every route against every
kind of credential, each cell the exact status code a user sees.

The service runs without workers, so accepted writes stay queued: this is
about who may do what, not about what Pulumi then does.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from api.auth.credentials import new_api_key
from api.auth.principal import ADMIN, READ, WRITE
from api.http.app import build_app
from api.http.context import context_of
from persistence import operations as ops
from stacks.settings import Settings
from tests.seed import Seed, bearer

UNAUTHENTICATED = ("none", "malformed", "unknown", "expired", "revoked")
# (method, path, json body, {credential: status}); credentials not named answer
# 401 when unauthenticated, else the "others" status.
D = "owned-by-root"
ROUTES: list[tuple[str, str, dict | None, dict[str, int]]] = [
    ("GET", "/api/templates", None, {"right": 200, "read_only": 200, "other_user": 200, "other_team": 200}),
    ("GET", "/api/deployments", None, {"right": 200, "read_only": 200, "other_user": 200, "other_team": 200}),
    ("POST", "/api/deployments", {"template": "nginx"},
     {"right": 201, "read_only": 403, "other_user": 201, "other_team": 201}),
    ("POST", "/api/deployments/deploy-image", {"image": "nginx:1.27"},
     {"right": 201, "read_only": 403, "other_user": 201, "other_team": 201}),
    ("GET", f"/api/deployments/status?name={D}", None,
     {"right": 200, "read_only": 200, "other_user": 404, "other_team": 404}),
    ("GET", f"/api/deployments/config?name={D}", None,
     {"right": 200, "read_only": 200, "other_user": 404, "other_team": 404}),
    ("PUT", "/api/deployments/config", {"deployment_name": D, "configData": {"A": "1"}},
     {"right": 200, "read_only": 403, "other_user": 404, "other_team": 404}),
    ("POST", "/api/deployments/restart", {"deployment_name": D},
     {"right": 200, "read_only": 403, "other_user": 404, "other_team": 404}),
    ("GET", f"/api/deployments/{D}/history", None,
     {"right": 200, "read_only": 200, "other_user": 404, "other_team": 404}),
    # Never deployed, so it has no revision 1 to go back to (404 revision_not_found).
    ("POST", f"/api/deployments/{D}/rollback", {"version": 1},
     {"right": 404, "read_only": 403, "other_user": 404, "other_team": 404}),
    # Never deployed, so the right key learns there is nothing to diff against yet.
    ("POST", f"/api/deployments/{D}/preview", {"configData": {"A": "2"}},
     {"right": 409, "read_only": 403, "other_user": 404, "other_team": 404}),
    ("GET", f"/api/deployments/{D}/operations", None,
     {"right": 200, "read_only": 200, "other_user": 404, "other_team": 404}),
    ("GET", "/api/operations/{op}", None, {"right": 200, "read_only": 200, "other_user": 404, "other_team": 404}),
    ("GET", f"/api/deployments/{D}/drift", None,
     {"right": 200, "read_only": 200, "other_user": 404, "other_team": 404}),
    ("PUT", f"/api/deployments/{D}/drift", {"policy": "reconcile"},
     {"right": 200, "read_only": 403, "other_user": 404, "other_team": 404}),
    ("POST", f"/api/deployments/{D}/drift-check", None,
     {"right": 200, "read_only": 403, "other_user": 404, "other_team": 404}),
    ("POST", f"/api/deployments/{D}/reconcile", None,
     {"right": 200, "read_only": 403, "other_user": 404, "other_team": 404}),
    # Last: it marks the deployment Deleting.
    ("POST", "/api/deployments/delete", {"deployment_name": D},
     {"right": 200, "read_only": 403, "other_user": 404, "other_team": 404}),
]  # fmt: skip
CREDENTIALS = (*UNAUTHENTICATED, "read_only", "other_user", "other_team", "right")


@pytest.fixture
def deployments_client(app_settings: Settings) -> Iterator[TestClient[Litestar]]:
    client = TestClient(build_app(app_settings, run_operations=False))
    with client:
        yield client


def test_every_deployment_route_against_every_credential(deployments_client: TestClient[Litestar]) -> None:
    app = deployments_client.app
    seed = Seed(context_of(app.state).db.writes)
    root = seed.user("root", admin=True)
    mallory = seed.user("mallory")
    eve = seed.user("eve")
    blue = seed.team("blue", eve)
    row = seed.deployment(D, root)
    with context_of(app.state).db.writes() as db, db.begin():
        op_id = ops.enqueue(db, row, "restart", {}, "restart").id
    full = (READ, WRITE, ADMIN)
    keys = {
        "malformed": "not-a-key",
        "unknown": new_api_key()[0],
        "expired": seed.key(root, full, expired=True),
        "revoked": seed.key(root, full, revoked=True),
        "read_only": seed.key(root, (READ,)),
        "other_user": seed.key(mallory, (READ, WRITE)),
        "other_team": seed.key(eve, (READ, WRITE), team=blue),
        "right": seed.key(root, full),
    }
    headers = {"none": {}} | {name: bearer(key) for name, key in keys.items()}

    failures = []
    for method, path, body, expected in ROUTES:
        for cred in CREDENTIALS:
            want = 401 if cred in UNAUTHENTICATED else expected[cred]
            r = deployments_client.request(method, path.format(op=op_id), json=body, headers=headers[cred])
            if r.status_code != want:
                failures.append(f"{method} {path} as {cred}: {r.status_code} (want {want}) {r.text[:200]}")
            elif r.status_code >= 400:
                assert set(r.json()) == {"error", "code"}, r.text
    assert not failures, "\n".join(failures)


def test_writes_and_errors_never_echo_secrets(deployments_client: TestClient[Litestar]) -> None:
    seed = Seed(context_of(deployments_client.app.state).db.writes)
    root = seed.user("root", admin=True)
    key = seed.key(root, (READ, WRITE))
    h = bearer(key)
    secret = "s3cr3t-value-never-shown"
    post = deployments_client.post
    responses = [
        post("/api/deployments", json={"template": "nginx", "envVars": {"TOKEN": secret}}, headers=h),
        post("/api/deployments", json={"template": "nginx", "envVars": {"1BAD": secret}}, headers=h),
        post("/api/deployments", json={"template": "postgres", "envVars": {"X": "x" * 40000}}, headers=h),
        deployments_client.get("/api/deployments", headers=h),
    ]
    name = responses[0].json()["name"]
    responses.append(deployments_client.get(f"/api/deployments/{name}/operations", headers=h))
    responses.append(deployments_client.get(f"/api/deployments/status?name={name}", headers=h))
    for r in responses:
        assert secret not in r.text and key not in r.text
    assert responses[1].status_code == 400 and "1BAD" in responses[1].json()["error"]
    assert responses[2].status_code == 400
    # The owner reads env values back only through the config route.
    assert deployments_client.get(f"/api/deployments/config?name={name}", headers=h).json() == {
        "configData": {"TOKEN": secret}
    }
