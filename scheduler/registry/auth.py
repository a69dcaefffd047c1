"""Registry auth: challenges, where a token may be fetched, which credentials go
where, and the token cache.

The rule everything here serves: what belongs to one registry host (its operator
credentials, the tokens minted for it) goes to that host and its configured token
service, never to another. Tenants name registries, and a registry names its token
realm, service and scope; so a registry on another host could otherwise name the
realm, service and scope of a registry the operator holds credentials for, and be
handed that registry's token. Hence:

- tokens are cached per registry host (and realm, service, scope), and the realm
  is judged before the cache is read;
- a realm on another host is refused unless configured for that registry
  (Docker Hub's auth.docker.io by default; SHIPSTACK_REGISTRY_REALM_HOSTS);
- credentials for a host go to that host, and to its configured realm hosts, only
  over https (or plain http where the operator allowed it).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import msgspec

from scheduler.registry.options import Credentials

DEFAULT_TOKEN_TTL_S = 60.0  # the distribution token spec's default for a missing expires_in
MAX_TOKEN_TTL_S = 3600.0  # a registry cannot make us keep a token for ever
MAX_CACHED_TOKENS = 10_000


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


def host_of(url: str) -> str:
    """`host[:port]` of a URL, lower-cased, as registry hosts are written ("" for a
    URL that does not parse: it matches no host)."""
    try:
        return urlsplit(url).netloc.rpartition("@")[2].lower()
    except ValueError:
        return ""


def realm_refusal(
    registry: str,
    realm: str,
    realm_hosts: Mapping[str, frozenset[str]],
    plain_http_allowed: Callable[[str], bool],
) -> str | None:
    """Why `registry` may not send us to `realm` for a token (None: it may)."""
    try:
        target = urlsplit(realm)
        target.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError:
        return "refusing a token realm that is not a URL"
    if target.scheme not in ("https", "http"):
        return f"refusing token realm with scheme {target.scheme!r}"
    if target.username is not None or target.password is not None:
        return "refusing a token realm with credentials in it"
    realm_host = host_of(realm)
    if realm_host != registry.lower() and realm_host not in realm_hosts.get(registry, frozenset()):
        return (
            f"refusing a token realm on another host ({realm_host}); "
            "SHIPSTACK_REGISTRY_REALM_HOSTS lists the token hosts a registry may use"
        )
    if target.scheme == "http" and not (plain_http_allowed(registry) and plain_http_allowed(realm_host)):
        return f"refusing a plain http token realm ({realm_host})"
    return None


def credentials_for(
    registry: str,
    url: str,
    credentials: Mapping[str, Credentials],
    realm_hosts: Mapping[str, frozenset[str]],
    plain_http_allowed: Callable[[str], bool],
) -> Credentials | None:
    """The credentials configured for `registry`, if `url` may receive them: the
    registry itself or one of its configured token hosts, over https (plain http
    only where the operator allowed it for that host). None otherwise."""
    creds = credentials.get(registry)
    if creds is None:
        return None
    target = urlsplit(url)
    target_host = host_of(url)
    if target_host != registry.lower() and target_host not in realm_hosts.get(registry, frozenset()):
        return None
    if target.scheme != "https" and not plain_http_allowed(target_host):
        return None
    return creds


def basic_authorization(creds: Credentials) -> str:
    raw = f"{creds.username}:{creds.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


class _TokenBody(msgspec.Struct):
    token: str | None = None
    access_token: str | None = None
    expires_in: float | None = None


def parse_token(body: bytes) -> tuple[str, float] | None:
    """(token, lifetime in seconds) from a token response; None when it holds none.
    Raises msgspec.DecodeError / ValidationError for a body that is not one."""
    parsed = msgspec.json.decode(body, type=_TokenBody)
    token = parsed.token or parsed.access_token
    if not token:
        return None
    ttl = parsed.expires_in
    ttl = DEFAULT_TOKEN_TTL_S if ttl is None or not ttl > 0 else min(float(ttl), MAX_TOKEN_TTL_S)
    return token, ttl


TokenKey = tuple[str, str, str, str]  # registry host, realm, service, scope


class TokenCache:
    """Bearer tokens by (registry host, realm, service, scope) until they expire."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[TokenKey, tuple[str, float]] = {}

    def get(self, key: TokenKey, now: float) -> str | None:
        with self._lock:
            found = self._tokens.get(key)
        return found[0] if found is not None and found[1] > now else None

    def put(self, key: TokenKey, token: str, ttl: float, now: float) -> None:
        # Renew a little early so a token never expires between check and use.
        expires = now + ttl - min(10.0, ttl * 0.1)
        with self._lock:
            if len(self._tokens) >= MAX_CACHED_TOKENS:
                self._tokens = {k: v for k, v in self._tokens.items() if v[1] > now}
            self._tokens[key] = (token, expires)

    def drop(self, key: TokenKey) -> None:
        with self._lock:
            self._tokens.pop(key, None)
