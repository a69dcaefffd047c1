"""The reads of the deployment routes and pages: the list (whole, or a page after a
cursor), one deployment's item and its status.

They select only the columns they show (`repo.SHOWN`, never the stack config) and the
list encodes its items straight to JSON with msgspec, so the HTTP layer sends the
bytes as they are. Never a pulumi process or the cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import anyio.to_thread
import msgspec
from sqlalchemy.orm import Session

from api.auth.principal import Principal
from api.deployments import repo
from api.deployments.schemas import DeploymentItem, DriftObjectOut, DriftOut, IngressOut, StatusResponse
from api.deployments.tenancy import Owned, can_manage
from api.errors import NotFound
from persistence.enums import DeploymentStatus

MAX_WAIT_S = 60
WAIT_POLL_S = 0.5
MAX_LIMIT = 1000  # deployments in one page


class DriftRecord(Protocol):
    """A deployment's last drift check: a `DriftStatus`, or the drift columns of a shown row."""

    @property
    def checked_at(self) -> datetime | None: ...
    @property
    def drifted(self) -> bool | None: ...
    @property
    def objects(self) -> list[dict[str, Any]] | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def operation_id(self) -> str | None: ...
    @property
    def reconcile_operation_id(self) -> str | None: ...


class Shown(Owned, DriftRecord, Protocol):
    """A row of `repo.SHOWN`."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def status_message(self) -> str | None: ...
    @property
    def template(self) -> str | None: ...
    @property
    def visibility(self) -> str: ...
    @property
    def ingresses(self) -> list[dict[str, Any]] | None: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def image(self) -> str | None: ...


class Page(msgspec.Struct, frozen=True):
    body: bytes  # the JSON array of the page's items
    next_after: int | None  # the row id the next page starts after; None: this is the last page


def drift_out(row: DriftRecord | None) -> DriftOut:
    """The last drift check as the API shows it (all null before the first)."""
    if row is None:
        return DriftOut(None, None, [], None, None, None)
    objects = [
        DriftObjectOut(
            kind=o["kind"], name=o["name"], change=o["change"], fields=o.get("fields", []),
            unmanagedFields=o.get("unmanaged", []), fieldsOmitted=o.get("omitted", 0),
        )
        for o in row.objects or []
    ]  # fmt: skip
    return DriftOut(
        checkedAt=row.checked_at,
        drifted=row.drifted,
        objects=objects,
        error=row.error,
        operationId=row.operation_id,
        reconcileOperationId=row.reconcile_operation_id,
    )


def _ingresses(row: Shown) -> list[IngressOut]:
    return [msgspec.convert(i, IngressOut) for i in row.ingresses or []]


def item_of(principal: Principal, row: Shown) -> DeploymentItem:
    return DeploymentItem(
        name=row.name,
        status=row.status,
        template=row.template or "image",
        visibility=row.visibility,
        ingresses=_ingresses(row) if row.status == DeploymentStatus.READY else [],
        canDelete=can_manage(principal, row) and row.status != DeploymentStatus.DELETING,
        lastError=row.last_error if row.status == DeploymentStatus.ERROR else None,
        image=row.image,
        teamId=row.team_id,
        drift=drift_out(row),
    )


def list_deployments(db: Session, principal: Principal, team_id: int | None) -> list[DeploymentItem]:
    """Every deployment the caller sees in the team context, oldest first."""
    return [item_of(principal, r) for r in repo.shown(db, principal, team_id)]


def list_page(db: Session, principal: Principal, team_id: int | None, *, limit: int | None, after: int | None) -> Page:
    """The deployments after row id `after` (from the start for None), `limit` of them
    (all for None), as JSON; and where the next page starts when there is one."""
    rows = repo.shown(db, principal, team_id, after=after, limit=None if limit is None else limit + 1)
    more = limit is not None and len(rows) > limit
    rows = rows[:limit] if more else rows
    body = msgspec.json.encode([item_of(principal, r) for r in rows])
    return Page(body=body, next_after=rows[-1].id if more else None)


def _one(db: Session, principal: Principal, name: str) -> Shown:
    rows = repo.shown(db, principal, None, name=name)
    if not rows:
        raise NotFound(f"Deployment '{name}' not found")
    return rows[0]


def get_item(db: Session, principal: Principal, name: str) -> DeploymentItem:
    return item_of(principal, _one(db, principal, name))


def status(db: Session, principal: Principal, name: str) -> StatusResponse:
    row = _one(db, principal, name)
    ready = row.status == DeploymentStatus.READY
    return StatusResponse(
        status=row.status,
        deploymentReady=ready,
        allowDelete=row.status != DeploymentStatus.DELETING,
        # A new deployment request is welcome when the last one failed; while an
        # operation is pending or running, or all is Ready, there is nothing to ask.
        allowRequest=row.status == DeploymentStatus.ERROR,
        drift=drift_out(row),
        ingresses=_ingresses(row) if ready else [],
        statusMessage=row.last_error if row.status == DeploymentStatus.ERROR else row.status_message,
    )


async def wait_for_change(read: Callable[[], Any], first: StatusResponse, wait_s: int) -> StatusResponse:
    """Polls `read` (a blocking status read, run in a thread) until the status or its
    message differs from `first`, or `wait_s` passed; a deployment deleted meanwhile
    leaves the last known status standing."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    current = first
    while wait_s and loop.time() < deadline:
        await asyncio.sleep(WAIT_POLL_S)
        try:
            current = await anyio.to_thread.run_sync(read)
        except NotFound:
            break
        if current.status != first.status or current.statusMessage != first.statusMessage:
            break
    return current
