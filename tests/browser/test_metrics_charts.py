"""CPU and memory over time on the deployment page (issue 14), in Chromium.

A real webapp deployment (two services, app and db) is created on the local cluster;
then a day of its history is written into `metric_samples` as the sampler would
have (a sample a minute, thinned by the real retention policy; a 40-minute gap when
it was not Ready, a CPU spike of the database past a core, two container restarts
of the app) with three revisions in the revisions table. The service's own sampler
is off here, so the seeded day is all the chart shows; the sampler against the real
metrics-server is tests/integration/observe/test_metrics_sampler_cluster.py.

The page must draw both charts with time axis, units, the restarts and revisions
marked, switch windows, stay within a phone's width, and trip no CSP rule.
Screenshots: test-artifacts/screenshots/metrics-*.png.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from sqlalchemy import select, update

from api.auth.credentials import new_api_key
from api.http.context import context_of
from persistence import metrics as store
from persistence import revisions
from persistence.base import utcnow
from persistence.keys import add_key
from persistence.metrics import Sample
from persistence.models import Deployment, Operation, Revision, User
from scheduler import retention
from stacks.settings import Settings
from tests.browser.conftest import SCREENSHOTS, USER, Web, _web
from tests.browser.test_pages import READY_TIMEOUT_MS, Shot, expect, sign_in

NAME = "charts"
MI = 2**20


@pytest.fixture
def web_unsampled(settings: Settings, tmp_path: Path) -> Iterator[Web]:
    """The whole service on the local cluster, with its metrics sampler off."""
    off = msgspec.structs.replace(settings.scheduler, metrics_interval_s=0)
    yield from _web(msgspec.structs.replace(settings, scheduler=off), tmp_path, run_operations=True)


def create_webapp(web: Web) -> None:
    with context_of(web.app.state).db.writes() as db, db.begin():
        owner = db.scalar(select(User).where(User.name == USER))
        key, prefix, digest = new_api_key()
        add_key(db, prefix=prefix, secret_hash=digest, name="charts", user_id=owner.id,
                scopes=["deployments:read", "deployments:write"])  # fmt: skip
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=web.base, headers=headers, timeout=60) as http:
        r = http.post("/api/deployments", json={"template": "webapp", "name": NAME})
        assert r.status_code == 201, r.text
        deadline = time.monotonic() + READY_TIMEOUT_MS / 1000
        while time.monotonic() < deadline:
            status = http.get(f"/api/deployments/status?name={NAME}&wait=10").json()["status"]
            if status in ("Ready", "Error"):
                break
        assert status == "Ready"


def a_day(deployment_id: int, now: datetime) -> list[Sample]:
    """24 h of minute samples of app and db, as the sampler would have stored them."""
    rng = random.Random(14)
    rows: list[Sample] = []
    gap = (now - timedelta(hours=9, minutes=10), now - timedelta(hours=8, minutes=30))
    app_restarts_at = [now - timedelta(hours=14), now - timedelta(minutes=25)]
    for minute in range(24 * 60, 0, -1):
        at = now - timedelta(minutes=minute)
        if gap[0] <= at < gap[1]:
            continue
        day = math.sin(2 * math.pi * (minute / (24 * 60)))  # a daily load curve
        restarts = sum(at >= r for r in app_restarts_at)
        since_restart = min([(at - r).total_seconds() for r in app_restarts_at if at >= r] + [(24 * 3600)])
        app_memory = 30 * MI + min(since_restart / 60, 600) * 0.09 * MI + rng.uniform(-1, 1) * MI
        rows.append(Sample(deployment_id=deployment_id, service="app", at=at, pods=1, restarts=restarts,
                           cpu_millicores=max(2.0, 15 + 10 * day + rng.gauss(0, 3)),
                           memory_bytes=int(app_memory)))  # fmt: skip
        spike = 1100 if 16 * 60 <= minute < 16 * 60 + 20 else 0
        rows.append(Sample(deployment_id=deployment_id, service="db", at=at, pods=1, restarts=0,
                           cpu_millicores=max(5.0, 110 + 50 * day + spike + rng.gauss(0, 12)),
                           memory_bytes=int(210 * MI + 30 * day * MI + rng.uniform(-3, 3) * MI)))  # fmt: skip
    numbered = [msgspec.structs.replace(r, id=i + 1) for i, r in enumerate(rows)]
    return [msgspec.structs.replace(r, id=0) for r in retention.apply(numbered, now)]


def seed_history(web: Web) -> None:
    now = utcnow()
    sessions = context_of(web.app.state).db.writes
    with sessions() as db, db.begin():
        row = db.scalar(select(Deployment).where(Deployment.name == NAME))
        # It has been running for a day: created (and its first revision made) 25 h ago.
        long_ago = now - timedelta(hours=25)
        db.execute(update(Deployment).where(Deployment.id == row.id).values(created_at=long_ago))
        db.execute(update(Operation).where(Operation.deployment_name == NAME)
                   .values(created_at=long_ago, finished_at=long_ago))  # fmt: skip
        db.execute(update(Revision).where(Revision.deployment_id == row.id)
                   .values(started_at=long_ago, finished_at=long_ago))  # fmt: skip
        store.add_samples(db, a_day(row.id, now))
        for ago, message in (
            (timedelta(hours=18), "auto-update traefik/whoami:v1.10 -> v1.10.1 (sha256:4c1f…)"),
            (timedelta(hours=10), "restart"),
            (timedelta(minutes=40), "config update: LOG_LEVEL added"),
        ):
            revision = revisions.record(
                db, row.id, result="succeeded", message=message, config=row.stack_config or "",
                resource_changes={"update": 1}, operation_id=None, started_at=now - ago,
            )  # fmt: skip
            db.execute(update(Revision).where(Revision.id == revision.id).values(finished_at=now - ago))


def charts_drawn(page: Any, window: str, services: int = 2) -> None:
    expect(page.locator(f"#metrics-window [data-window='{window}']")).to_have_attribute("aria-pressed", "true")
    for chart in ("#chart-cpu", "#chart-memory"):
        expect(page.locator(f"{chart} svg g.series")).to_have_count(services, timeout=30_000)


@pytest.mark.timeout(1200)
def test_metrics_charts(web_unsampled: Web, page: Any, shot: Shot) -> None:
    web = web_unsampled
    csp: list[str] = []
    page.on("console", lambda m: csp.append(m.text) if "Content Security Policy" in m.text else None)
    create_webapp(web)
    seed_history(web)
    sign_in(page, web)
    page.goto(web.url(f"/deployments/{NAME}"))
    section = page.locator("#metrics")
    section.scroll_into_view_if_needed()

    # --- the last hour (the default): both services, a revision and a restart marked ---
    charts_drawn(page, "1h")
    # The values now come from the cluster's metrics-server once it has measured the
    # new pods (about a minute); the page refreshes them every 30 s.
    expect(page.locator("[data-metric='pods']")).not_to_have_text("0", timeout=180_000)
    cpu, memory = page.locator("#chart-cpu"), page.locator("#chart-memory")
    expect(cpu.locator(".chart-caption")).to_have_text("CPU (millicores)")
    expect(memory.locator(".chart-caption")).to_have_text("Memory (MiB)")
    expect(cpu.locator(".marker.revision")).to_have_count(1)
    expect(cpu.locator(".marker.restart")).to_have_count(1)
    expect(cpu.locator(".marker.restart title")).to_contain_text("1 restart of app")
    expect(page.locator("#chart-legend")).to_contain_text("app")
    expect(page.locator("#chart-legend")).to_contain_text("db")
    expect(page.locator("#chart-legend")).to_contain_text("pod restart")
    ticks = cpu.locator(".axis .tick").all_text_contents()
    assert len(ticks) >= 4 and all(re.fullmatch(r"\d\d:\d\d", t) for t in ticks), ticks
    y_labels = [float(t) for t in cpu.locator(".grid .tick").all_text_contents()]
    assert y_labels[0] == 0 and max(y_labels) >= 100, y_labels  # the db runs at ~100-160 millicores
    summary = page.locator("#chart-events summary")
    expect(summary).to_have_text("1 revision and 1 pod restart in this window")
    expect(page.locator("[data-metric='cpuUsage']")).to_have_text(re.compile(r"^\d+m$"))
    shoot(section, "metrics-01-desktop-1h")
    shot(page, "metrics-00-desktop-page")
    # Screen readers get each chart as one image with a summary.
    label = cpu.locator("svg").get_attribute("aria-label") or ""
    assert re.match(r"CPU in millicores, \d\d:\d\d to \d\d:\d\d: latest app \d+(\.\d+)?, db \d+", label), label
    # The values now are one service's: the one chosen under Logs.
    expect(page.locator("[data-metric-service]")).to_contain_text("app")
    page.locator("#logs-service").select_option("db")
    expect(page.locator("[data-metric-service]")).to_contain_text("db")

    # --- 24 hours: the db's spike past a core switches CPU to cores; the gap breaks the lines ---
    page.get_by_role("button", name="24 hours").click()
    charts_drawn(page, "24h")
    expect(cpu.locator(".chart-caption")).to_have_text("CPU (cores)")
    expect(cpu.locator(".marker.revision")).to_have_count(3)
    expect(cpu.locator(".marker.restart")).to_have_count(2)
    assert cpu.locator("g.series.s0 path.line").count() == 2  # before and after the 40-minute gap
    expect(summary).to_have_text("3 revisions and 2 pod restarts in this window")
    summary.click()
    expect(page.locator("#chart-events li").first).to_contain_text("Pod restart: 1 restart of app")
    shoot(section, "metrics-02-desktop-24h")

    page.get_by_role("button", name="6 hours").click()
    charts_drawn(page, "6h")
    expect(cpu.locator(".chart-caption")).to_have_text("CPU (millicores)")
    shoot(section, "metrics-03-desktop-6h")

    # --- a phone: the charts fit the width, the page does not scroll sideways ---
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    section.scroll_into_view_if_needed()
    charts_drawn(page, "1h")
    page.get_by_role("button", name="24 hours").click()
    charts_drawn(page, "24h")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    width = page.evaluate("document.querySelector('#chart-cpu svg').getBoundingClientRect().right")
    assert width <= 390, width
    phone_ticks = cpu.locator(".axis .tick").all_text_contents()
    assert 3 <= len(phone_ticks) <= 6, phone_ticks  # fewer, readable time labels
    shoot(section, "metrics-04-phone-24h")
    shot(page, "metrics-06-phone-page")
    page.get_by_role("button", name="1 hour").click()
    charts_drawn(page, "1h")
    shoot(section, "metrics-05-phone-1h")
    assert csp == [], csp


def shoot(element: Any, name: str) -> None:
    """A screenshot of one element (the metrics section) into test-artifacts/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    element.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
