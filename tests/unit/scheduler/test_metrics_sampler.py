"""The metrics sampler (scheduler/metrics_sampler.py) on a real database (SQLite, and
PostgreSQL when the run has one), reading a fake cluster (`FakeCluster`): what a
run stores, and its bounds: Ready deployments only, one reading per deployment,
runs that never overlap, a time budget, a cluster without the metrics API, the
lease fence, retention in pieces, and samples that go with their deployment's row.
The same against the real metrics-server: tests/integration/observe/test_metrics_sampler_cluster.py."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session, sessionmaker

from persistence import metrics as store
from persistence.base import utcnow
from persistence.db import make_engine, migrate, session_factory
from persistence.metrics import MetricSample, Sample
from persistence.models import Deployment, User
from scheduler import metrics_sampler, retention
from scheduler.jobs import AutoUpdateScheduler
from scheduler.leader import LeaderLease
from scheduler.metrics_kube import ClusterUnreachable, MetricsApiMissing, PodState, PodUsage, Reading
from scheduler.metrics_sampler import MetricsSampler, samples_of
from stacks.settings import SchedulerSettings, Settings
from tests.seed import Seed

NOW = datetime(2026, 3, 4, 12, 0, 30, tzinfo=UTC)
MI = 2**20


def pod(name: str, service: str | None, restarts: int = 0, *, terminating: bool = False) -> PodState:
    labels = {"shipstack.dev/service": service} if service else {}
    return PodState(name, labels, restarts, terminating)


def usage(name: str, cpu: float, memory_mi: int, labels: dict[str, str] | None = None) -> PodUsage:
    return PodUsage(name, labels or {}, cpu, memory_mi * MI)


class FakeCluster:
    """A namespace -> Reading (or an exception to raise) stand-in for `KubeReader`;
    reads of `held` namespaces (all, with `hold_all`) wait until `release` is set;
    every read is logged."""

    def __init__(self) -> None:
        self.readings: dict[str, Reading | Exception] = {}
        self.held: set[str] = set()
        self.hold_all = False
        self.release = threading.Event()
        self.reads: list[tuple[str, str]] = []
        self.closed = False

    def read(self, namespace: str, selector: str) -> Reading:
        self.reads.append((namespace, selector))
        if self.hold_all or namespace in self.held:
            self.release.wait(30)
        found = self.readings.get(namespace, Reading(usage=[], pods=[]))
        if isinstance(found, Exception):
            raise found
        return found

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine, immediate=True)


@pytest.fixture
def owner(sessions: sessionmaker[Session]) -> User:
    return Seed(sessions).user("alice")


def deployment(sessions: sessionmaker[Session], owner: User, name: str, **fields: object) -> Deployment:
    values = {"status": "Ready", "template": "nginx", "created_at": NOW - timedelta(days=2), **fields}
    with sessions() as s, s.begin():
        row = Deployment(name=name, owner_user_id=owner.id, **values)
        s.add(row)
    return row


def stored(sessions: sessionmaker[Session]) -> list[Sample]:
    """Every row of `metric_samples`, by deployment then time."""
    with sessions() as s:
        rows = s.scalars(select(MetricSample).order_by(MetricSample.deployment_id, MetricSample.at))
        return [Sample(**{f: getattr(r, f) for f in Sample.__struct_fields__}) for r in rows]


def sampler(sessions: sessionmaker[Session], cluster: FakeCluster, **kw: object) -> MetricsSampler:
    kw = {"interval_s": 60.0, "clock": lambda: NOW, **kw}
    return MetricsSampler(sessions, cluster, **kw)  # type: ignore[arg-type]


def test_samples_of_groups_pods_by_service() -> None:
    reading = Reading(
        usage=[
            usage("app-1", 10.5, 30),
            usage("app-2", 4.5, 34),
            usage("db-0", 100, 256),
            usage("stray", 999, 999),  # no service label anywhere: not shipstack's
            usage("late", 1, 1, {"shipstack.dev/service": "app"}),  # listed before its pod: PodMetrics' labels
        ],
        pods=[
            pod("app-1", "app", 2),
            pod("app-2", "app", 1),
            pod("app-old", "app", 7, terminating=True),  # on its way out: its restarts no longer count
            pod("db-0", "db", 0),
            pod("stray", None, 5),
            pod("waiting", "cache", 0),  # not measured yet: no sample
        ],
    )
    assert samples_of(3, reading, NOW) == [
        Sample(deployment_id=3, service="app", at=NOW, cpu_millicores=16.0, memory_bytes=65 * MI, pods=3, restarts=3),
        Sample(deployment_id=3, service="db", at=NOW, cpu_millicores=100.0, memory_bytes=256 * MI, pods=1, restarts=0),
    ]


def test_a_run_samples_each_ready_deployment_once(sessions: sessionmaker[Session], owner: User) -> None:
    web = deployment(sessions, owner, "web", template="webapp")
    cache = deployment(sessions, owner, "cache", template="redis")
    deployment(sessions, owner, "new", status="Provisioning")
    deployment(sessions, owner, "broken", status="Error")
    cluster = FakeCluster()
    cluster.readings["sd-web"] = Reading(
        usage=[usage("app-1", 15, 32), usage("db-0", 40, 200)],
        pods=[pod("app-1", "app", 1), pod("db-0", "db")],
    )
    cluster.readings["sd-cache"] = ClusterUnreachable("HTTP 500")
    report = sampler(sessions, cluster).run()
    # One reading per Ready deployment, all services at once, in its own namespace.
    assert sorted(cluster.reads) == [
        ("sd-cache", "shipstack.dev/deployment=cache"),
        ("sd-web", "shipstack.dev/deployment=web"),
    ]
    assert (report.deployments, report.measured, report.samples, report.unreachable) == (2, 1, 2, 1)
    assert report.metrics_api and not report.overlapped and not report.fenced_out
    got = [(s.deployment_id, s.service, s.at, s.cpu_millicores, s.memory_bytes, s.restarts) for s in stored(sessions)]
    assert got == [(web.id, "app", NOW, 15.0, 32 * MI, 1), (web.id, "db", NOW, 40.0, 200 * MI, 0)]
    assert cache.id not in {s.deployment_id for s in stored(sessions)}


def test_no_metrics_api_stops_the_run_and_stores_nothing(sessions: sessionmaker[Session], owner: User) -> None:
    for i in range(12):
        deployment(sessions, owner, f"d{i}")
    cluster = FakeCluster()
    for i in range(12):
        cluster.readings[f"sd-d{i}"] = MetricsApiMissing("metrics.k8s.io answered HTTP 404")
    run = sampler(sessions, cluster, workers=1)
    report = run.run()
    assert not report.metrics_api
    assert report.samples == 0 and stored(sessions) == []
    assert len(cluster.reads) == 1  # the first answer says so; the rest are not asked
    cluster.readings = {"sd-d0": Reading(usage=[usage("a", 1, 1)], pods=[pod("a", "nginx")])}
    assert run.run().metrics_api  # it came back: sampling resumes
    assert len(stored(sessions)) == 1


def test_runs_never_overlap(sessions: sessionmaker[Session], owner: User) -> None:
    deployment(sessions, owner, "web")
    cluster = FakeCluster()
    cluster.hold_all = True
    run = sampler(sessions, cluster)
    first: list[metrics_sampler.SampleReport] = []
    thread = threading.Thread(target=lambda: first.append(run.run()))
    thread.start()
    deadline = time.monotonic() + 5
    while not cluster.reads and time.monotonic() < deadline:
        time.sleep(0.01)
    second = run.run()  # the first is still reading
    cluster.release.set()
    thread.join(10)
    assert second.overlapped and second.deployments == 0
    assert not first[0].overlapped and first[0].deployments == 1
    assert len(cluster.reads) == 1


def test_a_run_keeps_to_its_budget(sessions: sessionmaker[Session], owner: User) -> None:
    for name in ("fast", "slow"):
        deployment(sessions, owner, name)
    cluster = FakeCluster()
    for name in ("fast", "slow"):
        cluster.readings[f"sd-{name}"] = Reading(usage=[usage(f"{name}-0", 5, 8)], pods=[pod(f"{name}-0", "nginx")])
    cluster.held = {"sd-slow"}  # answers only once the run is over: the run must not wait for it
    run = sampler(sessions, cluster, interval_s=1.0)  # budget: 1 s (the least a run gets)
    report = run.run()
    cluster.release.set()
    assert (report.measured, report.out_of_time, report.samples) == (1, 1, 1)
    assert [s.service for s in stored(sessions)] == ["nginx"]
    run.close()


def test_samples_are_written_behind_the_lease(engine: Engine, sessions: sessionmaker[Session], owner: User) -> None:
    deployment(sessions, owner, "web")
    cluster = FakeCluster()
    cluster.readings["sd-web"] = Reading(usage=[usage("w", 5, 8)], pods=[pod("w", "nginx")])
    other = LeaderLease(engine, "other", ttl_s=60)
    assert other.try_acquire()
    ours = LeaderLease(engine, "ours", ttl_s=60)
    report = sampler(sessions, cluster, lease=ours).run()
    assert report.fenced_out and stored(sessions) == []
    other.release()
    assert ours.try_acquire()
    assert sampler(sessions, cluster, lease=ours).run().samples == 1


def one(deployment_id: int, at: datetime = NOW) -> Sample:
    return Sample(deployment_id=deployment_id, service="nginx", at=at, cpu_millicores=1, memory_bytes=1, pods=1,
                  restarts=0)  # fmt: skip


def test_samples_go_with_their_deployment_row(sessions: sessionmaker[Session], owner: User) -> None:
    web = deployment(sessions, owner, "web")
    with sessions() as s, s.begin():
        assert store.add_samples(s, [one(web.id), one(web.id + 99)]) == 1  # a row gone meanwhile loses its own
    assert [x.deployment_id for x in stored(sessions)] == [web.id]
    with sessions() as s, s.begin():
        s.execute(delete(Deployment).where(Deployment.id == web.id))
    assert stored(sessions) == []  # ON DELETE CASCADE
    # The same name again (on SQLite maybe even the same id): no history, and no sample
    # measured before the new row existed (a run that read the old deployment's pods).
    again = deployment(sessions, owner, "web", created_at=NOW)
    with sessions() as s, s.begin():
        assert store.add_samples(s, [one(again.id, NOW - timedelta(seconds=1))]) == 0
        assert store.add_samples(s, [one(again.id, NOW)]) == 1
    with sessions() as s:
        assert [x.at for x in store.samples_since(s, again.id, NOW - timedelta(days=1))] == [NOW]


def test_retention_in_pieces_ends_where_one_pass_does(
    sessions: sessionmaker[Session], owner: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """30 h of minute samples, thinned by runs that may each merge only 7 rows."""
    web = deployment(sessions, owner, "web")
    rows = [
        Sample(deployment_id=web.id, service="nginx", at=NOW - timedelta(minutes=m), cpu_millicores=float(m % 9),
               memory_bytes=m * 1000, pods=1 + m % 2, restarts=m // 50)
        for m in range(30 * 60)
    ]  # fmt: skip
    with sessions() as s, s.begin():
        store.add_samples(s, rows)
    expected = retention.apply([msgspec.structs.replace(r, id=i + 1) for i, r in enumerate(rows)], NOW)
    monkeypatch.setattr(metrics_sampler, "MAX_THIN_ROWS", 7)
    run = sampler(sessions, FakeCluster())  # no Ready pods measured: only retention runs
    first = run.run()
    assert first.expired == sum(r.at < retention.expire_before(NOW) for r in rows) and first.thinned == 7
    while run.run().thinned:
        pass
    got = stored(sessions)

    def shape(rows: list[Sample]) -> list[tuple]:
        return [(r.at, round(r.cpu_millicores, 6), r.memory_bytes, r.pods, r.restarts, r.span_s, r.samples)
                for r in rows]  # fmt: skip

    assert shape(got) == shape(expected)
    assert min(r.at for r in got) >= NOW - timedelta(hours=24)


def test_only_the_leader_samples(database_url: str, tmp_path: Path) -> None:
    """Two service processes on one database: only the lease holder's metrics job runs."""
    eng = make_engine(database_url)
    migrate(eng)
    settings = Settings.from_env({"SHIPSTACK_DATA": str(tmp_path / "data"), "SHIPSTACK_DATABASE_URL": database_url})
    config = SchedulerSettings(poll_interval_s=600, lease_ttl_s=2.0, metrics_interval_s=0.2)
    schedulers = [AutoUpdateScheduler(settings, eng, config=config, holder=h) for h in ("first", "second")]
    runs = {"first": 0, "second": 0}
    for instance in schedulers:
        fake = FakeCluster()
        instance.sampler.reader = fake
        real = instance.sampler.run

        def counted(real=real, holder=instance.holder):  # type: ignore[no-untyped-def]
            runs[holder] += 1
            return real()

        instance.sampler.run = counted  # type: ignore[method-assign]
    try:
        schedulers[0].start()
        deadline = time.monotonic() + 5
        while not schedulers[0].is_leader and time.monotonic() < deadline:
            time.sleep(0.05)
        schedulers[1].start()
        time.sleep(1.5)
        assert schedulers[0].is_leader and not schedulers[1].is_leader
        assert runs["first"] >= 3 and runs["second"] == 0
        assert schedulers[0].last_sample is not None and schedulers[0].last_sample.started_at <= utcnow()
    finally:
        for instance in schedulers:
            instance.stop()
        eng.dispose()
