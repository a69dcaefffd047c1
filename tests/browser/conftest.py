"""Browser tests: the web pages (api/pages.py) in headless Chromium, driven by Playwright.

The browser is Debian's `chromium` (`toolchain/chromium.sh install`), started by
Playwright through `executable_path`; Playwright's own browser download is never
used. Without /usr/bin/chromium (or without the playwright package) every test
here is skipped with the command that fixes it.

The service is the real one (`api.http.app.build_app`: routes, operation runner,
auto-update scheduler) served by uvicorn on a free loopback port in a thread, on a
fresh SQLite database, with a user who signs in with a password.

Screenshots go to test-artifacts/screenshots/ at the repository root.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from api.http.context import context_of
from stacks.settings import REPO_ROOT, Settings
from tests.serving import serve

CHROMIUM = Path(os.environ.get("SHIPSTACK_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
USER = "alice"
PASSWORD = "correct horse battery staple"


def _skip_reason() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: run 'toolchain/chromium.sh install' as root ('apt-get install -y chromium')"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is missing: run 'uv sync'"
    return None


BROWSER_FIXTURES = {"playwright_driver", "browser_context", "page"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that need the browser skip cleanly without it (the plain HTTP ones still run)."""
    reason = _skip_reason()
    if reason is None:
        return
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here) and BROWSER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.skip(reason=reason))


# --- the service ------------------------------------------------------------------------


@dataclass
class Web:
    base: str
    app: Any
    settings: Settings

    def url(self, path: str) -> str:
        return self.base + path


def _add_user(app: Any, name: str, password: str) -> None:
    from api.auth.credentials import hash_password
    from persistence.accounts import add_user

    with context_of(app.state).db.writes() as db, db.begin():
        add_user(db, name, password_hash=hash_password(password))


def _web(settings: Settings, tmp_path: Path, *, run_operations: bool) -> Iterator[Web]:
    from api.http.app import build_app

    svc_settings = settings.with_database(f"sqlite:///{tmp_path / 'shipstack.db'}")
    app = build_app(svc_settings, run_operations=run_operations)
    for base in serve(app):
        _add_user(app, USER, PASSWORD)
        yield Web(base=base, app=app, settings=svc_settings)


@pytest.fixture
def web(settings: Settings, tmp_path: Path) -> Iterator[Web]:
    """The whole service against the run's local cluster."""
    yield from _web(settings, tmp_path, run_operations=True)


@pytest.fixture
def web_offline(tmp_path: Path) -> Iterator[Web]:
    """The service without a cluster or workers: for pages and errors that never reach one."""
    data = tmp_path / "data"
    offline = Settings.from_env(
        {"SHIPSTACK_DATA": str(data), "SHIPSTACK_CACHE": str(tmp_path / "cache"), "KUBECONFIG": str(tmp_path / "none")}
    )
    yield from _web(offline, tmp_path, run_operations=False)


# --- the browser ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Any]:
    # Module scope, not session: Playwright's sync API keeps an event loop running
    # in the main thread until it stops, which breaks every later test that calls
    # asyncio.run() (the observe tests did).
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture
def browser_context(playwright_driver: Any) -> Iterator[Any]:
    """Debian's Chromium with a fresh profile (user-data dir) for each test."""
    profile = tempfile.mkdtemp(prefix="shipstack-chromium-")
    context = playwright_driver.chromium.launch_persistent_context(
        profile,
        executable_path=str(CHROMIUM),
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1280, "height": 900},
        locale="en-GB",
        timezone_id="UTC",
    )
    context.set_default_timeout(30_000)
    try:
        yield context
    finally:
        context.close()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser_context: Any) -> Iterator[Any]:
    """A tab that fails the test on any script error of the pages."""
    tab = browser_context.pages[0] if browser_context.pages else browser_context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    assert errors == [], f"script errors on the pages: {errors}"


@pytest.fixture
def shot() -> Callable[[Any, str], Path]:
    """`shot(page, "01-login")` saves a screenshot (the whole page unless `full_page=False`)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(tab: Any, name: str, *, full_page: bool = True) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        tab.screenshot(path=str(path), full_page=full_page)
        return path

    return take
