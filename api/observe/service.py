"""What the observe routes read and how they shape it: which pods a request means,
whether a stream may go on, metrics summed per service, events newest first."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgspec
from sqlalchemy.orm import Session, sessionmaker

from api.auth.authenticate import reauthenticate
from api.auth.guards import need
from api.auth.principal import READ, Principal
from api.deployments.tenancy import get_visible_deployment
from api.errors import Internal, Invalid, NotFound, ServiceError, Unavailable
from api.observe import series
from api.observe.codec import short
from api.observe.formats import format_cpu, format_memory, parse_quantity, parse_time_ns
from api.observe.kube_models import EventList, KubeError, KubeUnavailable, PodList, PodMetricsList
from api.observe.schemas import EventObject, EventOut, EventsResponse, MetricsResponse
from persistence import metrics as metric_store
from persistence import revisions
from persistence.enums import DeploymentStatus
from persistence.models import Deployment
from programs.labels import LABEL_DEPLOYMENT, label_selector
from programs.spec import DeploymentSpec, namespace_for
from programs.templates import load_catalog
from stacks.settings import Settings

log = logging.getLogger("shipstack.api.observe")


def cluster_error(exc: KubeError) -> ServiceError:
    if isinstance(exc, KubeUnavailable):
        return Unavailable(f"The Kubernetes cluster is unreachable: {short(exc.message)}", "cluster_unavailable")
    return Internal(f"The Kubernetes API refused the request: {short(exc.message)}", "cluster_error")


@dataclass(frozen=True)
class Target:
    """What a request observes: the deployment row's facts and the service's pods."""

    name: str
    namespace: str
    service: str | None
    selector: str
    status: str
    status_message: str | None
    deployment_id: int = 0  # the row's id: its stored metrics hang off it
    created_at: datetime | None = None

    def not_ready_note(self) -> str:
        what = f"service '{self.service}'" if self.service else f"deployment '{self.name}'"
        note = f"No pods of {what} are running; the deployment is {self.status}"
        if self.status_message:
            note += f": {short(self.status_message)}"
        return note


def services_of(row: Deployment) -> list[str]:
    template = load_catalog().get(row.template or "image")
    return [s.name for s in template.services] if template is not None else []


def target_of(row: Deployment, settings: Settings, service: str | None) -> Target:
    """The pods of `service` (default: the template's first) of the deployment."""
    services = services_of(row)
    if service is not None and service not in services:
        listed = ", ".join(services) or "none known"
        raise Invalid(f"Unknown service '{service}'; services of '{row.name}': {listed}", "unknown_service")
    chosen = service or (services[0] if services else None)
    if chosen is not None:
        spec = DeploymentSpec(name=row.name, template=row.template or "image", base_domain=settings.service.base_domain)
        selector = label_selector(spec, chosen)
    else:  # a template no longer in the catalog: every pod of the deployment
        selector = f"{LABEL_DEPLOYMENT}={row.name}"
    message = row.last_error if row.status == DeploymentStatus.ERROR else row.status_message
    return Target(
        name=row.name,
        namespace=namespace_for(row.name),
        service=chosen,
        selector=selector,
        status=row.status,
        status_message=message,
        deployment_id=row.id,
        created_at=row.created_at,
    )


def resolve_target(db: Session, principal: Principal, name: str, service: str | None, settings: Settings) -> Target:
    need(principal, READ)
    return target_of(get_visible_deployment(db, principal, name), settings, service or None)


def still_allowed(sessions: sessionmaker[Session], principal: Principal, name: str) -> bool:
    """Whether a stream opened by `principal` on deployment `name` may go on: the
    credential is still valid (not revoked or expired), still has the read scope,
    and the deployment still exists and is visible to it (team membership now)."""
    try:
        with sessions() as db:
            fresh = reauthenticate(db, principal)
            if fresh is None or not fresh.has_scope(READ):
                return False
            get_visible_deployment(db, fresh, name)
            return True
    except NotFound:
        return False
    except Exception:  # a database hiccup must not end a stream
        log.warning("checking deployment %s for an open stream failed", name, exc_info=True)
        return True


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def metrics_summary(target: Target, metrics: PodMetricsList, pods: PodList) -> MetricsResponse:
    """CPU and memory of the service's pods, summed."""
    cpu = Decimal(0)
    memory = Decimal(0)
    latest: tuple[int, str] | None = None
    for item in metrics.items:
        for container in item.containers:
            try:
                cpu += parse_quantity(container.usage.get("cpu", "0"))
                memory += parse_quantity(container.usage.get("memory", "0"))
            except ValueError:
                log.warning("unparsable usage %r in %s", container.usage, target.namespace)
        stamp = parse_time_ns(item.timestamp or "")
        if stamp is not None and (latest is None or stamp > latest[0]):
            latest = (stamp, item.timestamp or "")
    running = [p for p in pods.items if p.metadata.deletion_timestamp is None]
    note = None
    if not running:
        note = target.not_ready_note()
    elif len(metrics.items) < len(running):
        measured = {m.metadata.name for m in metrics.items}
        waiting = sorted(p.metadata.name for p in running if p.metadata.name not in measured)
        note = f"No usage measured yet for {', '.join(waiting)} (metrics arrive about a minute after a pod starts)"
    return MetricsResponse(
        cpuUsage=format_cpu(cpu),
        memoryUsage=format_memory(memory),
        timestamp=latest[1] if latest else now_iso(),
        cpuMillicores=round(cpu * 1000),
        memoryBytes=int(memory),
        pods=len(metrics.items),
        statusMessage=note,
    )


def with_history(
    db: Session, current: MetricsResponse, target: Target, window: str, interval_s: float, now: datetime
) -> MetricsResponse:
    """`current` with the window's stored samples of every service and their markers
    (the deployment row's own revisions: one re-created under an old name shows none
    of the old one's)."""
    start = now - timedelta(seconds=series.WINDOWS[window])
    samples = metric_store.samples_since(db, target.deployment_id, start)
    marks = [
        series.Revision(time=r.finished_at, kind="update", message=r.message)
        for r in revisions.succeeded_since(db, target.deployment_id, start)
        if r.finished_at is not None
    ]
    return msgspec.structs.replace(
        current,
        window=window,
        windowStart=series.iso(start),
        windowEnd=series.iso(now),
        intervalSeconds=interval_s,
        series=series.shape_series(samples, interval_s),
        markers=series.markers(samples, marks),
    )


def events_out(target: Target, listing: EventList, limit: int) -> EventsResponse:
    """Kubernetes events of the namespace's objects, newest first."""
    keyed = sorted(
        ((parse_time_ns(e.time or "") or 0, e.metadata.name, e) for e in listing.items),
        key=lambda x: (x[0], x[1]),
        reverse=True,
    )
    events = [
        EventOut(
            type=e.type or "Normal",
            reason=e.reason,
            message=e.message,
            object=EventObject(kind=e.involved_object.kind, name=e.involved_object.name),
            count=e.occurrences,
            time=e.time,
            source=e.reporting_component or (e.source.component if e.source else None) or None,
        )
        for _, _, e in keyed[:limit]
    ]
    note = None if events or target.status == DeploymentStatus.READY else target.not_ready_note()
    return EventsResponse(events=events, statusMessage=note)
