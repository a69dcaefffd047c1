"""scheduler.registry against an in-process fake registry (httpx.MockTransport).

The real registry is exercised in tests/integration/test_autoupdate_registry.py;
here the fake lets each protocol rule be checked exactly: token challenge and
cache, Link pagination and its cap, the Accept list, 429 handling with a fake
clock, Docker Hub naming, and where plain http and credentials may go.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from scheduler.registry import (
    DOCKER_HUB,
    MANIFEST_TYPES,
    ClientOptions,
    Credentials,
    NotFound,
    RateLimited,
    RegistryClient,
    Repository,
    Unauthorized,
    parse_challenge,
    parse_retry_after,
    repository_of,
)
from stacks.settings import SettingsError

REALM = "https://auth.example.test/token"


@dataclass
class FakeRegistry:
    """A registry and its token service in one MockTransport handler."""

    tags: dict[str, list[str]] = field(default_factory=dict)
    digests: dict[tuple[str, str], str] = field(default_factory=dict)
    require_token: bool = False
    users: dict[str, str] = field(default_factory=dict)  # basic credentials the token service accepts
    token_ttl: int | None = 300
    throttle: list[tuple[int, str | None]] = field(default_factory=list)  # (status, Retry-After) answered first
    max_n: int = 10_000
    head_digest: bool = True
    log: list[httpx.Request] = field(default_factory=list)
    issued: int = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.log.append(request)
        url = urlsplit(str(request.url))
        if f"{url.scheme}://{url.netloc}{url.path}" == REALM:
            return self._token(request)
        if self.throttle:
            status, retry_after = self.throttle.pop(0)
            return httpx.Response(status, headers={"Retry-After": retry_after} if retry_after else {})
        if self.require_token and not request.headers.get("Authorization", "").startswith("Bearer tok-"):
            name = url.path.split("/v2/", 1)[1].rsplit("/", 2)[0] if "/v2/" in url.path else ""
            challenge = f'Bearer realm="{REALM}",service="fake",scope="repository:{name}:pull"'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge}, json={"errors": []})
        path = url.path
        if path.endswith("/tags/list"):
            return self._tags(path[len("/v2/") : -len("/tags/list")], parse_qs(url.query))
        if "/manifests/" in path:
            name, ref = path[len("/v2/") :].split("/manifests/")
            digest = self.digests.get((name, ref))
            if digest is None:
                return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN", "message": "unknown"}]})
            headers = {"Docker-Content-Digest": digest} if self.head_digest or request.method == "GET" else {}
            return httpx.Response(200, headers=headers, content=b"{}" if request.method == "GET" else b"")
        return httpx.Response(404)

    def _token(self, request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("Authorization")
        if auth:
            user, _, password = base64.b64decode(auth.split(" ", 1)[1]).decode().partition(":")
            if self.users.get(user) != password:
                return httpx.Response(401)
        elif self.users:
            return httpx.Response(401)
        self.issued += 1
        body: dict[str, object] = {"token": f"tok-{self.issued}"}
        if self.token_ttl is not None:
            body["expires_in"] = self.token_ttl
        return httpx.Response(200, json=body)

    def _tags(self, name: str, query: dict[str, list[str]]) -> httpx.Response:
        if name not in self.tags:
            return httpx.Response(404, json={"errors": [{"code": "NAME_UNKNOWN", "message": "repository unknown"}]})
        n = int(query.get("n", ["100"])[0])
        if n > self.max_n:
            return httpx.Response(400, json={"errors": [{"code": "PAGINATION_NUMBER_INVALID"}]})
        tags = sorted(self.tags[name])
        last = query.get("last", [""])[0]
        rest = [t for t in tags if t > last] if last else tags
        page, more = rest[:n], len(rest) > n
        headers = {"Link": f'</v2/{name}/tags/list?last={page[-1]}&n={n}>; rel="next"'} if more else {}
        return httpx.Response(200, headers=headers, json={"name": name, "tags": page})


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def client_for(fake: FakeRegistry, clock: FakeClock | None = None, **options: object) -> RegistryClient:
    clock = clock or FakeClock()
    # The fake's token service lives on its own host, as Docker Hub's does: configured.
    options.setdefault("realm_hosts", {REPO.host: frozenset({"auth.example.test"})})
    return RegistryClient(
        ClientOptions(**options),  # type: ignore[arg-type]
        transport=httpx.MockTransport(fake.handler),
        sleep=clock.sleep,
        clock=clock,
        rng=lambda: 0.5,
    )


REPO = Repository(host="registry.example.test", path="team/app")


# --- naming --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "host", "path"),
    [
        ("nginx", DOCKER_HUB, "library/nginx"),
        ("nginx:1.25", DOCKER_HUB, "library/nginx"),
        ("docker.io/nginx", DOCKER_HUB, "library/nginx"),
        ("docker.io/library/nginx", DOCKER_HUB, "library/nginx"),
        ("index.docker.io/bitnami/redis", DOCKER_HUB, "bitnami/redis"),
        ("traefik/whoami:v1.10", DOCKER_HUB, "traefik/whoami"),
        ("ghcr.io/org/app:1.0@sha256:" + "a" * 64, "ghcr.io", "org/app"),
        ("localhost:5000/app", "localhost:5000", "app"),
        ("127.0.0.1:5000/a/b:1", "127.0.0.1:5000", "a/b"),
    ],
)
def test_repository_of(image: str, host: str, path: str) -> None:
    assert repository_of(image) == Repository(host=host, path=path)


def test_plain_http_only_for_loopback_and_listed_hosts() -> None:
    client = RegistryClient(ClientOptions(insecure_hosts=frozenset({"registry.lan:5000"})))
    assert client.base_url(Repository("127.0.0.1:5000", "a")) == "http://127.0.0.1:5000/v2/a"
    assert client.base_url(Repository("localhost:5000", "a")) == "http://localhost:5000/v2/a"
    assert client.base_url(Repository("[::1]:5000", "a")) == "http://[::1]:5000/v2/a"
    assert client.base_url(Repository("registry.lan:5000", "a")) == "http://registry.lan:5000/v2/a"
    assert client.base_url(Repository("registry.lan", "a")) == "https://registry.lan/v2/a"
    assert client.base_url(Repository("10.0.0.1:5000", "a")) == "https://10.0.0.1:5000/v2/a"
    client.close()


def test_credentials_from_settings_normalise_docker_hub() -> None:
    raw = json.dumps({"docker.io": {"username": "u", "password": "p"}, "ghcr.io": {"username": "x", "password": "y"}})
    creds = ClientOptions.from_env({"SHIPSTACK_REGISTRY_AUTH": raw}).credentials
    assert creds[DOCKER_HUB] == Credentials("u", "p")
    assert "p" not in repr(creds[DOCKER_HUB])
    with pytest.raises(SettingsError, match="SHIPSTACK_REGISTRY_AUTH") as exc:
        ClientOptions.from_env({"SHIPSTACK_REGISTRY_AUTH": '{"ghcr.io": "secret-value"}'})
    assert "secret-value" not in str(exc.value)


@pytest.mark.parametrize(
    ("header", "scheme", "params"),
    [
        (
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"',
            "bearer",
            {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
             "scope": "repository:library/nginx:pull"},
        ),
        ('Basic realm="Registry Realm"', "basic", {"realm": "Registry Realm"}),
        ('Bearer realm="r",scope="a:b:pull,push b:c:pull"', "bearer",
         {"realm": "r", "scope": "a:b:pull,push b:c:pull"}),
        ('Bearer realm="r\\"q",error="invalid_token"', "bearer", {"realm": 'r"q', "error": "invalid_token"}),
        ("Bearer realm=r,service=s", "bearer", {"realm": "r", "service": "s"}),
    ],
)  # fmt: skip
def test_parse_challenge(header: str, scheme: str, params: dict) -> None:
    challenge = parse_challenge(header)
    assert challenge is not None
    assert (challenge.scheme, dict(challenge.params)) == (scheme, params)


def test_parse_challenge_unknown_scheme() -> None:
    assert parse_challenge("Negotiate abc") is None


def test_parse_retry_after() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


# --- tags ---------------------------------------------------------------------------


def test_tags_follow_link_pagination() -> None:
    fake = FakeRegistry(tags={"team/app": [f"1.0.{i}" for i in range(25)]})
    with client_for(fake, page_size=10) as client:
        listed = client.list_tags(REPO)
    assert sorted(listed.tags) == sorted(f"1.0.{i}" for i in range(25))
    assert (listed.pages, listed.truncated) == (3, False)
    assert len(fake.log) == 3
    assert "last=" in str(fake.log[1].url)


def test_tags_page_cap() -> None:
    fake = FakeRegistry(tags={"team/app": [f"1.0.{i}" for i in range(25)]})
    with client_for(fake, page_size=10, max_pages=2) as client:
        listed = client.list_tags(REPO)
    assert (len(listed.tags), listed.pages, listed.truncated) == (20, 2, True)


def test_tags_quay_style_page_limit_falls_back_to_100() -> None:
    fake = FakeRegistry(tags={"team/app": ["1", "2"]}, max_n=100)
    with client_for(fake) as client:
        assert client.list_tags(REPO).tags == ["1", "2"]
        assert client.list_tags(REPO).tags == ["1", "2"]
    assert [parse_qs(urlsplit(str(r.url)).query)["n"][0] for r in fake.log] == ["1000", "100", "100"]


def test_missing_repository() -> None:
    with client_for(FakeRegistry()) as client, pytest.raises(NotFound, match="repository unknown"):
        client.list_tags(REPO)


# --- digests ------------------------------------------------------------------------


def test_digest_by_head_with_the_full_accept_list() -> None:
    fake = FakeRegistry(digests={("team/app", "1.0.0"): "sha256:" + "1" * 64})
    with client_for(fake) as client:
        assert client.digest(REPO, "1.0.0") == "sha256:" + "1" * 64
        assert (client.stats.manifest_heads, client.stats.manifest_gets) == (1, 0)
    request = fake.log[0]
    assert request.method == "HEAD"
    assert [t.strip() for t in request.headers["Accept"].split(",")] == list(MANIFEST_TYPES)


def test_digest_falls_back_to_get_when_head_lacks_it() -> None:
    fake = FakeRegistry(digests={("team/app", "1.0.0"): "sha256:" + "2" * 64}, head_digest=False)
    with client_for(fake) as client:
        assert client.digest(REPO, "1.0.0") == "sha256:" + "2" * 64
    assert [r.method for r in fake.log] == ["HEAD", "GET"]


def test_digest_of_a_missing_tag() -> None:
    with client_for(FakeRegistry()) as client, pytest.raises(NotFound):
        client.digest(REPO, "nope")


# --- auth ---------------------------------------------------------------------------


def test_anonymous_token_flow_and_cache() -> None:
    fake = FakeRegistry(tags={"team/app": ["1.0.0"]}, require_token=True)
    with client_for(fake) as client:
        for _ in range(3):
            assert client.list_tags(REPO).tags == ["1.0.0"]
        stats = client.stats
    # 401 once, one token, then the token is sent up front: 1 + 1 + 3 requests.
    assert fake.issued == 1
    assert stats.token_requests == 1
    assert stats.requests == 5
    token_request = next(r for r in fake.log if str(r.url).startswith(REALM))
    assert parse_qs(urlsplit(str(token_request.url)).query) == {
        "service": ["fake"],
        "scope": ["repository:team/app:pull"],
    }
    assert "Authorization" not in token_request.headers


@pytest.mark.parametrize(
    ("expires_in", "still_valid_at", "renewed_at"),
    [
        (100, 50, 100),  # renewed a little before expires_in (the safety margin)
        (None, 50, 60),  # no expires_in: the token spec's default of 60 s
    ],
)
def test_token_lifetime(expires_in: int | None, still_valid_at: int, renewed_at: int) -> None:
    fake = FakeRegistry(tags={"team/app": ["1.0.0"]}, require_token=True, token_ttl=expires_in)
    clock = FakeClock()
    start = clock.now
    with client_for(fake, clock) as client:
        client.list_tags(REPO)
        clock.now = start + still_valid_at
        client.list_tags(REPO)
        assert fake.issued == 1
        clock.now = start + renewed_at
        client.list_tags(REPO)
        assert fake.issued == 2


def test_tokens_are_cached_per_scope() -> None:
    fake = FakeRegistry(tags={"team/app": ["1"], "team/other": ["2"]}, require_token=True)
    with client_for(fake) as client:
        client.list_tags(REPO)
        client.list_tags(Repository(REPO.host, "team/other"))
        client.list_tags(REPO)
    assert fake.issued == 2


def test_basic_credentials_for_the_token() -> None:
    fake = FakeRegistry(tags={"team/app": ["1.0.0"]}, require_token=True, users={"robot": "s3cret"})
    creds = {REPO.host: Credentials("robot", "s3cret")}
    with client_for(fake, credentials=creds) as client:
        assert client.list_tags(REPO).tags == ["1.0.0"]
    token_request = next(r for r in fake.log if str(r.url).startswith(REALM))
    assert token_request.headers["Authorization"] == "Basic " + base64.b64encode(b"robot:s3cret").decode()


def test_wrong_credentials_are_unauthorized_without_the_password() -> None:
    fake = FakeRegistry(tags={"team/app": ["1.0.0"]}, require_token=True, users={"robot": "s3cret"})
    creds = {REPO.host: Credentials("robot", "wrong")}
    with client_for(fake, credentials=creds) as client, pytest.raises(Unauthorized) as exc:
        client.list_tags(REPO)
    assert "wrong" not in str(exc.value)


@pytest.mark.parametrize(
    ("realm", "fragment"),
    [
        ("http://169.254.169.254/latest/meta-data", "another host (169.254.169.254)"),
        ("https://10.0.0.5/token", "another host (10.0.0.5)"),
        ("https://auth.elsewhere.test/token", "another host (auth.elsewhere.test)"),
        (f"http://{REPO.host}/token", "plain http token realm"),
        (f"https://user:pw@{REPO.host}/token", "credentials in it"),
        ("file:///etc/passwd", "scheme 'file'"),
    ],
)
def test_a_registry_cannot_point_the_token_request_anywhere(realm: str, fragment: str) -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(str(request.url))
        return httpx.Response(401, headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="x"'})

    client = RegistryClient(transport=httpx.MockTransport(handler))
    with client, pytest.raises(Unauthorized, match=re.escape(fragment)):
        client.list_tags(REPO)
    assert sent == [f"https://{REPO.host}/v2/{REPO.path}/tags/list?n=1000"]


def test_a_realm_on_another_host_only_where_configured() -> None:
    """Docker Hub's auth.docker.io by default; any other pair as the operator lists it."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(200, json={"token": "tok-1"})
        if request.headers.get("Authorization") != "Bearer tok-1":
            realm = "https://auth.docker.io/token" if request.url.host == DOCKER_HUB else "https://auth.lan.test/token"
            return httpx.Response(401, headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="s"'})
        return httpx.Response(200, json={"tags": ["1"]})

    lan = Repository("registry.lan.test", "a")
    with RegistryClient(transport=httpx.MockTransport(handler)) as client:
        assert client.list_tags(Repository(DOCKER_HUB, "library/nginx")).tags == ["1"]
        with pytest.raises(Unauthorized, match="another host"):
            client.list_tags(lan)
    options = ClientOptions.from_env({"SHIPSTACK_REGISTRY_REALM_HOSTS": '{"registry.lan.test": ["auth.lan.test"]}'})
    with RegistryClient(options, transport=httpx.MockTransport(handler)) as client:
        assert client.list_tags(lan).tags == ["1"]


def test_loopback_registries_may_use_a_loopback_realm_on_their_own_host() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(200, json={"token": "tok-1"})
        if request.headers.get("Authorization") != "Bearer tok-1":
            return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="http://127.0.0.1:5000/token"'})
        return httpx.Response(200, json={"tags": ["1"]})

    with RegistryClient(transport=httpx.MockTransport(handler)) as client:
        assert client.list_tags(Repository("127.0.0.1:5000", "a")).tags == ["1"]


def test_credentials_never_go_over_plain_http_to_other_hosts() -> None:
    sent_to_auth: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.insecure.test":
            sent_to_auth.append(request)
            return httpx.Response(200, json={"token": "tok-x"})
        return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="http://auth.insecure.test/t"'})

    # A trusted plain-http registry whose (configured) realm host is not trusted with plain http.
    lan = Repository("registry.lan:5000", "app")
    client = RegistryClient(
        ClientOptions(
            credentials={lan.host: Credentials("u", "p")}, insecure_hosts=frozenset({lan.host}),
            realm_hosts={lan.host: frozenset({"auth.insecure.test"})},
        ),
        transport=httpx.MockTransport(handler),
    )  # fmt: skip
    with client, pytest.raises(Unauthorized, match="plain http token realm"):
        client.list_tags(lan)
    assert sent_to_auth == []


# --- rate limits ----------------------------------------------------------------------


def test_429_retry_after_is_obeyed_with_jitter() -> None:
    fake = FakeRegistry(tags={"team/app": ["1.0.0"]}, throttle=[(429, "3"), (429, "5")])
    clock = FakeClock()
    with client_for(fake, clock, jitter=0.2) as client:
        assert client.list_tags(REPO).tags == ["1.0.0"]
        assert client.stats.retries == 2
    # Never less than Retry-After; jitter (rng 0.5 * 20 %) only adds.
    assert clock.sleeps == pytest.approx([3 * 1.1, 5 * 1.1])


def test_429_without_retry_after_backs_off_exponentially() -> None:
    fake = FakeRegistry(tags={"team/app": ["1.0.0"]}, throttle=[(429, None), (429, None)])
    clock = FakeClock()
    with client_for(fake, clock, jitter=0.0) as client:
        client.list_tags(REPO)
    assert clock.sleeps == [1.0, 2.0]


def test_503_with_retry_after_is_a_rate_limit_too() -> None:
    fake = FakeRegistry(tags={"team/app": ["1.0.0"]}, throttle=[(503, "2")])
    clock = FakeClock()
    with client_for(fake, clock, jitter=0.0) as client:
        client.list_tags(REPO)
    assert clock.sleeps == [2.0]


def test_long_retry_after_is_not_slept_in_thread_and_blocks_the_host() -> None:
    fake = FakeRegistry(tags={"team/app": ["1.0.0"]}, throttle=[(429, "3600")])
    clock = FakeClock()
    with client_for(fake, clock) as client:
        with pytest.raises(RateLimited) as exc:
            client.list_tags(REPO)
        assert exc.value.retry_after_s == 3600
        assert clock.sleeps == []
        # The pause holds for every later request to that host, without sending anything.
        sent = len(fake.log)
        with pytest.raises(RateLimited):
            client.digest(REPO, "1.0.0")
        assert len(fake.log) == sent
        clock.now += 3601
        assert client.list_tags(REPO).tags == ["1.0.0"]


def test_429_gives_up_after_max_retries() -> None:
    fake = FakeRegistry(tags={"team/app": ["1.0.0"]}, throttle=[(429, "1")] * 10)
    with client_for(fake, max_retries=2) as client, pytest.raises(RateLimited):
        client.list_tags(REPO)
    assert len(fake.log) == 3


def test_timeouts_are_registry_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    client = RegistryClient(ClientOptions(timeout_s=2), transport=httpx.MockTransport(handler))
    with client, pytest.raises(Exception, match="timed out after 2 s"):
        client.list_tags(REPO)
