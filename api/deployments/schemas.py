"""Request and response bodies of the deployment routes, named as the contract
(docs/api.md) names their fields."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from api.ids import Id
from programs.names import DNS1123_LABEL, MAX_NAME_LENGTH
from programs.spec import VISIBILITIES
from programs.templates import load_catalog
from programs.validate import ENV_KEY, MAX_ENV_KEY_LENGTH, MAX_ENV_VARS

# The rules of the service's own checks (programs.validate, programs.names,
# programs.images), stated in the OpenAPI document only (`extra_json_schema`):
# those checks stay the one place that enforces them, with the messages the
# pages show next to the field they name.


def documented(**schema: object) -> Meta:
    return Meta(extra_json_schema=schema)


EnvVars = Annotated[
    dict[str, str],
    documented(
        maxProperties=MAX_ENV_VARS, propertyNames={"pattern": f"^{ENV_KEY.pattern}$", "maxLength": MAX_ENV_KEY_LENGTH}
    ),
]
NewName = Annotated[str, documented(pattern=f"^{DNS1123_LABEL.pattern}$", maxLength=MAX_NAME_LENGTH)]
DeploymentName = Annotated[str, documented(minLength=1)]
Visibility = Annotated[str, documented(enum=list(VISIBILITIES))]
# "image" is the template of deploy-image, which names the image.
TemplateName = Annotated[str, documented(enum=sorted(set(load_catalog()) - {"image"}))]
# Whitespace is never part of a reference; the full grammar is programs.images's.
ImageRef = Annotated[str, documented(pattern=r"^\S+$")]
Port = Annotated[int, documented(minimum=1, maximum=65535)]
MAX_REVISION = 2**31 - 1  # revisions.number is a 32-bit integer column (PostgreSQL)
Revision = Annotated[int, documented(minimum=1, maximum=MAX_REVISION)]


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
    template: TemplateName
    envVars: EnvVars = {}
    visibility: Visibility = "public"
    name: NewName | None = None
    team_id: Id | None = None


class DeployImageRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    image: ImageRef
    name: NewName | None = None
    containerPort: Port = 8080
    envVars: EnvVars = {}
    visibility: Visibility = "public"
    team_id: Id | None = None


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
    deployment_name: DeploymentName


class DeleteForm(msgspec.Struct, frozen=True):
    """The delete form of the pages: the session's CSRF token rides along."""

    deployment_name: DeploymentName
    csrf: str = msgspec.field(default="", name="_csrf")


class ConfigResponse(msgspec.Struct, frozen=True):
    configData: dict[str, str]


class ConfigUpdateRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    deployment_name: DeploymentName
    configData: EnvVars


class Accepted(msgspec.Struct, frozen=True):
    """A write was accepted: the operation that carries it out."""

    success: bool
    name: str
    operationId: str
    status: str
    message: str


class RollbackRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    version: Revision


class PreviewRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    configData: EnvVars | None = None
    image: ImageRef | None = None
    visibility: Visibility | None = None


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
