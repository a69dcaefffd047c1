"""Observe a deployment: logs (tail, follow, SSE), metrics and Kubernetes events.

    GET /api/deployments/{name}/logs?service=&tail=100&follow=false
    GET /api/deployments/{name}/logs/stream?service=&tail=100      text/event-stream
    GET /api/deployments/{name}/metrics?service=&window=1h|6h|24h
    GET /api/deployments/{name}/events?limit=200

They read the Kubernetes API directly (`api.observe.kube`), for the pods that carry
the service's selector labels in the deployment's namespace `sd-<name>`. Every
route needs `deployments:read` and a deployment the caller can see (404 otherwise).
`service` defaults to the template's first service; an unknown one is 400 and names
the valid ones. A cluster that cannot be reached is 503. A deployment with no pods
answers with empty logs/zero usage and a `statusMessage`, never an error.

Logs are all containers of all pods of the service, merged in time order, prefixed
with `[pod]` (`[pod/container]`) when more than one container contributes; `tail`
counts lines of the merged output. `follow=true` answers `text/plain` and keeps
streaming. The SSE stream sends one event per line, `data: {"pod","container",
"time","line"}`, with the cursor of `api.observe.codec` as its id; a client
reconnecting with `Last-Event-ID` (or `?lastEventId=`) gets exactly the lines after
it. Other events: `pod` (the stream starts/stops following a pod), `status`
(nothing to follow now, it retries), `end` (the deployment is gone, or the
credential no longer allows it: streams re-check every DEPLOYMENT_CHECK_S).
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Annotated, Any

import anyio.to_thread
import msgspec
from litestar import MediaType, Request, Response, get
from litestar.background_tasks import BackgroundTask
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.params import FromPath, HeaderParameter, QueryParameter
from litestar.response import Stream

from api.auth.guards import CurrentPrincipal, require_scope
from api.auth.principal import READ, Principal
from api.http.context import context_of
from api.http.dependencies import AppDatabase, AppSettings
from api.http.document import EXTRA_CONTENT
from api.http.errors import error_responses
from api.http.sse import HEARTBEAT, HEARTBEAT_S, RETRY, SSE_HEADERS, sse
from api.observe import service
from api.observe.codec import (
    LogLine,
    Position,
    SourceKey,
    decode_cursor,
    merge_lines,
    render_text,
    source_labels,
)
from api.observe.follower import LogFollower
from api.observe.hub import PodChange, SourceEnded, log_sources, read_tails
from api.observe.kube import Kube
from api.observe.kube_models import KubeError
from api.observe.schemas import (
    EndEvent,
    EventsResponse,
    LogLineEvent,
    LogsResponse,
    LogStreamEvent,
    PodEvent,
    StatusEvent,
)
from api.observe.service import Target
from api.observe.streams import SLOTS

if TYPE_CHECKING:
    from api.http.context import AppContext

DEFAULT_TAIL = 100
MAX_TAIL = 5000
DEFAULT_EVENTS = 200
MAX_EVENTS = 1000
UNKNOWN_CURSOR_NOTE = "Last-Event-ID not understood: starting over from the tail"
CURSOR_TEXT = "The id of the last event received: the stream goes on after it (an id it never sent starts over)"
# How often an open stream checks that its credential and deployment still allow it.
DEPLOYMENT_CHECK_S = 30.0

ERRORS = {
    **error_responses(400, 401, 403, 429),
    404: ResponseSpec(error_responses(404)[404].data_container, description="No such deployment, or not yours"),
    503: ResponseSpec(error_responses(503)[503].data_container, description="The cluster is unreachable"),
}
READS = [require_scope(READ)]

ServiceParam = Annotated[
    str | None, QueryParameter(name="service", required=False, description="Service (default: the first)")
]
TailParam = Annotated[
    int, QueryParameter(name="tail", ge=0, le=MAX_TAIL, description=f"Lines of history, 0..{MAX_TAIL}")
]
LimitParam = Annotated[
    int, QueryParameter(name="limit", ge=1, le=MAX_EVENTS, description=f"At most this many, 1..{MAX_EVENTS}")
]


def kube_of(context: AppContext) -> Kube:
    """The app's cluster client, made on first use."""
    if context.kube is None:
        context.kube = Kube(context.settings.engine.kubeconfig)
    return context.kube


async def close_kube(context: AppContext) -> None:
    """Shutdown hook: closes the cluster connections of the app's event loop."""
    if context.kube is not None:
        await context.kube.aclose()


async def target_for(database: Any, settings: Any, principal: Principal, name: str, svc: str | None) -> Target:
    def read() -> Target:
        with database.reads() as db:
            return service.resolve_target(db, principal, name, svc, settings)

    return await anyio.to_thread.run_sync(read)


async def _still_allowed(request: Request[Any, Any, Any], principal: Principal, name: str) -> bool:
    sessions = context_of(request.app.state).db.reads
    return await anyio.to_thread.run_sync(service.still_allowed, sessions, principal, name)


async def _start_follower(
    request: Request[Any, Any, Any],
    principal: Principal,
    target: Target,
    tail: int,
    resume: Mapping[SourceKey, Position] | None,
) -> tuple[LogFollower, list[LogLine]]:
    SLOTS.acquire(principal.user_id)
    follower = LogFollower(kube_of(context_of(request.app.state)), target.namespace, target.selector)
    try:
        initial = await follower.start(tail=tail, resume=resume)
    except BaseException as exc:
        _release(follower, principal)
        if isinstance(exc, KubeError):
            raise service.cluster_error(exc) from None
        raise
    return follower, initial


def _release(follower: LogFollower, principal: Principal) -> None:
    if not follower.closed:
        follower.close()
        SLOTS.release(principal.user_id)


async def _release_async(follower: LogFollower, principal: Principal) -> None:
    _release(follower, principal)


@get(
    "/api/deployments/{name:str}/logs",
    guards=READS,
    opt={EXTRA_CONTENT: {200: {"text/plain": Schema(type=OpenAPIType.STRING, description="follow=true: the lines")}}},
    responses={
        200: ResponseSpec(
            LogsResponse, description="JSON logs; with follow=true a text/plain stream", generate_examples=False
        ),
        **ERRORS,
    },
)
async def deployment_logs(
    request: Request[Any, Any, Any],
    principal: CurrentPrincipal,
    database: AppDatabase,
    settings: AppSettings,
    name: FromPath[str],
    service_name: ServiceParam = None,
    tail: TailParam = DEFAULT_TAIL,
    follow: Annotated[bool, QueryParameter(name="follow", description="Keep streaming new lines")] = False,
) -> Response[Any]:
    """The service's container logs, merged in time order (see the module doc)."""
    target = await target_for(database, settings, principal, name, service_name)
    if follow:
        follower, initial = await _start_follower(request, principal, target, tail, None)
        return Stream(
            _text_follow(request, principal, target, follower, initial),
            media_type="text/plain; charset=utf-8",
            headers=SSE_HEADERS,
            background=BackgroundTask(_release_async, follower, principal),
        )
    kube = kube_of(context_of(request.app.state))
    try:
        listing = await kube.list_pods(target.namespace, target.selector)
        sources, notes = log_sources(listing.items)
        per_source, read_notes = await read_tails(kube, target.namespace, sources, tail)
    except KubeError as exc:
        raise service.cluster_error(exc) from None
    lines = merge_lines(per_source, tail)
    contributing = [s for s, lines_of in zip(sources, per_source, strict=True) if lines_of]
    labels = source_labels(contributing) if len(contributing) > 1 else None
    notes += read_notes
    if not listing.items:
        notes.insert(0, target.not_ready_note())
    body = LogsResponse(logs=render_text(lines, labels), statusMessage="; ".join(notes) or None)
    return Response(content=msgspec.json.encode(body), media_type=MediaType.JSON)


async def _text_follow(
    request: Request[Any, Any, Any], principal: Principal, target: Target, follower: LogFollower, initial: list[LogLine]
) -> AsyncIterator[bytes]:
    try:
        labels = source_labels(follower.labels_seen)
        prefixed = len(labels) > 1
        yield render_text(initial, labels if prefixed else None).encode()
        last_check = time.monotonic()
        while True:
            batch = await follower.next_batch(HEARTBEAT_S)
            lines: list[LogLine] = []
            for item in batch:
                if isinstance(item, LogLine):
                    follower.delivered_line(item)
                    lines.append(item)
                elif isinstance(item, SourceEnded):
                    follower.source_ended(item.source)
            if lines:
                if not prefixed and len(follower.labels_seen) > 1:
                    prefixed = True  # a second pod joined: from now on say whose line it is
                labels = source_labels(follower.labels_seen)
                yield render_text(lines, labels if prefixed else None).encode()
            if time.monotonic() - last_check > DEPLOYMENT_CHECK_S:
                last_check = time.monotonic()
                if not await _still_allowed(request, principal, target.name):
                    return
    finally:
        _release(follower, principal)


@get(
    "/api/deployments/{name:str}/logs/stream",
    guards=READS,
    media_type="text/event-stream",
    responses={
        200: ResponseSpec(
            LogStreamEvent,
            description="Server-Sent Events, one per log line",
            media_type="text/event-stream",
            generate_examples=False,
        ),
        **ERRORS,
    },
)
async def deployment_log_stream(
    request: Request[Any, Any, Any],
    principal: CurrentPrincipal,
    database: AppDatabase,
    settings: AppSettings,
    name: FromPath[str],
    service_name: ServiceParam = None,
    tail: TailParam = DEFAULT_TAIL,
    last_event_id: Annotated[
        str | None, HeaderParameter(name="Last-Event-ID", required=False, description=CURSOR_TEXT)
    ] = None,
    last_event_id_query: Annotated[
        str | None,
        QueryParameter(name="lastEventId", required=False, description="Same as the Last-Event-ID header"),
    ] = None,
) -> Stream:
    """Server-Sent Events, one per log line, resumable with Last-Event-ID (see the module doc)."""
    raw_id = last_event_id or last_event_id_query
    resume = decode_cursor(raw_id) if raw_id else None
    # An id this stream never sent (another version's, a typo) starts over and says so:
    # an EventSource gives up for good on an error answer, so a 400 would end the page's logs.
    first_notes = [UNKNOWN_CURSOR_NOTE] if raw_id and resume is None else []
    target = await target_for(database, settings, principal, name, service_name)
    follower, initial = await _start_follower(request, principal, target, tail, resume)
    return Stream(
        _sse_logs(request, principal, target, follower, initial, first_notes),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
        background=BackgroundTask(_release_async, follower, principal),
    )


_enc = msgspec.json.Encoder()


@functools.lru_cache(maxsize=4096)  # a line shared by many streams is encoded once
def _line_data(line: LogLine) -> bytes:
    return _enc.encode(
        LogLineEvent(pod=line.source.pod, container=line.source.container, time=line.time, line=line.text)
    )


def _line_event(follower: LogFollower, line: LogLine) -> bytes:
    return sse(_line_data(line), event_id=follower.delivered_line(line))


def _status_event(message: str) -> bytes:
    return sse(_enc.encode(StatusEvent(message)), event="status")


async def _sse_logs(
    request: Request[Any, Any, Any],
    principal: Principal,
    target: Target,
    follower: LogFollower,
    initial: list[LogLine],
    first_notes: list[str],
) -> AsyncIterator[bytes]:
    try:
        head = [RETRY, *(_status_event(note) for note in first_notes)]
        if not follower.pods:
            head.append(_status_event(target.not_ready_note()))
        head += [_status_event(note) for note in follower.notes]
        head += [_line_event(follower, line) for line in initial]
        yield b"".join(head)
        last_check = time.monotonic()
        while True:
            batch = await follower.next_batch(HEARTBEAT_S)
            if not batch:
                yield HEARTBEAT
            else:
                out: list[bytes] = []
                for item in batch:
                    if isinstance(item, LogLine):
                        out.append(_line_event(follower, item))
                    elif isinstance(item, PodChange):
                        out.append(sse(_enc.encode(PodEvent(pod=item.pod, state=item.state)), event="pod"))
                    elif isinstance(item, SourceEnded):
                        follower.source_ended(item.source)
                    else:
                        out.append(_status_event(item.message))
                if out:
                    yield b"".join(out)
            if time.monotonic() - last_check > DEPLOYMENT_CHECK_S:
                last_check = time.monotonic()
                if not await _still_allowed(request, principal, target.name):
                    end = EndEvent(status="gone", message=f"Deployment '{target.name}' is gone or no longer yours")
                    yield sse(_enc.encode(end), event="end")
                    return
    finally:
        _release(follower, principal)


@get("/api/deployments/{name:str}/events", guards=READS, responses=ERRORS)
async def deployment_events(
    request: Request[Any, Any, Any],
    principal: CurrentPrincipal,
    database: AppDatabase,
    settings: AppSettings,
    name: FromPath[str],
    limit: LimitParam = DEFAULT_EVENTS,
) -> EventsResponse:
    """Kubernetes events of the objects in the deployment's namespace, newest first."""
    target = await target_for(database, settings, principal, name, None)
    try:
        listing = await kube_of(context_of(request.app.state)).list_events(target.namespace)
    except KubeError as exc:
        raise service.cluster_error(exc) from None
    return service.events_out(target, listing, limit)


# The metrics route is in api/observe/metrics_routes.py.
ROUTES = [deployment_logs, deployment_log_stream, deployment_events]
