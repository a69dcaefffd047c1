"""Request and response bodies of the auto-update routes."""

from __future__ import annotations

from datetime import datetime

import msgspec

from api.deployments.schemas import AutoUpdateSettings, DeploymentName

UNSET = msgspec.UNSET
UnsetType = msgspec.UnsetType


class AutoUpdatePut(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    deployment_name: DeploymentName
    enabled: bool
    strategy: str | UnsetType = UNSET
    policy: str | UnsetType = UNSET
    include: str | UnsetType | None = UNSET
    exclude: str | UnsetType | None = UNSET
    intervalSeconds: int | UnsetType | None = UNSET
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
