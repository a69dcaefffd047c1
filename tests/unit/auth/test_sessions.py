"""Cookie sessions: login (JSON and form), cookie flags, CSRF on writes, logout, login rate limit."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from api.auth.cookies import cookie_names
from api.auth.credentials import sha256_hex
from api.http.context import context_of
from persistence.base import utcnow
from persistence.models import LoginSession
from stacks.settings import Settings
from tests.seed import MakeClient, Seed, bearer

PASSWORD = "correct horse battery"
SESSION_COOKIE = cookie_names(secure=False).session
CSRF_COOKIE = cookie_names(secure=False).csrf


def login(client: TestClient[Litestar], name: str = "alice", password: str = PASSWORD) -> str:
    response = client.post("/api/auth/login", json={"name": name, "password": password})
    assert response.status_code == 200, response.text
    return response.json()["csrf_token"]


def test_login_sets_http_only_lax_cookie_and_session_authenticates(client: TestClient[Litestar], seed: Seed) -> None:
    seed.user("alice", password=PASSWORD)
    response = client.post("/api/auth/login", json={"name": "alice", "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["user"]["name"] == "alice"
    cookies = {c.split("=", 1)[0]: c for c in response.headers.get_list("set-cookie")}
    session_cookie = cookies[SESSION_COOKIE].lower()
    assert "httponly" in session_cookie
    assert "samesite=lax" in session_cookie
    assert "path=/" in session_cookie
    # The CSRF cookie is for scripts to read, so it is deliberately not HttpOnly.
    assert "httponly" not in cookies[CSRF_COOKIE].lower()
    me = client.get("/api/auth/me")
    assert me.status_code == 200
    assert me.json()["via"] == "session"
    assert me.json()["csrf_token"] == body["csrf_token"]


def test_session_cookie_is_stored_only_as_a_hash(
    client: TestClient[Litestar], seed: Seed, db_factory: sessionmaker[Session]
) -> None:
    seed.user("alice", password=PASSWORD)
    login(client)
    token = client.cookies[SESSION_COOKIE]
    with db_factory() as db:
        ids = list(db.scalars(select(LoginSession.id)))
    assert ids == [sha256_hex(token)]


def test_secure_flag_follows_settings(make_settings: Callable[..., Settings], make_client: MakeClient) -> None:
    client = make_client(make_settings(SHIPSTACK_SECURE_COOKIES="1"))
    Seed(context_of(client.app.state).db.reads).user("alice", password=PASSWORD)
    response = client.post("/api/auth/login", json={"name": "alice", "password": PASSWORD})
    assert all("secure" in c.lower() for c in response.headers.get_list("set-cookie"))


def test_cookie_writes_need_the_csrf_token(client: TestClient[Litestar], seed: Seed) -> None:
    seed.user("alice", password=PASSWORD)
    csrf = login(client)
    body = {"scopes": ["deployments:read"]}
    missing = client.post("/api/keys", json=body)
    assert missing.status_code == 403
    assert missing.json()["code"] == "csrf_failed"
    wrong = client.post("/api/keys", json=body, headers={"X-CSRF-Token": "x" * 43})
    assert wrong.status_code == 403
    assert client.post("/api/keys", json=body, headers={"X-CSRF-Token": csrf}).status_code == 201
    # Reads need no token.
    assert client.get("/api/keys").status_code == 200


def test_csrf_token_accepted_as_form_field(client: TestClient[Litestar], seed: Seed) -> None:
    seed.user("alice", password=PASSWORD)
    csrf = login(client)
    assert client.post("/api/auth/logout", data={"_csrf": "wrong"}).status_code == 403
    assert client.post("/api/auth/logout", data={"_csrf": csrf}).status_code == 204
    assert client.get("/api/auth/me").status_code == 401


def test_csrf_token_of_another_session_is_rejected(
    client: TestClient[Litestar], seed: Seed, make_client: MakeClient, app_settings: Settings
) -> None:
    seed.user("alice", password=PASSWORD)
    seed.user("bob", password=PASSWORD)
    other = make_client(app_settings)
    bobs_token = login(other, "bob")
    login(client, "alice")
    response = client.post("/api/keys", json={"scopes": ["deployments:read"]}, headers={"X-CSRF-Token": bobs_token})
    assert response.status_code == 403


def test_bearer_key_needs_no_csrf_even_with_a_cookie(client: TestClient[Litestar], seed: Seed) -> None:
    alice = seed.user("alice", password=PASSWORD)
    key = seed.key(alice)
    login(client)
    response = client.post("/api/keys", json={"scopes": ["deployments:read"]}, headers=bearer(key))
    assert response.status_code == 201
    assert client.get("/api/auth/me", headers=bearer(key)).json()["via"] == "key"


def test_logout_ends_the_session_server_side(client: TestClient[Litestar], seed: Seed) -> None:
    seed.user("alice", password=PASSWORD)
    csrf = login(client)
    stolen = client.cookies[SESSION_COOKIE]
    response = client.post("/api/auth/logout", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 204
    # Replaying the old cookie does not work: the row is gone.
    client.cookies.set(SESSION_COOKIE, stolen)
    assert client.get("/api/auth/me").status_code == 401


def test_expired_session_is_rejected(
    client: TestClient[Litestar], seed: Seed, db_factory: sessionmaker[Session]
) -> None:
    seed.user("alice", password=PASSWORD)
    login(client)
    with db_factory() as db:
        db.execute(update(LoginSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.commit()
    response = client.get("/api/auth/me")
    assert response.status_code == 401
    assert response.json() == {"error": "Session expired, log in again", "code": "unauthorized"}


def test_wrong_password_and_unknown_user_look_the_same(client: TestClient[Litestar], seed: Seed) -> None:
    seed.user("alice", password=PASSWORD)
    seed.user("robot")  # no password: key-only account
    answers = [
        client.post("/api/auth/login", json={"name": n, "password": "nope-nope"}) for n in ("alice", "nobody", "robot")
    ]
    assert {r.status_code for r in answers} == {401}
    assert len({r.text for r in answers}) == 1
    assert SESSION_COOKIE not in client.cookies


def test_login_name_is_case_insensitive(client: TestClient[Litestar], seed: Seed) -> None:
    seed.user("alice", password=PASSWORD)
    assert client.post("/api/auth/login", json={"name": "Alice", "password": PASSWORD}).status_code == 200


def test_bad_login_bodies_are_400(client: TestClient[Litestar]) -> None:
    assert (
        client.post("/api/auth/login", content=b"{nope", headers={"content-type": "application/json"}).status_code
        == 400
    )
    response = client.post("/api/auth/login", json={"name": "alice"})
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"


def test_login_is_rate_limited_per_user_and_ip(make_settings: Callable[..., Settings], make_client: MakeClient) -> None:
    client = make_client(make_settings(SHIPSTACK_LOGIN_MAX_ATTEMPTS="3"))
    seed = Seed(context_of(client.app.state).db.reads)
    seed.user("alice", password=PASSWORD)
    seed.user("bob", password=PASSWORD)
    for _ in range(3):
        assert client.post("/api/auth/login", json={"name": "alice", "password": "wrong-one"}).status_code == 401
    limited = client.post("/api/auth/login", json={"name": "alice", "password": PASSWORD})
    assert limited.status_code == 429
    assert limited.json()["code"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1
    # Another account from the same address is unaffected.
    assert client.post("/api/auth/login", json={"name": "bob", "password": PASSWORD}).status_code == 200


def test_successful_login_resets_the_attempt_count(
    make_settings: Callable[..., Settings], make_client: MakeClient
) -> None:
    client = make_client(make_settings(SHIPSTACK_LOGIN_MAX_ATTEMPTS="2"))
    Seed(context_of(client.app.state).db.reads).user("alice", password=PASSWORD)
    for _ in range(3):
        assert client.post("/api/auth/login", json={"name": "alice", "password": "wrong-one"}).status_code == 401
        assert client.post("/api/auth/login", json={"name": "alice", "password": PASSWORD}).status_code == 200
