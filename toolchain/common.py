"""What the toolchain's launchers share: where the built binaries are, their error
type, their progress lines and a minimal API-server client. Standard library only: it runs before the project's
virtualenv exists."""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

CACHE = Path(os.environ.get("SHIPSTACK_CACHE", str(Path.home() / ".cache" / "shipstack")))
BIN = CACHE / "bin"


class ClusterError(RuntimeError):
    pass


def log(message: str) -> None:
    print(f"[cluster] {message}", file=sys.stderr, flush=True)


@dataclass
class Api:
    server: str
    pki: Path
    _ctx: ssl.SSLContext | None = field(default=None, init=False)

    def ctx(self) -> ssl.SSLContext:
        if self._ctx is None:
            ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
            ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
            self._ctx = ctx
        return self._ctx

    def request(self, method: str, path: str, body: dict | None = None, timeout: float = 10) -> tuple[int, dict | str]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=self.ctx(), timeout=timeout) as resp:
                raw = resp.read().decode()
                status = resp.status
        except urllib.error.HTTPError as e:
            raw = e.read().decode()
            status = e.code
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw

    def create(self, path: str, obj: dict) -> None:
        status, body = self.request("POST", path, obj)
        if status not in (200, 201, 409):
            raise ClusterError(f"creating {obj['kind']} {obj['metadata']['name']} failed ({status}): {body}")
