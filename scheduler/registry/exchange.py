"""One HTTP exchange with a registry, bounded in every way a registry could stretch it.

- an overall deadline per request (and under any outer one, see deadline.py);
- bodies read up to a cap for their kind, never decompressed (identity only);
- redirects followed only to the same host, a few at most;
- 429 (and 503 with Retry-After) waited out as the registry asks, the pause shared
  by every thread talking to that host, never past the deadline and never for
  longer than `max_retry_wait_s` in-thread;
- every request counted (bench/registry_poll.py reads the counts).

Connections go through the SSRF guard (addresses.py) unless a test hands in a
transport.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urljoin

import httpx

from scheduler.registry import deadline
from scheduler.registry.addresses import AddressRefused, Allowlist, GuardedTransport
from scheduler.registry.auth import host_of
from scheduler.registry.errors import (
    MAX_RETRY_AFTER_S,
    RateLimited,
    Refused,
    RegistryError,
    TimedOut,
    TooLarge,
)
from scheduler.registry.options import ClientOptions

USER_AGENT = "shipstack-auto-update/1"
REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class Reply:
    """A response read to the end (or to its cap, for error bodies)."""

    status: int
    headers: httpx.Headers
    body: bytes
    url: str


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


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date,
    at most a day (errors.MAX_RETRY_AFTER_S)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = datetime.now(UTC).timestamp() if now is None else now
    return min(MAX_RETRY_AFTER_S, max(0.0, when.timestamp() - now))


def same_origin(a: str, b: str) -> bool:
    """Same scheme, host and port: where a registry may send us on (never a URL that
    does not parse)."""
    try:
        x, y = httpx.URL(a), httpx.URL(b)
    except httpx.InvalidURL:
        return False
    return (x.scheme, x.host, x.port) == (y.scheme, y.host, y.port)


def resolve_link(base: str, link: str) -> str | None:
    """`link` (a Location or Link target) against `base`; None when it does not parse."""
    try:
        return urljoin(base, link)
    except ValueError:
        return None


class Exchange:
    """Sends requests for a `RegistryClient`; one per client, shared by its threads."""

    def __init__(
        self,
        options: ClientOptions,
        stats: Stats,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.options = options
        self.stats = stats
        self._sleep = sleep
        self._clock = clock
        self._rng = rng
        self._lock = threading.Lock()
        self._blocked_until: dict[str, float] = {}
        self._http = httpx.Client(
            transport=transport or GuardedTransport(Allowlist.parse(options.allow_private)),
            timeout=httpx.Timeout(options.timeout_s, connect=options.connect_timeout_s),
            follow_redirects=False,  # see _once: same host only
            trust_env=False,
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
        )

    def close(self) -> None:
        self._http.close()

    def send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        *,
        cap: int,
        params: list[tuple[str, str]] | None = None,
    ) -> Reply:
        """One request (repeated on 429 / 503 with Retry-After), read up to `cap` bytes."""
        host = host_of(url)
        opts = self.options
        for attempt in range(opts.max_retries + 1):
            self._wait_for_host(host)
            reply = self._once(method, url, headers, params, cap)
            with self._lock:
                self.stats.requests += 1
                self.stats.by_host[host] = self.stats.by_host.get(host, 0) + 1
                remaining = reply.headers.get("ratelimit-remaining")
                if remaining is not None:
                    self.stats.ratelimit_remaining[host] = remaining[:64]
            retry_after = parse_retry_after(reply.headers.get("Retry-After"))
            limited = reply.status == 429 or (reply.status == 503 and retry_after is not None)
            if not limited:
                return reply
            wait = retry_after if retry_after is not None else float(2**attempt)
            left = deadline.remaining()
            if wait > opts.max_retry_wait_s or attempt == opts.max_retries or (left is not None and wait > left):
                self._block(host, wait)
                raise RateLimited(
                    f"{host}: rate limited (HTTP {reply.status}); retry after {wait:g} s", retry_after_s=wait
                )
            with self._lock:
                self.stats.retries += 1
            self._block(host, wait * (1.0 + opts.jitter * self._rng()))
        raise AssertionError("unreachable")

    def _once(
        self, method: str, url: str, headers: dict[str, str], params: list[tuple[str, str]] | None, cap: int
    ) -> Reply:
        """The request under its deadline, following same-host redirects."""
        host = host_of(url)
        spent = deadline.expired()
        if spent is not None:
            raise TimedOut(f"{host}: not asked: {spent} ran out")
        request_deadline = f"the {self.options.request_deadline_s:g} s request deadline"
        with deadline.within(self.options.request_deadline_s, request_deadline):
            for _ in range(self.options.max_redirects + 1):
                with self._transport_errors(host):
                    request = self._http.build_request(method, url, headers=headers, params=params)
                    response = self._http.send(request, stream=True)
                    try:
                        location = response.headers.get("Location")
                        if response.status_code in REDIRECTS and location:
                            target = resolve_link(str(response.url), location)
                            if target is None or not same_origin(str(response.url), target):
                                where = host_of(target) if target else "an unparsable location"
                                raise Refused(f"{host}: redirected to another host ({where}); not followed")
                            url, params = target, None
                            method = "GET" if response.status_code == 303 and method != "HEAD" else method
                            continue
                        error = response.status_code >= 400
                        limit = self.options.max_error_bytes if error else cap
                        body = b"" if method == "HEAD" else _read(response, limit, truncate=error)
                        return Reply(response.status_code, response.headers, body, str(response.url))
                    finally:
                        response.close()
            raise Refused(f"{host}: more than {self.options.max_redirects} redirects")

    @contextmanager
    def _transport_errors(self, host: str) -> Iterator[None]:
        try:
            yield
        except httpx.TimeoutException:
            what = deadline.expired()
            if what is not None:
                raise TimedOut(f"{host}: no answer within {what}") from None
            raise TimedOut(f"{host}: timed out after {self.options.timeout_s:g} s") from None
        except httpx.TransportError as exc:
            if isinstance(exc.__cause__, AddressRefused):
                raise Refused(f"{host}: {exc.__cause__}") from None
            raise RegistryError(f"{host}: unreachable ({type(exc).__name__})") from None
        except httpx.InvalidURL:
            raise Refused(f"{host}: a URL that does not parse; not requested") from None

    def _block(self, host: str, seconds: float) -> None:
        with self._lock:
            self._blocked_until[host] = max(self._blocked_until.get(host, 0.0), self._clock() + seconds)

    def _wait_for_host(self, host: str) -> None:
        with self._lock:
            until = self._blocked_until.get(host, 0.0)
        delay = until - self._clock()
        if delay <= 0:
            return
        left = deadline.remaining()
        if delay > self.options.max_retry_wait_s * (1.0 + self.options.jitter) or (left is not None and delay > left):
            raise RateLimited(f"{host}: rate limited; retry after {delay:.0f} s", retry_after_s=delay)
        with self._lock:
            self.stats.slept_s += delay
        self._sleep(delay)


def _read(response: httpx.Response, cap: int, *, truncate: bool) -> bytes:
    """The body, at most `cap` bytes: beyond it a success is refused (TooLarge) and an
    error body is cut (only its first message is wanted). Never decompressed: a
    few KiB of gzip can stand for gigabytes."""
    where = host_of(str(response.url))
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise RegistryError(f"{where}: answered with Content-Encoding {encoding[:40]}, not the identity asked for")
    declared = response.headers.get("Content-Length", "")
    if not truncate and declared.isascii() and declared.isdigit() and int(declared) > cap:
        raise TooLarge(f"{where}: the answer is larger than {cap} bytes")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():  # identity only (checked above): the raw bytes
        size += len(chunk)
        if size > cap:
            if truncate:
                chunks.append(chunk[: cap - (size - len(chunk))])
                break
            raise TooLarge(f"{where}: the answer is larger than {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
