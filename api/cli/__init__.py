"""`shipstack`, the command line: dispatches each command to the module that runs it.

Admin commands (bootstrap, migrate, users, teams, keys, billing) work straight
against the service's database, as they always have (`api.cli.admin`). User
commands (login, deploy, ls, logs, ...) speak only the REST API of a running
service (`api.cli.client`), so they run anywhere the API can be reached and import
nothing of the server. `shipstack --help` lists both.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from api.cli import account, auto_update, configure, deploy, drift, logs
from api.cli.context import Context
from api.cli.errors import EXIT_USAGE, CliError
from api.cli.parser import ADMIN_COMMANDS, build_parser
from api.cli.render import Output

if TYPE_CHECKING:
    from stacks.settings import Settings

Command = Callable[[argparse.Namespace, Context], int]

COMMANDS: dict[str, Command] = {
    "login": account.login,
    "logout": account.logout,
    "templates": deploy.templates,
    "deploy": deploy.deploy,
    "deploy-image": deploy.deploy_image,
    "ls": deploy.ls,
    "status": deploy.status,
    "restart": deploy.restart,
    "rm": deploy.rm,
    "logs": logs.logs,
    "config": configure.config,
    "preview": configure.preview,
    "history": configure.history,
    "rollback": configure.rollback,
    "auto-update": auto_update.auto_update,
    "drift": drift.drift,
    "reconcile": drift.reconcile,
}

EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    """`settings` is for the admin commands (tests give their database)."""
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0] in ADMIN_COMMANDS:
        from api.cli import admin  # the database layer, only for the commands that need it

        return admin.main(words, settings=settings)
    return run(words)


def run(words: Sequence[str]) -> int:
    """A user command, with its failures turned into messages on stderr and an exit code."""
    try:
        args = build_parser().parse_args(words)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    ctx = Context(out=Output(json=getattr(args, "json", False)))
    try:
        return COMMANDS[args.command](args, ctx)
    except CliError as exc:
        for line in exc.lines():
            ctx.out.info(line)
        return exc.exit_code
    except KeyboardInterrupt:
        ctx.out.info("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`shipstack logs -f | head`): stop quietly, and keep
        # Python from complaining when it flushes stdout at exit.
        _silence_stdout()
        return 0
    finally:
        ctx.close()


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
