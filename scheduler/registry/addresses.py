"""Where the registry client may connect: the SSRF guard.

Tenants name registries, and registries name token realms, so without a guard any
tenant could make shipstack probe its own network: the cloud metadata service,
the database, the API's loopback port. Every connection the client opens goes
through `GuardedBackend`, which resolves the host itself, refuses loopback,
private, link-local, metadata and every other non-public address unless the
operator allowlisted the host or network (SHIPSTACK_REGISTRY_ALLOW_PRIVATE), and
then connects to exactly the address it checked, so DNS rebinding (a public answer
to the check, a private one to the connect) has nothing to swap. TLS still
verifies the certificate against the host name: only the TCP connect changes.

Every socket operation's timeout is also cut to the caller's overall deadline
(scheduler/registry/deadline.py), so a registry dripping bytes cannot hold a
request past it.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from scheduler.registry import deadline

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Public addresses that are cloud platform endpoints all the same (Azure's wire server).
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("168.63.129.16")})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo, NAT64), which is
    where a packet to it really goes."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: IPAddress) -> str | None:
    """Why the client must not connect to `address` (None: a public address)."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            return refusal(inner)
    if address in METADATA_ADDRESSES:
        return "cloud metadata"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local (cloud metadata)"
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "non-public"
    return None


@dataclass(frozen=True)
class Allowlist:
    """Hosts (`name` for every port, `name:port` for one) and networks that may be
    reached on non-public addresses."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Allowlist:
        """Raises ValueError for an entry with a `/` that is not a network."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in entries:
            entry = entry.strip().lower()
            if not entry:
                continue
            if "/" in entry:
                networks.append(ipaddress.ip_network(entry, strict=False))
            else:
                hosts.add(entry)
        return cls(frozenset(hosts), tuple(networks))

    def allows(self, host: str, port: int, address: IPAddress) -> bool:
        if any(address in network for network in self.networks):
            return True
        name = host.lower().strip("[]")
        shown = f"[{name}]" if ":" in name else name
        return shown in self.hosts or f"{shown}:{port}" in self.hosts


class AddressRefused(httpcore.ConnectError):
    """Every address of a host is one the guard refuses."""


Resolver = Callable[[str, int, float | None], list[IPAddress]]


def resolve(host: str, port: int, timeout: float | None) -> list[IPAddress]:
    """The host's addresses. getaddrinfo cannot be interrupted, so it runs in a
    helper thread and the caller stops waiting at `timeout` (a hostile name server
    may stall an answer; glibc gives up on its own after its retries)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    found: list[Any] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            found.append(exc)
        finally:
            done.set()

    threading.Thread(target=lookup, name="shipstack-registry-dns", daemon=True).start()
    if not done.wait(timeout):
        raise httpcore.ConnectTimeout(f"resolving {host} took too long")
    if isinstance(found[0], OSError):
        raise httpcore.ConnectError(f"cannot resolve {host}")
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in found[0]:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def _left(timeout: float | None, error: type[Exception]) -> float | None:
    """The timeout for one socket operation under the current deadline."""
    left = deadline.bounded(timeout)
    if left is not None and left <= 0:
        raise error("the overall deadline passed")
    return left


class _SocketStream(httpcore.NetworkStream):
    """A connection whose every operation ends by the caller's deadline (httpcore's
    own stream applies a timeout per call only)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._sock.settimeout(_left(timeout, httpcore.ReadTimeout))
        try:
            return self._sock.recv(max_bytes)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc)) from exc

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        self._sock.settimeout(_left(timeout, httpcore.WriteTimeout))
        try:
            self._sock.sendall(buffer)  # one deadline for the whole buffer
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.WriteError(str(exc)) from exc

    def close(self) -> None:
        self._sock.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> Any:
        # CPython runs the whole handshake under one deadline of the socket's timeout.
        self._sock.settimeout(_left(timeout, httpcore.ConnectTimeout))
        try:
            tls = ssl_context.wrap_socket(self._sock, server_hostname=server_hostname)
        except TimeoutError as exc:
            self._sock.close()
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except OSError as exc:  # ssl.SSLError included
            self._sock.close()
            raise httpcore.ConnectError(str(exc)) from exc
        return _SocketStream(tls)

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return getattr(self._sock, "_sslobj", None)
        if info == "client_addr":
            return self._sock.getsockname()
        if info == "server_addr":
            return self._sock.getpeername()
        if info == "socket":
            return self._sock
        if info == "is_readable":  # httpcore asks before reusing a kept-alive connection
            return self._sock.fileno() < 0 or bool(select.select([self._sock], [], [], 0)[0])
        return None


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's sync backend, connecting only to addresses the guard allows."""

    def __init__(self, allowlist: Allowlist, resolver: Resolver = resolve) -> None:
        self.allowlist = allowlist
        self.resolver = resolver

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self.resolver(host, port, _left(timeout, httpcore.ConnectTimeout))
        allowed = [a for a in addresses if refusal(a) is None or self.allowlist.allows(host, port, a)]
        if not allowed:
            first = addresses[0] if addresses else None
            why = refusal(first) if first is not None else "no"
            raise AddressRefused(
                f"{host} resolves to {first}, a {why} address; not connecting "
                "(SHIPSTACK_REGISTRY_ALLOW_PRIVATE lists registries that may be reached there)"
            )
        last: Exception | None = None
        for address in allowed:  # only ever an address that passed the check above
            try:
                sock = socket.create_connection((str(address), port), _left(timeout, httpcore.ConnectTimeout))
            except TimeoutError as exc:
                last = httpcore.ConnectTimeout(str(exc))
                continue
            except OSError as exc:
                last = httpcore.ConnectError(str(exc))
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return _SocketStream(sock)
        assert last is not None
        raise last

    def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
        raise AddressRefused("registries are reached over TCP only")

    def sleep(self, seconds: float) -> None:
        httpcore.SyncBackend().sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport on the guarded backend; no proxies from the environment
    (a proxy would make the connect-time check meaningless)."""

    def __init__(self, allowlist: Allowlist, *, max_connections: int = 100) -> None:
        super().__init__(trust_env=False)
        # httpx builds its pool without a way to pass a network backend; build our own.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=max_connections,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=GuardedBackend(allowlist),
        )
