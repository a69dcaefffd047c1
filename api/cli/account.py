"""`shipstack login URL` and `shipstack logout`: check an API key against the service
and keep it, or forget it."""

from __future__ import annotations

import argparse
import getpass

from api.cli import userconfig, wire
from api.cli.client import Client
from api.cli.context import Context
from api.cli.errors import EXIT_AUTH, EXIT_USAGE, ApiFailure, CliError


def _read_token(ctx: Context, no_prompt: bool) -> str:
    if not no_prompt and ctx.stdin.isatty():
        token = getpass.getpass("API key: ", stream=ctx.out.stderr)
    else:
        token = ctx.stdin.readline()
    token = token.strip()
    if not token:
        raise CliError("no API key given", EXIT_USAGE, 'pipe it in: `echo "$KEY" | shipstack login URL --token-stdin`')
    return token


def login(args: argparse.Namespace, ctx: Context) -> int:
    url = userconfig.normalize_url(args.url)
    token = _read_token(ctx, args.token_stdin)
    with Client(url, token) as client:
        try:
            me = client.get("/api/auth/me", wire.WhoAmI)
        except ApiFailure as exc:
            if exc.status != 401:
                raise
            raise CliError(
                f"{url} refused this API key: {exc.api_message}; nothing was stored",
                EXIT_AUTH,
                "check the key (`shipstack keys list` on the server lists them), or ask an admin for a new one",
            ) from None
    path = userconfig.config_path(ctx.env)
    userconfig.save(path, userconfig.Login(url=url, token=token))
    ctx.out.info(f"logged in to {url} as {me.user.name} ({', '.join(me.scopes) or 'no scopes'}); saved in {path}")
    if "deployments:write" not in me.scopes:
        ctx.out.info("note: this key cannot change deployments (it lacks deployments:write)")
    overriding = [n for n in (userconfig.ENV_URL, userconfig.ENV_TOKEN) if ctx.env.get(n)]
    if overriding:
        ctx.out.info(f"note: {' and '.join(overriding)} set in this shell override the stored login")
    return 0


def logout(_args: argparse.Namespace, ctx: Context) -> int:
    path = userconfig.config_path(ctx.env)
    if userconfig.remove(path):
        ctx.out.info(f"logged out: removed {path}")
    else:
        ctx.out.info(f"not logged in (no {path})")
    return 0
