"""The command line of the user commands: argparse definitions and the parsing of
`K=V` pairs, with no network and no server code, so it is tested on its own.

Every subcommand records its name in `args.command`; `api.cli` maps the name to the
function that runs it. Admin commands (database) are listed for `--help` only: they
are dispatched to `api.cli.admin` before this parser sees them.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence

from api.cli.errors import EXIT_USAGE, CliError

# C identifiers, as the API wants env keys; checked here too so a typo is a usage
# error before anything is sent.
ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
VISIBILITIES = ("public", "internal")
STRATEGIES = ("rolling", "recreate")
POLICIES = ("digest", "patch", "minor", "major")
DRIFT_POLICIES = ("report", "reconcile")

ADMIN_COMMANDS = {
    "bootstrap": "admin, on the database: create the first admin and its API key",
    "migrate": "admin, on the database: upgrade the schema",
    "stack-config": "admin, on the database: a deployment's stack config file, for the pulumi CLI",
    "users": "admin, on the database: create and list users, set tiers",
    "teams": "admin, on the database: create teams, add members, set tiers",
    "keys": "admin, on the database: create, list and revoke API keys",
    "billing": "admin, on the database: list billing events",
}

EPILOG = """\
Log in once with `shipstack login URL` (the API key is read from stdin), or set
SHIPSTACK_URL and SHIPSTACK_TOKEN. Exit codes: 0 ok, 1 failed operation or server
error, 2 usage, 3 not found, 4 not logged in / key refused / not allowed.
"""


def env_pair(text: str) -> tuple[str, str]:
    """`KEY=value` (the value may hold `=` and be empty)."""
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    if not ENV_KEY.fullmatch(key):
        raise argparse.ArgumentTypeError(f"{key!r} is not a valid variable name (letters, digits, _)")
    return key, value


def env_key(text: str) -> str:
    if not ENV_KEY.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid variable name (letters, digits, _)")
    return text


def env_dict(pairs: Sequence[tuple[str, str]] | None) -> dict[str, str]:
    """Later pairs win, as in a shell."""
    return dict(pairs or [])


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return value


class ConfigAction:
    """`config NAME`, `config set NAME K=V ...` or `config unset NAME K ...`."""

    def __init__(self, words: Sequence[str]) -> None:
        usage = "usage: shipstack config NAME | config set NAME K=V ... | config unset NAME K ..."
        if len(words) == 1:
            self.action, self.name, self.set, self.unset = "show", words[0], {}, []
            return
        if words[0] not in ("set", "unset") or len(words) < 3:
            raise CliError(f"cannot read `config {' '.join(words)}`", EXIT_USAGE, usage)
        self.action, self.name = words[0], words[1]
        try:
            if self.action == "set":
                self.set, self.unset = env_dict([env_pair(w) for w in words[2:]]), []
            else:
                self.set, self.unset = {}, [env_key(w) for w in words[2:]]
        except argparse.ArgumentTypeError as exc:
            raise CliError(str(exc), EXIT_USAGE, usage) from None


def _command(
    sub: argparse._SubParsersAction, name: str, help_: str, *parents: argparse.ArgumentParser
) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_, description=help_, parents=list(parents))
    p.set_defaults(command=name)
    return p


def _flag_parents() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    json_only = argparse.ArgumentParser(add_help=False)
    json_only.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    write = argparse.ArgumentParser(add_help=False, parents=[json_only])
    write.add_argument("--no-wait", action="store_true", help="answer once the change is queued")
    return json_only, write


def _placement(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", help="deployment name (DNS label; generated when left out)")
    p.add_argument("--env", type=env_pair, action="append", metavar="K=V", help="environment variable (repeatable)")
    p.add_argument("--internal", action="store_true", help="no public ingress")
    p.add_argument("--team", type=int, metavar="ID", help="create it in this team")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shipstack",
        description="Deploy and manage templates and container images on a shipstack service.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    read, write = _flag_parents()

    p = _command(sub, "login", "store the service URL and an API key (read from stdin)")
    p.add_argument("url", help="e.g. http://127.0.0.1:8000")
    p.add_argument("--token-stdin", action="store_true", help="read the key from stdin without a prompt")
    _command(sub, "logout", "forget the stored URL and key")
    _command(sub, "templates", "list the templates", read)

    p = _command(sub, "deploy", "deploy a template", write)
    p.add_argument("template")
    _placement(p)
    p = _command(sub, "deploy-image", "deploy a container image", write)
    p.add_argument("image")
    p.add_argument("--port", type=int, help="the port the container listens on (the service's default: 8080)")
    _placement(p)

    p = _command(sub, "ls", "list deployments", read)
    p.add_argument("--team", type=int, metavar="ID", help="only this team's")
    p = _command(sub, "status", "show a deployment's status", read)
    p.add_argument("name")
    p.add_argument("--wait", action="store_true", help="wait until it is Ready (exit 0) or in Error (exit 1)")
    p.add_argument("--timeout", type=positive_int, default=600, metavar="S", help="with --wait (default 600)")

    p = _command(sub, "logs", "show a deployment's logs", read)
    p.add_argument("name")
    p.add_argument("-f", "--follow", action="store_true", help="keep streaming new lines (resumes after drops)")
    p.add_argument("--tail", type=positive_int, default=100, metavar="N", help="lines of history (default 100)")
    p.add_argument("--service", help="of a multi-service template (default: its first)")

    p = _command(sub, "config", "show, set or unset env vars", write)
    p.add_argument("words", nargs="+", metavar="NAME | set NAME K=V ... | unset NAME K ...")

    p = _command(sub, "restart", "restart a deployment's pods", write)
    p.add_argument("name")
    p = _command(sub, "history", "list a deployment's revisions", read)
    p.add_argument("name")
    p = _command(sub, "rollback", "apply the config a revision ran with, as a new revision", write)
    p.add_argument("name")
    p.add_argument("revision", type=int)
    p = _command(sub, "preview", "what a change would do, changing nothing", read)
    p.add_argument("name")
    p.add_argument("--env", type=env_pair, action="append", metavar="K=V", help="as `config set` would (repeatable)")
    p.add_argument("--image", help="another image")
    p.add_argument("--visibility", choices=VISIBILITIES)

    p = _command(sub, "auto-update", "show, or change, how the deployment follows new image tags", write)
    p.add_argument("name")
    on_off = p.add_mutually_exclusive_group()
    on_off.add_argument("--enable", dest="enabled", action="store_const", const=True)
    on_off.add_argument("--disable", dest="enabled", action="store_const", const=False)
    p.add_argument("--strategy", choices=STRATEGIES)
    p.add_argument("--policy", choices=POLICIES)
    p.add_argument("--include", metavar="REGEX", help="only tags matching ('' clears)")
    p.add_argument("--exclude", metavar="REGEX", help="never tags matching ('' clears)")
    p.add_argument("--interval", type=positive_int, metavar="S", help="seconds between polls (0: the default)")
    p.add_argument("--prerelease", action=argparse.BooleanOptionalAction, help="consider pre-release tags")

    p = _command(sub, "drift", "show what differs between the cluster and the deployment, or check now", write)
    p.add_argument("name")
    p.add_argument("--check", action="store_true", help="run a drift check now (queued) and wait for it")
    p.add_argument("--policy", choices=DRIFT_POLICIES, help="report drift, or also reconcile it automatically")
    every = p.add_mutually_exclusive_group()
    every.add_argument("--interval", type=positive_int, metavar="S", help="seconds between scheduled checks (0: never)")
    every.add_argument("--default-interval", action="store_true", help="follow the service's interval again")
    p = _command(sub, "reconcile", "apply the spec again over edits made in the cluster, as a revision", write)
    p.add_argument("name")

    p = _command(sub, "rm", "delete a deployment", write)
    p.add_argument("name")

    for name, help_ in ADMIN_COMMANDS.items():
        sub.add_parser(name, help=help_, add_help=False)
    return parser


def auto_update_changes(args: argparse.Namespace) -> bool:
    """Whether `auto-update` was asked to change anything (else it shows the settings)."""
    fields = ("enabled", "strategy", "policy", "include", "exclude", "interval", "prerelease")
    return any(getattr(args, f) is not None for f in fields)
