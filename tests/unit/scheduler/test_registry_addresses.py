"""The SSRF guard and the overall request deadline (scheduler/registry/addresses.py,
deadline.py): which addresses the client may reach, checked after DNS on the
address it then connects to, and that a registry dripping bytes cannot hold a
request past its deadline.

The servers here are fakes on loopback sockets (`FakeRegistryServer`,
`FakeSlowRegistry`); name resolution is faked where a test needs a name to
resolve somewhere.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpcore
import httpx
import pytest

from scheduler.registry import ClientOptions, RegistryClient, RegistryError, Repository
from scheduler.registry.addresses import AddressRefused, Allowlist, GuardedBackend, GuardedTransport, refusal
from tests.fake_registries import FakeHttpRegistry, FakeSlowRegistry, QuietHandler

ip = ipaddress.ip_address


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
        ("127.0.0.1", "loopback"),
        ("127.10.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00:ec2::254", "private"),  # AWS's IPv6 metadata endpoint
        ("169.254.169.254", "link-local (cloud metadata)"),
        ("fe80::1", "link-local (cloud metadata)"),
        ("168.63.129.16", "cloud metadata"),  # Azure's wire server: public, yet the platform's
        ("100.100.100.200", "non-public"),  # Alibaba's metadata, in the shared 100.64/10
        ("192.0.2.1", "private"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:169.254.169.254", "link-local (cloud metadata)"),
        ("64:ff9b::a9fe:a9fe", "link-local (cloud metadata)"),  # NAT64 of 169.254.169.254
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
    ],
)
def test_refusal(address: str, why: str | None) -> None:
    assert refusal(ip(address)) == why


@pytest.mark.parametrize(
    ("entries", "host", "port", "address", "allowed"),
    [
        ([], "127.0.0.1", 5000, "127.0.0.1", False),
        (["127.0.0.1:5000"], "127.0.0.1", 5000, "127.0.0.1", True),
        (["127.0.0.1:5000"], "127.0.0.1", 5001, "127.0.0.1", False),  # the API's own port stays shut
        (["registry.lan"], "registry.lan", 443, "10.0.0.7", True),
        (["Registry.LAN"], "registry.lan", 5000, "10.0.0.7", True),
        (["registry.lan"], "other.lan", 443, "10.0.0.7", False),
        (["10.0.0.0/24"], "anything.lan", 443, "10.0.0.7", True),
        (["10.0.0.0/24"], "anything.lan", 443, "10.0.1.7", False),
        (["[::1]:5000"], "::1", 5000, "::1", True),
    ],
)
def test_allowlist(entries: list[str], host: str, port: int, address: str, allowed: bool) -> None:
    assert Allowlist.parse(entries).allows(host, port, ip(address)) is allowed


def test_a_bad_network_in_the_allowlist_fails_at_start() -> None:
    with pytest.raises(ValueError):
        ClientOptions.from_env({"SHIPSTACK_REGISTRY_ALLOW_PRIVATE": "10.0.0.0/99"})


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock
    sock.close()


class FakeResolver:
    """Answers names from a table and counts the lookups."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[str] = []

    def __call__(self, host: str, port: int, timeout: float | None) -> list[ipaddress.IPv4Address]:
        self.calls.append(host)
        return [ip(a) for a in self.table[host]]  # type: ignore[misc]


def test_a_name_that_resolves_to_loopback_is_refused(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    backend = GuardedBackend(Allowlist(), FakeResolver({"innocent.example": ["127.0.0.1"]}))
    with pytest.raises(AddressRefused, match=r"resolves to 127\.0\.0\.1, a loopback address"):
        backend.connect_tcp("innocent.example", port, timeout=2)


def test_the_connection_goes_to_the_address_that_was_checked(listener: socket.socket) -> None:
    """One lookup per connection, and the socket is opened to an address from that
    lookup that passed the check: a name that rebinds between check and connect has
    no second lookup to swap. Of a mixed answer, only the allowed address is used."""
    port = listener.getsockname()[1]
    resolver = FakeResolver({"registry.lan": ["127.0.0.2", "127.0.0.1"]})
    backend = GuardedBackend(Allowlist.parse(["127.0.0.1/32"]), resolver)
    stream = backend.connect_tcp("registry.lan", port, timeout=2)
    try:
        assert stream.get_extra_info("server_addr") == ("127.0.0.1", port)
    finally:
        stream.close()
    assert resolver.calls == ["registry.lan"]


def test_unix_sockets_are_refused() -> None:
    with pytest.raises(httpcore.ConnectError):
        GuardedBackend(Allowlist()).connect_unix_socket("/var/run/docker.sock")


class FakeRegistryServer(FakeHttpRegistry):
    """A fake registry on loopback: one repository with two tags."""

    def __init__(self) -> None:
        class Handler(QuietHandler):
            def do_GET(self) -> None:
                body = json.dumps({"name": "app", "tags": ["1.0.0", "1.0.1"]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(Handler)
        self.port = self.server.server_port


@pytest.fixture
def fake_registry() -> Iterator[FakeRegistryServer]:
    server = FakeRegistryServer()
    yield server
    server.stop()


def test_loopback_registries_are_refused_unless_allowlisted(fake_registry: FakeRegistryServer) -> None:
    for host in (f"127.0.0.1:{fake_registry.port}", f"localhost:{fake_registry.port}"):
        with RegistryClient() as client, pytest.raises(RegistryError, match="loopback"):
            client.list_tags(Repository(host, "app"))
    options = ClientOptions.from_env({"SHIPSTACK_REGISTRY_ALLOW_PRIVATE": f"127.0.0.1:{fake_registry.port}"})
    with RegistryClient(options) as client:
        assert client.list_tags(Repository(f"127.0.0.1:{fake_registry.port}", "app")).tags == ["1.0.0", "1.0.1"]


def test_the_metadata_address_is_refused_before_any_connection() -> None:
    with RegistryClient() as client, pytest.raises(RegistryError, match="link-local"):
        client.list_tags(Repository("169.254.169.254", "latest"))


def test_a_registry_dripping_bytes_cannot_hold_a_request_past_its_deadline() -> None:
    drip = FakeSlowRegistry(every_s=0.2, chunk=4)  # ~4 s in all, a read every 0.2 s
    host = drip.host
    options = ClientOptions.from_env(
        {"SHIPSTACK_REGISTRY_ALLOW_PRIVATE": host, "SHIPSTACK_REGISTRY_REQUEST_DEADLINE": "1"}
    )
    try:
        with RegistryClient(options) as client, pytest.raises(RegistryError, match="deadline"):
            client.list_tags(Repository(host, "app"))
    finally:
        drip.stop()


def _tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate it signed for `localhost`: (ca, cert, key)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, signer: ec.EllipticCurvePrivateKey,
             *, ca: bool) -> x509.Certificate:  # fmt: skip
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(cert("test CA", ca_key, "test CA", ca_key, ca=True).public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert("localhost", key, "test CA", ca_key, ca=False).public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


VERIFY = "CERTIFICATE_VERIFY_FAILED"


def test_tls_through_the_guard_verifies_the_name_it_was_asked_for(
    fake_registry: FakeRegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guard changes only where the TCP connection goes: TLS still runs over it,
    and the certificate is still checked against the registry's name."""
    ca, cert, key = _tls_files(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    fake_registry.server.socket = context.wrap_socket(fake_registry.server.socket, server_side=True)
    allow = Allowlist.parse([f"localhost:{fake_registry.port}", f"127.0.0.1:{fake_registry.port}"])
    url = f"https://localhost:{fake_registry.port}/v2/app/tags/list"
    with httpx.Client(transport=GuardedTransport(allow)) as client, pytest.raises(httpx.ConnectError, match=VERIFY):
        client.get(url)  # the system's CAs do not know the test CA
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    with httpx.Client(transport=GuardedTransport(allow)) as client:
        assert client.get(url).json()["tags"] == ["1.0.0", "1.0.1"]
    with httpx.Client(transport=GuardedTransport(allow)) as client, pytest.raises(httpx.ConnectError, match=VERIFY):
        client.get(url.replace("localhost", "127.0.0.1"))  # not the certificate's name
