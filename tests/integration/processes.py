"""Service processes for tests and benches: `python -m api serve` (or `worker`) started
in a session of its own (so `os.killpg` stops it with every pulumi it started, as
`kill -9` of a machine's service would), waited for, and stopped; and a database made
ready for them (migrated, a user with a key)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from api.auth.credentials import new_api_key
from persistence.accounts import add_user
from persistence.db import make_engine, migrate, session_factory
from persistence.keys import add_key
from stacks.settings import REPO_ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    return start(["serve", "--port", str(port)], env, log)


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """`python -m api ARGS` (`serve`, `worker`) in a session of its own."""
    return subprocess.Popen(
        [sys.executable, "-m", "api", *args],
        cwd=REPO_ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def process_group(pid: int) -> int | None:
    """The process group of a live process (a service started here leads its own), or
    None once it is gone."""
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail(f"{url} did not come up")


def stop_service(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL of the whole process group if it lingers."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def seed_database(url: str, user: str) -> str:
    """Migrates the database at `url` and adds `user` with a read/write API key: the key."""
    engine = make_engine(url)
    try:
        migrate(engine)
        with session_factory(engine, immediate=True)() as s, s.begin():  # the service may be writing
            row = add_user(s, user, password_hash=None)
            key, prefix, digest = new_api_key()
            add_key(s, prefix=prefix, secret_hash=digest, name=user, user_id=row.id,
                    scopes=["deployments:read", "deployments:write"])  # fmt: skip
    finally:
        engine.dispose()
    return key
