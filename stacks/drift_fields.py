"""What counts as drift in one Kubernetes object: pure functions over the two
versions a refresh preview shows (the stack's state, and the object live in the
cluster) and the engine's own diff.

Two sources, because they see different things under server-side apply:

- the engine's detailed diff (the provider compares the fields shipstack sets with
  their live values): a scaled Deployment, an edited Secret key. Reconcile puts
  these back: they are `fields`.
- the difference between the object as the state recorded it and as it is now:
  also what someone ADDED that shipstack never sets (a label, an env var on the
  container). Reconcile cannot take those away (another field manager owns them),
  it accepts them into the state: they are also listed in `unmanaged`.

The cluster changes objects by itself all the time (status, resourceVersion,
generation, managedFields, controller annotations, defaults filled in on read):
`cluster_filled` and `owned` keep all of that out. Only paths leave this module,
never a value: a Secret's changed keys may be named, its data never.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal

import msgspec

Segment = str | int
Path = tuple[Segment, ...]
ANY_INDEX = -1  # in a pattern: any list index

MAX_FIELDS = 50  # per object; what lies beyond is counted in `omitted`

# Pulumi's marker of a secret value in engine events: {SIG: SECRET_SIG, "ciphertext"|"value": ...}.
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"

# metadata fields the API server keeps for itself.
SERVER_METADATA = frozenset(
    {"resourceVersion", "uid", "generation", "creationTimestamp", "managedFields", "selfLink", "finalizers",
     "deletionGracePeriodSeconds"}
)  # fmt: skip
# Annotations controllers and kubectl write on objects (prefixes).
CONTROLLER_ANNOTATIONS = (
    "deployment.kubernetes.io/",
    "kubectl.kubernetes.io/last-applied-configuration",
    "endpoints.kubernetes.io/",
    "control-plane.alpha.kubernetes.io/",
    "pv.kubernetes.io/",
    "volume.kubernetes.io/",
    "volume.beta.kubernetes.io/",
    "autoscaling.alpha.kubernetes.io/",
)
SERVER_LABELS = frozenset({"kubernetes.io/metadata.name"})
# Per kind: fields allocated or defaulted by the API server or a controller, which
# may differ from what the state recorded without anyone editing the object (an IP
# allocated again, a storage class assigned to a claim after the fact).
KIND_FILLED: Mapping[str, tuple[Path, ...]] = {
    "Service": (
        ("spec", "clusterIP"),
        ("spec", "clusterIPs"),
        ("spec", "ipFamilies"),
        ("spec", "ipFamilyPolicy"),
        ("spec", "healthCheckNodePort"),
        ("spec", "ports", ANY_INDEX, "nodePort"),
    ),
    "PersistentVolumeClaim": (("spec", "volumeName"), ("spec", "storageClassName"), ("spec", "volumeMode")),
    "Namespace": (("spec", "finalizers"),),
    "Deployment": (("spec", "template", "metadata", "creationTimestamp"),),
}

_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_TOKEN = re.compile(r'\.?([A-Za-z_$][A-Za-z0-9_$]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


class DriftedObject(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    kind: str  # "Deployment"
    name: str  # the object's own name ("nginx", "sd-web" for the namespace)
    change: Literal["modified", "deleted"]
    fields: list[str] = []  # property paths that differ, e.g. "spec.replicas", "data.PASSWORD"
    unmanaged: list[str] = []  # those of `fields` shipstack does not set (reconcile keeps them)
    omitted: int = 0  # fields beyond MAX_FIELDS


# --- property paths -------------------------------------------------------------------


def render(path: Path) -> str:
    """`spec.template.spec.containers[0].image`, `metadata.labels["app.kubernetes.io/name"]`."""
    out = ""
    for seg in path:
        if isinstance(seg, int):
            out += f"[{seg}]"
        elif _IDENT.fullmatch(seg):
            out += f".{seg}" if out else seg
        else:
            out += f"[{json.dumps(seg)}]"
    return out


def parse(text: str) -> Path:
    """The inverse of `render`, for the engine's property paths; text it cannot read
    stays one segment."""
    segments: list[Segment] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or (pos == 0 and text.startswith(".")):
            return (text,)
        ident, index, quoted = m.groups()
        segments.append(ident if ident is not None else int(index) if index is not None else json.loads(quoted))
        pos = m.end()
    return tuple(segments)


def _related(a: Path, b: Path) -> bool:
    """One path is the other or lies beneath it."""
    n = min(len(a), len(b))
    return a[:n] == b[:n]


# --- the difference of two versions of an object ----------------------------------------


def _is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG_KEY) == SECRET_SIG


def changed_leaves(old: Any, new: Any, path: Path = (), anchor: int | None = None) -> Iterator[tuple[Path, Path]]:
    """(leaf, reported) for every scalar that differs. `reported` is the leaf, or the
    list element the leaf belongs to when that element exists on one side only (an
    added env var is one change, `env[0]`, not one per field of it). A side that lacks
    a map or list counts as empty, so every leaf beneath can be judged on its own
    (a controller's annotation is noise, a person's is not)."""
    if _is_secret(old) or _is_secret(new):
        # Hidden on both sides: only the engine's diff can say (it names keys, not values).
        if not (_is_secret(old) and _is_secret(new)):
            yield path, path[:anchor] if anchor is not None else path
        return
    if isinstance(old, dict | None) and isinstance(new, dict | None) and (old is not None or new is not None):
        o, n = old or {}, new or {}
        for key in sorted(o.keys() | n.keys()):
            yield from changed_leaves(o.get(key), n.get(key), (*path, key), anchor)
        return
    if isinstance(old, list | None) and isinstance(new, list | None) and (old is not None or new is not None):
        ol, nl = old or [], new or []
        for i in range(max(len(ol), len(nl))):
            here = (*path, i)
            one_sided = anchor is None and (i >= len(ol) or i >= len(nl))
            yield from changed_leaves(
                ol[i] if i < len(ol) else None, nl[i] if i < len(nl) else None, here,
                len(here) if one_sided else anchor,
            )  # fmt: skip
        return
    if old != new:
        yield path, path[:anchor] if anchor is not None else path


# --- what the cluster fills in by itself ----------------------------------------------------


def _matches(pattern: Path, path: Path) -> bool:
    """`path` is `pattern` or lies beneath it; ANY_INDEX matches any list index."""
    if len(path) < len(pattern):
        return False
    return all(p == s or (p == ANY_INDEX and isinstance(s, int)) for p, s in zip(pattern, path, strict=False))


def cluster_filled(kind: str, path: Path) -> bool:
    """Whether a difference at `path` of an object of `kind` is the cluster's own doing
    (or Pulumi's bookkeeping), not an edit: status, server metadata, controller
    annotations, fields the API server allocates or defaults."""
    if not path:
        return False
    head = path[0]
    if head == "status" or (isinstance(head, str) and head.startswith("__")):
        return True  # status subresource; `__inputs`, `__fieldManager`...: Pulumi's own
    if head == "metadata" and len(path) >= 2:
        if path[1] in SERVER_METADATA:
            return True
        if len(path) >= 3 and isinstance(path[2], str):
            if path[1] == "annotations" and path[2].startswith(CONTROLLER_ANNOTATIONS):
                return True
            if path[1] == "labels" and path[2] in SERVER_LABELS:
                return True
    return any(_matches(pattern, path) for pattern in KIND_FILLED.get(kind, ()))


def _list_child(node: Mapping[str, Any], index: int, element: Any) -> Any:
    """The fieldsV1 entry of list element `index`: by merge key (`k:{"name":"web"}`),
    by value (`v:"x"`) or by position (`i:0`)."""
    for key, child in node.items():
        if key == f"i:{index}":
            return child
        if key[:2] not in ("k:", "v:"):
            continue
        try:
            wanted = json.loads(key[2:])
        except ValueError:
            continue
        if key.startswith("v:") and wanted == element:
            return child
        by_key = key.startswith("k:") and isinstance(element, dict) and isinstance(wanted, dict)
        if by_key and all(element.get(k) == v for k, v in wanted.items()):
            return child
    return None


def _owned_by(fields: Mapping[str, Any], path: Path, obj: Any) -> bool:
    node: Any = fields
    value = obj
    for seg in path:
        if node == {}:
            return True  # the manager owns this field whole (a leaf, or an atomic list or map)
        if isinstance(seg, int):
            element = value[seg] if isinstance(value, list) and seg < len(value) else None
            node, value = _list_child(node, seg, element), element
        else:
            node, value = node.get(f"f:{seg}"), value.get(seg) if isinstance(value, dict) else None
        if not isinstance(node, dict):
            return False
    return True


def owned(path: Path, obj: Mapping[str, Any]) -> bool:
    """Whether some field manager (a person's kubectl, a controller, Pulumi) set the
    field at `path` of the live object. Fields nobody set are defaults the API
    server filled in. An object without managedFields gives no answer: owned."""
    managers = (obj.get("metadata") or {}).get("managedFields")
    if not isinstance(managers, list) or not managers:
        return True
    return any(
        isinstance(m, dict) and isinstance(m.get("fieldsV1"), dict) and _owned_by(m["fieldsV1"], path, obj)
        for m in managers
    )


_MISSING = object()
_HIDDEN = object()


def _find(obj: Any, path: Path) -> Any:
    """The value at `path`, _MISSING, or _HIDDEN when a secret lies on the way."""
    for seg in path:
        if _is_secret(obj):
            return _HIDDEN
        if isinstance(seg, int):
            if not isinstance(obj, list) or seg >= len(obj):
                return _MISSING
        elif not isinstance(obj, dict) or seg not in obj:
            return _MISSING
        obj = obj[seg]
    return _HIDDEN if _is_secret(obj) else obj


def _present(obj: Any, path: Path) -> bool:
    return _find(obj, path) is not _MISSING


def never_held(path: Path, old: Any, new: Any) -> bool:
    """The cluster held nothing at `path` right after the last update (the state's
    outputs) and holds nothing now: the API server drops what the program sent there
    (an empty map, like the `data` of a Secret for an empty env), and nobody removed
    anything since. The engine still names it, comparing with what was sent."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return False
    return _find(old, path) is _MISSING and _find(new, path) is _MISSING


# --- one object ----------------------------------------------------------------------------


def _name_of(*objects: Any) -> str | None:
    for obj in objects:
        if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict):
            name = obj["metadata"].get("name")
            if isinstance(name, str):
                return name
    return None


def object_drift(
    type_token: str, resource_name: str, op: str, engine_paths: Iterable[str], old: Any, new: Any
) -> DriftedObject | None:
    """The drift of one object from a refresh preview step: `op` is the step's outcome
    (same, update, delete), `engine_paths` the engine's detailed diff, `old` and `new`
    the object's outputs in the state and live. None when nothing counts as drift."""
    kind = type_token.rsplit(":", 1)[-1]
    name = _name_of(old, new) or resource_name
    if op == "delete":
        return DriftedObject(kind=kind, name=name, change="deleted")
    managed = {p for p in map(parse, engine_paths) if not (cluster_filled(kind, p) or never_held(p, old, new))}
    extra: set[Path] = set()
    if isinstance(old, dict) and isinstance(new, dict):
        for leaf, reported in changed_leaves(old, new):
            if cluster_filled(kind, leaf) or (_present(new, leaf) and not owned(leaf, new)):
                continue
            if not any(_related(reported, m) for m in managed):
                extra.add(reported)
    ordered = sorted(managed | extra, key=render)
    if not ordered:
        return None
    shown = ordered[:MAX_FIELDS]
    return DriftedObject(
        kind=kind,
        name=name,
        change="modified",
        fields=[render(p) for p in shown],
        unmanaged=[render(p) for p in shown if p in extra],
        omitted=len(ordered) - len(shown),
    )
