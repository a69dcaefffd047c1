"""The retention of metrics samples (scheduler/retention.py), pure: every measurement
of the last 6 h, 5-minute means from 6 to 24 h, nothing older; means weighted by the
measurements they stand for, so thinning in pieces gives what thinning at once does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from persistence.metrics import Sample
from scheduler import retention
from scheduler.retention import RETENTION, Retention

NOW = datetime(2026, 3, 4, 12, 3, 20, tzinfo=UTC)
HOUR = timedelta(hours=1)


def row(id: int, at: datetime, cpu: float = 10.0, memory: int = 100, *, span: int = 0, n: int = 1, **kw) -> Sample:
    values = {"pods": 1, "restarts": 0, "service": "web", "deployment_id": 1} | kw
    return Sample(id=id, at=at, cpu_millicores=cpu, memory_bytes=memory, span_s=span, samples=n, **values)


def test_cutoffs() -> None:
    # Whole buckets only: the first one that starts within the last 24 h (12:05 the day before).
    assert retention.expire_before(NOW) == datetime(2026, 3, 3, 12, 5, tzinfo=UTC)
    # The bucket the 6 h horizon (06:03:20) falls in starts at 06:00: older buckets are whole.
    assert retention.thin_before(NOW) == datetime(2026, 3, 4, 6, 0, tzinfo=UTC)
    assert retention.bucket_start(datetime(2026, 3, 4, 6, 4, 59, 999, tzinfo=UTC), 300) == datetime(
        2026, 3, 4, 6, 0, tzinfo=UTC
    )


OLD = datetime(2026, 3, 4, 5, 0, tzinfo=UTC)  # a whole bucket [05:00, 05:05) past the horizon


@pytest.mark.parametrize(
    ("rows", "dropped", "added"),
    [
        pytest.param([row(1, NOW - HOUR)], [], [], id="recent-raw-kept-as-is"),
        pytest.param([row(1, NOW - 25 * HOUR)], [1], [], id="older-than-a-day-dropped"),
        pytest.param([row(1, NOW - 25 * HOUR, span=300, n=5)], [1], [], id="old-mean-dropped-too"),
        pytest.param(
            # The bucket the horizon is in (06:00-06:05) is not whole yet: left alone.
            [row(1, datetime(2026, 3, 4, 6, 1, tzinfo=UTC)), row(2, datetime(2026, 3, 4, 6, 2, tzinfo=UTC))],
            [],
            [],
            id="bucket-at-the-horizon-waits",
        ),
        pytest.param(
            [
                row(1, OLD + timedelta(seconds=10), cpu=10, memory=100, pods=1, restarts=3),
                row(2, OLD + timedelta(seconds=70), cpu=20, memory=200, pods=2, restarts=4),
                row(3, OLD + timedelta(seconds=130), cpu=30, memory=301, pods=1, restarts=2),
            ],
            [1, 2, 3],
            [row(0, OLD, cpu=20, memory=200, span=300, n=3, pods=2, restarts=2)],
            id="raw-rows-of-a-whole-bucket-become-one-mean",
        ),
        pytest.param(
            [row(1, OLD, span=300, n=5, cpu=12)],
            [],
            [],
            id="a-mean-alone-stays",
        ),
        pytest.param(
            # A bucket a run's limit cut: its first part already a mean of 4, the rest raw.
            [row(7, OLD, span=300, n=4, cpu=10, memory=100, restarts=1), row(8, OLD + timedelta(seconds=240), cpu=20)],
            [7, 8],
            [row(0, OLD, cpu=12, memory=100, span=300, n=5, restarts=0)],
            id="a-part-mean-and-the-rest-merge-weighted",
        ),
        pytest.param(
            [row(1, OLD, service="app"), row(2, OLD, service="db"), row(3, OLD, deployment_id=2)],
            [1, 2, 3],
            [
                row(0, OLD, span=300, service="app"),
                row(0, OLD, span=300, service="db"),
                row(0, OLD, span=300, deployment_id=2),
            ],
            id="one-mean-per-deployment-service-and-bucket",
        ),
    ],
)
def test_plan(rows: list[Sample], dropped: list[int], added: list[Sample]) -> None:
    thinning = retention.plan(rows, NOW)
    assert sorted(thinning.drop) == dropped
    assert thinning.add == added


def minute_rows(start: datetime, end: datetime, first_id: int = 1) -> list[Sample]:
    """One measurement a minute, CPU going round 0..6 and memory growing."""
    rows = []
    at, n = start, 0
    while at < end:
        rows.append(row(first_id + n, at, cpu=float(n % 7), memory=1000 + n, restarts=n // 100))
        at += timedelta(minutes=1)
        n += 1
    return rows


def test_a_day_and_more_of_minute_samples_follows_the_policy() -> None:
    rows = minute_rows(NOW - 30 * HOUR, NOW)
    kept = retention.apply(rows, NOW)
    horizon = retention.thin_before(NOW)
    assert min(r.at for r in kept) >= NOW - 24 * HOUR
    recent = [r for r in kept if r.at >= horizon]
    assert all(r.span_s == 0 and r.samples == 1 for r in recent)
    assert len(recent) == len([r for r in rows if r.at >= horizon])  # every measurement of the last ~6 h
    means = [r for r in kept if r.at < horizon]
    assert all(r.span_s == 300 and r.at.minute % 5 == 0 and r.at.second == 0 for r in means)
    assert len({r.at for r in means}) == len(means)  # one per bucket
    assert 18 * 12 - 1 <= len(means) <= 18 * 12 + 1  # 18 hours of 5-minute means
    assert len(kept) < 600  # a day at one sample a minute stays under 600 rows per service


def test_thinning_minute_by_minute_equals_thinning_at_once() -> None:
    """What the sampler does (a little each run) ends where one big run would."""
    start = NOW - 26 * HOUR
    rows = minute_rows(start, NOW)
    at_once = retention.apply(rows, NOW)
    stored: list[Sample] = []
    next_id = 10_000_000
    for r in rows:
        stored.append(r)
        thinning = retention.plan(stored, r.at)
        dropped = set(thinning.drop)
        added = []
        for a in thinning.add:
            next_id += 1
            added.append(msgspec.structs.replace(a, id=next_id))
        stored = [s for s in stored if s.id not in dropped] + added
    stored = retention.apply(stored, NOW)

    def shape(rows: list[Sample]) -> list[tuple]:
        return [(r.at, round(r.cpu_millicores, 9), r.memory_bytes, r.samples, r.span_s, r.restarts) for r in rows]

    assert shape(stored) == shape(at_once)


def test_the_policy_is_a_setting_of_the_functions() -> None:
    assert (RETENTION.full_s, RETENTION.bucket_s, RETENTION.keep_s) == (6 * 3600, 300, 24 * 3600)
    policy = Retention(full_s=600, bucket_s=120, keep_s=3600)
    kept = retention.apply(minute_rows(NOW - 2 * HOUR, NOW), NOW, policy)
    assert min(r.at for r in kept) >= NOW - HOUR
    assert {r.samples for r in kept if r.span_s} == {2}  # two one-minute measurements per 2-minute mean
