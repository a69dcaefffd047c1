"""Request and response bodies of the deployment routes, named as the contract
(docs/api.md) names their fields."""

from __future__ import annotations

from datetime import datetime

import msgspec


class IngressOut(msgspec.Struct, frozen=True):
    id: str
    name: str
    host: str
    url: str


class DriftObjectOut(msgspec.Struct, frozen=True, omit_defaults=True):
    """One object that differs from the stack's state: property paths, never values."""

    kind: str  # Deployment, Service, Secret...
    name: str
    change: str  # modified | deleted
    fields: list[str] = []  # e.g. "spec.replicas", "data.PASSWORD" (a Secret's key, never its value)
    # Those of `fields` shipstack does not set (a label or env var someone added):
    # reconcile keeps them and accepts them into the state.
    unmanagedFields: list[str] = []
    fieldsOmitted: int = 0


class DriftOut(msgspec.Struct, frozen=True):
    """The last drift check; checkedAt and drifted are null before the first one."""

    checkedAt: datetime | None
    drifted: bool | None  # null: never checked, or the last check failed (see error)
    objects: list[DriftObjectOut]
    error: str | None
    operationId: str | None  # the check's operation
    reconcileOperationId: str | None  # the reconcile it queued (policy "reconcile")


class DeploymentItem(msgspec.Struct, frozen=True, omit_defaults=True):
    name: str
    status: str
    template: str
    visibility: str
    ingresses: list[IngressOut]
    canDelete: bool
    drift: DriftOut
    lastError: str | None = None
    image: str | None = None
    teamId: int | None = None


class CreateRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    template: str
    envVars: dict[str, str] = {}
    visibility: str = "public"
    name: str | None = None
    team_id: int | None = None


class DeployImageRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    image: str
    name: str | None = None
    containerPort: int = 8080
    envVars: dict[str, str] = {}
    visibility: str = "public"
    team_id: int | None = None


class CreateResponse(msgspec.Struct, frozen=True):
    name: str
    status: str
    template: str
    visibility: str
    operationId: str


class StatusResponse(msgspec.Struct, frozen=True, omit_defaults=True):
    status: str
    deploymentReady: bool
    allowDelete: bool
    allowRequest: bool
    drift: DriftOut
    ingresses: list[IngressOut] = []
    statusMessage: str | None = None


class NameRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    deployment_name: str


class ConfigResponse(msgspec.Struct, frozen=True):
    configData: dict[str, str]


class ConfigUpdateRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    deployment_name: str
    configData: dict[str, str]


class Accepted(msgspec.Struct, frozen=True):
    """A write was accepted: the operation that carries it out."""

    success: bool
    name: str
    operationId: str
    status: str
    message: str


class RollbackRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    version: int


class PreviewRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    configData: dict[str, str] | None = None
    image: str | None = None
    visibility: str | None = None


class StepOut(msgspec.Struct, frozen=True):
    op: str
    type: str
    name: str
    diffs: list[str]


class PreviewResponse(msgspec.Struct, frozen=True):
    changes: dict[str, int]
    steps: list[StepOut]
    podsWillRoll: bool


class AutoUpdateSettings(msgspec.Struct, frozen=True):
    """A deployment's auto-update settings as the API takes and returns them; None fields are sent as null."""

    enabled: bool
    strategy: str
    policy: str
    include: str | None
    exclude: str | None
    intervalSeconds: int | None
    prerelease: bool


class RevisionSpec(msgspec.Struct, frozen=True, omit_defaults=True):
    """The deployment's spec as a revision ran it, in the API's words; env values are
    never shown, only the keys."""

    template: str
    visibility: str
    replicas: int
    strategy: str
    envKeys: list[str]
    autoUpdate: AutoUpdateSettings
    image: str | None = None
    containerPort: int | None = None
    restartedAt: str | None = None


class RevisionOut(msgspec.Struct, frozen=True, omit_defaults=True):
    version: int
    kind: str
    result: str
    message: str
    startTime: datetime
    resourceChanges: dict[str, int]
    endTime: datetime | None = None
    # None for a revision whose config no longer reads as a spec (a destroy, or hand-edited).
    spec: RevisionSpec | None = None


class HistoryResponse(msgspec.Struct, frozen=True):
    revisions: list[RevisionOut]


class TemplateServiceOut(msgspec.Struct, frozen=True):
    name: str
    image: str
    port: int
    public: bool
    defaultEnv: dict[str, str]
    requiredEnv: list[str]


class TemplateOut(msgspec.Struct, frozen=True):
    name: str
    description: str
    services: list[TemplateServiceOut]


class TemplatesResponse(msgspec.Struct, frozen=True):
    templates: list[TemplateOut]
