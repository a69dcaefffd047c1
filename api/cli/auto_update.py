"""`shipstack auto-update NAME [flags]`: with no flags, the settings and the scheduler's
last decision; with flags, a change of only those settings (the API keeps the others)."""

from __future__ import annotations

import argparse

import msgspec

from api.cli import render, wire
from api.cli.client import deployment_path
from api.cli.context import Context
from api.cli.errors import EXIT_OK
from api.cli.parser import auto_update_changes
from api.cli.waiting import finish_write

UNSET = msgspec.UNSET


def _settings(ctx: Context, name: str) -> tuple[wire.AutoUpdateSettings, bytes]:
    return ctx.client.get_with_body("/api/deployments/auto-update", wire.AutoUpdateSettings, params={"name": name})


def put_body(args: argparse.Namespace, enabled: bool) -> wire.AutoUpdatePut:
    """Only the flags given; '' clears a filter and 0 the interval (null on the wire)."""

    def given(value: object, clear: object) -> object:
        if value is None:
            return UNSET
        return None if value == clear else value

    return wire.AutoUpdatePut(
        deployment_name=args.name,
        enabled=enabled,
        strategy=UNSET if args.strategy is None else args.strategy,
        policy=UNSET if args.policy is None else args.policy,
        include=given(args.include, ""),  # type: ignore[arg-type]
        exclude=given(args.exclude, ""),  # type: ignore[arg-type]
        intervalSeconds=given(args.interval, 0),  # type: ignore[arg-type]
        prerelease=UNSET if args.prerelease is None else args.prerelease,
    )


def auto_update(args: argparse.Namespace, ctx: Context) -> int:
    if not auto_update_changes(args):
        settings, raw_settings = _settings(ctx, args.name)
        state, raw_state = ctx.client.get_with_body(
            deployment_path(args.name, "auto-update/status"), wire.AutoUpdateStatus
        )
        both = msgspec.json.encode({"settings": msgspec.Raw(raw_settings), "status": msgspec.Raw(raw_state)})
        ctx.out.data(both, render.auto_update(settings, state))
        return EXIT_OK
    # `enabled` is required by the API: keep the current value unless told.
    enabled = args.enabled if args.enabled is not None else _settings(ctx, args.name)[0].enabled
    accepted = ctx.client.send("PUT", "/api/deployments/auto-update", put_body(args, enabled), wire.Accepted)
    # The API's message says what the settings now are: "auto-update enabled (rolling, digest)".
    return finish_write(ctx, args, accepted, f"{accepted.message or 'auto-update'} on {args.name}")
