"""The closed vocabularies of the database: deployment and operation statuses,
operation kinds. StrEnums, so they compare equal to (and store as) their plain
string values; CHECK constraints keep other values out of the tables."""

from __future__ import annotations

from enum import StrEnum


class DeploymentStatus(StrEnum):
    PENDING = "Pending"
    PROVISIONING = "Provisioning"
    READY = "Ready"
    ERROR = "Error"
    DELETING = "Deleting"


class OperationStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class OperationKind(StrEnum):
    CREATE = "create"
    CONFIG = "config"
    RESTART = "restart"
    ROLLBACK = "rollback"
    DELETE = "delete"
    AUTO_UPDATE = "auto-update"
    AUTO_UPDATE_SETTINGS = "auto-update-settings"
    # Compares the cluster with the stack's state (a refresh preview); changes nothing.
    DRIFT_CHECK = "drift-check"
    # Applies the current spec again after a refresh, as a revision.
    RECONCILE = "reconcile"
    DRIFT_SETTINGS = "drift-settings"


ACTIVE = (OperationStatus.QUEUED, OperationStatus.RUNNING)
FINISHED = (OperationStatus.SUCCEEDED, OperationStatus.FAILED)


def values(enum: type[StrEnum]) -> tuple[str, ...]:
    return tuple(member.value for member in enum)
