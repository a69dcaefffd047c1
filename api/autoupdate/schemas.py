"""Request and response bodies of the auto-update routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from api.deployments.schemas import AutoUpdateSettings, DeploymentName, documented
from programs.spec import STRATEGIES, UPDATE_POLICIES
from programs.validate import MAX_AUTO_UPDATE_INTERVAL_S, MAX_FILTER_LENGTH, MIN_AUTO_UPDATE_INTERVAL_S

UNSET = msgspec.UNSET
UnsetType = msgspec.UnsetType


# The rules of programs.validate, documented (it enforces them, see api.deployments.schemas).
Strategy = Annotated[str, documented(enum=list(STRATEGIES))]
Policy = Annotated[str, documented(enum=list(UPDATE_POLICIES))]
TagFilter = Annotated[str, documented(maxLength=MAX_FILTER_LENGTH, description="An RE2 regex over tags")]
Interval = Annotated[int, documented(minimum=MIN_AUTO_UPDATE_INTERVAL_S, maximum=MAX_AUTO_UPDATE_INTERVAL_S)]


class AutoUpdatePut(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    deployment_name: DeploymentName
    enabled: bool
    strategy: Strategy | UnsetType = UNSET
    policy: Policy | UnsetType = UNSET
    include: TagFilter | UnsetType | None = UNSET
    exclude: TagFilter | UnsetType | None = UNSET
    intervalSeconds: Interval | UnsetType | None = UNSET
    prerelease: bool | UnsetType = UNSET


class AutoUpdateAccepted(msgspec.Struct, frozen=True):
    success: bool
    name: str
    operationId: str
    status: str
    message: str
    autoUpdate: AutoUpdateSettings


class CandidateOut(msgspec.Struct, frozen=True, omit_defaults=True):
    tag: str
    verdict: str
    code: str
    reason: str
    digest: str | None = None


class RepositoryOut(msgspec.Struct, frozen=True):
    name: str
    polledAt: datetime | None
    changedAt: datetime | None
    tagCount: int
    pages: int
    truncated: bool
    error: str | None
    rateLimitedUntil: datetime | None


class BadDigestOut(msgspec.Struct, frozen=True):
    digest: str
    reason: str
    recordedAt: datetime
    image: str | None


class StatusOut(msgspec.Struct, frozen=True):
    name: str
    enabled: bool
    policy: str
    strategy: str
    intervalSeconds: int
    image: str | None
    checkedAt: datetime | None
    nextCheckAt: datetime | None
    action: str | None  # update | none | baseline | error | skipped | failed; None: never polled
    reason: str | None
    currentTag: str | None
    currentDigest: str | None
    targetTag: str | None
    targetDigest: str | None
    operationId: str | None
    candidates: list[CandidateOut]
    candidatesOmitted: int
    repository: RepositoryOut | None
    badDigests: list[BadDigestOut]
