"""`shipstack drift NAME [--check] [--policy P] [--interval S | --default-interval]`
and `shipstack reconcile NAME`.

`drift` shows the last check (what differs between the cluster and the deployment:
each object's kind, name and fields); `--check` queues a check first and waits for
it; `--policy` / `--interval` change the settings (queued like every write) first.
`--json` prints only the drift answer, whatever ran before it. `reconcile` applies
the spec again over the drift, as a revision.
"""

from __future__ import annotations

import argparse

from api.cli import render, wire
from api.cli.client import deployment_path
from api.cli.context import Context
from api.cli.errors import EXIT_FAILED, EXIT_OK, CliError
from api.cli.waiting import finish_write, wait_operation

UNSET = wire.UNSET


def settings_body(args: argparse.Namespace) -> wire.DriftPut | None:
    """The settings flags given, or None; `--default-interval` sends null."""
    interval: int | wire.UnsetType | None = UNSET
    if args.default_interval:
        interval = None
    elif args.interval is not None:
        interval = args.interval
    if args.policy is None and interval is UNSET:
        return None
    return wire.DriftPut(policy=UNSET if args.policy is None else args.policy, intervalSeconds=interval)


def _run(ctx: Context, args: argparse.Namespace, path: str, body: wire.DriftPut | wire.Empty, label: str) -> None:
    """Queues a write and waits for it (unless --no-wait); its failure is exit 1."""
    accepted = ctx.client.send("PUT" if isinstance(body, wire.DriftPut) else "POST", path, body, wire.Accepted)
    if args.no_wait:
        ctx.out.info(f"{label}: queued as operation {accepted.operationId}")
        return
    end = wait_operation(ctx, accepted.operationId, label)
    if end.status != "succeeded":
        reason = end.error or end.message or end.status
        raise CliError(f"{label} failed (operation {accepted.operationId}): {reason}", EXIT_FAILED)
    ctx.out.info(f"{label}: {end.message or 'done'}")


def drift(args: argparse.Namespace, ctx: Context) -> int:
    body = settings_body(args)
    if body is not None:
        _run(ctx, args, deployment_path(args.name, "drift"), body, f"drift settings of {args.name}")
    if args.check:
        _run(ctx, args, deployment_path(args.name, "drift-check"), wire.Empty(), f"drift check of {args.name}")
    state, raw = ctx.client.get_with_body(deployment_path(args.name, "drift"), wire.DriftStatus)
    ctx.out.data(raw, render.drift(state))
    return EXIT_OK


def reconcile(args: argparse.Namespace, ctx: Context) -> int:
    accepted = ctx.client.send("POST", deployment_path(args.name, "reconcile"), wire.Empty(), wire.Accepted)
    return finish_write(ctx, args, accepted, f"reconcile {args.name}")
