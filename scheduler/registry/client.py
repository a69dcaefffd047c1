"""The OCI distribution client the poller uses: tag lists and manifest digests.

Why our own and not `oras`/`python-dxf`: the poller needs exactly the parts those
libraries get wrong or lack: Bearer tokens cached
per scope only until they expire, `Link` pagination with a page cap, digests by
HEAD with one fixed Accept list (the digest depends on it, and HEAD is not a
counted pull on Docker Hub), `Retry-After` honoured on 429, and a count of every
request it makes (bench/registry_poll.py). And it must treat every registry as a
stranger (issue 11): what a registry answers is checked before it is used (tags
and digests against the OCI grammar, bodies against their types and caps), a
page link or redirect never leads to another host, and auth goes by auth.py's
per-host rules.

It is synchronous on purpose: it runs in the scheduler's worker threads, one
repository per thread, and is thread-safe (its caches are behind locks).

Plain http is only spoken to loopback registries (the tests, once allowlisted:
addresses.py) and to hosts the operator lists in `SHIPSTACK_REGISTRY_INSECURE`;
credentials never travel over plain http to anything else.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import msgspec

from scheduler.registry.auth import (
    Challenge,
    TokenCache,
    basic_authorization,
    credentials_for,
    host_of,
    parse_challenge,
    parse_token,
    realm_refusal,
)
from scheduler.registry.errors import (
    MAX_DETAIL_LENGTH,
    NotFound,
    Refused,
    RegistryError,
    Unauthorized,
    clean_text,
)
from scheduler.registry.exchange import Exchange, Reply, Stats, resolve_link, same_origin
from scheduler.registry.names import Repository, is_digest, is_loopback, is_tag
from scheduler.registry.options import ClientOptions

# The digest of a tag depends on the Accept header (a registry may convert an index
# into a single manifest for an old client), so every HEAD sends this same list.
MANIFEST_TYPES: tuple[str, ...] = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
MANIFEST_ACCEPT = ", ".join(MANIFEST_TYPES)
MAX_ETAG_LENGTH = 256


class TagList(msgspec.Struct, frozen=True):
    tags: list[str]
    etag: str | None = None
    not_modified: bool = False  # 304 to If-None-Match: the caller's stored list stands
    pages: int = 0
    truncated: bool = False  # the page cap stopped us before the last page
    invalid: int = 0  # names the registry listed that are not tags (left out)


class _TagPage(msgspec.Struct):
    tags: list[Any] | None = None


class _ErrorItem(msgspec.Struct):
    message: Any = None


class _ErrorBody(msgspec.Struct):
    errors: list[_ErrorItem] | None = None


def _scope(repo: Repository) -> str:
    return f"repository:{repo.path}:pull"


def _next_link(reply: Reply, repo: Repository) -> str | None:
    """The `Link: <...>; rel="next"` target, resolved against the page's URL."""
    if "Link" not in reply.headers:
        return None
    nxt = httpx.Response(reply.status, headers={"Link": reply.headers["Link"]}).links.get("next", {}).get("url")
    if not nxt:
        return None
    target = resolve_link(reply.url, nxt)
    if target is None:
        raise RegistryError(f"{repo.key}: the tag list's next-page link does not parse")
    return target


def _error_detail(body: bytes) -> str:
    """The first OCI error message of a body, cleaned, for humans."""
    try:
        errors = msgspec.json.decode(body, type=_ErrorBody).errors or []
    except (msgspec.DecodeError, msgspec.ValidationError):
        return ""
    message = errors[0].message if errors else None
    return f" ({clean_text(message, MAX_DETAIL_LENGTH)})" if message else ""


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
        self._clock = clock
        self._lock = threading.Lock()
        self._challenges: dict[str, Challenge] = {}
        self._tokens = TokenCache()
        self._page_size: dict[str, int] = {}
        self._exchange = Exchange(self.options, self.stats, transport=transport, sleep=sleep, clock=clock, rng=rng)

    def close(self) -> None:
        self._exchange.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)

    # --- urls and trust -------------------------------------------------------

    def plain_http_allowed(self, host: str) -> bool:
        return is_loopback(host) or host in self.options.insecure_hosts

    def base_url(self, repo: Repository) -> str:
        scheme = "http" if self.plain_http_allowed(repo.host) else "https"
        return f"{scheme}://{repo.host}/v2/{repo.path}"

    # --- public API -------------------------------------------------------------

    def list_tags(self, repo: Repository, *, etag: str | None = None) -> TagList:
        """Every tag (up to `max_pages` pages), following `Link: <...>; rel="next"` on
        the same host. Names that are not valid tags are counted, not returned."""
        with self._lock:
            size = self._page_size.get(repo.host, self.options.page_size)
        url = f"{self.base_url(repo)}/tags/list?n={size}"
        tags: list[str] = []
        invalid = pages = 0
        new_etag: str | None = None
        while url:
            if pages >= self.options.max_pages:
                return TagList(tags=tags, pages=pages, truncated=True, invalid=invalid)
            headers = {"Accept": "application/json"}
            if pages == 0 and etag:
                headers["If-None-Match"] = etag
            reply = self._request("GET", url, repo, headers, cap=self.options.max_page_bytes)
            self._count("tag_pages")
            if reply.status == 304 and pages == 0:
                return TagList(tags=[], etag=etag, not_modified=True, pages=1)
            if reply.status == 400 and pages == 0 and size > 100:
                # Quay rejects n > 100; remember the host's limit and start over.
                size = 100
                with self._lock:
                    self._page_size[repo.host] = size
                url = f"{self.base_url(repo)}/tags/list?n={size}"
                continue
            self._raise_for(reply, repo, "list tags")
            pages += 1
            try:
                page = msgspec.json.decode(reply.body, type=_TagPage)
            except (msgspec.DecodeError, msgspec.ValidationError):
                raise RegistryError(f"{repo.key}: the tag list is not a JSON tag list", status=reply.status) from None
            for tag in page.tags or []:
                if is_tag(tag):
                    tags.append(tag)
                else:
                    invalid += 1
            if pages == 1:
                found = reply.headers.get("ETag")
                new_etag = found if found and len(found) <= MAX_ETAG_LENGTH else None
            url = _next_link(reply, repo) or ""
            if url and not same_origin(reply.url, url):
                # The next request would carry this registry's token or credentials.
                raise Refused(f"{repo.key}: the tag list's next page is on another host ({host_of(url)})")
        # An ETag only stands for the whole list when the list is one page.
        return TagList(tags=tags, etag=new_etag if pages == 1 else None, pages=pages, invalid=invalid)

    def digest(self, repo: Repository, reference: str) -> str:
        """The manifest digest of a tag, by HEAD (falls back to GET when a registry
        omits Docker-Content-Digest on HEAD, and hashes the body)."""
        if not (is_tag(reference) or is_digest(reference)):
            raise RegistryError(f"{repo.key}: {clean_text(reference, 140)!r} is not a tag")
        url = f"{self.base_url(repo)}/manifests/{reference}"
        headers = {"Accept": MANIFEST_ACCEPT}
        reply = self._request("HEAD", url, repo, headers, cap=0)
        self._count("manifest_heads")
        self._raise_for(reply, repo, f"read the manifest of {reference}")
        digest = reply.headers.get("Docker-Content-Digest")
        if not digest:
            reply = self._request("GET", url, repo, headers, cap=self.options.max_manifest_bytes)
            self._count("manifest_gets")
            self._raise_for(reply, repo, f"read the manifest of {reference}")
            digest = reply.headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(reply.body).hexdigest()
        if not is_digest(digest):
            # It would be pinned into the deployment's image: never pass on what it is.
            raise RegistryError(f"{repo.key}: the registry answered an invalid digest for {reference}")
        return digest

    # --- requests: auth ---------------------------------------------------------

    def _raise_for(self, reply: Reply, repo: Repository, what: str) -> None:
        status = reply.status
        if status < 400:
            return
        detail = _error_detail(reply.body)
        if status == 404:
            raise NotFound(f"{repo.key}: cannot {what}: not found{detail}", status=status)
        if status in (401, 403):
            # Docker Hub answers 401, not 404, for a repository that does not exist.
            raise Unauthorized(f"{repo.key}: cannot {what}: access denied (HTTP {status}){detail}", status=status)
        raise RegistryError(f"{repo.key}: cannot {what}: HTTP {status}{detail}", status=status)

    def _request(self, method: str, url: str, repo: Repository, headers: dict[str, str], *, cap: int) -> Reply:
        """Sends with the right Authorization, answering one auth challenge."""
        authorized_with: str | None = None
        reply: Reply | None = None
        for _ in range(3):
            auth = self._authorization(repo, _scope(repo), url)
            sent = {**headers, **({"Authorization": auth} if auth else {})}
            reply = self._exchange.send(method, url, sent, cap=cap)
            if reply.status != 401:
                return reply
            challenge = parse_challenge(reply.headers.get("WWW-Authenticate", ""))
            if challenge is None:
                return reply
            with self._lock:
                self._challenges[repo.host] = challenge
            if auth is not None and auth == authorized_with:
                return reply  # a fresh credential was refused: give up
            scope = challenge.params.get("scope") or _scope(repo)
            if auth is not None:
                self._tokens.drop((repo.host, challenge.realm, challenge.service, scope))
            authorized_with = self._authorization(repo, scope, url)
            if authorized_with is None:
                return reply
        assert reply is not None
        return reply

    def _authorization(self, repo: Repository, scope: str, url: str) -> str | None:
        """The header for a request, from what the host asked for last time, so a
        known host costs no extra 401 round trip."""
        with self._lock:
            challenge = self._challenges.get(repo.host)
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            creds = credentials_for(
                repo.host, url, self.options.credentials, self.options.realm_hosts, self.plain_http_allowed
            )
            return basic_authorization(creds) if creds is not None else None
        token = self._token(repo.host, challenge, scope)
        return f"Bearer {token}" if token else None

    def _token(self, host: str, challenge: Challenge, scope: str) -> str | None:
        if not challenge.realm:
            return None
        # Judge the realm before the cache: a cached token is as secret as a fresh one.
        refused = realm_refusal(host, challenge.realm, self.options.realm_hosts, self.plain_http_allowed)
        if refused is not None:
            raise Unauthorized(f"{host}: {refused}")
        key = (host, challenge.realm, challenge.service, scope)
        now = self._clock()
        cached = self._tokens.get(key, now)
        if cached is not None:
            return cached
        creds = credentials_for(
            host, challenge.realm, self.options.credentials, self.options.realm_hosts, self.plain_http_allowed
        )
        params = [("service", challenge.service)] if challenge.service else []
        params += [("scope", s) for s in scope.split(" ") if s]
        headers = {"Accept": "application/json"}
        if creds is not None:
            headers["Authorization"] = basic_authorization(creds)
        reply = self._exchange.send("GET", challenge.realm, headers, params=params, cap=self.options.max_token_bytes)
        self._count("token_requests")
        if reply.status in (401, 403):
            who = "the configured credentials" if creds else "anonymous access"
            raise Unauthorized(f"{host}: the token service refused {who} (HTTP {reply.status})")
        if reply.status >= 400:
            raise RegistryError(f"{host}: the token service answered HTTP {reply.status}")
        try:
            parsed = parse_token(reply.body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise RegistryError(f"{host}: the token service did not answer a JSON token") from None
        if parsed is None:
            raise RegistryError(f"{host}: the token service answered without a token")
        self._tokens.put(key, parsed[0], parsed[1], now)
        return parsed[0]
