"""Fixtures of the auto-update integration tests: a real registry on loopback per
module, and a fresh database per test (tests/integration/autoupdate/world.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.autoupdate.world import World
from toolchain.registry.local import LocalRegistry


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    with LocalRegistry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World.on_sqlite(tmp_path)
    yield w
    w.engine.dispose()
