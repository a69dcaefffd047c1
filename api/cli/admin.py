"""`shipstack` command line: accounts, keys and billing, straight against the database.

    shipstack bootstrap [--name admin]
    shipstack users create NAME [--admin] [--password-stdin] [--tier T]
    shipstack users list
    shipstack users set-tier NAME TIER
    shipstack teams create NAME --owner USER [--tier T]
    shipstack teams add-member TEAM USER [--role member|owner]
    shipstack teams set-tier TEAM TIER
    shipstack keys create --user NAME --scopes deployments:read,deployments:write
                          [--name N] [--expires-days D] [--team TEAM]
    shipstack keys list [--user NAME]
    shipstack keys revoke PREFIX
    shipstack billing events [--limit N]
    shipstack stack-config NAME [--out FILE]
    shipstack migrate

The database comes from the service settings (SHIPSTACK_DATABASE_URL, or the SQLite
file in the data folder) and is migrated first. A created key is printed once, on
stdout alone, so `KEY=$(shipstack keys create ...)` works; everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.accounts import service as accounts
from api.auth.principal import ALL_SCOPES
from api.auth.schemas import key_status
from api.errors import Invalid, NotFound, ServiceError, exit_code
from persistence import accounts as q
from persistence.base import utcnow
from persistence.billing import list_billing_events
from persistence.db import make_engine, migrate, session_factory
from persistence.keys import list_keys
from persistence.models import TEAM_ROLES, TIERS, Deployment
from stacks.settings import Settings

Command = Callable[[argparse.Namespace, Session], int]


def _info(message: str) -> None:
    print(message, file=sys.stderr)


def _read_password(args: argparse.Namespace) -> str | None:
    if not args.password_stdin:
        return None
    password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 8:
        raise Invalid("password must be at least 8 characters", "bad_request")
    return password


def cmd_bootstrap(args: argparse.Namespace, db: Session) -> int:
    created = accounts.bootstrap_admin(db, args.name)
    if created is None:
        _info("users already exist; nothing to bootstrap")
        return 0
    db.commit()
    user, key = created
    _info(f"created admin user '{user.name}'. Its API key, shown only now:")
    print(key)
    return 0


def cmd_users_create(args: argparse.Namespace, db: Session) -> int:
    user = accounts.create_user(db, args.name, password=_read_password(args), is_admin=args.admin, tier=args.tier)
    db.commit()
    _info(f"created user '{user.name}' (id {user.id}{', admin' if user.is_admin else ''})")
    return 0


def cmd_users_list(_args: argparse.Namespace, db: Session) -> int:
    for u in q.list_users(db):
        print(f"{u.id}\t{u.name}\t{u.tier}\t{'admin' if u.is_admin else '-'}")
    return 0


def cmd_users_set_tier(args: argparse.Namespace, db: Session) -> int:
    user = accounts.require_user_by_name(db, args.name)
    changed = accounts.change_user_tier(db, user, args.tier)
    db.commit()
    _info(f"user '{user.name}' tier: {user.tier}{'' if changed else ' (unchanged)'}")
    return 0


def cmd_teams_create(args: argparse.Namespace, db: Session) -> int:
    owner = accounts.require_user_by_name(db, args.owner)
    team = accounts.create_team(db, args.name, owner=owner, tier=args.tier)
    db.commit()
    _info(f"created team '{team.name}' (id {team.id}) owned by '{owner.name}'")
    return 0


def cmd_teams_add_member(args: argparse.Namespace, db: Session) -> int:
    team = accounts.require_team_by_name(db, args.team)
    user = accounts.require_user_by_name(db, args.user)
    accounts.set_team_member(db, team, user, args.role)
    db.commit()
    _info(f"'{user.name}' is now {args.role} of team '{team.name}'")
    return 0


def cmd_teams_set_tier(args: argparse.Namespace, db: Session) -> int:
    team = accounts.require_team_by_name(db, args.team)
    changed = accounts.change_team_tier(db, team, args.tier)
    db.commit()
    _info(f"team '{team.name}' tier: {team.tier}{'' if changed else ' (unchanged)'}")
    return 0


def cmd_keys_create(args: argparse.Namespace, db: Session) -> int:
    user = accounts.require_user_by_name(db, args.user)
    scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
    team_id = accounts.require_team_by_name(db, args.team).id if args.team else None
    row, key = accounts.issue_api_key(
        db,
        user,
        scopes=scopes,
        name=args.name,
        team_id=team_id,
        expires_at=accounts.expiry_from_days(args.expires_days),
    )
    db.commit()
    expiry = row.expires_at.isoformat() if row.expires_at else "never"
    _info(f"created key {row.prefix} for '{user.name}' ({', '.join(row.scopes)}; expires {expiry})")
    _info("the key is shown only now:")
    print(key)
    return 0


def cmd_keys_list(args: argparse.Namespace, db: Session) -> int:
    user_id = accounts.require_user_by_name(db, args.user).id if args.user else None
    now = utcnow()
    for k in list_keys(db, user_id=user_id):
        expires = k.expires_at.isoformat() if k.expires_at else "-"
        used = k.last_used_at.isoformat() if k.last_used_at else "-"
        print(
            f"{k.prefix}\t{k.user.name}\t{key_status(k, now)}\t{','.join(k.scopes)}"
            f"\texpires={expires}\tlast_used={used}\t{k.name}"
        )
    return 0


def cmd_keys_revoke(args: argparse.Namespace, db: Session) -> int:
    key = accounts.revoke_api_key(db, args.prefix)
    db.commit()
    _info(f"revoked {key.prefix}")
    return 0


def cmd_billing_events(args: argparse.Namespace, db: Session) -> int:
    users = {u.id: u.name for u in q.list_users(db)}
    teams = {t.id: t.name for t in q.list_teams(db)}
    for e in list_billing_events(db, limit=args.limit):
        detail = " ".join(f"{k}={v}" for k, v in (e.detail or {}).items())
        print(
            "\t".join(
                [
                    e.at.isoformat(),
                    e.kind,
                    f"user={users.get(e.user_id, e.user_id) if e.user_id else '-'}",
                    f"team={teams.get(e.team_id, e.team_id) if e.team_id else '-'}",
                    f"deployment={e.deployment_name or '-'}",
                    f"template={e.template or '-'}",
                    detail,
                ]
            ).rstrip()
        )
    return 0


def cmd_stack_config(args: argparse.Namespace, db: Session) -> int:
    """The deployment's stack config file of record, for the ordinary pulumi CLI
    (`pulumi preview -s NAME --config-file FILE`): secrets stay encrypted in it."""
    text = db.scalar(select(Deployment.stack_config).where(Deployment.name == args.name))
    if text is None:
        raise NotFound(f"Deployment '{args.name}' not found, or never updated")
    if args.out is None:
        sys.stdout.write(text)
        return 0
    descriptor = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)
    _info(f"wrote {args.out}")
    return 0


def cmd_migrate(_args: argparse.Namespace, _db: Session) -> int:
    _info("database is at the latest schema")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shipstack", description="shipstack administration")
    sub = parser.add_subparsers(dest="group", required=True)

    p = sub.add_parser("bootstrap", help="on an empty database, create the first admin and key")
    p.add_argument("--name", default="admin")
    p.set_defaults(func=cmd_bootstrap)

    sub.add_parser("migrate", help="upgrade the database schema").set_defaults(func=cmd_migrate)

    users = sub.add_parser("users").add_subparsers(dest="action", required=True)
    p = users.add_parser("create")
    p.add_argument("name")
    p.add_argument("--admin", action="store_true")
    p.add_argument("--password-stdin", action="store_true", help="read a password from stdin")
    p.add_argument("--tier", choices=TIERS, default="free")
    p.set_defaults(func=cmd_users_create)
    users.add_parser("list").set_defaults(func=cmd_users_list)
    p = users.add_parser("set-tier")
    p.add_argument("name")
    p.add_argument("tier", choices=TIERS)
    p.set_defaults(func=cmd_users_set_tier)

    teams = sub.add_parser("teams").add_subparsers(dest="action", required=True)
    p = teams.add_parser("create")
    p.add_argument("name")
    p.add_argument("--owner", required=True)
    p.add_argument("--tier", choices=TIERS, default="free")
    p.set_defaults(func=cmd_teams_create)
    p = teams.add_parser("add-member")
    p.add_argument("team")
    p.add_argument("user")
    p.add_argument("--role", choices=TEAM_ROLES, default="member")
    p.set_defaults(func=cmd_teams_add_member)
    p = teams.add_parser("set-tier")
    p.add_argument("team")
    p.add_argument("tier", choices=TIERS)
    p.set_defaults(func=cmd_teams_set_tier)

    keys = sub.add_parser("keys").add_subparsers(dest="action", required=True)
    p = keys.add_parser("create")
    p.add_argument("--user", required=True)
    p.add_argument("--scopes", required=True, help=f"comma-separated: {','.join(ALL_SCOPES)}")
    p.add_argument("--name", default="")
    p.add_argument("--expires-days", type=int, default=None)
    p.add_argument("--team", default=None, help="bind the key to this team")
    p.set_defaults(func=cmd_keys_create)
    p = keys.add_parser("list")
    p.add_argument("--user", default=None)
    p.set_defaults(func=cmd_keys_list)
    p = keys.add_parser("revoke")
    p.add_argument("prefix")
    p.set_defaults(func=cmd_keys_revoke)

    p = sub.add_parser("stack-config", help="print or write a deployment's stack config file")
    p.add_argument("name")
    p.add_argument("--out", default=None, help="write it here, readable only by you")
    p.set_defaults(func=cmd_stack_config)

    billing = sub.add_parser("billing").add_subparsers(dest="action", required=True)
    p = billing.add_parser("events")
    p.add_argument("--limit", type=int, default=100)
    p.set_defaults(func=cmd_billing_events)
    return parser


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = settings or Settings.from_env()
    engine = make_engine(settings.service.database_url)
    try:
        if engine.dialect.name == "sqlite" and engine.url.database:
            Path(engine.url.database).parent.mkdir(parents=True, exist_ok=True)
        migrate(engine)
        # IMMEDIATE: commands read, then write (bootstrap counts users first). A
        # deferred read would fail with "database is locked" if a running worker
        # committed in between, where an immediate one waits its turn.
        with session_factory(engine, immediate=True)() as db:
            return args.func(args, db)
    except ServiceError as exc:
        _info(f"error: {exc.message} ({exc.code})")
        return exit_code(exc)
    finally:
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
