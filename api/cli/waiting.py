"""Waiting for what a write set going: the operation's engine events as progress,
its outcome as the exit status, and a deployment's status until it settles.

Progress comes from `GET /api/operations/{id}/events` (SSE, resumed with
Last-Event-ID after a drop), drawn as one live line on a terminal and as plain
lines otherwise, always on stderr.
"""

from __future__ import annotations

import argparse
import time

import msgspec

from api.cli import render, wire
from api.cli.client import TIMEOUT_S
from api.cli.context import Context
from api.cli.errors import EXIT_FAILED, EXIT_OK, ApiFailure, CliError

SETTLED = ("Ready", "Error")
STATUS_POLL_S = 30  # the status route long-polls at most 60 s


class Outcome(msgspec.Struct, frozen=True, omit_defaults=True):
    """What `--json` prints for a write."""

    name: str
    operationId: str
    status: str  # queued (with --no-wait), succeeded, failed
    message: str | None = None
    error: str | None = None
    result: dict | None = None


def wait_operation(ctx: Context, op_id: str, label: str, *, gone_is_done: bool = False) -> wire.End:
    """Follows the operation to its end; a delete's operation may vanish with its
    deployment (`gone_is_done`)."""
    last_line = ""
    events = ctx.client.events(f"/api/operations/{op_id}/events")
    try:
        for event in events:
            if event.event == "end":
                return msgspec.json.decode(event.data, type=wire.End)
            if event.event == "reconnect":
                ctx.out.status_line(f"{label}: {event.data}; reconnecting")
                continue
            try:
                item = msgspec.json.decode(event.data, type=wire.Progress)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue  # an event kind this client does not know
            text = render.progress(item)
            if text and text != last_line:
                last_line = text
                ctx.out.status_line(f"{label}: {text}")
    except ApiFailure as exc:
        if gone_is_done and exc.status == 404:
            return wire.End(status="gone")
        raise
    except KeyboardInterrupt:
        ctx.out.info(f"stopped waiting; operation {op_id} goes on in the service")
        raise
    finally:
        events.close()
    raise AssertionError("the event stream only ends with an end event or an error")


def finish_write(
    ctx: Context, args: argparse.Namespace, accepted: wire.Accepted, label: str, *, delete: bool = False
) -> int:
    """Waits for the operation unless --no-wait; exit 0 when it succeeded, 1 when it failed."""
    if args.no_wait:
        if ctx.out.json:
            ctx.out.result(render.to_json(Outcome(accepted.name, accepted.operationId, "queued", accepted.message)))
        ctx.out.info(
            f"{label}: queued as operation {accepted.operationId}; "
            f"`shipstack status {accepted.name} --wait` waits for it"
        )
        return EXIT_OK
    end = wait_operation(ctx, accepted.operationId, label, gone_is_done=delete)
    if delete and end.status == "gone":
        # The operation went away with the deployment it deleted: that is success.
        end = wire.End(status="succeeded", message="deleted")
    outcome = Outcome(accepted.name, accepted.operationId, end.status, end.message, end.error, end.result)
    if ctx.out.json:
        ctx.out.result(render.to_json(outcome))
    if end.status != "succeeded":
        # "failed", or "gone": the deployment was deleted while this operation waited.
        reason = end.error or end.message or end.status
        raise CliError(
            f"{label} failed (operation {accepted.operationId}): {reason}",
            EXIT_FAILED,
            f"`shipstack status {accepted.name}` and `shipstack logs {accepted.name}` show the deployment's state",
        )
    unchanged = (end.result or {}).get("changed") is False
    ctx.out.info(f"{label}: {'no change' if unchanged else 'done'}")
    return EXIT_OK


def wait_settled(ctx: Context, name: str, timeout_s: float) -> tuple[wire.Status, bytes]:
    """Long-polls the status until Ready or Error (or the timeout: the last status)."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = int(deadline - time.monotonic())
        wait = max(0, min(STATUS_POLL_S, left))
        status, raw = ctx.client.get_with_body(
            "/api/deployments/status", wire.Status, params={"name": name, "wait": wait}, timeout=wait + TIMEOUT_S
        )
        if status.status in SETTLED or left <= 0:
            return status, raw
        note = f" ({status.statusMessage})" if status.statusMessage else ""
        ctx.out.status_line(f"{name}: {status.status}{note}")
