"""The REST API's request and response bodies as the client sees them.

The client shares nothing with the server but this wire format, so these Structs
are its own copy of the shapes in `/api/openapi.json`: only the fields it uses,
unknown fields ignored (a newer server may add some), times kept as the ISO text
the server sent. Request bodies leave out what the user did not give (None or UNSET
defaults are omitted), so the server's own defaults apply.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType


class _Out(msgspec.Struct, frozen=True, omit_defaults=True):
    """A request body: fields left at their default are not sent."""


# --- requests -------------------------------------------------------------------


class CreateRequest(_Out):
    template: str
    envVars: dict[str, str] = {}
    visibility: str | None = None
    name: str | None = None
    team_id: int | None = None


class DeployImageRequest(_Out):
    image: str
    name: str | None = None
    containerPort: int | None = None
    envVars: dict[str, str] = {}
    visibility: str | None = None
    team_id: int | None = None


class NameRequest(_Out):
    deployment_name: str


class ConfigUpdate(_Out):
    deployment_name: str
    configData: dict[str, str]


class RollbackRequest(_Out):
    version: int


class PreviewRequest(_Out):
    configData: dict[str, str] | None = None
    image: str | None = None
    visibility: str | None = None


class AutoUpdatePut(_Out):
    """UNSET fields keep their value on the server; null (None) clears include,
    exclude and intervalSeconds."""

    deployment_name: str
    enabled: bool
    strategy: str | UnsetType = UNSET
    policy: str | UnsetType = UNSET
    include: str | UnsetType | None = UNSET
    exclude: str | UnsetType | None = UNSET
    intervalSeconds: int | UnsetType | None = UNSET
    prerelease: bool | UnsetType = UNSET


class Empty(_Out):
    """The body of a write that takes none (`{}`)."""


class DriftPut(_Out):
    """UNSET fields keep their value; intervalSeconds null follows the service's."""

    policy: str | UnsetType = UNSET
    intervalSeconds: int | UnsetType | None = UNSET


# --- responses ------------------------------------------------------------------


class ErrorBody(msgspec.Struct, frozen=True):
    error: str
    code: str = "error"


class User(msgspec.Struct, frozen=True):
    name: str


class WhoAmI(msgspec.Struct, frozen=True):
    user: User
    scopes: list[str] = []
    bound_team_id: int | None = None


class TemplateService(msgspec.Struct, frozen=True):
    name: str
    image: str
    port: int
    public: bool
    requiredEnv: list[str] = []


class Template(msgspec.Struct, frozen=True):
    name: str
    description: str
    services: list[TemplateService]


class Templates(msgspec.Struct, frozen=True):
    templates: list[Template]


class Ingress(msgspec.Struct, frozen=True):
    host: str
    url: str


class DeploymentItem(msgspec.Struct, frozen=True):
    name: str
    status: str
    template: str
    visibility: str
    ingresses: list[Ingress] = []
    lastError: str | None = None
    image: str | None = None
    teamId: int | None = None


class DriftObject(msgspec.Struct, frozen=True):
    kind: str
    name: str
    change: str  # modified | deleted
    fields: list[str] = []
    unmanagedFields: list[str] = []
    fieldsOmitted: int = 0


class Drift(msgspec.Struct, frozen=True):
    """The last drift check (in status, list items and the drift answer)."""

    checkedAt: str | None = None
    drifted: bool | None = None
    objects: list[DriftObject] = []
    error: str | None = None
    operationId: str | None = None
    reconcileOperationId: str | None = None


class DriftSettings(msgspec.Struct, frozen=True):
    policy: str
    intervalSeconds: int | None = None


class DriftStatus(msgspec.Struct, frozen=True):
    name: str
    settings: DriftSettings
    effectiveIntervalSeconds: int = 0
    nextCheckAt: str | None = None
    skippedAt: str | None = None
    skipReason: str | None = None
    drift: Drift = Drift()


class Status(msgspec.Struct, frozen=True):
    status: str
    deploymentReady: bool = False
    ingresses: list[Ingress] = []
    statusMessage: str | None = None
    drift: Drift | None = None


class Accepted(msgspec.Struct, frozen=True):
    """What every write answers: the operation that carries it out."""

    name: str
    operationId: str
    status: str = ""
    message: str = ""


class Config(msgspec.Struct, frozen=True):
    configData: dict[str, str]


class Revision(msgspec.Struct, frozen=True):
    version: int
    kind: str
    result: str
    message: str
    startTime: str
    resourceChanges: dict[str, int] = {}
    endTime: str | None = None


class History(msgspec.Struct, frozen=True):
    revisions: list[Revision]


class Step(msgspec.Struct, frozen=True):
    op: str
    type: str
    name: str
    diffs: list[str] = []


class Preview(msgspec.Struct, frozen=True):
    changes: dict[str, int]
    steps: list[Step]
    podsWillRoll: bool


class Operation(msgspec.Struct, frozen=True):
    id: str
    deployment: str
    kind: str
    status: str
    message: str = ""
    error: str | None = None
    result: dict[str, Any] | None = None


class AutoUpdateSettings(msgspec.Struct, frozen=True):
    enabled: bool
    strategy: str
    policy: str
    include: str | None = None
    exclude: str | None = None
    intervalSeconds: int | None = None
    prerelease: bool = False


class Candidate(msgspec.Struct, frozen=True):
    tag: str
    verdict: str
    reason: str


class AutoUpdateStatus(msgspec.Struct, frozen=True):
    intervalSeconds: int
    image: str | None = None
    checkedAt: str | None = None
    nextCheckAt: str | None = None
    action: str | None = None
    reason: str | None = None
    currentTag: str | None = None
    targetTag: str | None = None
    candidates: list[Candidate] = []


class LogsText(msgspec.Struct, frozen=True):
    logs: str
    statusMessage: str | None = None


# --- server-sent event payloads ---------------------------------------------------


class LogLine(msgspec.Struct, frozen=True):
    pod: str
    container: str
    time: str
    line: str


class PodChange(msgspec.Struct, frozen=True):
    pod: str
    state: str


class Notice(msgspec.Struct, frozen=True):
    message: str


class End(msgspec.Struct, frozen=True):
    status: str
    message: str | None = None
    error: str | None = None
    result: dict[str, Any] | None = None


class Progress(msgspec.Struct, frozen=True):
    """One engine event of an operation (`step`, `done`, `diagnostic`, `summary`)."""

    type: str
    op: str | None = None
    resource: str | None = None
    urn: str | None = None
    severity: str | None = None
    message: str | None = None
    changes: dict[str, int] | None = None
    duration_s: float | None = None


def encode(body: msgspec.Struct) -> bytes:
    return msgspec.json.encode(body)
