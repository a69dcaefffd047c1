"""Does a deployment fit its namespace? Its containers against the LimitRange's max,
and all its pods at their most (a rolling update's surge included) against the quota.

Checked before anything is applied, so a spec that cannot run is a readable 400 or
program error, not a rollout that waits out its timeout on "exceeded quota".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from programs.quantities import byte_count, cpu_millis, show_bytes, show_cpu
from programs.tenancy import Resources, Tenancy, fits

# Matches the Deployment's rolling update (programs.workload): maxSurge 25%, rounded up.
SURGE_PERCENT = 25


class _Volume(Protocol):
    @property
    def size(self) -> str: ...


class Sized(Protocol):
    """What the budget needs of a resolved service (`templates.ResolvedService`)."""

    @property
    def name(self) -> str: ...
    @property
    def replicas(self) -> int: ...
    @property
    def strategy(self) -> str: ...
    @property
    def resources(self) -> Resources: ...
    @property
    def volume(self) -> _Volume | None: ...


def peak_pods(replicas: int, strategy: str) -> int:
    """Pods of one service at the height of an update."""
    surge = math.ceil(replicas * SURGE_PERCENT / 100) if strategy == "RollingUpdate" else 0
    return replicas + surge


def budget_errors(services: Sequence[Sized], tenancy: Tenancy) -> list[str]:
    errors = []
    for svc in services:
        if not fits(svc.resources.limits, tenancy.container_max):
            errors.append(
                f"service {svc.name}: limits ({svc.resources.limits.cpu} CPU, {svc.resources.limits.memory}) exceed "
                f"the largest container allowed ({tenancy.container_max.cpu} CPU, {tenancy.container_max.memory})"
            )
    quota = tenancy.quota
    pods = sum(peak_pods(s.replicas, s.strategy) for s in services)
    cpu = sum(peak_pods(s.replicas, s.strategy) * (cpu_millis(s.resources.limits.cpu) or 0) for s in services)
    memory = sum(peak_pods(s.replicas, s.strategy) * (byte_count(s.resources.limits.memory) or 0) for s in services)
    claims = [s.volume.size for s in services if s.volume is not None]
    storage = sum(byte_count(size) or 0 for size in claims)
    for what, need, allowed, show in (
        ("pods", pods, quota.pods, str),
        ("CPU (limits)", cpu, cpu_millis(quota.cpu) or 0, show_cpu),
        ("memory (limits)", memory, byte_count(quota.memory) or 0, show_bytes),
        ("volume claims", len(claims), quota.volume_claims, str),
        ("volume storage", storage, byte_count(quota.storage) or 0, show_bytes),
    ):
        if need > allowed:
            errors.append(
                f"the deployment needs {show(need)} {what} at most during an update; "
                f"its namespace quota allows {show(allowed)}"
            )
    return errors
