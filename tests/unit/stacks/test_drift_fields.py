"""What counts as drift in one object: the cluster's own changes (status, server
metadata, controller annotations, defaults) never do; edits do, named by property
path and never by value."""

from __future__ import annotations

import copy
from typing import Any

import msgspec
import pytest

from stacks.drift_fields import (
    MAX_FIELDS,
    SECRET_SIG,
    SECRET_SIG_KEY,
    Path,
    changed_leaves,
    cluster_filled,
    object_drift,
    owned,
    parse,
    render,
)

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SECRET = "kubernetes:core/v1:Secret"


@pytest.mark.parametrize(
    ("kind", "path", "filled"),
    [
        ("Deployment", ("status", "replicas"), True),
        ("Deployment", ("status", "conditions", 0, "lastTransitionTime"), True),
        ("Deployment", ("metadata", "resourceVersion"), True),
        ("Deployment", ("metadata", "uid"), True),
        ("Deployment", ("metadata", "generation"), True),
        ("Deployment", ("metadata", "creationTimestamp"), True),
        ("Deployment", ("metadata", "managedFields", 1, "time"), True),
        ("Deployment", ("metadata", "finalizers", 0), True),
        ("Deployment", ("metadata", "annotations", "deployment.kubernetes.io/revision"), True),
        ("Deployment", ("metadata", "annotations", "kubectl.kubernetes.io/last-applied-configuration"), True),
        ("PersistentVolumeClaim", ("metadata", "annotations", "pv.kubernetes.io/bind-completed"), True),
        ("PersistentVolumeClaim", ("metadata", "annotations", "volume.kubernetes.io/selected-node"), True),
        ("Namespace", ("metadata", "labels", "kubernetes.io/metadata.name"), True),
        ("Namespace", ("spec", "finalizers", 0), True),
        ("Deployment", ("spec", "template", "metadata", "creationTimestamp"), True),
        ("Service", ("spec", "clusterIP"), True),
        ("Service", ("spec", "clusterIPs", 0), True),
        ("Service", ("spec", "ports", 0, "nodePort"), True),
        ("PersistentVolumeClaim", ("spec", "volumeName"), True),
        ("PersistentVolumeClaim", ("spec", "storageClassName"), True),
        ("Secret", ("__inputs", "data"), True),  # Pulumi's own bookkeeping
        ("Secret", ("__fieldManager",), True),
        # Edits: what a person (or another tool) did.
        ("Deployment", ("spec", "replicas"), False),
        ("Deployment", ("spec", "template", "spec", "containers", 0, "image"), False),
        ("Deployment", ("metadata", "labels", "team"), False),
        ("Deployment", ("metadata", "annotations", "example.com/owner"), False),
        ("Deployment", ("spec", "template", "metadata", "annotations", "kubectl.kubernetes.io/restartedAt"), False),
        ("Deployment", ("spec", "clusterIP"), False),  # only a Service's is allocated
        ("Service", ("spec", "ports", 0, "port"), False),
        ("Service", ("spec", "selector", "app"), False),
        ("PersistentVolumeClaim", ("spec", "resources", "requests", "storage"), False),
        ("Secret", ("data", "PASSWORD"), False),
        ("Namespace", ("metadata", "labels", "pod-security.kubernetes.io/enforce"), False),
        ("Deployment", (), False),
    ],
)
def test_what_the_cluster_fills_in_is_not_drift(kind: str, path: Path, filled: bool) -> None:
    assert cluster_filled(kind, path) is filled


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("spec.replicas", ("spec", "replicas")),
        ("spec.template.spec.containers[0].image", ("spec", "template", "spec", "containers", 0, "image")),
        ('metadata.labels["app.kubernetes.io/name"]', ("metadata", "labels", "app.kubernetes.io/name")),
        ('metadata.annotations["a\\"b"].x[12]', ("metadata", "annotations", 'a"b', "x", 12)),
        ("data.PASSWORD", ("data", "PASSWORD")),
    ],
)
def test_property_paths_read_and_write_back(text: str, path: Path) -> None:
    assert parse(text) == path
    assert render(path) == text


def test_an_unreadable_path_stays_whole() -> None:
    assert parse("spec..x") == ("spec..x",)
    assert parse(".spec") == (".spec",)


def _secret(text: str = "[secret]") -> dict[str, str]:
    return {SECRET_SIG_KEY: SECRET_SIG, "ciphertext": text}


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ({"a": 1}, {"a": 1}, []),
        ({"a": 1}, {"a": 2}, [(("a",), ("a",))]),
        ({"a": {"b": 1}}, {"a": {}}, [(("a", "b"), ("a", "b"))]),
        ({}, {"labels": {"x": "1"}}, [(("labels", "x"), ("labels", "x"))]),
        # An element on one side only is reported as the element, each leaf judged on its own.
        ({"env": []}, {"env": [{"name": "A", "value": "1"}]},
         [(("env", 0, "name"), ("env", 0)), (("env", 0, "value"), ("env", 0))]),
        ({}, {"env": [{"name": "A"}]}, [(("env", 0, "name"), ("env", 0))]),
        ({"l": [1, 2]}, {"l": [1, 3]}, [(("l", 1), ("l", 1))]),
        ({"a": 1}, {"a": {"b": 1}}, [(("a",), ("a",))]),
        # Secret values are hidden on both sides: only the engine's diff may speak of them.
        ({"data": _secret()}, {"data": _secret()}, []),
        ({"data": _secret()}, {"data": None}, [(("data",), ("data",))]),
    ],
)  # fmt: skip
def test_changed_leaves(old: Any, new: Any, expected: list[tuple[Path, Path]]) -> None:
    assert list(changed_leaves(old, new)) == expected


PULUMI_FIELDS = {
    "f:metadata": {"f:labels": {"f:app": {}}},
    "f:spec": {
        "f:replicas": {},
        "f:template": {"f:spec": {"f:containers": {'k:{"name":"web"}': {".": {}, "f:image": {}, "f:name": {}}}}},
    },
}


def live(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "sd-shop",
            "labels": {"app": "web"},
            "resourceVersion": "100",
            "generation": 1,
            "managedFields": [
                {"manager": "pulumi-kubernetes-1", "operation": "Apply", "fieldsType": "FieldsV1",
                 "fieldsV1": PULUMI_FIELDS},
                {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:replicas": {}}}},
            ],
        },
        "spec": {
            "replicas": 1,
            "template": {
                "spec": {
                    "containers": [
                        {"name": "web", "image": "nginx:1.27", "terminationMessagePath": "/dev/termination-log"}
                    ]
                }
            },
        },
        "status": {"replicas": 1, "observedGeneration": 1},
    }  # fmt: skip
    for path, value in changes.items():
        node = obj
        *parents, last = path.split("__")
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        node[last] = value
    return obj


def manager(name: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {"manager": name, "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": fields}


def with_manager(obj: dict[str, Any], fields: dict[str, Any], name: str = "kubectl-edit") -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out["metadata"]["managedFields"].append(manager(name, fields))
    return out


def noise(obj: dict[str, Any]) -> dict[str, Any]:
    """What the cluster does to an object by itself between two reads."""
    out = copy.deepcopy(obj)
    out["metadata"]["resourceVersion"] = "517"
    out["metadata"]["generation"] += 1
    out["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = "2"
    revision = {"f:metadata": {"f:annotations": {"f:deployment.kubernetes.io/revision": {}}}}
    out["metadata"]["managedFields"].append(manager("kube-controller-manager", revision))
    out["status"] = {"replicas": 3, "conditions": [{"type": "Available", "status": "True"}]}
    out["__inputs"] = {"spec": {"replicas": 3}}
    return out


def test_owned_follows_field_managers_through_merge_keys() -> None:
    obj = live()
    assert owned(("spec", "replicas"), obj)
    assert owned(("spec", "template", "spec", "containers", 0, "image"), obj)
    assert owned(("status", "replicas"), obj)
    # Filled in by the API server, set by nobody: a default.
    assert not owned(("spec", "template", "spec", "containers", 0, "terminationMessagePath"), obj)
    assert not owned(("spec", "strategy", "type"), obj)
    assert owned(("anything",), {"metadata": {}})  # no managedFields: no answer, so owned


def test_a_scaled_deployment_names_the_field_and_nothing_the_cluster_did() -> None:
    old = live()
    new = noise(live(spec__replicas=3))
    found = object_drift(DEPLOYMENT, "web", "update", ["spec.replicas"], old, new)
    assert found is not None
    assert (found.kind, found.name, found.change) == ("Deployment", "web", "modified")
    assert found.fields == ["spec.replicas"] and found.unmanaged == []


def test_the_cluster_alone_is_no_drift() -> None:
    assert object_drift(DEPLOYMENT, "web", "same", [], live(), noise(live())) is None
    # The engine's diff, when it only names what the cluster fills in, is no drift either.
    assert object_drift(DEPLOYMENT, "web", "update", ["status.replicas", "metadata.generation"], live(), live()) is None


def test_a_default_the_server_starts_filling_in_is_no_drift() -> None:
    new = live()
    new["spec"]["progressDeadlineSeconds"] = 600  # e.g. after an API server upgrade; owned by nobody
    assert object_drift(DEPLOYMENT, "web", "same", [], live(), new) is None


def test_fields_someone_else_added_are_reported_as_unmanaged() -> None:
    fields = {
        "f:metadata": {"f:labels": {"f:team": {}}},
        "f:spec": {"f:template": {"f:spec": {"f:containers": {
            'k:{"name":"web"}': {"f:env": {'k:{"name":"DEBUG"}': {}}}}}}},
    }  # fmt: skip
    new = with_manager(live(metadata__labels__team="x"), fields)
    new["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "DEBUG", "value": "1"}]
    found = object_drift(DEPLOYMENT, "web", "same", [], live(), noise(new))
    assert found is not None
    assert found.fields == ["metadata.labels.team", "spec.template.spec.containers[0].env[0]"]
    assert found.unmanaged == found.fields


def test_a_field_removed_is_reported_though_nobody_owns_it_any_more() -> None:
    found = object_drift(DEPLOYMENT, "web", "same", [], live(metadata__labels__team="x"), live())
    assert found is not None and found.fields == ["metadata.labels.team"]


def test_managed_and_unmanaged_fields_together() -> None:
    new = with_manager(live(spec__replicas=5, metadata__labels__team="x"), {"f:metadata": {"f:labels": {"f:team": {}}}})
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.0"
    paths = ["spec.replicas", "spec.template.spec.containers[0].image"]
    found = object_drift(DEPLOYMENT, "web", "update", paths, live(), new)
    assert found is not None
    assert found.fields == ["metadata.labels.team", "spec.replicas", "spec.template.spec.containers[0].image"]
    assert found.unmanaged == ["metadata.labels.team"]


def test_a_deleted_object() -> None:
    found = object_drift("kubernetes:core/v1:Service", "web", "delete", [], live(), None)
    assert found is not None and (found.kind, found.name, found.change, found.fields) == (
        "Service",
        "web",
        "deleted",
        [],
    )


def test_the_objects_own_name_wins_over_the_resource_name() -> None:
    ns = {"metadata": {"name": "sd-shop", "labels": {"a": "1"}}}
    changed = {"metadata": {"name": "sd-shop", "labels": {"a": "2"}}}
    found = object_drift("kubernetes:core/v1:Namespace", "namespace", "update", ['metadata.labels["a"]'], ns, changed)
    assert found is not None and found.name == "sd-shop" and found.fields == ["metadata.labels.a"]


def test_a_secret_names_its_changed_keys_never_their_values() -> None:
    old = {"kind": "Secret", "metadata": {"name": "web-env"}, "data": _secret(), "__inputs": {"data": _secret()}}
    new = copy.deepcopy(old)
    found = object_drift(SECRET, "web-env", "update", ["data.PASSWORD"], old, new)
    assert found is not None and found.fields == ["data.PASSWORD"]
    # Even were the values visible (show-secrets), only the key path leaves.
    plain_old = {"metadata": {"name": "web-env"}, "data": {"PASSWORD": "aHVudGVyMg=="}}
    plain_new = {"metadata": {"name": "web-env"}, "data": {"PASSWORD": "czNjcjN0"}}
    found = object_drift(SECRET, "web-env", "update", ["data.PASSWORD"], plain_old, plain_new)
    encoded = msgspec.json.encode(found).decode()
    assert "aHVudGVyMg==" not in encoded and "czNjcjN0" not in encoded
    assert found is not None and found.fields == ["data.PASSWORD"]


def test_what_the_api_server_never_stored_is_no_drift() -> None:
    # An empty env: the program sends `data: {}`, the API server keeps no `data` at all,
    # and the engine names `data` every time. Nothing changed since the last update.
    sent = {"metadata": {"name": "web-env"}, "__inputs": {"data": _secret()}}
    assert object_drift(SECRET, "web-env", "update", ["data"], sent, copy.deepcopy(sent)) is None
    # A key that was there after the last update and is gone now is drift.
    held = {"metadata": {"name": "web-env"}, "data": _secret()}
    found = object_drift(SECRET, "web-env", "update", ["data.PASSWORD"], held, {"metadata": {"name": "web-env"}})
    assert found is not None and found.fields == ["data.PASSWORD"]
    removed = object_drift(DEPLOYMENT, "web", "update", ["metadata.labels.app"], live(), live(metadata__labels={}))
    assert removed is not None and removed.fields == ["metadata.labels.app"]


def test_very_many_fields_are_capped_and_counted() -> None:
    old = {"metadata": {"name": "x"}, "data": {f"K{i:03}": "a" for i in range(MAX_FIELDS + 7)}}
    new = {"metadata": {"name": "x"}, "data": {f"K{i:03}": "b" for i in range(MAX_FIELDS + 7)}}
    found = object_drift("kubernetes:core/v1:ConfigMap", "x", "update", [], old, new)
    assert found is not None and len(found.fields) == MAX_FIELDS and found.omitted == 7
