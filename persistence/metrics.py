"""Metrics over time: the `metric_samples` table and its queries.

The scheduler's sampler (`scheduler/metrics_sampler.py`) writes one row per service
of each Ready deployment per interval and thins old rows (`scheduler/retention.py`);
`GET /api/deployments/{name}/metrics?window=` reads them.

A row belongs to the deployment's row id, not its name: a deployment re-created under
a deleted one's name starts with no history, and the foreign key's ON DELETE CASCADE
removes a deployment's samples with its row.

`span_s` says what a row is: 0 for one measurement, otherwise the seconds it averages
(`samples` measurements) after thinning. `restarts` is the sum of the container
restart counts of the service's pods when measured (for a mean: at the end of its
span), so a rise from one row to the next is a pod restart.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, Row, String, delete, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from persistence.base import Base
from persistence.enums import DeploymentStatus
from persistence.models import Deployment

# SQLite gives a rowid-backed autoincrement only to a column typed INTEGER.
_ID = BigInteger().with_variant(Integer(), "sqlite")
_CHUNK = 500  # ids per IN (...) list: well under every bound-parameter limit


class MetricSample(Base):
    __tablename__ = "metric_samples"
    __table_args__ = (
        # The API's read: one deployment's rows in a window.
        Index("ix_metric_samples_deployment_id_at", "deployment_id", "at"),
        # The sampler's retention: everything older than a day, raw rows past the full-resolution horizon.
        Index("ix_metric_samples_span_s_at", "span_s", "at"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    service: Mapped[str] = mapped_column(String(63))
    at: Mapped[datetime]
    span_s: Mapped[int] = mapped_column(default=0)
    samples: Mapped[int] = mapped_column(default=1)
    cpu_millicores: Mapped[float] = mapped_column(Float)
    memory_bytes: Mapped[int] = mapped_column(BigInteger)
    pods: Mapped[int]
    restarts: Mapped[int]


class Sample(msgspec.Struct, frozen=True, kw_only=True):
    """One row, as the sampler, the thinning and the API handle it (`id` 0: not stored yet)."""

    deployment_id: int
    service: str
    at: datetime
    cpu_millicores: float
    memory_bytes: int
    pods: int
    restarts: int
    span_s: int = 0
    samples: int = 1
    id: int = 0


class SampledDeployment(msgspec.Struct, frozen=True):
    id: int
    name: str
    template: str


_COLUMNS = (
    MetricSample.id,
    MetricSample.deployment_id,
    MetricSample.service,
    MetricSample.at,
    MetricSample.cpu_millicores,
    MetricSample.memory_bytes,
    MetricSample.pods,
    MetricSample.restarts,
    MetricSample.span_s,
    MetricSample.samples,
)


def _sample(row: Row[Any]) -> Sample:
    return Sample(**row._mapping)  # the selected columns are named as the Struct's fields


def _values(sample: Sample) -> dict[str, object]:
    values = msgspec.structs.asdict(sample)
    values.pop("id")
    return values


# --- the sampler ---------------------------------------------------------------------


def ready_deployments(session: Session) -> list[SampledDeployment]:
    rows = session.execute(
        select(Deployment.id, Deployment.name, Deployment.template)
        .where(Deployment.status == DeploymentStatus.READY)
        .order_by(Deployment.id)
    )
    return [SampledDeployment(r.id, r.name, r.template or "image") for r in rows]


def add_samples(session: Session, samples: Sequence[Sample]) -> int:
    """Stores the samples of deployments that still exist and existed when measured:
    one deleted while the cluster was read loses its samples (not the whole batch),
    and a row created since (SQLite may give a new row a deleted row's id) gets none
    of the old pods' usage. Answers how many were stored."""
    wanted = sorted({s.deployment_id for s in samples})
    created: dict[int, datetime] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        found = session.execute(select(Deployment.id, Deployment.created_at).where(Deployment.id.in_(chunk)))
        created.update((r.id, r.created_at) for r in found)
    rows = [_values(s) for s in samples if s.deployment_id in created and created[s.deployment_id] <= s.at]
    if rows:
        session.execute(insert(MetricSample), rows)
    return len(rows)


def expire_before(session: Session, cutoff: datetime) -> int:
    return session.execute(delete(MetricSample).where(MetricSample.at < cutoff)).rowcount


def raw_before(session: Session, cutoff: datetime, limit: int) -> list[Sample]:
    """Single measurements older than `cutoff`, oldest first (the thinning's input)."""
    query = (
        select(*_COLUMNS)
        .where(MetricSample.span_s == 0, MetricSample.at < cutoff)
        .order_by(MetricSample.at, MetricSample.id)
        .limit(limit)
    )
    return [_sample(r) for r in session.execute(query)]


def means_between(session: Session, deployment_ids: Iterable[int], start: datetime, end: datetime) -> list[Sample]:
    """Rows already thinned in [start, end) of these deployments: a bucket thinned in
    two runs (a run's limit cut it) is merged with what the first run made."""
    ids = sorted(set(deployment_ids))
    found: list[Sample] = []
    for first in range(0, len(ids), _CHUNK):
        chunk = ids[first : first + _CHUNK]
        query = select(*_COLUMNS).where(
            MetricSample.span_s > 0,
            MetricSample.at >= start,
            MetricSample.at < end,
            MetricSample.deployment_id.in_(chunk),
        )
        found += [_sample(r) for r in session.execute(query)]
    return found


def replace_samples(session: Session, drop: Sequence[int], add: Sequence[Sample]) -> None:
    for start in range(0, len(drop), _CHUNK):
        session.execute(delete(MetricSample).where(MetricSample.id.in_(drop[start : start + _CHUNK])))
    if add:
        session.execute(insert(MetricSample), [_values(s) for s in add])


# --- the API -----------------------------------------------------------------------------


def samples_since(session: Session, deployment_id: int, since: datetime) -> list[Sample]:
    """One deployment's rows from `since` on, by service then time."""
    query = (
        select(*_COLUMNS)
        .where(MetricSample.deployment_id == deployment_id, MetricSample.at >= since)
        .order_by(MetricSample.service, MetricSample.at, MetricSample.id)
    )
    return [_sample(r) for r in session.execute(query)]
