"""What each page shows at first, read through the same service functions the JSON
routes call (everything after that, every write included, is the browser calling
the JSON API with the session cookie and the X-CSRF-Token header)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from api.auth.guards import need
from api.auth.principal import READ, Principal
from api.autoupdate import service as autoupdate
from api.deployments import reads, templates
from api.deployments import service as deployments
from api.deployments.tenancy import resolve_team_context
from api.errors import ServiceError
from persistence.accounts import get_team
from programs.spec import STRATEGIES, UPDATE_POLICIES, VISIBILITIES
from programs.templates import load_catalog
from stacks.settings import Settings


def teams_of(db: Session, principal: Principal) -> list[dict[str, Any]]:
    """The caller's teams with their names, for the team selectors."""
    out = []
    for team_id in sorted(principal.accessible_team_ids):
        team = get_team(db, team_id)
        label = team.name if team else f"team {team_id}"
        out.append({"id": team_id, "name": label, "role": principal.teams[team_id]})
    return out


def templates_for_form() -> list[dict[str, Any]]:
    """The catalog as `GET /api/templates` answers it, plus what the form needs to know."""
    catalog = load_catalog()
    out = []
    for t in templates.list_templates().templates:
        if t.name == "image":  # the raw-image template is the other form
            continue
        source = catalog[t.name]
        generated = sorted({k for s in source.services for k in s.generated_secrets})
        required = sorted({k for s in t.services for k in s.requiredEnv})
        out.append(
            {
                "name": t.name,
                "description": t.description,
                "services": [s.name for s in t.services],
                "images": [s.image for s in t.services],
                "required": required,
                "generated": [k for k in generated if k not in required],
                "defaults": {k: v for s in t.services for k, v in s.defaultEnv.items()},
            }
        )
    return out


def list_view(db: Session, principal: Principal, team_id: str | None) -> dict[str, Any]:
    need(principal, READ)
    team = resolve_team_context(principal, team_id)
    return {
        "items": reads.list_deployments(db, principal, team),
        "teams": teams_of(db, principal),
        "team_id": team,
        "api_list_url": "/api/deployments" + (f"?team_id={team}" if team is not None else ""),
    }


def create_view(db: Session, principal: Principal, team_id: str | None) -> dict[str, Any]:
    need(principal, READ)
    team = resolve_team_context(principal, team_id)
    return {
        "templates": templates_for_form(),
        "teams": teams_of(db, principal),
        "team_id": team,
        "visibilities": VISIBILITIES,
    }


def detail_view(db: Session, principal: Principal, name: str, settings: Settings) -> dict[str, Any]:
    """A deployment's page; the config and auto-update parts carry their own error
    instead of failing the whole page."""
    need(principal, READ)
    item = reads.get_item(db, principal, name)
    view: dict[str, Any] = {
        "item": item,
        "status": reads.status(db, principal, name),
        "config": {},
        "config_error": None,
        "auto": None,
        "auto_error": None,
        "strategies": STRATEGIES,
        "policies": UPDATE_POLICIES,
    }
    try:
        view["config"] = deployments.get_config(db, principal, name, settings).configData
    except ServiceError as exc:
        view["config_error"] = exc.message
    try:
        view["auto"] = autoupdate.get_settings(db, principal, name, settings)
    except ServiceError as exc:
        view["auto_error"] = exc.message
    template = load_catalog().get(item.template)
    view["services"] = [s.name for s in template.services] if template else []
    return view
