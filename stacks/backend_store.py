"""Direct access to the objects of a DIY backend shipstack can list itself: `file://`
(files under the folder) and `postgres://` (rows of Pulumi's table, `pulumi_state`
unless the URL names another with `table=`). Keys are the file backend's layout
(`.pulumi/locks/...`, `.pulumi/history/...`), whichever of the two holds them.

Used for the stack locks Pulumi leaves behind (stacks.locks) and to prune history the
database keeps anyway (stacks.history_prune). Other backends (s3://, gs://, azblob://)
are not read directly: `store_for` answers None for them.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from stacks import workspace

BOOKKEEPING = ".pulumi"


class BackendStore(Protocol):
    def keys(self, prefix: str) -> list[str]:
        """Every key under the folder `prefix` (ending in "/"), recursively, sorted."""
        ...

    def read(self, key: str) -> bytes | None: ...

    def delete(self, keys: list[str]) -> None: ...


def lock_prefix(stack: str) -> str:
    return f"{BOOKKEEPING}/locks/organization/{workspace.PROJECT}/{stack}/"


def history_prefix(stack: str) -> str:
    return f"{BOOKKEEPING}/history/{workspace.PROJECT}/{stack}/"


def backups_prefix(stack: str) -> str:
    return f"{BOOKKEEPING}/backups/{workspace.PROJECT}/{stack}/"


def store_for(backend_url: str) -> BackendStore | None:
    if backend_url.startswith("file://"):
        return FileStore(Path(backend_url.removeprefix("file://")))
    if backend_url.startswith("postgres://"):
        return PostgresStore(backend_url)
    return None


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def keys(self, prefix: str) -> list[str]:
        folder = self.root / prefix
        if not folder.is_dir():
            return []
        found = []
        for dirpath, _, files in os.walk(folder):
            found += [Path(dirpath, f).relative_to(self.root).as_posix() for f in files]
        return sorted(found)

    def read(self, key: str) -> bytes | None:
        try:
            return (self.root / key).read_bytes()
        except OSError:
            return None

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            (self.root / key).unlink(missing_ok=True)


class PostgresStore:
    """Pulumi's table, as its postgres:// backend (pkg/backend/diy/postgres) lays it out:
    `key TEXT PRIMARY KEY, data JSON ({"data": base64}), updated_at`. Like every
    non-file backend, Pulumi puts the URL's path (here the database's name) before
    each key: `<db>/.pulumi/...`; this store hides that prefix."""

    def __init__(self, backend_url: str) -> None:
        parts = urlsplit(backend_url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        tables = [v for k, v in query if k == "table"]
        self.table = sql.Identifier(*(tables[0] if tables else "pulumi_state").split(".", 1))
        rest = urlencode([(k, v) for k, v in query if k != "table"])
        self.conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, rest, ""))
        folder = parts.path.strip("/")
        self.prefix = f"{folder}/" if folder else ""

    def ensure_table(self) -> None:
        """Makes Pulumi's table as Pulumi would (its schema.sql), once, under a lock.

        Each pulumi process creates the table when it finds none, with CREATE ... IF NOT
        EXISTS, which is not safe against itself: two first operations at once on an
        empty database both try, and one fails (a duplicate key in pg_type). So the
        service makes the table before any pulumi runs, its processes one at a time."""
        table = self.table.as_string()
        index = sql.Identifier(f"{table.rsplit('.', 1)[-1].strip(chr(34))}_key_prefix_idx")
        with self._connect() as conn:
            if self._exists(conn):
                return  # the common case, and it needs no CREATE privilege
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_ID,))
                conn.execute(sql.SQL(SCHEMA).format(table=self.table, index=index))

    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(self.conninfo, autocommit=True, connect_timeout=10,
                               application_name="shipstack backend")  # fmt: skip

    def keys(self, prefix: str) -> list[str]:
        query = sql.SQL("SELECT key FROM {} WHERE key LIKE %s ORDER BY key").format(self.table)
        with self._connect() as conn:
            if not self._exists(conn):
                return []
            rows = conn.execute(query, (_like_prefix(self.prefix + prefix),))
            return [row[0].removeprefix(self.prefix) for row in rows]

    def read(self, key: str) -> bytes | None:
        query = sql.SQL("SELECT data FROM {} WHERE key = %s").format(self.table)
        with self._connect() as conn:
            row = conn.execute(query, (self.prefix + key,)).fetchone() if self._exists(conn) else None
        if row is None:
            return None
        data = row[0] if isinstance(row[0], dict) else json.loads(row[0])
        return base64.b64decode(data.get("data", ""))

    def delete(self, keys: list[str]) -> None:
        if not keys:
            return
        query = sql.SQL("DELETE FROM {} WHERE key = ANY(%s)").format(self.table)
        with self._connect() as conn:
            conn.execute(query, ([self.prefix + k for k in keys],))

    def _exists(self, conn: psycopg.Connection) -> bool:
        # Pulumi creates its table on first use; before that there is nothing to read.
        row = conn.execute("SELECT to_regclass(%s)", (self.table.as_string(conn),)).fetchone()
        return row is not None and row[0] is not None


# pkg/backend/diy/postgres/schema.sql of the pulumi CLI shipstack builds (v3.274.1).
SCHEMA = """
CREATE TABLE IF NOT EXISTS {table} (
    key TEXT PRIMARY KEY,
    data JSON NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS {index} ON {table} (key text_pattern_ops);
"""
SCHEMA_LOCK_ID = 0x5348_4950_5354_5354  # any fixed 64-bit number, shipstack's own


def prepare(backend_url: str) -> None:
    """Readies the backend before the first pulumi runs (postgres://: its table)."""
    store = store_for(backend_url)
    if isinstance(store, PostgresStore):
        store.ensure_table()


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"
