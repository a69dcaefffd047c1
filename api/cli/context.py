"""What every user command runs with: its output, its environment and stdin, and
the API client, made on first use from the login (so `login` and usage errors need
no credentials)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TextIO

from api.cli import userconfig
from api.cli.client import Client
from api.cli.render import Output


@dataclass
class Context:
    out: Output
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    _client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            creds = userconfig.resolve(self.env)
            self._client = Client(creds.url, creds.token)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
