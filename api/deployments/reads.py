"""The reads of the deployment routes and pages: the list (whole, or a page after a
cursor), one deployment's item and its status.

They select only the columns they show (`repo.SHOWN`, never the stack config), as
rows without ORM objects; msgspec decodes the JSON columns straight into the wire
structs and encodes the list's items to JSON, which the HTTP layer sends as they
are. Never a pulumi process or the cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import anyio.to_thread
import msgspec
from sqlalchemy.orm import Session

from api.auth.principal import WRITE, Principal
from api.deployments import repo
from api.deployments.schemas import DeploymentItem, DriftObjectOut, DriftOut, IngressOut, StatusResponse
from api.errors import NotFound
from persistence.drift import DriftStatus
from persistence.enums import DeploymentStatus

MAX_WAIT_S = 60
WAIT_POLL_S = 0.5
MAX_LIMIT = 1000  # deployments in one page


class Page(msgspec.Struct, frozen=True):
    body: bytes  # the JSON array of the page's items
    next_after: int | None  # the row id the next page starts after; None: this is the last page


class _StoredObject(msgspec.Struct, frozen=True):
    """A drifted object as `stacks.drift_fields` stores it (`drift_status.objects`)."""

    kind: str
    name: str
    change: str
    fields: list[str] = []
    unmanaged: list[str] = []
    omitted: int = 0


NO_DRIFT = DriftOut(None, None, [], None, None, None)  # before the first check (frozen: shared)
_INGRESSES = msgspec.json.Decoder(list[IngressOut] | None)
_OBJECTS = msgspec.json.Decoder(list[_StoredObject] | None)


def _object_out(o: _StoredObject) -> DriftObjectOut:
    return DriftObjectOut(
        kind=o.kind, name=o.name, change=o.change, fields=o.fields, unmanagedFields=o.unmanaged, fieldsOmitted=o.omitted
    )


def _drift(
    checked_at: datetime | None,
    drifted: bool | None,
    objects: list[_StoredObject] | None,
    error: str | None,
    operation_id: str | None,
    reconcile_operation_id: str | None,
) -> DriftOut:
    return DriftOut(
        checkedAt=checked_at,
        drifted=drifted,
        objects=[_object_out(o) for o in objects or []],
        error=error,
        operationId=operation_id,
        reconcileOperationId=reconcile_operation_id,
    )


def drift_out(record: DriftStatus | None) -> DriftOut:
    """The last drift check as the API shows it (all null before the first)."""
    if record is None:
        return NO_DRIFT
    objects = msgspec.convert(record.objects, list[_StoredObject] | None)
    return _drift(record.checked_at, record.drifted, objects, record.error, record.operation_id,
                  record.reconcile_operation_id)  # fmt: skip


def item_of(row: Sequence[Any], may_write: bool) -> DeploymentItem:
    """A row of `repo.shown` (its columns in `repo.SHOWN`'s order, unpacked: the list
    builds a thousand of these), which gives only rows the caller sees: so the caller
    may delete it exactly when their credential may write (`tenancy.can_manage`)."""
    (_, name, status, _, template, visibility, ingresses, last_error, image, team_id, _,
     checked_at, drifted, objects, error, operation_id, reconcile_id) = row  # fmt: skip
    if checked_at is None and operation_id is None and reconcile_id is None:
        drift = NO_DRIFT  # never checked (most rows): nothing to decode
    else:
        drift = _drift(checked_at, drifted, _OBJECTS.decode(objects) if objects else None, error, operation_id,
                       reconcile_id)  # fmt: skip
    return DeploymentItem(
        name=name,
        status=status,
        template=template or "image",
        visibility=visibility,
        ingresses=(_INGRESSES.decode(ingresses) or []) if ingresses and status == DeploymentStatus.READY else [],
        canDelete=may_write and status != DeploymentStatus.DELETING,
        lastError=last_error if status == DeploymentStatus.ERROR else None,
        image=image,
        teamId=team_id,
        drift=drift,
    )


def list_deployments(db: Session, principal: Principal, team_id: int | None) -> list[DeploymentItem]:
    """Every deployment the caller sees in the team context, oldest first."""
    may_write = principal.has_scope(WRITE)
    return [item_of(r, may_write) for r in repo.shown(db, principal, team_id)]


def list_page(db: Session, principal: Principal, team_id: int | None, *, limit: int | None, after: int | None) -> Page:
    """The deployments after row id `after` (from the start for None), `limit` of them
    (all for None), as JSON; and where the next page starts when there is one."""
    rows = repo.shown(db, principal, team_id, after=after, limit=None if limit is None else limit + 1)
    more = limit is not None and len(rows) > limit
    rows = rows[:limit] if more else rows
    may_write = principal.has_scope(WRITE)
    body = msgspec.json.encode([item_of(r, may_write) for r in rows])
    return Page(body=body, next_after=rows[-1].id if more else None)


def _one(db: Session, principal: Principal, name: str) -> Sequence[Any]:
    rows = repo.shown(db, principal, None, name=name)
    if not rows:
        raise NotFound(f"Deployment '{name}' not found")
    return rows[0]


def get_item(db: Session, principal: Principal, name: str) -> DeploymentItem:
    return item_of(_one(db, principal, name), principal.has_scope(WRITE))


def status(db: Session, principal: Principal, name: str) -> StatusResponse:
    row = _one(db, principal, name)
    item = item_of(row, may_write=False)
    error = item.status == DeploymentStatus.ERROR
    return StatusResponse(
        status=item.status,
        deploymentReady=item.status == DeploymentStatus.READY,
        allowDelete=item.status != DeploymentStatus.DELETING,
        # A new deployment request is welcome when the last one failed; while an
        # operation is pending or running, or all is Ready, there is nothing to ask.
        allowRequest=error,
        drift=item.drift,
        ingresses=item.ingresses,
        statusMessage=item.lastError if error else row[repo.STATUS_MESSAGE],
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
