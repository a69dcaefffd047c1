"""A small OCI distribution client: tag lists and manifest digests, nothing else.

Why our own and not `oras`/`python-dxf`: the poller needs exactly the parts those
libraries get wrong or lack (../shared/notes/registries.md): Bearer tokens cached
per scope only until they expire, `Link` pagination with a page cap, digests by
HEAD with one fixed Accept list (the digest depends on it, and HEAD is not a
counted pull on Docker Hub), `Retry-After` honoured on 429, Docker Hub's
`library/` rule, and a count of every request it makes (bench/registry_poll.py).

It is synchronous on purpose: it runs in the scheduler's worker threads, one
repository per thread, and is thread-safe (its caches are behind one lock).

Plain http is only spoken to loopback registries (the tests) and to hosts the
operator lists in `SHIPSTACK_REGISTRY_INSECURE`; credentials never travel over
plain http to anything else.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import ipaddress
import json
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

import httpx
import msgspec

from programs.images import ImageRef, parse_image_ref

# The digest of a tag depends on the Accept header (a registry may convert an index
# into a single manifest for an old client), so every HEAD sends this same list.
MANIFEST_TYPES: tuple[str, ...] = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
MANIFEST_ACCEPT = ", ".join(MANIFEST_TYPES)

DOCKER_HUB = "registry-1.docker.io"
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})
DEFAULT_TOKEN_TTL_S = 60  # the distribution token spec's default for a missing expires_in
USER_AGENT = "shipstack-auto-update/1"

AUTH_ENV = "SHIPSTACK_REGISTRY_AUTH"
INSECURE_ENV = "SHIPSTACK_REGISTRY_INSECURE"


# --- repositories ---------------------------------------------------------------


class Repository(msgspec.Struct, frozen=True, order=True):
    """Where a repository's API lives: `host` (with port) and the path under /v2/."""

    host: str
    path: str

    @property
    def key(self) -> str:
        """One name per repository however users spell it (`nginx`, `docker.io/library/nginx`)."""
        return f"{self.host}/{self.path}"


def registry_host(domain: str | None) -> str:
    """The API host of an image's registry: Docker Hub's short and alias names map to
    registry-1.docker.io, where its API actually answers."""
    if domain is None or domain.lower() in DOCKER_HUB_ALIASES:
        return DOCKER_HUB
    return domain


def repository_of(image: str | ImageRef) -> Repository:
    """The repository an image reference points at (raises ValueError for a bad ref).

    Docker Hub keeps official images under `library/`, so `nginx` is `library/nginx`.
    """
    ref = parse_image_ref(image) if isinstance(image, str) else image
    host = registry_host(ref.domain)
    path = ref.path
    if host == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    return Repository(host=host, path=path)


def is_private_address(host: str) -> bool:
    """An IP literal (with or without a port) in a loopback, private or link-local
    range, such as the cloud metadata address 169.254.169.254."""
    name = urlsplit(f"//{host}").hostname or host
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


def is_loopback(host: str) -> bool:
    """`localhost`, 127.0.0.0/8 and ::1, with or without a port."""
    name = urlsplit(f"//{host}").hostname or host
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


# --- configuration ---------------------------------------------------------------


class Credentials(msgspec.Struct, frozen=True):
    username: str
    password: str

    def __repr__(self) -> str:  # never print the password
        return f"Credentials(username={self.username!r})"


def load_credentials(raw: str | None) -> dict[str, Credentials]:
    """`{"host": {"username": ..., "password": ...}}` from SHIPSTACK_REGISTRY_AUTH.

    Keys are registry hosts as users write them in image references; Docker Hub's
    aliases all land on registry-1.docker.io. Raises ValueError without echoing values.
    """
    if not raw:
        return {}
    try:
        parsed = msgspec.json.decode(raw, type=dict[str, Credentials])
    except msgspec.DecodeError:
        raise ValueError(f'{AUTH_ENV} must be JSON {{"host": {{"username": ..., "password": ...}}}}') from None
    return {registry_host(host): creds for host, creds in parsed.items()}


@dataclass(frozen=True)
class ClientOptions:
    """Limits and settings of a `RegistryClient`; `from_env` reads the operator's ones."""

    credentials: Mapping[str, Credentials] = field(default_factory=dict)
    insecure_hosts: frozenset[str] = frozenset()
    timeout_s: float = 15.0
    connect_timeout_s: float = 5.0
    page_size: int = 1000  # ECR's maximum; Quay's is 100 (handled on its 400)
    max_pages: int = 20
    max_retries: int = 3  # per request, on 429 / 503
    max_retry_wait_s: float = 60.0  # a longer Retry-After is not slept through in-thread
    jitter: float = 0.1  # fraction added on top of Retry-After, never subtracted

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ClientOptions:
        e = os.environ if env is None else env
        insecure = frozenset(h.strip() for h in e.get(INSECURE_ENV, "").split(",") if h.strip())
        return cls(
            credentials=load_credentials(e.get(AUTH_ENV)),
            insecure_hosts=insecure,
            timeout_s=float(e.get("SHIPSTACK_REGISTRY_TIMEOUT", "15")),
            max_pages=int(e.get("SHIPSTACK_REGISTRY_MAX_PAGES", "20")),
        )


# --- errors and results -------------------------------------------------------------


class RegistryError(RuntimeError):
    """A registry request that failed; the message is safe to show (no credentials)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotFound(RegistryError):
    pass


class Unauthorized(RegistryError):
    pass


class RateLimited(RegistryError):
    """429 that outlasted our retries or asked for more than `max_retry_wait_s`.

    `retry_at` (UTC) tells the scheduler when to ask this registry again.
    """

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message, status=429)
        self.retry_after_s = retry_after_s
        self.retry_at = datetime.now(UTC).timestamp() + retry_after_s


class TagList(msgspec.Struct, frozen=True):
    tags: list[str]
    etag: str | None = None
    not_modified: bool = False  # 304 to If-None-Match: the caller's stored list stands
    pages: int = 0
    truncated: bool = False  # the page cap stopped us before the last page


@dataclass
class Stats:
    """What the client sent, for benches and logs. Counts every HTTP request."""

    requests: int = 0
    tag_pages: int = 0
    manifest_heads: int = 0
    manifest_gets: int = 0
    token_requests: int = 0
    retries: int = 0
    slept_s: float = 0.0
    by_host: dict[str, int] = field(default_factory=dict)
    ratelimit_remaining: dict[str, str] = field(default_factory=dict)

    def snapshot(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "tag_pages": self.tag_pages,
            "manifest_heads": self.manifest_heads,
            "manifest_gets": self.manifest_gets,
            "token_requests": self.token_requests,
            "retries": self.retries,
            "slept_s": round(self.slept_s, 3),
        }


# --- WWW-Authenticate ------------------------------------------------------------------


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "bearer" or "basic"
    params: Mapping[str, str]

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")


def parse_challenge(header: str) -> Challenge | None:
    """`Bearer realm="...",service="...",scope="a b"` -> Challenge; quoted values may
    hold commas and escaped quotes. Returns None for schemes we cannot answer."""
    header = header.strip()
    scheme, _, rest = header.partition(" ")
    scheme = scheme.lower()
    if scheme not in ("bearer", "basic"):
        return None
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " ,":
            i += 1
        eq = rest.find("=", i)
        if eq < 0:
            break
        key = rest[i:eq].strip().lower()
        i = eq + 1
        if i < n and rest[i] == '"':
            i += 1
            value = []
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n:
                    i += 1
                value.append(rest[i])
                i += 1
            i += 1  # closing quote
            params[key] = "".join(value)
        else:
            end = rest.find(",", i)
            end = n if end < 0 else end
            params[key] = rest[i:end].strip()
            i = end
    return Challenge(scheme=scheme, params=params)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, when.timestamp() - now)


# --- the client -------------------------------------------------------------------


def _scope(repo: Repository) -> str:
    return f"repository:{repo.path}:pull"


class RegistryClient:
    """Tag lists and digests of repositories in any OCI registry.

    `transport`, `sleep`, `clock` and `rng` are for tests. One instance is shared
    by the scheduler's threads so tokens and rate-limit pauses are shared too.
    """

    def __init__(
        self,
        options: ClientOptions | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.options = options or ClientOptions()
        self.stats = Stats()
        self._sleep = sleep
        self._clock = clock
        self._rng = rng
        self._lock = threading.Lock()
        self._challenges: dict[str, Challenge] = {}
        self._tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
        self._blocked_until: dict[str, float] = {}
        self._page_size: dict[str, int] = {}
        self._http = httpx.Client(
            transport=transport or httpx.HTTPTransport(retries=1),
            timeout=httpx.Timeout(self.options.timeout_s, connect=self.options.connect_timeout_s),
            follow_redirects=True,  # httpx drops Authorization on a cross-origin redirect
            headers={"User-Agent": USER_AGENT},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- urls and trust -------------------------------------------------------

    def plain_http_allowed(self, host: str) -> bool:
        return is_loopback(host) or host in self.options.insecure_hosts

    def base_url(self, repo: Repository) -> str:
        scheme = "http" if self.plain_http_allowed(repo.host) else "https"
        return f"{scheme}://{repo.host}/v2/{repo.path}"

    def _check_realm(self, host: str, realm: str) -> None:
        """A registry chooses where we fetch tokens (and send its credentials): only
        https (http where plain http is allowed), and no private or link-local IP
        literal unless the registry itself is one we trust with plain http, so a
        hostile registry cannot point us at the metadata service or our own network."""
        target = urlsplit(realm)
        if target.scheme not in ("https", "http"):
            raise Unauthorized(f"{host}: refusing token realm with scheme {target.scheme!r}")
        if target.netloc == host:
            return
        trusted = self.plain_http_allowed(host)
        if target.scheme == "http" and not (trusted or self.plain_http_allowed(target.netloc)):
            raise Unauthorized(f"{host}: refusing a plain http token realm ({target.netloc})")
        if is_private_address(target.netloc) and not trusted:
            raise Unauthorized(f"{host}: refusing a token realm on a private address ({target.netloc})")

    def _credentials_for(self, host: str, url: str) -> Credentials | None:
        creds = self.options.credentials.get(host)
        if creds is None:
            return None
        target = urlsplit(url)
        if target.scheme != "https" and not self.plain_http_allowed(target.netloc):
            raise Unauthorized(f"refusing to send {host} credentials over plain http to {target.netloc}")
        return creds

    # --- public API -------------------------------------------------------------

    def list_tags(self, repo: Repository, *, etag: str | None = None) -> TagList:
        """Every tag (up to `max_pages` pages), following `Link: <...>; rel="next"`."""
        size = self._page_size.get(repo.host, self.options.page_size)
        url = f"{self.base_url(repo)}/tags/list?n={size}"
        tags: list[str] = []
        pages = 0
        new_etag: str | None = None
        while url:
            if pages >= self.options.max_pages:
                return TagList(tags=tags, pages=pages, truncated=True)
            headers = {"Accept": "application/json"}
            if pages == 0 and etag:
                headers["If-None-Match"] = etag
            response = self._request("GET", url, repo, headers)
            with self._lock:
                self.stats.tag_pages += 1
            if response.status_code == 304 and pages == 0:
                return TagList(tags=[], etag=etag, not_modified=True, pages=1)
            if response.status_code == 400 and pages == 0 and size > 100:
                # Quay rejects n > 100; remember the host's limit and start over.
                size = 100
                self._page_size[repo.host] = size
                url = f"{self.base_url(repo)}/tags/list?n={size}"
                continue
            self._raise_for(response, repo, "list tags")
            pages += 1
            try:
                body = response.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise RegistryError(f"{repo.key}: the tag list is not JSON", status=response.status_code) from None
            tags.extend(t for t in (body.get("tags") or []) if isinstance(t, str))
            if pages == 1:
                new_etag = response.headers.get("ETag")
            nxt = response.links.get("next", {}).get("url")
            url = urljoin(str(response.url), nxt) if nxt else ""
        # An ETag only stands for the whole list when the list is one page.
        return TagList(tags=tags, etag=new_etag if pages == 1 else None, pages=pages)

    def digest(self, repo: Repository, reference: str) -> str:
        """The manifest digest of a tag, by HEAD (falls back to GET when a registry
        omits Docker-Content-Digest on HEAD, and hashes the body)."""
        url = f"{self.base_url(repo)}/manifests/{reference}"
        headers = {"Accept": MANIFEST_ACCEPT}
        response = self._request("HEAD", url, repo, headers)
        with self._lock:
            self.stats.manifest_heads += 1
        self._raise_for(response, repo, f"read the manifest of {reference}")
        digest = response.headers.get("Docker-Content-Digest")
        if digest:
            return digest
        response = self._request("GET", url, repo, headers)
        with self._lock:
            self.stats.manifest_gets += 1
        self._raise_for(response, repo, f"read the manifest of {reference}")
        return response.headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(response.content).hexdigest()

    # --- requests: auth, rate limits ---------------------------------------------

    def _raise_for(self, response: httpx.Response, repo: Repository, what: str) -> None:
        status = response.status_code
        if status < 400:
            return
        detail = _error_detail(response)
        if status == 404:
            raise NotFound(f"{repo.key}: cannot {what}: not found{detail}", status=status)
        if status in (401, 403):
            # Docker Hub answers 401, not 404, for a repository that does not exist.
            raise Unauthorized(f"{repo.key}: cannot {what}: access denied (HTTP {status}){detail}", status=status)
        raise RegistryError(f"{repo.key}: cannot {what}: HTTP {status}{detail}", status=status)

    def _request(self, method: str, url: str, repo: Repository, headers: dict[str, str]) -> httpx.Response:
        """Sends with the right Authorization, answering one auth challenge and waiting
        out 429s as the registry asks."""
        authorized_with: str | None = None
        for _ in range(3):
            auth = self._authorization(repo, _scope(repo), url)
            sent = {**headers, **({"Authorization": auth} if auth else {})}
            response = self._send_with_backoff(method, url, repo.host, sent)
            if response.status_code != 401:
                return response
            challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
            if challenge is None:
                return response
            with self._lock:
                self._challenges[repo.host] = challenge
            if auth is not None and auth == authorized_with:
                return response  # a fresh credential was refused: give up
            if auth is not None:
                self._drop_token(challenge, challenge.params.get("scope") or _scope(repo))
            authorized_with = self._authorization(repo, challenge.params.get("scope") or _scope(repo), url)
            if authorized_with is None:
                return response
        return response

    def _authorization(self, repo: Repository, scope: str, url: str) -> str | None:
        """The header for a request, from what the host asked for last time, so a
        known host costs no extra 401 round trip."""
        with self._lock:
            challenge = self._challenges.get(repo.host)
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            creds = self._credentials_for(repo.host, url)
            if creds is None:
                return None
            raw = f"{creds.username}:{creds.password}".encode()
            return "Basic " + base64.b64encode(raw).decode()
        token = self._token(repo.host, challenge, scope)
        return f"Bearer {token}" if token else None

    def _token(self, host: str, challenge: Challenge, scope: str) -> str | None:
        key = (challenge.realm, challenge.service, scope)
        now = self._clock()
        with self._lock:
            cached = self._tokens.get(key)
        if cached and cached[1] > now:
            return cached[0]
        if not challenge.realm:
            return None
        self._check_realm(host, challenge.realm)
        creds = self._credentials_for(host, challenge.realm)
        params = [("service", challenge.service)] if challenge.service else []
        params += [("scope", s) for s in scope.split(" ") if s]
        headers = {"Accept": "application/json"}
        if creds is not None:
            raw = f"{creds.username}:{creds.password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        realm_host = urlsplit(challenge.realm).netloc
        response = self._send_with_backoff("GET", challenge.realm, realm_host, headers, params=params)
        with self._lock:
            self.stats.token_requests += 1
        if response.status_code in (401, 403):
            who = "the configured credentials" if creds else "anonymous access"
            raise Unauthorized(f"{host}: the token service refused {who} (HTTP {response.status_code})")
        if response.status_code >= 400:
            raise RegistryError(f"{host}: the token service answered HTTP {response.status_code}")
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RegistryError(f"{host}: the token service did not answer JSON") from None
        token = body.get("token") or body.get("access_token")
        if not isinstance(token, str) or not token:
            raise RegistryError(f"{host}: the token service answered without a token")
        ttl = body.get("expires_in")
        ttl = float(ttl) if isinstance(ttl, int | float) and ttl > 0 else float(DEFAULT_TOKEN_TTL_S)
        # Renew a little early so a token never expires between check and use.
        margin = min(10.0, ttl * 0.1)
        with self._lock:
            self._tokens[key] = (token, now + ttl - margin)
        return token

    def _drop_token(self, challenge: Challenge, scope: str) -> None:
        with self._lock:
            self._tokens.pop((challenge.realm, challenge.service, scope), None)

    def _send_with_backoff(
        self,
        method: str,
        url: str,
        host: str,
        headers: dict[str, str],
        params: list[tuple[str, str]] | None = None,
    ) -> httpx.Response:
        """One request, repeated on 429 (and 503 with Retry-After) after waiting at
        least what Retry-After says plus jitter; a pause is shared by every thread
        talking to the host."""
        opts = self.options
        for attempt in range(opts.max_retries + 1):
            self._wait_for_host(host)
            try:
                response = self._http.request(method, url, headers=headers, params=params)
            except httpx.TimeoutException:
                raise RegistryError(f"{host}: timed out after {opts.timeout_s:g} s") from None
            except httpx.TransportError as exc:
                raise RegistryError(f"{host}: unreachable ({type(exc).__name__})") from None
            with self._lock:
                self.stats.requests += 1
                self.stats.by_host[host] = self.stats.by_host.get(host, 0) + 1
                remaining = response.headers.get("ratelimit-remaining")
                if remaining is not None:
                    self.stats.ratelimit_remaining[host] = remaining
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            limited = response.status_code == 429 or (response.status_code == 503 and retry_after is not None)
            if not limited:
                return response
            wait = retry_after if retry_after is not None else float(2**attempt)
            if wait > opts.max_retry_wait_s or attempt == opts.max_retries:
                with self._lock:
                    self._blocked_until[host] = max(self._blocked_until.get(host, 0.0), self._clock() + wait)
                raise RateLimited(
                    f"{host}: rate limited (HTTP {response.status_code}); retry after {wait:g} s",
                    retry_after_s=wait,
                )
            pause = wait * (1.0 + opts.jitter * self._rng())
            with self._lock:
                self.stats.retries += 1
                self._blocked_until[host] = max(self._blocked_until.get(host, 0.0), self._clock() + pause)
        raise AssertionError("unreachable")

    def _wait_for_host(self, host: str) -> None:
        with self._lock:
            until = self._blocked_until.get(host, 0.0)
        delay = until - self._clock()
        if delay <= 0:
            return
        if delay > self.options.max_retry_wait_s * (1.0 + self.options.jitter):
            raise RateLimited(f"{host}: rate limited; retry after {delay:.0f} s", retry_after_s=delay)
        with self._lock:
            self.stats.slept_s += delay
        self._sleep(delay)


def _error_detail(response: httpx.Response) -> str:
    """The first OCI error message of a response body, for humans."""
    try:
        errors = response.json().get("errors") or []
        message = errors[0].get("message") if errors else None
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, TypeError):
        return ""
    return f" ({str(message)[:200]})" if message else ""
