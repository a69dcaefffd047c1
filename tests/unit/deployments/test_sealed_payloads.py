"""Env values of queued writes are sealed in the database: a create, an image deploy
and a config write that carry envVars leave no plaintext value in their operation's
row (nor anywhere else in the database) while they wait for a worker, yet the owner
reads them back. The sealing marker cannot come from a client, and a payload sealed
under another passphrase fails clearly, in the API and in the worker, without
yielding a value."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import Engine, MetaData, select, text

from api.http.context import context_of
from persistence import operations as ops
from persistence.models import Deployment
from stacks.execute import Executor
from stacks.sealing import SEALED
from stacks.settings import Settings
from tests.held import held
from tests.seed import MakeClient, Seed, bearer

CREATE_ENV = {"API_TOKEN": "create-secret-8d41c2", "GREETING": "hello-create-5be0"}
IMAGE_ENV = {"DB_PASSWORD": "image-secret-0a77e9"}
CONFIG_ENV = {"API_TOKEN": "config-secret-c3f19b", "NEW_VAR": "config-plain-77aa01"}
PLAINTEXTS = [*CREATE_ENV.values(), *IMAGE_ENV.values(), *CONFIG_ENV.values()]


def _cells(row: Any) -> list[str]:
    out = []
    for value in row:
        if isinstance(value, bytes | bytearray | memoryview):
            out.append(bytes(value).decode("utf-8", "replace"))
        else:
            out.append(str(value))
    return out


def operation_rows(engine: Engine) -> dict[str, dict[str, Any]]:
    """Every operations row as the database holds it (SQLAlchemy Core, raw JSON text)."""
    with engine.connect() as conn:
        result = conn.execute(text("SELECT * FROM operations"))
        return {row.id: dict(row._mapping) for row in result}


def database_dump(engine: Engine) -> str:
    """Every cell of every table, as text."""
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        return "\n".join(" | ".join(_cells(row)) for table in meta.sorted_tables for row in conn.execute(select(table)))


def _decoded(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def test_queued_env_values_are_sealed_in_the_database(client: TestClient[Litestar], seed: Seed) -> None:
    alice = bearer(seed.key(seed.user("alice")))
    engine = context_of(client.app.state).db.engine
    created = client.post(
        "/api/deployments",
        json={"template": "nginx", "name": "shop", "envVars": CREATE_ENV},
        headers={**alice, "Idempotency-Key": "create-1"},
    )
    assert created.status_code == 201, created.text
    image = client.post(
        "/api/deployments/deploy-image",
        json={"image": "ghcr.io/acme/api:1.2.3", "name": "api", "envVars": IMAGE_ENV},
        headers=alice,
    )
    assert image.status_code == 201, image.text
    config = client.put(
        "/api/deployments/config",
        json={"deployment_name": "shop", "configData": CONFIG_ENV},
        headers={**alice, "Idempotency-Key": "config-1"},
    )
    assert config.status_code == 200, config.text

    rows = operation_rows(engine)
    assert set(rows) == {created.json()["operationId"], image.json()["operationId"], config.json()["operationId"]}
    for op_id, row in rows.items():
        whole_row = " | ".join(_cells(row.values()))
        for plaintext in PLAINTEXTS:
            assert plaintext not in whole_row, (row["kind"], plaintext)
        # The env is there, sealed: only the marker, holding a v1 ciphertext.
        payload = _decoded(row["payload"])
        part = "spec" if row["kind"] == "create" else "change"
        env = payload[part]["env"]
        assert list(env) == [SEALED] and env[SEALED].startswith("v1:"), (op_id, env)
    # Nowhere else in the database either (idempotency records, billing, the rows).
    dump = database_dump(engine)
    for plaintext in PLAINTEXTS:
        assert plaintext not in dump, plaintext

    # The owner reads the queued values back, opened.
    shown = client.get("/api/deployments/config?name=shop", headers=alice)
    assert shown.status_code == 200 and shown.json() == {"configData": CONFIG_ENV}
    assert client.get("/api/deployments/config?name=api", headers=alice).json() == {"configData": IMAGE_ENV}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/deployments", {"template": "nginx", "name": "forged", "envVars": {SEALED: "v1:AAAA:BBBB"}}),
        ("/api/deployments", {"template": "nginx", "name": "forged", "envVars": {SEALED: "v1:x:y", "A": "1"}}),
        ("/api/deployments/deploy-image", {"image": "nginx:1.27", "name": "forged", "envVars": {SEALED: "v1:x:y"}}),
    ],
)
def test_a_client_cannot_send_the_sealing_marker_in_a_create(
    client: TestClient[Litestar], seed: Seed, path: str, body: dict[str, Any]
) -> None:
    alice = bearer(seed.key(seed.user("alice")))
    response = client.post(path, json=body, headers=alice)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_input"
    assert f"env var name '{SEALED}'" in response.json()["error"]
    assert operation_rows(context_of(client.app.state).db.engine) == {}


def test_a_client_cannot_send_the_sealing_marker_in_a_config_write(client: TestClient[Litestar], seed: Seed) -> None:
    alice = bearer(seed.key(seed.user("alice")))
    assert client.post("/api/deployments", json={"template": "nginx", "name": "shop"}, headers=alice).status_code == 201
    before = operation_rows(context_of(client.app.state).db.engine)
    forged = {"deployment_name": "shop", "configData": {SEALED: "v1:AAAA:BBBB"}}
    response = client.put("/api/deployments/config", json=forged, headers=alice)
    assert response.status_code == 400, response.text
    assert f"env var name '{SEALED}'" in response.json()["error"]
    assert operation_rows(context_of(client.app.state).db.engine) == before


def test_a_payload_sealed_under_another_passphrase_fails_clearly(
    make_settings: Callable[..., Settings], make_client: MakeClient
) -> None:
    """The service restarted with another PULUMI_CONFIG_PASSPHRASE while a write waited:
    reading the queued config is a 500 that says so, and the worker fails the
    operation with that reason at once (rather than crashing on it until it gives up
    on an "interrupted" operation); no value is shown either way."""
    first = make_client(make_settings())
    seed = Seed(context_of(first.app.state).db.reads)
    alice = bearer(seed.key(seed.user("alice")))
    created = first.post(
        "/api/deployments", json={"template": "nginx", "name": "shop", "envVars": CREATE_ENV}, headers=alice
    )
    assert created.status_code == 201

    second = make_client(make_settings(PULUMI_CONFIG_PASSPHRASE="a different passphrase"))
    shown = second.get("/api/deployments/config?name=shop", headers=alice)
    assert shown.status_code == 500
    assert shown.json() == {
        "error": "The queued configuration of 'shop' cannot be read with this service's passphrase",
        "code": "config_unreadable",
    }

    context = context_of(second.app.state)
    with context.db.writes() as s, s.begin():
        batch = ops.claim_next(s, "worker", "token-1")
    assert [op.id for op in batch] == [created.json()["operationId"]]
    Executor(context.settings, context.db.writes, lambda op_id, item: None, None, worker_id="w1").run(
        batch, "token-1", held(batch)
    )
    op = second.get(f"/api/operations/{batch[0].id}", headers=alice).json()
    assert op["status"] == "failed", op
    assert "cannot be opened" in op["error"] and "PULUMI_CONFIG_PASSPHRASE" in op["error"]
    status = second.get("/api/deployments/status?name=shop", headers=alice).json()
    assert status["status"] == "Error" and "PULUMI_CONFIG_PASSPHRASE" in status["statusMessage"]
    for plaintext in CREATE_ENV.values():
        assert plaintext not in str(op) and plaintext not in str(status)
    with context.db.reads() as s:
        assert s.scalar(select(Deployment.last_error)) == op["error"]
