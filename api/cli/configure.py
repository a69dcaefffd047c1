"""A deployment's configuration and revisions: config (show, set, unset), preview,
history, rollback.

The API's `PUT /api/deployments/config` replaces the whole env, so `config set` and
`config unset` read the env in force (or the newest one still queued), change the
keys given and send the result back. Two people doing that at the same moment can
lose one change: the API has no way to say "only if it is still this".
"""

from __future__ import annotations

import argparse

from api.cli import render, wire
from api.cli.client import deployment_path
from api.cli.context import Context
from api.cli.errors import EXIT_OK
from api.cli.parser import ConfigAction, env_dict
from api.cli.waiting import finish_write


def _current_env(ctx: Context, name: str) -> tuple[dict[str, str], bytes]:
    body, raw = ctx.client.get_with_body("/api/deployments/config", wire.Config, params={"name": name})
    return body.configData, raw


def merged_env(current: dict[str, str], set_: dict[str, str], unset: list[str]) -> tuple[dict[str, str], list[str]]:
    """The env after the change, and the keys to unset that were not set."""
    missing = [k for k in unset if k not in current]
    env = {k: v for k, v in current.items() if k not in unset}
    env.update(set_)
    return env, missing


def config(args: argparse.Namespace, ctx: Context) -> int:
    action = ConfigAction(args.words)
    current, raw = _current_env(ctx, action.name)
    if action.action == "show":
        ctx.out.data(raw, render.config(current))
        return EXIT_OK
    env, missing = merged_env(current, action.set, action.unset)
    for key in missing:
        ctx.out.info(f"{key} is not set on {action.name}")
    if env == current:
        ctx.out.info(f"config {action.name}: no change")
        return EXIT_OK
    accepted = ctx.client.send(
        "PUT", "/api/deployments/config", wire.ConfigUpdate(deployment_name=action.name, configData=env), wire.Accepted
    )
    keys = sorted(action.set) + [k for k in action.unset if k not in missing]
    return finish_write(ctx, args, accepted, f"config {action.name} ({action.action} {', '.join(keys)})")


def preview(args: argparse.Namespace, ctx: Context) -> int:
    env = None
    if args.env:
        # As `config set` would do it: the given keys over the env in force.
        env, _ = merged_env(_current_env(ctx, args.name)[0], env_dict(args.env), [])
    body = wire.PreviewRequest(configData=env, image=args.image, visibility=args.visibility)
    result, raw = ctx.client.send_with_body("POST", deployment_path(args.name, "preview"), body, wire.Preview)
    ctx.out.data(raw, render.preview(result))
    return EXIT_OK


def history(args: argparse.Namespace, ctx: Context) -> int:
    body, raw = ctx.client.get_with_body(deployment_path(args.name, "history"), wire.History)
    ctx.out.data(raw, render.history(body.revisions))
    return EXIT_OK


def rollback(args: argparse.Namespace, ctx: Context) -> int:
    body = wire.RollbackRequest(version=args.revision)
    accepted = ctx.client.send("POST", deployment_path(args.name, "rollback"), body, wire.Accepted)
    return finish_write(ctx, args, accepted, f"rollback {args.name} to revision {args.revision}")
