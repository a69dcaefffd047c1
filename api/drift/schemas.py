"""Request and response bodies of the drift routes (the last check's own shape,
`DriftOut`, is shared with the status and list answers: api/deployments/schemas.py)."""

from __future__ import annotations

from datetime import datetime

import msgspec

from api.deployments.schemas import DriftOut

UNSET = msgspec.UNSET
UnsetType = msgspec.UnsetType


class DriftSettingsPut(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Fields left out keep their value. `intervalSeconds`: null follows the service's
    SHIPSTACK_DRIFT_INTERVAL, 0 never checks this deployment on a schedule."""

    policy: str | UnsetType = UNSET  # report | reconcile
    intervalSeconds: int | UnsetType | None = UNSET


class DriftSettingsOut(msgspec.Struct, frozen=True):
    policy: str  # report: record drift; reconcile: also apply the spec again when a check finds drift
    intervalSeconds: int | None  # the deployment's own; null: the service's


class DriftSettingsAccepted(msgspec.Struct, frozen=True):
    success: bool
    name: str
    operationId: str
    status: str
    message: str
    settings: DriftSettingsOut


class DriftStatusOut(msgspec.Struct, frozen=True):
    name: str
    settings: DriftSettingsOut
    # Seconds between scheduled checks in force; 0: not checked on a schedule.
    effectiveIntervalSeconds: int
    nextCheckAt: datetime | None  # when the scheduler will queue the next check (roughly)
    skippedAt: datetime | None  # since when a due check has been left out, and why
    skipReason: str | None
    drift: DriftOut
