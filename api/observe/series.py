"""Metrics over time, shaped for `GET /api/deployments/{name}/metrics?window=` (pure):
the window, one series per service with its gaps, and the markers a chart shows.

A series never has more than MAX_POINTS points: a long window at a short sampling
interval is averaged over runs of consecutive points (never across a gap), so a
24 h chart costs the same whatever the interval.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import msgspec

from api.errors import Invalid
from api.observe.schemas import MetricMarker, MetricPoint, ServiceSeries
from persistence.metrics import Sample

WINDOWS = {"1h": 3600, "6h": 6 * 3600, "24h": 24 * 3600}
MAX_POINTS = 720
# Consecutive points further apart than this many sampling steps have a gap between
# them: one late or missed sample does not break the line, two do.
GAP_STEPS = 2.5
MAX_LABEL = 120


class Revision(msgspec.Struct, frozen=True):
    """An operation that changed the deployment, as the markers need it."""

    time: datetime
    kind: str
    message: str


def parse_window(text: str | None) -> str | None:
    """`?window=` as given (None when absent); anything but 1h, 6h, 24h is a 400."""
    if text is None or text in WINDOWS:
        return text
    raise Invalid(f"window must be one of {', '.join(WINDOWS)}; got '{text[:20]}'", "bad_window")


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _usual_spacing(rows: Sequence[Sample]) -> float:
    """The median time between consecutive single measurements (0 without two): what
    the interval was when they were taken, which may not be today's setting."""
    spacing = sorted(
        (b.at - a.at).total_seconds() for a, b in itertools.pairwise(rows) if a.span_s == 0 and b.span_s == 0
    )
    return spacing[len(spacing) // 2] if spacing else 0.0


def _segments(rows: Sequence[Sample], interval_s: float) -> list[list[Sample]]:
    """Runs of rows without a gap: a gap is more than GAP_STEPS steps between two
    rows, a step being the sampling interval (the setting, or the usual spacing of the
    rows if longer: the setting may have changed, or be 0 with sampling off) or the
    span a mean covers."""
    usual = max(interval_s, _usual_spacing(rows))
    runs: list[list[Sample]] = []
    for row in rows:
        if runs:
            prev = runs[-1][-1]
            step = max(usual, prev.span_s, row.span_s)
            if (row.at - prev.at).total_seconds() <= GAP_STEPS * step:
                runs[-1].append(row)
                continue
        runs.append([row])
    return runs


def _mean(rows: Sequence[Sample]) -> MetricPoint:
    """The measurement-weighted mean of consecutive rows, at the first one's time."""
    count = sum(r.samples for r in rows)
    return MetricPoint(
        time=iso(rows[0].at),
        # A tenth of a millicore is finer than any chart shows, and keeps answers short.
        cpuMillicores=round(sum(r.cpu_millicores * r.samples for r in rows) / count, 1),
        memoryBytes=round(sum(r.memory_bytes * r.samples for r in rows) / count),
    )


def service_series(rows: Sequence[Sample], interval_s: float, max_points: int = MAX_POINTS) -> list[MetricPoint]:
    """One service's rows (oldest first) as chart points, at most `max_points`."""
    per = max(1, math.ceil(len(rows) / max_points))
    points: list[MetricPoint] = []
    for n, run in enumerate(_segments(rows, interval_s)):
        for start in range(0, len(run), per):
            point = _mean(run[start : start + per])
            points.append(msgspec.structs.replace(point, gapBefore=True) if n and start == 0 else point)
    return points


def shape_series(samples: Iterable[Sample], interval_s: float, max_points: int = MAX_POINTS) -> list[ServiceSeries]:
    """Every service's series, by service name."""
    ordered = sorted(samples, key=lambda s: (s.service, s.at, s.id))
    return [
        ServiceSeries(service=service, points=service_series(list(rows), interval_s, max_points))
        for service, rows in itertools.groupby(ordered, key=lambda s: s.service)
    ]


def restart_markers(samples: Iterable[Sample]) -> list[MetricMarker]:
    """A marker wherever a service's restart count rose from one row to the next (a
    fall is a pod replaced by a new one, whose count starts at 0: not a restart)."""
    markers: list[MetricMarker] = []
    ordered = sorted(samples, key=lambda s: (s.service, s.at, s.id))
    for service, rows in itertools.groupby(ordered, key=lambda s: s.service):
        prev: Sample | None = None
        for row in rows:
            if prev is not None and row.restarts > prev.restarts:
                count = row.restarts - prev.restarts
                label = f"{count} restart{'s' if count > 1 else ''} of {service}"
                markers.append(
                    MetricMarker(time=iso(row.at), kind="restart", label=label, service=service, count=count)
                )
            prev = row
    return markers


def revision_markers(revisions: Iterable[Revision]) -> list[MetricMarker]:
    return [
        MetricMarker(time=iso(r.time), kind="revision", label=(r.message or r.kind)[:MAX_LABEL])
        for r in sorted(revisions, key=lambda r: r.time)
    ]


def markers(samples: Sequence[Sample], revisions: Iterable[Revision]) -> list[MetricMarker]:
    """Restarts and revisions, oldest first."""
    return sorted([*restart_markers(samples), *revision_markers(revisions)], key=lambda m: (m.time, m.kind))
