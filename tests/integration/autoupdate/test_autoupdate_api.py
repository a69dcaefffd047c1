"""The auto-update routes through the whole app (auth, tenancy, idempotent writes,
the operation queue) on SQLite and PostgreSQL; no cluster: operations are queued,
not run, and stack configs are written as the Automation API writes them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec
import pytest
import yaml
from litestar.testing import TestClient
from sqlalchemy import select

from api.auth.credentials import new_api_key
from api.http.app import build_app
from api.http.context import context_of
from persistence.accounts import add_user
from persistence.keys import add_key
from persistence.models import Deployment, Operation
from programs.spec import AutoUpdate
from scheduler.poll import Poller
from scheduler.registry import RegistryClient
from stacks.changes import Change
from stacks.settings import Settings

HOST = "registry.example.test"


@pytest.fixture
def db_url(database_url: str) -> str:
    """SQLite and PostgreSQL: the suite's `database_url` (tests/conftest.py)."""
    return database_url


@dataclass
class Api:
    client: TestClient
    config: Settings
    app: object
    headers: dict[str, str]
    other: dict[str, str]  # another user's key
    reader: dict[str, str]  # read-only key of the owner
    owner_id: int

    @property
    def sessions(self):  # type: ignore[no-untyped-def]
        return context_of(self.app.state).db.writes  # type: ignore[attr-defined]

    def deploy(self, name: str, image: str, auto: AutoUpdate | None = None, strategy: str = "rolling") -> None:
        config = {
            "shipstack:name": name,
            "shipstack:template": "image",
            "shipstack:image": image,
            "shipstack:strategy": strategy,
            "shipstack:autoUpdate": msgspec.json.encode(auto or AutoUpdate(), order="sorted").decode(),
        }
        with self.sessions() as db, db.begin():
            db.add(
                Deployment(
                    name=name, owner_user_id=self.owner_id, template="image", image=image, status="Ready",
                    stack_config=yaml.safe_dump({"config": config}),
                )
            )  # fmt: skip

    def ops(self, name: str) -> list[Operation]:
        with self.sessions() as db:
            return list(db.scalars(select(Operation).where(Operation.deployment_name == name)))


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    config = Settings.from_env({"SHIPSTACK_DATA": str(tmp_path / "data"), "SHIPSTACK_DATABASE_URL": db_url})
    app = build_app(config, run_operations=False)
    with TestClient(app) as client:
        keys = {}
        with context_of(app.state).db.writes() as db, db.begin():
            owner = add_user(db, "owner", password_hash=None)
            other = add_user(db, "other", password_hash=None)
            for label, user, scopes in (
                ("owner", owner, ["deployments:read", "deployments:write"]),
                ("other", other, ["deployments:read", "deployments:write"]),
                ("reader", owner, ["deployments:read"]),
            ):
                key, prefix, digest = new_api_key()
                add_key(db, prefix=prefix, secret_hash=digest, name=label, user_id=user.id, scopes=scopes)
                keys[label] = {"Authorization": f"Bearer {key}"}
            owner_id = owner.id
        yield Api(
            client=client, config=config, app=app, headers=keys["owner"], other=keys["other"], reader=keys["reader"],
            owner_id=owner_id,
        )  # fmt: skip


def test_get_defaults_and_stack_values(api: Api) -> None:
    api.deploy("web", f"{HOST}/app:1.0.0")
    r = api.client.get("/api/deployments/auto-update?name=web", headers=api.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "enabled": False, "strategy": "rolling", "policy": "digest", "include": None, "exclude": None,
        "intervalSeconds": None, "prerelease": False,
    }  # fmt: skip
    api.deploy("api", f"{HOST}/app:1.0.0", AutoUpdate(enabled=True, policy="minor", interval_s=120), "recreate")
    r = api.client.get("/api/deployments/auto-update?name=api", headers=api.reader)
    assert r.json()["enabled"] is True
    assert (r.json()["policy"], r.json()["strategy"], r.json()["intervalSeconds"]) == ("minor", "recreate", 120)


def test_put_queues_an_operation_with_the_change(api: Api) -> None:
    api.deploy("web", f"{HOST}/app:1.0.0")
    body = {"deployment_name": "web", "enabled": True, "strategy": "recreate", "policy": "patch", "exclude": "-rc"}
    r = api.client.put("/api/deployments/auto-update", json=body, headers=api.headers)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["success"] is True
    assert out["autoUpdate"] == {
        "enabled": True, "strategy": "recreate", "policy": "patch", "include": None, "exclude": "-rc",
        "intervalSeconds": None, "prerelease": False,
    }  # fmt: skip
    (op,) = api.ops("web")
    assert (op.id, op.kind, op.status) == (out["operationId"], "auto-update-settings", "queued")
    change = msgspec.convert(op.payload["change"], Change)
    assert change == Change(auto_update=AutoUpdate(enabled=True, policy="patch", exclude="-rc"), strategy="recreate")
    # GET answers with the accepted change while it is queued.
    r = api.client.get("/api/deployments/auto-update?name=web", headers=api.headers)
    assert r.json() == out["autoUpdate"]


def test_put_keeps_what_it_leaves_out_and_composes_with_queued_changes(api: Api) -> None:
    api.deploy("web", f"{HOST}/app:1.0.0", AutoUpdate(enabled=True, policy="minor", include="^1\\."), "recreate")
    r = api.client.put(
        "/api/deployments/auto-update", json={"deployment_name": "web", "enabled": True, "prerelease": True},
        headers=api.headers,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["autoUpdate"]["policy"] == "minor"
    assert r.json()["autoUpdate"]["include"] == "^1\\."
    assert r.json()["autoUpdate"]["strategy"] == "recreate"
    r = api.client.put(
        "/api/deployments/auto-update", json={"deployment_name": "web", "enabled": False, "include": None},
        headers=api.headers,
    )  # fmt: skip
    settings = r.json()["autoUpdate"]
    assert (settings["enabled"], settings["prerelease"], settings["include"]) == (False, True, None)
    first, second = sorted(api.ops("web"), key=lambda o: o.created_at)
    assert first.payload["change"].get("strategy") is None  # not given: the spec's stays
    assert second.payload["change"]["auto_update"]["prerelease"] is True


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"deployment_name": "web", "enabled": True, "strategy": "blue-green"}, "strategy must be one of"),
        ({"deployment_name": "web", "enabled": True, "policy": "newest"}, "policy must be one of"),
        ({"deployment_name": "web", "enabled": True, "include": "("}, "include is not a valid regex"),
        ({"deployment_name": "web", "enabled": True, "exclude": "-(?!rc)"}, "exclude is not a valid regex (RE2 syntax"),
        ({"deployment_name": "web", "enabled": True, "include": "a" * 257}, "at most 256 characters"),
        ({"deployment_name": "web", "enabled": True, "intervalSeconds": 5}, "interval must be between"),
        ({"deployment_name": "web", "enabled": True, "intervalSeconds": True}, "Invalid request body"),
        ({"deployment_name": "web"}, "enabled"),
        ({"deployment_name": "web", "enabled": "yes"}, "Invalid request body"),
        ({"deployment_name": "web", "enabled": True, "bogus": 1}, "bogus"),
        ({"enabled": True}, "deployment_name"),
    ],
)
def test_bad_values_are_400(api: Api, body: dict, fragment: str) -> None:
    api.deploy("web", f"{HOST}/app:1.0.0")
    r = api.client.put("/api/deployments/auto-update", json=body, headers=api.headers)
    assert r.status_code == 400, r.text
    assert fragment in r.json()["error"]
    assert api.ops("web") == []


def test_not_json_is_400(api: Api) -> None:
    r = api.client.put("/api/deployments/auto-update", content=b"enabled=1", headers=api.headers)
    assert r.status_code == 400


def test_routes_are_in_the_openapi_schema(api: Api) -> None:
    paths = api.client.get("/api/openapi.json", headers=api.headers).json()["paths"]
    assert {"get", "put"} <= set(paths["/api/deployments/auto-update"])
    assert "get" in paths["/api/deployments/{name}/auto-update/status"]


def test_tenancy_and_scopes(api: Api) -> None:
    api.deploy("web", f"{HOST}/app:1.0.0")
    body = {"deployment_name": "web", "enabled": True}
    assert api.client.get("/api/deployments/auto-update?name=web", headers=api.other).status_code == 404
    assert api.client.put("/api/deployments/auto-update", json=body, headers=api.other).status_code == 404
    assert api.client.get("/api/deployments/web/auto-update/status", headers=api.other).status_code == 404
    assert api.client.put("/api/deployments/auto-update", json=body, headers=api.reader).status_code == 403
    assert api.client.get("/api/deployments/auto-update?name=web").status_code == 401
    assert api.client.get("/api/deployments/auto-update?name=nope", headers=api.headers).status_code == 404
    assert api.ops("web") == []


def test_idempotent_put(api: Api) -> None:
    api.deploy("web", f"{HOST}/app:1.0.0")
    headers = {**api.headers, "Idempotency-Key": "k1"}
    body = {"deployment_name": "web", "enabled": True}
    first = api.client.put("/api/deployments/auto-update", json=body, headers=headers)
    again = api.client.put("/api/deployments/auto-update", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert len(api.ops("web")) == 1


def test_status_before_and_after_a_poll(api: Api) -> None:
    api.deploy("web", f"{HOST}/team/app:1.0.0", AutoUpdate(enabled=True, policy="patch"))
    r = api.client.get("/api/deployments/web/auto-update/status", headers=api.reader)
    assert r.status_code == 200, r.text
    assert (r.json()["action"], r.json()["candidates"], r.json()["enabled"]) == (None, [], True)

    def digest(tag: str) -> str:
        return "sha256:" + hashlib.sha256(tag.encode()).hexdigest()

    def registry(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/tags/list"):
            return httpx.Response(200, json={"tags": ["1.0.0", "1.0.1", "2.0.0", "latest"]})
        return httpx.Response(200, headers={"Docker-Content-Digest": digest(request.url.path.rsplit("/", 1)[1])})

    poller = Poller(api.config, api.sessions, RegistryClient(transport=httpx.MockTransport(registry)))
    (update,) = poller.poll().updates
    r = api.client.get("/api/deployments/web/auto-update/status", headers=api.reader)
    body = r.json()
    assert body["action"] == "update"
    assert (body["currentTag"], body["targetTag"], body["targetDigest"]) == ("1.0.0", "1.0.1", digest("1.0.1"))
    assert body["operationId"] == update.operation_id
    assert body["intervalSeconds"] == 300
    assert body["repository"]["name"] == f"{HOST}/team/app"
    assert body["repository"]["tagCount"] == 4
    by_tag = {c["tag"]: c for c in body["candidates"]}
    assert by_tag["1.0.1"]["verdict"] == "chosen"
    assert by_tag["2.0.0"] == {
        "tag": "2.0.0", "verdict": "rejected", "code": "outside-policy",
        "reason": "a major update; policy patch allows 1.0.x",
    }  # fmt: skip
    assert by_tag["latest"]["code"] == "not-semver"
    assert body["badDigests"] == []


def test_what_a_registry_says_is_served_short_and_plain(api: Api) -> None:
    """A tenant's registry answers with markup, control characters and junk tags; the
    status API serves its words as short, clean JSON strings and leaves the junk out."""
    api.deploy("web", f"{HOST}/team/app:1.0.0", AutoUpdate(enabled=True, policy="patch"))
    api.deploy("gone", f"{HOST}/team/gone:1.0.0", AutoUpdate(enabled=True, policy="patch"))
    message = "<script>alert(1)</script>\x1b[2J\r\n[ERROR] forged\u202e" + "x" * 4000

    def hostile(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/team/gone/tags/list":
            return httpx.Response(404, json={"errors": [{"message": message}]})
        if request.url.path.endswith("/tags/list"):
            return httpx.Response(200, json={"tags": ["1.0.0", "<img src=x onerror=alert(1)>", "1.0.1\n", "9" * 999]})
        return httpx.Response(200, headers={"Docker-Content-Digest": "sha256:" + "0" * 64})

    Poller(api.config, api.sessions, RegistryClient(transport=httpx.MockTransport(hostile))).poll()
    r = api.client.get("/api/deployments/gone/auto-update/status", headers=api.reader)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    for text in (body["reason"], body["repository"]["error"]):
        assert len(text) <= 500
        assert not any(ord(c) < 32 or c == "\u202e" for c in text), repr(text)
        assert "<script>alert(1)</script>" in text and "[ERROR] forged" in text
    web = api.client.get("/api/deployments/web/auto-update/status", headers=api.reader).json()
    assert [c["tag"] for c in web["candidates"]] == ["1.0.0"]
    assert web["reason"].endswith("(3 listed names are not valid tags and were ignored)")
