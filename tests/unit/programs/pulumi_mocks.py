"""Running the Pulumi program under Pulumi's mocks, and reading what it created.

The mocks record what the program asks the engine to create (type, name, inputs,
provider), which is what `pulumi preview` would show and what the provider would apply.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pulumi
import pytest
from pulumi.runtime.mocks import MockMonitor, MockResourceArgs
from pulumi.runtime.rpc import _special_secret_sig, _special_sig_key

from programs.deployment import build
from programs.provider import make_provider
from programs.spec import DeploymentSpec

NAMESPACE = "kubernetes:core/v1:Namespace"
SECRET = "kubernetes:core/v1:Secret"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
PVC = "kubernetes:core/v1:PersistentVolumeClaim"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
RESOURCE_QUOTA = "kubernetes:core/v1:ResourceQuota"
LIMIT_RANGE = "kubernetes:core/v1:LimitRange"
PROVIDER = "pulumi:providers:kubernetes"
KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: []\n"


def spec(**kw: object) -> DeploymentSpec:
    base: dict[str, object] = {"name": "abc123xyz7", "template": "nginx", "base_domain": "ex.com"}
    base.update(kw)
    return DeploymentSpec(**base)  # type: ignore[arg-type]


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(_special_sig_key) == _special_secret_sig


def plain(value: Any) -> Any:
    """Inputs with secret wrappers removed (the values the provider would receive)."""
    if is_secret(value):
        return plain(value["value"])
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.created: list[MockResourceArgs] = []

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict]:
        self.created.append(args)
        return f"{args.name}-id", args.inputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, None]:
        return {}, None


@dataclass
class Run:
    created: list[MockResourceArgs]
    outputs: dict[str, Any]
    exports: dict[str, Any]

    def of(self, typ: str) -> list[MockResourceArgs]:
        return [r for r in self.created if r.typ == typ]

    def names(self, typ: str) -> list[str]:
        return sorted(plain(r.inputs)["metadata"]["name"] for r in self.of(typ))

    def get(self, typ: str, name: str) -> dict[str, Any]:
        """Plain inputs of the object of `typ` whose metadata.name is `name`."""
        found = [plain(r.inputs) for r in self.of(typ) if plain(r.inputs)["metadata"]["name"] == name]
        assert len(found) == 1, f"{typ} {name}: {len(found)} found"
        return found[0]

    def raw(self, typ: str, name: str) -> dict[str, Any]:
        (found,) = [r.inputs for r in self.of(typ) if plain(r.inputs)["metadata"]["name"] == name]
        return found

    def pod(self, name: str) -> dict[str, Any]:
        return self.get(DEPLOYMENT, name)["spec"]["template"]

    def container(self, name: str) -> dict[str, Any]:
        (container,) = self.pod(name)["spec"]["containers"]
        return container

    def secret_env(self, name: str) -> dict[str, str]:
        data = self.get(SECRET, f"{name}-env")["data"]
        return {k: base64.b64decode(v).decode() for k, v in data.items()}


def run(program: Callable[[], dict[str, Any] | None], monkeypatch: pytest.MonkeyPatch) -> Run:
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="shipstack", stack="test", preview=False, monitor=MockMonitor(mocks))
    exports: dict[str, Any] = {}
    real_export = pulumi.export

    def record_export(name: str, value: Any) -> None:
        exports[name] = value
        real_export(name, value)

    monkeypatch.setattr(pulumi, "export", record_export)
    result: dict[str, Any] = {}

    @pulumi.runtime.test
    def _program() -> None:
        result["outputs"] = program()

    _program()
    return Run(mocks.created, result.get("outputs") or {}, exports)


def deploy(s: DeploymentSpec, monkeypatch: pytest.MonkeyPatch) -> Run:
    return run(lambda: build(s, make_provider(KUBECONFIG)), monkeypatch)


def attempt(s: DeploymentSpec) -> tuple[list[MockResourceArgs], Exception | None]:
    """Everything `build(s)` registered, and the error it raised (None: it rendered)."""
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="shipstack", stack="test", preview=False, monitor=MockMonitor(mocks))
    error: list[Exception] = []

    @pulumi.runtime.test
    def _program() -> None:
        try:
            build(s, make_provider(KUBECONFIG))
        except Exception as exc:
            error.append(exc)

    _program()
    return mocks.created, (error[0] if error else None)
