"""`shipstack logs NAME [-f] [--tail N] [--service S]`: the service's container logs.

Without -f, the last lines (`GET /api/deployments/{name}/logs`). With -f, the SSE
stream `/logs/stream`, which follows the pods as a restart or a rollout replaces
them; when the connection drops the client reconnects with the last event id,
the server's per-container cursor, so no line is lost or repeated, even when the
pods it was reading are gone by then.
"""

from __future__ import annotations

import argparse

import msgspec

from api.cli import wire
from api.cli.client import deployment_path
from api.cli.context import Context
from api.cli.errors import EXIT_OK


class Labels:
    """Says whose line it is once more than one container has spoken, as the API's
    text logs do: `[pod]`, or `[pod/container]` for a pod with several containers."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()

    def prefix(self, line: wire.LogLine) -> str:
        self._seen.add((line.pod, line.container))
        if len(self._seen) < 2:
            return ""
        containers = sum(1 for pod, _ in self._seen if pod == line.pod)
        return f"[{line.pod}/{line.container}] " if containers > 1 else f"[{line.pod}] "


def _params(args: argparse.Namespace) -> dict[str, object]:
    params: dict[str, object] = {"tail": args.tail}
    if args.service:
        params["service"] = args.service
    return params


def logs(args: argparse.Namespace, ctx: Context) -> int:
    if args.follow:
        return follow(args, ctx)
    body, raw = ctx.client.get_with_body(deployment_path(args.name, "logs"), wire.LogsText, params=_params(args))
    if ctx.out.json:
        ctx.out.data(raw, "")
    elif body.logs:
        ctx.out.stdout.write(body.logs if body.logs.endswith("\n") else body.logs + "\n")
        ctx.out.stdout.flush()
    if body.statusMessage:
        ctx.out.info(f"-- {body.statusMessage}")
    return EXIT_OK


def follow(args: argparse.Namespace, ctx: Context) -> int:
    """Until the deployment is gone or the user stops it (Ctrl-C)."""
    labels = Labels()
    events = ctx.client.events(deployment_path(args.name, "logs/stream"), _params(args))
    try:
        for event in events:
            if event.event == "message":
                line = msgspec.json.decode(event.data, type=wire.LogLine)
                text = event.data if ctx.out.json else labels.prefix(line) + line.line
                ctx.out.stdout.write(text + "\n")
                ctx.out.stdout.flush()
            elif event.event == "pod":
                change = msgspec.json.decode(event.data, type=wire.PodChange)
                verb = "following" if change.state == "added" else "stopped following"
                ctx.out.info(f"-- {verb} pod {change.pod}")
            elif event.event == "status":
                ctx.out.info(f"-- {msgspec.json.decode(event.data, type=wire.Notice).message}")
            elif event.event == "reconnect":
                ctx.out.info(f"-- {event.data}; resuming after the last line received")
            elif event.event == "end":
                end = msgspec.json.decode(event.data, type=wire.End)
                ctx.out.info(f"-- {end.message or end.status}")
                return EXIT_OK
    finally:
        events.close()
    return EXIT_OK
