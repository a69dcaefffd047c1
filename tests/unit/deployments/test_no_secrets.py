"""No response body, header (other than the one Set-Cookie that delivers a session) or
log line carries an API key, a key hash, a session token or a password, except the
single response that creates a key and shows it once."""

from __future__ import annotations

import logging

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import select

from api.auth.credentials import key_prefix
from api.auth.principal import ADMIN, READ, WRITE
from persistence.models import ApiKey, LoginSession
from tests.seed import Seed, bearer

PASSWORDS = ["Alice-Pa55word!", "B0b-secret-words", "wrong-guess-123"]


def test_no_secret_leaks(client: TestClient[Litestar], seed: Seed, caplog: pytest.LogCaptureFixture) -> None:
    responses: list[httpx.Response] = []

    def record(response: httpx.Response) -> None:
        response.read()
        responses.append(response)

    client.event_hooks = {"request": [], "response": [record]}
    caplog.set_level(logging.DEBUG)

    root_key = seed.key(seed.user("root", admin=True), (READ, WRITE, ADMIN))
    admin = bearer(root_key)
    alice = client.post("/api/admin/users", json={"name": "alice", "password": PASSWORDS[0]}, headers=admin).json()
    client.post("/api/admin/users", json={"name": "bob", "password": PASSWORDS[1]}, headers=admin)
    client.post("/api/admin/users", json={"name": "bad name", "password": PASSWORDS[1]}, headers=admin)
    client.post("/api/admin/teams", json={"name": "red", "owner_user_id": alice["id"]}, headers=admin)
    made = client.post("/api/admin/keys", json={"user_id": alice["id"], "scopes": [READ, WRITE]}, headers=admin)
    alice_key = made.json()["key"]
    creating_responses = [made]

    client.post("/api/auth/login", json={"name": "alice", "password": PASSWORDS[2]})
    client.post("/api/auth/login", data={"name": "bob", "password": PASSWORDS[2]})
    login = client.post("/api/auth/login", json={"name": "alice", "password": PASSWORDS[0]})
    session_token = client.cookies["shipstack_session"]
    csrf = login.json()["csrf_token"]
    own = client.post("/api/keys", json={"scopes": [READ]}, headers={"X-CSRF-Token": csrf})
    creating_responses.append(own)
    own_key = own.json()["key"]
    client.get("/api/keys")
    client.get("/api/auth/me", headers=bearer(alice_key))
    client.get("/api/auth/me", headers=bearer(alice_key[:-3] + "abc"))
    client.post(f"/api/keys/{key_prefix(own_key)}/revoke", headers=bearer(alice_key))
    client.get("/api/auth/me", headers=bearer(own_key))
    client.get("/api/admin/keys", headers=admin)
    client.get("/api/admin/users", headers=admin)
    client.get("/api/admin/billing/events", headers=admin)
    client.post("/api/auth/logout", headers={"X-CSRF-Token": csrf})

    with seed.factory() as db:
        hashes = list(db.scalars(select(ApiKey.secret_hash))) + list(db.scalars(select(LoginSession.id)))
    keys = [root_key, alice_key, own_key]
    secrets = [*keys, *(k[13:] for k in keys), *PASSWORDS, session_token, *hashes]

    assert len(responses) > 15
    for response in responses:
        text = response.text
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items() if k.lower() != "set-cookie")
        # A creating response shows its own new key (and so its secret part), nothing else.
        shown = {k for k in keys if any(response is r for r in creating_responses) and k in text}
        allowed = shown | {k[13:] for k in shown}
        for secret in secrets:
            if secret in allowed:
                continue
            assert secret not in text, (response.request.method, response.request.url.path)
            assert secret not in headers, (response.request.method, response.request.url.path)
        # Only a login may set the session cookie; only with a fresh token.
        for cookie in response.headers.get_list("set-cookie"):
            if session_token in cookie:
                assert response.request.url.path == "/api/auth/login"

    logged = "\n".join(r.getMessage() + str(r.args or "") for r in caplog.records)
    for secret in secrets:
        assert secret not in logged
