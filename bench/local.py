"""What the scale-out benches run against: a local cluster and a throwaway PostgreSQL
in a temporary folder, both stopped at the end (needs `make toolchain` first)."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.postgres import TempPostgres
from toolchain.cluster import LocalCluster


@contextlib.contextmanager
def cluster_and_postgres(prefix: str) -> Iterator[tuple[Path, LocalCluster, TempPostgres]]:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    cluster = LocalCluster(root / "cluster")
    cluster.up(wait_metrics=False)
    pg = TempPostgres()
    try:
        pg.start()
        yield root, cluster, pg
    finally:
        pg.stop()
        cluster.down()
