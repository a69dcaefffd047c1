"""A real OCI registry on loopback for the auto-update tests and bench.

Runs the `registry` server of distribution/distribution (built by this folder's
go.mod into $SHIPSTACK_CACHE/bin) with filesystem storage in a scratch folder,
optionally behind token auth served by `TokenServer`, a minimal Docker token
service (ES256 JWTs, keys handed to the registry as a JWKS file). Images are
pushed with `crane` (same bin folder) or, for the bench's hundreds of tags, with
`push_image`, a few plain registry API calls.

Standard library only, apart from `cryptography` for the token signatures.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CACHE = Path(os.environ.get("SHIPSTACK_CACHE", str(Path.home() / ".cache" / "shipstack")))
BIN = CACHE / "bin"
REGISTRY_VERSION = "3.1.1"
CRANE_VERSION = "0.22.1"


class RegistryToolError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary(name: str) -> Path | None:
    """The built binary, or None when the toolchain has not built it yet."""
    path = BIN / name
    if path.exists():
        return path
    found = shutil.which(name)
    return Path(found) if found else None


# --- token service -----------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Issues registry tokens to the users it knows (HTTP basic auth); anonymous
    callers get pull-only tokens when `anonymous_pull`, else 401."""

    def __init__(
        self,
        users: dict[str, str],
        *,
        service: str = "shipstack-test-registry",
        issuer: str = "shipstack-test-issuer",
        ttl_s: int = 300,
        anonymous_pull: bool = False,
    ) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec

        self.users = users
        self.service = service
        self.issuer = issuer
        self.ttl_s = ttl_s
        self.anonymous_pull = anonymous_pull
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.kid = uuid.uuid4().hex[:16]
        self.requests: list[dict[str, object]] = []
        self._server: ThreadingHTTPServer | None = None

    @property
    def realm(self) -> str:
        # A name, not 127.0.0.1: clients (crane, ours) refuse token realms on private IP
        # literals other than the registry's own host, against SSRF by a registry.
        assert self._server is not None
        return f"http://localhost:{self._server.server_port}/token"

    def jwks(self) -> dict[str, object]:
        numbers = self.key.public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "EC", "crv": "P-256", "kid": self.kid, "alg": "ES256", "use": "sig",
                    "x": _b64url(numbers.x.to_bytes(32, "big")), "y": _b64url(numbers.y.to_bytes(32, "big")),
                }
            ]
        }  # fmt: skip

    def issue(self, subject: str, access: list[dict[str, object]]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        now = int(time.time())
        header = {"alg": "ES256", "typ": "JWT", "kid": self.kid}
        claims = {
            "iss": self.issuer, "sub": subject, "aud": self.service, "exp": now + self.ttl_s, "nbf": now - 5,
            "iat": now, "jti": uuid.uuid4().hex, "access": access,
        }  # fmt: skip
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def _handle(self, handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, object]]:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(handler.path).query)
        user = None
        auth = handler.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            if self.users.get(name) != password:
                return 401, {"details": "bad credentials"}
            user = name
        self.requests.append({"user": user, "scope": query.get("scope", []), "at": time.monotonic()})
        if user is None and not self.anonymous_pull:
            return 401, {"details": "authentication required"}
        access = []
        for scope in query.get("scope", []):
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            wanted = [a for a in actions.split(",") if a]
            granted = wanted if user is not None else [a for a in wanted if a == "pull"]
            access.append({"type": kind, "name": name, "actions": granted})
        token = self.issue(user or "anonymous", access)
        return 200, {"token": token, "access_token": token, "expires_in": self.ttl_s}

    def start(self) -> TokenServer:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = outer._handle(self)
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *_: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


# --- the registry ---------------------------------------------------------------------


class LocalRegistry:
    """`registry serve` on a free loopback port; `token` puts it behind token auth."""

    def __init__(self, root: Path, *, token: TokenServer | None = None) -> None:
        self.root = Path(root)
        self.token = token
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def client_env(self) -> dict[str, str]:
        """The settings under which shipstack's registry client may reach this loopback
        registry, and its token service when it has one: loopback is refused unless
        allowlisted, and a token realm on another host unless configured for it.
        For `ClientOptions.from_env(...)`, or a service's environment."""
        hosts = [self.host]
        env: dict[str, str] = {}
        if self.token is not None:
            realm_host = urllib.parse.urlsplit(self.token.realm).netloc
            hosts.append(realm_host)
            env["SHIPSTACK_REGISTRY_REALM_HOSTS"] = json.dumps({self.host: [realm_host]})
        env["SHIPSTACK_REGISTRY_ALLOW_PRIVATE"] = ",".join(hosts)
        return env

    def config(self) -> str:
        lines = [
            "version: 0.1",
            "log:",
            "  level: error",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.root / 'data'}",
            "  delete:",
            "    enabled: true",
            "  maintenance:",
            "    uploadpurging:",
            "      enabled: false",
            "http:",
            f"  addr: {self.host}",
            "  headers:",
            "    X-Content-Type-Options: [nosniff]",
        ]
        if self.token is not None:
            jwks = self.root / "jwks.json"
            jwks.write_text(json.dumps(self.token.jwks()))
            lines += [
                "auth:",
                "  token:",
                f"    realm: {self.token.realm}",
                f"    service: {self.token.service}",
                f"    issuer: {self.token.issuer}",
                f"    jwks: {jwks}",
            ]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 30.0) -> LocalRegistry:
        exe = binary("registry")
        if exe is None:
            raise RegistryToolError("the registry binary is not built yet (toolchain/build.sh builds it)")
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        config.write_text(self.config())
        log = open(self.root / "registry.log", "ab")  # noqa: SIM115 - handed to the child process
        env = {**os.environ, "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}
        self.process = subprocess.Popen([str(exe), "serve", str(config)], stdout=log, stderr=log, env=env)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RegistryToolError(f"registry exited: {(self.root / 'registry.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.url}/v2/", timeout=1).close()
                return self
            except urllib.error.HTTPError:
                return self  # 401 under token auth: it answers
            except OSError:
                time.sleep(0.05)
        raise RegistryToolError(f"the registry did not answer on {self.url} within {timeout:g} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


# --- crane ----------------------------------------------------------------------------


def crane(*args: str, docker_config: Path | None = None, timeout: float = 60) -> str:
    """Runs crane (plain http allowed: the registries here are on loopback)."""
    exe = binary("crane")
    if exe is None:
        raise RegistryToolError("crane is not built yet (toolchain/build.sh builds it)")
    env = dict(os.environ)
    if docker_config is not None:
        env["DOCKER_CONFIG"] = str(docker_config)
    done = subprocess.run([str(exe), *args, "--insecure"], capture_output=True, env=env, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RegistryToolError(f"crane {' '.join(args)} failed: {done.stderr.decode()[-2000:]}")
    return done.stdout.decode().strip()


def docker_config(folder: Path, host: str, username: str, password: str) -> Path:
    """A DOCKER_CONFIG folder whose config.json logs crane into `host`."""
    folder.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    (folder / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return folder


def tiny_layer(folder: Path, content: str) -> Path:
    """A one-file tarball: distinct content gives a distinct image digest."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"layer-{hashlib.sha256(content.encode()).hexdigest()[:12]}.tar"
    data = content.encode()
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(data))
    return path


def crane_push(host: str, repo: str, tag: str, content: str, scratch: Path, *, docker_cfg: Path | None = None) -> str:
    """`crane append` of a tiny layer onto an empty image as host/repo:tag; its digest."""
    ref = f"{host}/{repo}:{tag}"
    crane("append", "-f", str(tiny_layer(scratch, content)), "-t", ref, docker_config=docker_cfg)
    return crane("digest", ref, docker_config=docker_cfg)


# --- plain API push (bench) -------------------------------------------------------------


def _request(method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body if method in ("POST", "PUT") else None, method=method)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, dict(resp.headers)


def _push_blob(base: str, repo: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    try:
        _request("HEAD", f"{base}/v2/{repo}/blobs/{digest}")
        return digest
    except urllib.error.HTTPError:
        pass
    _, headers = _request("POST", f"{base}/v2/{repo}/blobs/uploads/")
    location = urllib.parse.urljoin(base, headers["Location"])
    sep = "&" if "?" in location else "?"
    _request("PUT", f"{location}{sep}digest={digest}", data, {"Content-Type": "application/octet-stream"})
    return digest


def push_image(base: str, repo: str, tag: str, content: str) -> str:
    """Pushes a one-layer OCI image by the registry API (no auth); returns its digest."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = content.encode()
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    layer = buf.getvalue()
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [
            "sha256:" + hashlib.sha256(layer).hexdigest()]}, "config": {}}
    ).encode()  # fmt: skip
    layer_digest = _push_blob(base, repo, layer)
    config_digest = _push_blob(base, repo, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": len(config),
            },
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": len(layer)}
            ],
        }
    ).encode()  # fmt: skip
    _request(
        "PUT", f"{base}/v2/{repo}/manifests/{tag}", manifest,
        {"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )  # fmt: skip
    return "sha256:" + hashlib.sha256(manifest).hexdigest()
