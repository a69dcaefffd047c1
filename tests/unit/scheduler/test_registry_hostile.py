"""The registry client against hostile registries (issue 11), each one a fake
(httpx.MockTransport handler) playing one attack: steal a token minted for another
registry, send us to another host, flood us with bytes, answer nonsense shapes,
or plant markup and control characters in what users will read.

The SSRF guard and the deadlines need real sockets: test_registry_addresses.py
and tests/integration/autoupdate/test_hostile_registry.py.
"""

from __future__ import annotations

import base64
import json
import unicodedata
from collections.abc import Iterator

import httpx
import pytest

from scheduler.registry import (
    ClientOptions,
    Credentials,
    NotFound,
    RateLimited,
    RegistryClient,
    RegistryError,
    Repository,
    Unauthorized,
)

REPO = Repository(host="registry.example.test", path="team/app")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def fake_client(handler: object, options: ClientOptions | None = None) -> RegistryClient:
    """The real client in front of a fake registry (a MockTransport handler)."""
    return RegistryClient(options, transport=httpx.MockTransport(handler))  # type: ignore[arg-type]


def tags_response(tags: list[str], **headers: str) -> httpx.Response:
    return httpx.Response(200, json={"name": REPO.path, "tags": tags}, headers=headers)


class FakeFlood(httpx.SyncByteStream):
    """A body of `total` bytes in 64 KiB chunks; counts how many were pulled."""

    def __init__(self, total: int, chunk: bytes = b"x" * 65536) -> None:
        self.total = total
        self.chunk = chunk
        self.pulled = 0

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        while sent < self.total:
            self.pulled += len(self.chunk)
            sent += len(self.chunk)
            yield self.chunk


# --- 2. tokens and credentials stay with their registry host ----------------------------


def test_a_token_minted_for_one_registry_is_never_sent_to_another() -> None:
    """The operator holds credentials for b.test; a tenant's evil.test answers with
    b.test's own realm, service and scope, hoping for the token cached for b.test."""
    challenge = 'Bearer realm="https://b.test/token",service="b",scope="repository:team/app:pull"'
    seen_by_evil: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "b.test" and request.url.path == "/token":
            if request.headers.get("Authorization") != basic("robot", "pw"):
                return httpx.Response(401)
            return httpx.Response(200, json={"token": "tok-minted-for-b", "expires_in": 300})
        if request.url.host == "b.test":
            if request.headers.get("Authorization") != "Bearer tok-minted-for-b":
                return httpx.Response(401, headers={"WWW-Authenticate": challenge})
            return tags_response(["1.0.0"])
        seen_by_evil.append(request.headers.get("Authorization"))
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})

    options = ClientOptions(credentials={"b.test": Credentials("robot", "pw")})
    with RegistryClient(options, transport=httpx.MockTransport(handler)) as client:
        assert client.list_tags(Repository("b.test", "team/app")).tags == ["1.0.0"]
        with pytest.raises(Unauthorized):
            client.list_tags(Repository("evil.test", "team/app"))
    assert seen_by_evil, "the hostile registry was asked"
    assert all(a is None for a in seen_by_evil), seen_by_evil


def test_credentials_go_only_to_the_host_they_are_configured_for() -> None:
    """A registry asking for Basic auth gets its own credentials; its page link to
    another host is not followed (the next request would carry them)."""
    elsewhere: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host != REPO.host:
            elsewhere.append(request)
            return tags_response(["9.9.9"])
        if request.headers.get("Authorization") != basic("robot", "pw"):
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        link = '<https://collector.evil.test/v2/team/app/tags/list?last=1.0.0>; rel="next"'
        return tags_response(["1.0.0"], Link=link)

    options = ClientOptions(credentials={REPO.host: Credentials("robot", "pw")})
    with fake_client(handler, options) as client, pytest.raises(RegistryError, match="another host"):
        client.list_tags(REPO)
    assert elsewhere == []


# --- 3. no redirects elsewhere, capped bodies, shapes checked ------------------------------


def test_a_redirect_to_another_host_is_not_followed() -> None:
    elsewhere: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host != REPO.host:
            elsewhere.append(str(request.url))
            return tags_response(["1.0.0"])
        return httpx.Response(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})

    with fake_client(handler) as client, pytest.raises(RegistryError, match=r"another host \(169.254.169.254\)"):
        client.list_tags(REPO)
    assert elsewhere == []


def test_same_host_redirects_a_few_at_most() -> None:
    hops: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hops.append(request.url.path)
        if request.url.path.startswith("/moved"):
            return tags_response(["1.0.0"])
        if "loop" in request.url.path:
            return httpx.Response(307, headers={"Location": "/loop"})
        return httpx.Response(301, headers={"Location": "/moved/v2/team/app/tags/list"})

    with fake_client(handler) as client:
        assert client.list_tags(REPO).tags == ["1.0.0"]
        hops.clear()
        with pytest.raises(RegistryError, match="redirects"):
            client.list_tags(Repository(REPO.host, "loop"))  # /v2/loop/... redirects to /loop, for ever
    assert 1 < len(hops) <= 5


def test_a_tag_list_larger_than_its_cap_is_refused_without_reading_it_all() -> None:
    flood = FakeFlood(64 * 1024 * 1024)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=flood)

    with fake_client(handler) as client, pytest.raises(RegistryError, match="larger than"):
        client.list_tags(REPO)
    assert flood.pulled <= 2 * 1024 * 1024


def test_a_token_response_larger_than_its_cap_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(200, json={"token": "t" * (2 * 1024 * 1024)})
        return httpx.Response(401, headers={"WWW-Authenticate": f'Bearer realm="https://{REPO.host}/token"'})

    with fake_client(handler) as client, pytest.raises(RegistryError, match="larger than"):
        client.list_tags(REPO)


def test_an_error_body_is_read_only_as_far_as_its_message() -> None:
    flood = FakeFlood(64 * 1024 * 1024)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, stream=flood)

    with RegistryClient(transport=httpx.MockTransport(handler)) as client, pytest.raises(NotFound):
        client.list_tags(REPO)
    assert flood.pulled <= 128 * 1024


def test_a_compressed_body_is_refused_not_inflated() -> None:
    import gzip

    bomb = gzip.compress(json.dumps({"tags": ["1.0.0"] * 1_000_000}).encode())

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Accept-Encoding"] == "identity"
        return httpx.Response(200, content=bomb, headers={"Content-Encoding": "gzip"})

    with fake_client(handler) as client, pytest.raises(RegistryError, match="Content-Encoding gzip"):
        client.list_tags(REPO)


@pytest.mark.parametrize("body", [b"[]", b'"tags"', b'{"tags": "1.0.0"}', b'{"tags": {"a": 1}}', b"\xff\xfe"])
def test_a_tag_list_of_the_wrong_shape_is_a_registry_error(body: bytes) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body)

    with fake_client(handler) as client, pytest.raises(RegistryError, match="not a JSON tag list"):
        client.list_tags(REPO)


@pytest.mark.parametrize("body", [b"[]", b'{"token": 5}', b'{"token": "t", "expires_in": "soon"}'])
def test_a_token_response_of_the_wrong_shape_is_a_registry_error(body: bytes) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(200, content=body)
        return httpx.Response(401, headers={"WWW-Authenticate": f'Bearer realm="https://{REPO.host}/token"'})

    with fake_client(handler) as client, pytest.raises(RegistryError, match="token"):
        client.list_tags(REPO)


def test_a_token_is_not_kept_for_ever_whatever_expires_in_says() -> None:
    issued: list[int] = []
    now = [1000.0]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            issued.append(1)
            return httpx.Response(200, content=b'{"token": "tok", "expires_in": 1e308}')
        if request.headers.get("Authorization") != "Bearer tok":
            return httpx.Response(401, headers={"WWW-Authenticate": f'Bearer realm="https://{REPO.host}/token"'})
        return tags_response(["1"])

    with RegistryClient(transport=httpx.MockTransport(handler), clock=lambda: now[0]) as client:
        client.list_tags(REPO)
        now[0] += 2 * 3600
        client.list_tags(REPO)
    assert len(issued) == 2


def test_an_absurd_retry_after_is_capped_at_a_day() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "9" * 40})

    with RegistryClient(transport=httpx.MockTransport(handler)) as client, pytest.raises(RateLimited) as caught:
        client.list_tags(REPO)
    assert caught.value.retry_after_s == 24 * 3600


# --- 4. what users read: plain, short text ------------------------------------------------

HOSTILE_TAGS = [
    "<img src=x onerror=alert(1)>",
    "1.0.1\n[INFO] forged log line",
    "1.0.2\u202egnp.exe",
    "1.0.3\x1b[31m",
    "9" * 5000,
    ".hidden",
    "",
]


def test_names_that_are_not_tags_are_left_out_and_counted() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return tags_response(["1.0.0", *HOSTILE_TAGS, "v1.0.4_build-7"])

    with fake_client(handler) as client:
        listed = client.list_tags(REPO)
    assert listed.tags == ["1.0.0", "v1.0.4_build-7"]
    assert listed.invalid == len(HOSTILE_TAGS)


@pytest.mark.parametrize(
    "digest",
    ["sha256:" + "a" * 63, "sha256:" + "A" * 64, "md5:abc", "sha256:" + "a" * 64 + "<b>", "<script>x</script>"],
)
def test_a_digest_that_is_not_one_is_refused(digest: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Docker-Content-Digest": digest})

    with fake_client(handler) as client, pytest.raises(RegistryError, match="invalid digest") as caught:
        client.digest(REPO, "1.0.0")
    assert digest not in str(caught.value)


def test_registry_error_text_is_one_short_plain_line() -> None:
    message = "repository unknown\x1b[2J\r\n[ERROR] forged\u202e<b>bold</b>\x00" + "x" * 5000

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"errors": [{"code": "NAME_UNKNOWN", "message": message}]})

    with RegistryClient(transport=httpx.MockTransport(handler)) as client, pytest.raises(NotFound) as caught:
        client.list_tags(REPO)
    text = str(caught.value)
    assert len(text) <= 500
    assert not [c for c in text if unicodedata.category(c) in ("Cc", "Cf")], repr(text)
    assert "repository unknown" in text and "[ERROR] forged <b>bold</b>" in text  # markup stays text


UNPARSABLE = ["http://[::1", "https://host:99999/x", "http://[zz]/token"]


@pytest.mark.parametrize("where", ["Location", "Link", "realm"])
@pytest.mark.parametrize("url", UNPARSABLE)
def test_a_url_that_does_not_parse_is_an_error_of_that_registry(where: str, url: str) -> None:
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        if where == "Location":
            return httpx.Response(302, headers={"Location": url})
        if where == "Link":
            return tags_response(["1.0.0"], Link=f'<{url}>; rel="next"')
        return httpx.Response(401, headers={"WWW-Authenticate": f'Bearer realm="{url}"'})

    with fake_client(handler) as client, pytest.raises(RegistryError):
        client.list_tags(REPO)
    assert all(a.startswith(f"https://{REPO.host}/") for a in asked)
