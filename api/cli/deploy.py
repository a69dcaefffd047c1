"""The life of a deployment: templates, deploy, deploy-image, ls, status, restart, rm."""

from __future__ import annotations

import argparse

from api.cli import render, wire
from api.cli.context import Context
from api.cli.errors import EXIT_FAILED, EXIT_OK
from api.cli.parser import env_dict
from api.cli.waiting import finish_write, wait_settled


def templates(_args: argparse.Namespace, ctx: Context) -> int:
    body, raw = ctx.client.get_with_body("/api/templates", wire.Templates)
    ctx.out.data(raw, render.templates(body.templates))
    return EXIT_OK


def _created(args: argparse.Namespace, ctx: Context, accepted: wire.Accepted, what: str) -> int:
    """Waits for the create, then names the deployment on stdout and says where it answers."""
    ctx.out.info(f"deploying {what} as {accepted.name}")
    code = finish_write(ctx, args, accepted, f"create {accepted.name}")
    if not ctx.out.json:
        ctx.out.result(accepted.name)  # so `NAME=$(shipstack deploy nginx)` works
    if not args.no_wait:
        status = ctx.client.get("/api/deployments/status", wire.Status, params={"name": accepted.name})
        urls = " ".join(i.url for i in status.ingresses)
        ctx.out.info(f"{accepted.name} is {status.status}{': ' + urls if urls else ''}")
    return code


def deploy(args: argparse.Namespace, ctx: Context) -> int:
    body = wire.CreateRequest(
        template=args.template,
        envVars=env_dict(args.env),
        visibility="internal" if args.internal else None,
        name=args.name,
        team_id=args.team,
    )
    accepted = ctx.client.send("POST", "/api/deployments", body, wire.Accepted)
    return _created(args, ctx, accepted, f"template {args.template}")


def deploy_image(args: argparse.Namespace, ctx: Context) -> int:
    body = wire.DeployImageRequest(
        image=args.image,
        name=args.name,
        containerPort=args.port,
        envVars=env_dict(args.env),
        visibility="internal" if args.internal else None,
        team_id=args.team,
    )
    accepted = ctx.client.send("POST", "/api/deployments/deploy-image", body, wire.Accepted)
    return _created(args, ctx, accepted, f"image {args.image}")


def ls(args: argparse.Namespace, ctx: Context) -> int:
    params = {"team_id": args.team} if args.team is not None else None
    items, raw = ctx.client.get_with_body("/api/deployments", list[wire.DeploymentItem], params=params)
    ctx.out.data(raw, render.deployments(items) if items else "")
    if not items and not ctx.out.json:
        ctx.out.info("no deployments yet; `shipstack deploy TEMPLATE` creates one (`shipstack templates` lists them)")
    return EXIT_OK


def status(args: argparse.Namespace, ctx: Context) -> int:
    if args.wait:
        current, raw = wait_settled(ctx, args.name, args.timeout)
    else:
        current, raw = ctx.client.get_with_body("/api/deployments/status", wire.Status, params={"name": args.name})
    ctx.out.data(raw, render.status(args.name, current))
    if args.wait and current.status != "Ready":
        settled = current.status == "Error"
        ctx.out.info(
            f"{args.name} is {current.status}" + ("" if settled else f" after {args.timeout} s; it has not settled yet")
        )
        return EXIT_FAILED
    return EXIT_OK


def restart(args: argparse.Namespace, ctx: Context) -> int:
    accepted = ctx.client.send("POST", "/api/deployments/restart", wire.NameRequest(args.name), wire.Accepted)
    return finish_write(ctx, args, accepted, f"restart {args.name}")


def rm(args: argparse.Namespace, ctx: Context) -> int:
    accepted = ctx.client.send("POST", "/api/deployments/delete", wire.NameRequest(args.name), wire.Accepted)
    return finish_write(ctx, args, accepted, f"delete {args.name}", delete=True)
