"""Metrics over time as the API shapes them (api/observe/series.py), pure: the window,
points and gaps per service, at most MAX_POINTS points, restart and revision markers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.errors import Invalid
from api.observe import series
from api.observe.schemas import MetricMarker, MetricPoint
from api.observe.series import Revision
from persistence.metrics import Sample

T0 = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def sample(seconds: float, cpu: float = 10.0, memory: int = 2**20, *, service: str = "web", **kw) -> Sample:
    values = {"pods": 1, "restarts": 0, "deployment_id": 1} | kw
    return Sample(at=at(seconds), cpu_millicores=cpu, memory_bytes=memory, service=service, **values)


@pytest.mark.parametrize(
    ("given", "want"),
    [(None, None), ("1h", "1h"), ("6h", "6h"), ("24h", "24h")],
)
def test_windows(given: str | None, want: str | None) -> None:
    assert series.parse_window(given) == want


@pytest.mark.parametrize("given", ["", "2h", "1H", "24h ", "1d", "3600", "h", "1h,6h"])
def test_bad_windows_are_400s_that_name_the_choices(given: str) -> None:
    with pytest.raises(Invalid) as caught:
        series.parse_window(given)
    assert caught.value.code == "bad_window"
    assert "1h, 6h, 24h" in caught.value.message


@pytest.mark.parametrize(
    ("times", "spans", "interval", "gaps_before"),
    [
        pytest.param([0, 60, 120, 180], None, 60, [], id="steady"),
        pytest.param([0, 60, 200, 260], None, 60, [], id="one-missed-sample-is-no-gap"),
        pytest.param([0, 60, 400, 460], None, 60, [2], id="a-gap"),
        pytest.param([0, 300, 600, 900, 960], [300, 300, 300, 0, 0], 60, [], id="means-then-raw"),
        pytest.param([0, 300, 1500, 1560], [300, 300, 0, 0], 60, [2], id="gap-after-means"),
        pytest.param([0, 10, 20, 200, 210], None, 10, [3], id="short-interval"),
        pytest.param([0, 60, 120, 400, 460], None, 0, [3], id="sampling-off-the-rows-own-spacing"),
        pytest.param([0, 60, 120, 180, 240], None, 10, [], id="interval-lowered-since-no-false-gaps"),
    ],
)
def test_gaps(times: list[int], spans: list[int] | None, interval: float, gaps_before: list[int]) -> None:
    rows = [sample(t, span_s=(spans[i] if spans else 0)) for i, t in enumerate(times)]
    points = series.service_series(rows, interval)
    assert [p.time for p in points] == [series.iso(at(t)) for t in times]
    assert [i for i, p in enumerate(points) if p.gapBefore] == gaps_before


def test_points_carry_time_cpu_and_memory() -> None:
    [point] = series.service_series([sample(0, cpu=15.001, memory=32 * 2**20)], 60)
    assert point == MetricPoint(time="2026-03-04T10:00:00Z", cpuMillicores=15.0, memoryBytes=32 * 2**20)


def test_long_series_are_averaged_to_at_most_max_points_never_across_a_gap() -> None:
    rows = [sample(i * 10, cpu=float(i % 2), memory=i) for i in range(1000)]
    rows += [sample(100_000 + i * 10, cpu=5.0, memory=7) for i in range(500)]  # after a gap
    points = series.service_series(rows, 10, max_points=300)
    assert len(points) <= 300
    # ceil(1500 / 300) = 5 rows per point: 200 before the gap, 100 after.
    assert len(points) == 300
    assert [i for i, p in enumerate(points) if p.gapBefore] == [200]
    assert points[0] == MetricPoint(time=series.iso(T0), cpuMillicores=0.4, memoryBytes=2)  # rows 0-4
    assert points[200].cpuMillicores == 5.0 and points[200].memoryBytes == 7
    # Means weigh each row by the measurements it stands for.
    weighted = series.service_series([sample(0, cpu=10, samples=3), sample(5, cpu=30)], 10, max_points=1)
    assert weighted[0].cpuMillicores == 15.0


def test_one_series_per_service_by_name() -> None:
    rows = [sample(60, service="db"), sample(0, service="app"), sample(0, service="db"), sample(60, service="app")]
    shaped = series.shape_series(rows, 60)
    assert [s.service for s in shaped] == ["app", "db"]
    assert [len(s.points) for s in shaped] == [2, 2]
    assert shaped[1].points[0].time == series.iso(T0)


def test_restart_markers_from_rising_restart_counts() -> None:
    counts = [0, 0, 2, 2, 0, 1]  # 0 after 2: the pod was replaced, not restarted
    rows = [sample(i * 60, restarts=c) for i, c in enumerate(counts)] + [
        sample(0, service="db", restarts=5),
        sample(60, service="db", restarts=6),
    ]
    assert series.restart_markers(rows) == [
        MetricMarker(time=series.iso(at(60)), kind="restart", label="1 restart of db", service="db", count=1),
        MetricMarker(time=series.iso(at(120)), kind="restart", label="2 restarts of web", service="web", count=2),
        MetricMarker(time=series.iso(at(300)), kind="restart", label="1 restart of web", service="web", count=1),
    ]


def test_markers_restarts_and_revisions_oldest_first() -> None:
    rows = [sample(0, restarts=0), sample(600, restarts=1)]
    revisions = [
        Revision(time=at(900), kind="config", message="config update: GREETING changed"),
        Revision(time=at(30), kind="create", message="create nginx"),
        Revision(time=at(1200), kind="restart", message=""),
        Revision(time=at(1500), kind="config", message="x" * 500),
    ]
    found = series.markers(rows, revisions)
    assert [(m.kind, m.label) for m in found[:4]] == [
        ("revision", "create nginx"),
        ("restart", "1 restart of web"),
        ("revision", "config update: GREETING changed"),
        ("revision", "restart"),  # no message: the operation's kind
    ]
    assert len(found[4].label) == series.MAX_LABEL
    assert [m.time for m in found] == sorted(m.time for m in found)
