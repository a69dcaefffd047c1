"""What the user commands print: tables and blocks for people, JSON for scripts,
and the live progress line of a running operation.

Pure text functions (unit-tested) plus `Output`, the one place that decides what
goes where: results on stdout (JSON with `--json`), messages and progress on
stderr, so `shipstack ls --json | jq` and `NAME=$(shipstack deploy nginx)` work.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

import msgspec

from api.cli import wire


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart; the last column is not padded."""
    all_rows = [list(headers), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(headers))]
    lines = []
    for row in all_rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + [row[-1]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def pairs(items: Iterable[tuple[str, str | None]]) -> str:
    """`key: value` lines, aligned; None values are left out."""
    present = [(k, v) for k, v in items if v is not None]
    width = max((len(k) for k, _ in present), default=0)
    return "\n".join(f"{(k + ':').ljust(width + 1)} {v}" for k, v in present)


def to_json(value: Any) -> str:
    """Pretty JSON of a value, or of JSON bytes exactly as the server sent them."""
    raw = value if isinstance(value, bytes) else msgspec.json.encode(value)
    return msgspec.json.format(raw, indent=2).decode()


def _urls(ingresses: Sequence[wire.Ingress]) -> str:
    return " ".join(i.url for i in ingresses) or "-"


def templates(items: Sequence[wire.Template]) -> str:
    rows = []
    for t in items:
        services = ", ".join(f"{s.name} ({s.image}:{s.port})" if s.image else f"{s.name} (port {s.port})"
                             for s in t.services)  # fmt: skip
        required = sorted({e for s in t.services for e in s.requiredEnv})
        rows.append([t.name, services, ",".join(required) or "-", t.description])
    return table(["TEMPLATE", "SERVICES", "REQUIRED ENV", "DESCRIPTION"], rows)


def deployments(items: Sequence[wire.DeploymentItem]) -> str:
    def source(d: wire.DeploymentItem) -> str:
        # A raw-image deployment is better known by its image than by "image".
        return d.image or d.template if d.template == "image" else d.template

    def where(d: wire.DeploymentItem) -> str:
        return _urls(d.ingresses) if d.status == "Ready" else (d.lastError or "-")

    rows = [[d.name, d.status, source(d), d.visibility, where(d)] for d in items]
    return table(["NAME", "STATUS", "TEMPLATE / IMAGE", "VISIBILITY", "URL / ERROR"], rows)


def status(name: str, s: wire.Status) -> str:
    return pairs(
        [
            ("name", name),
            ("status", s.status),
            ("ready", "yes" if s.deploymentReady else "no"),
            ("url", _urls(s.ingresses) if s.ingresses else None),
            ("message", s.statusMessage or None),
            # Once there is something to say: `shipstack drift NAME` tells the rest.
            ("drift", drift_summary(s.drift) if s.drift is not None and s.drift.checkedAt else None),
        ]
    )


def _when(iso: str) -> str:
    return iso[:19].replace("T", " ") + " UTC"


def drift_summary(d: wire.Drift) -> str:
    """One line: never checked, the check failed, none, or how many objects drifted."""
    if d.checkedAt is None:
        return "never checked"
    if d.drifted is None:
        return f"the check of {_when(d.checkedAt)} failed: {d.error or 'unknown error'}"
    if not d.drifted:
        return f"none (checked {_when(d.checkedAt)})"
    count = len(d.objects)
    return f"{count} object{'s' if count != 1 else ''} drifted (checked {_when(d.checkedAt)})"


def drift(s: wire.DriftStatus) -> str:
    """The settings, the last check, and a table of what drifted; a field marked * was
    set by someone else, and reconcile keeps it."""
    if s.settings.intervalSeconds == 0:
        every = "never on a schedule (its own setting)"
    elif not s.effectiveIntervalSeconds:
        every = "not on a schedule (the service's scheduled checks are off)"
    else:
        own = "" if s.settings.intervalSeconds is None else " (its own interval)"
        every = f"every {s.effectiveIntervalSeconds} s{own}"
    head = pairs(
        [
            ("name", s.name),
            ("policy", s.settings.policy),
            ("checks", every),
            ("next check", _when(s.nextCheckAt) if s.nextCheckAt else None),
            ("skipped", f"{s.skipReason} (since {_when(s.skippedAt)})" if s.skipReason and s.skippedAt else None),
            ("drift", drift_summary(s.drift)),
            ("reconcile", s.drift.reconcileOperationId and f"queued as operation {s.drift.reconcileOperationId}"),
        ]
    )
    if not s.drift.objects:
        return head

    def fields(o: wire.DriftObject) -> str:
        if o.change == "deleted":
            return "-"
        shown = [f + ("*" if f in o.unmanagedFields else "") for f in o.fields]
        return ", ".join(shown) + (f" (+{o.fieldsOmitted} more)" if o.fieldsOmitted else "")

    rows = [[o.kind, o.name, o.change, fields(o)] for o in s.drift.objects]
    body = f"{head}\n\n{table(['KIND', 'NAME', 'CHANGE', 'FIELDS'], rows)}"
    if any(o.unmanagedFields for o in s.drift.objects):
        body += "\n\n* set by someone else, not by shipstack: reconcile keeps it (and stops reporting it)"
    return body


def config(data: dict[str, str]) -> str:
    return "\n".join(f"{k}={v}" for k, v in sorted(data.items()))


# Pulumi's op names: (what is being done, what was done).
_VERBS = {
    "create": ("creating", "created"),
    "update": ("updating", "updated"),
    "delete": ("deleting", "deleted"),
    "replace": ("replacing", "replaced"),
    "same": ("keeping", "unchanged"),
}


def changes(counts: dict[str, int], *, done: bool = True) -> str:
    """`{"create": 2, "same": 5}` -> `2 created, 5 unchanged`; not done: `2 to create, 5 unchanged`."""

    def word(op: str) -> str:
        if done or op == "same":
            return _VERBS.get(op, (op, op))[1]
        return f"to {op}"

    return ", ".join(f"{n} {word(op)}" for op, n in sorted(counts.items()) if n) or "no changes"


def history(revisions: Sequence[wire.Revision]) -> str:
    rows = [
        [str(r.version), r.startTime[:19].replace("T", " "), r.result, changes(r.resourceChanges), r.message]
        for r in revisions
    ]
    return table(["REVISION", "STARTED (UTC)", "RESULT", "RESOURCES", "MESSAGE"], rows)


def resource_name(urn: str | None, fallback: str = "") -> str:
    """The last part of a Pulumi URN (`urn:pulumi:stack::project::type::name`)."""
    return urn.rsplit("::", 1)[-1] if urn else fallback


def preview(p: wire.Preview) -> str:
    rows = [[s.op, s.type, s.name, ", ".join(s.diffs) or "-"] for s in p.steps if s.op != "same"]
    body = table(["OP", "TYPE", "NAME", "CHANGES"], rows) if rows else "nothing would change"
    roll = "pods would be replaced" if p.podsWillRoll else "pods would keep running"
    return f"{body}\n\n{changes(p.changes, done=False)}; {roll}"


def auto_update(settings: wire.AutoUpdateSettings, state: wire.AutoUpdateStatus | None) -> str:
    if settings.intervalSeconds:
        interval = f"{settings.intervalSeconds} s"
    else:
        interval = "the service's default" + (f" ({state.intervalSeconds} s)" if state else "")
    lines = [
        ("enabled", "yes" if settings.enabled else "no"),
        ("strategy", settings.strategy),
        ("policy", settings.policy),
        ("include", settings.include),
        ("exclude", settings.exclude),
        ("interval", interval),
        ("prerelease", "yes" if settings.prerelease else "no"),
    ]
    if state is not None:
        lines += [
            ("image", state.image),
            ("last check", state.checkedAt or "never"),
            ("next check", state.nextCheckAt),
            ("decision", f"{state.action}: {state.reason}" if state.action else None),
            ("current tag", state.currentTag),
            ("target tag", state.targetTag),
        ]
    return pairs(lines)


def progress(item: wire.Progress) -> str | None:
    """One engine event as a short line, or None for those not worth a line."""
    what = f"{item.resource or ''} {resource_name(item.urn)}".strip()
    if item.type in ("step", "done") and item.op and item.op != "same":
        if item.op not in _VERBS:  # the engine's rarer ops (create-replacement, discard, ...)
            return f"{item.op} {what}" + (": done" if item.type == "done" else "")
        doing, did = _VERBS[item.op]
        return f"{doing if item.type == 'step' else did} {what}"
    if item.type == "diagnostic" and item.message:
        return f"{item.severity or 'info'}: {item.message.splitlines()[0]}"
    if item.type == "summary":
        took = f" in {item.duration_s:.0f} s" if item.duration_s is not None else ""
        return f"engine finished{took}: {changes(item.changes or {})}"
    return None


class Output:
    """stdout for results, stderr for everything else; knows whether stderr is a terminal."""

    def __init__(self, *, json: bool = False, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self.json = json
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.live = _isatty(self.stderr)
        self._line_open = False

    def result(self, text: str) -> None:
        self._end_line()
        if text:
            print(text, file=self.stdout, flush=True)

    def data(self, body: bytes, human: str) -> None:
        """The answer of a read: the server's JSON with --json, else the human rendering."""
        self.result(to_json(body) if self.json else human)

    def info(self, text: str) -> None:
        self._end_line()
        print(text, file=self.stderr, flush=True)

    def status_line(self, text: str) -> None:
        """Progress: rewritten in place on a terminal, a plain line otherwise."""
        if not self.live:
            self.info(text)
            return
        # One screen line, or the next rewrite would leave the wrapped part behind.
        width = shutil.get_terminal_size().columns - 1
        self.stderr.write("\r\x1b[K" + text[:width])
        self.stderr.flush()
        self._line_open = True

    def _end_line(self) -> None:
        if self._line_open:
            self.stderr.write("\n")
            self.stderr.flush()
            self._line_open = False


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
