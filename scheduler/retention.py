"""How long metrics samples are kept, and at what resolution (pure).

The policy: every measurement of the last 6 hours as taken; from 6 to 24 hours
ago one mean per service and 5-minute bucket (buckets aligned to the epoch, so
every run cuts them the same way); nothing older than 24 hours. With the default
60 s interval that is at most 360 + 216 = 576 rows per service, whatever the
uptime: a 24 h chart stays small and the table stays bounded.

A bucket is thinned only once all of it lies past the full-resolution horizon, so
no measurement arrives in it afterwards. A run may thin only part of a bucket (it
takes at most so many rows); the next run merges the rest with the mean the first
one made, weighting each by the measurements it stands for.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import msgspec

from persistence.metrics import Sample

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Retention(msgspec.Struct, frozen=True, kw_only=True):
    full_s: int = 6 * 3600  # every measurement is kept this long
    bucket_s: int = 300  # then one mean per service and bucket of this many seconds
    keep_s: int = 24 * 3600  # and nothing older than this


RETENTION = Retention()


class Thinning(msgspec.Struct, frozen=True):
    drop: list[int]  # ids of the rows the means replace
    add: list[Sample]  # one mean per (deployment, service, bucket)


def bucket_start(at: datetime, bucket_s: int) -> datetime:
    seconds = (at - EPOCH) // timedelta(seconds=1)
    return EPOCH + timedelta(seconds=seconds - seconds % bucket_s)


def expire_before(now: datetime, policy: Retention = RETENTION) -> datetime:
    """Rows older than this are deleted: the start of the first whole bucket of the
    last `keep_s`, so a mean (timed at its bucket's start) is never older than that."""
    day_ago = now - timedelta(seconds=policy.keep_s)
    start = bucket_start(day_ago, policy.bucket_s)
    return start if start == day_ago else start + timedelta(seconds=policy.bucket_s)


def thin_before(now: datetime, policy: Retention = RETENTION) -> datetime:
    """Single measurements older than this are merged into bucket means: the start of
    the bucket the full-resolution horizon falls in, so only whole buckets are merged."""
    return bucket_start(now - timedelta(seconds=policy.full_s), policy.bucket_s)


def merge(rows: list[Sample], bucket_s: int) -> Sample:
    """One mean of the rows of one (deployment, service, bucket). CPU and memory are
    weighted by the measurements each row stands for; pods is the most measured at
    once; restarts is the count at the end of the bucket (the latest row's), so a
    rise across buckets still shows as a restart."""
    ordered = sorted(rows, key=lambda r: (r.at, r.span_s == 0, r.id))
    count = sum(r.samples for r in ordered)
    first = ordered[0]
    return Sample(
        deployment_id=first.deployment_id,
        service=first.service,
        at=bucket_start(first.at, bucket_s),
        cpu_millicores=sum(r.cpu_millicores * r.samples for r in ordered) / count,
        memory_bytes=round(sum(r.memory_bytes * r.samples for r in ordered) / count),
        pods=max(r.pods for r in ordered),
        restarts=ordered[-1].restarts,
        span_s=bucket_s,
        samples=count,
    )


def plan(rows: Iterable[Sample], now: datetime, policy: Retention = RETENTION) -> Thinning:
    """What to drop and add so that `rows` follow the policy at `now`. `rows` are the
    candidates: single measurements and the means of the buckets they fall in."""
    expired = expire_before(now, policy)
    cutoff = thin_before(now, policy)
    drop: list[int] = []
    buckets: dict[tuple[int, str, datetime], list[Sample]] = defaultdict(list)
    for row in rows:
        if row.at < expired:
            drop.append(row.id)
        elif row.at < cutoff:
            buckets[(row.deployment_id, row.service, bucket_start(row.at, policy.bucket_s))].append(row)
    add: list[Sample] = []
    for members in buckets.values():
        if all(m.span_s > 0 for m in members) and len(members) == 1:
            continue  # a mean alone in its bucket: already as thin as it gets
        drop += [m.id for m in members]
        add.append(merge(members, policy.bucket_s))
    return Thinning(drop=drop, add=add)


def apply(rows: Iterable[Sample], now: datetime, policy: Retention = RETENTION) -> list[Sample]:
    """`rows` as the policy leaves them at `now` (the whole policy on a list, as the
    sampler applies it to the table), oldest first."""
    rows = list(rows)
    thinning = plan(rows, now, policy)
    dropped = set(thinning.drop)
    kept = [r for r in rows if r.id not in dropped] + thinning.add
    return sorted(kept, key=lambda r: (r.deployment_id, r.service, r.at))
