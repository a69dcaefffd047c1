"""The OpenAPI document tells the truth: schemathesis, run against the served
`/api/openapi.json` with a real key, finds nothing.

The service is the real app (`build_app(run_operations=False)`: writes queue their
operations, no Pulumi runs) served by uvicorn on a free loopback port, on SQLite,
with no cluster (its routes answer 503, as documented). Every check the pinned
schemathesis has runs, in every phase (examples, coverage, fuzzing, stateful),
bounded per operation and with a fixed seed. The routes that revoke keys run in a
second pass with a key of their own, so the main run keeps its credentials.

Where a rule depends on more than one field or on stored data, the schema cannot
state it, and a schema-valid request is rightly a 400: those operations (and only
those) list 400 as an answer to schema-valid data, each with its reason. The same
for 503 where the test has no cluster or engine to ask.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from api.auth.principal import ALL_SCOPES
from api.deployments.reads import MAX_WAIT_S
from api.http.app import build_app
from api.http.context import context_of
from stacks.settings import Settings
from tests.contract import run_schemathesis
from tests.seed import Seed
from tests.serving import serve

pytestmark = pytest.mark.slow  # about a minute and a half: `make test` runs it, `make test-unit` does not

SEED = 20261201
MAX_EXAMPLES = 15
PASSWORD = "a long enough password"
REVOKING = r"/revoke$"

# Schema-valid requests these operations rightly refuse with 400, and why.
RULES_BEYOND_THE_SCHEMA: dict[str, str] = {
    "GET /api/deployments$": "X-Team-Id and team_id must agree when both are given",
    "POST /api/deployments$": "a template's required env vars; X-Team-Id, team_id and the body's team_id must agree",
    "POST /api/deployments/deploy-image$": "the image reference grammar (registry, path, tag, digest)",
    "POST /api/deployments/{name}/preview$": "the image reference grammar; the changed spec as a whole",
    "PUT /api/deployments/config$": "a template's required env vars; the size of the env values together",
    "PUT /api/deployments/auto-update$": "include and exclude must compile as RE2 expressions",
    "POST /api/admin/keys$": "the admin scope needs an admin user, a team needs a member",
    "POST /api/keys$": "a team needs a member",
    "GET /api/deployments/{name}/logs": "the service must be one of the deployment's (logs and logs/stream)",
    "GET /api/deployments/{name}/metrics$": "the service must be one of the deployment's",
    "PUT /api/deployments/{name}/drift$": "a change must name policy, intervalSeconds or both",
}
SCHEMA_VALID_ANSWERS = ["2xx", "3xx", 400, 401, 403, 404, 409, 429, "5xx"]
# What answers 503 here because the test has no cluster and no Pulumi state.
NEEDS_CLUSTER_OR_ENGINE = r"^/api/deployments/\{name\}/(logs|logs/stream|metrics|events|history|preview)$"


def _operation_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [
        {
            # The name is the operation's label, "METHOD /path" (criteria of one entry are alternatives).
            "include-name-regex": "^" + label.replace("{", r"\{").replace("}", r"\}"),
            "checks": {
                "positive_data_acceptance": {"expected-statuses": ["2xx", "3xx", 400, 401, 403, 404, 409, 429, "5xx"]}
            },
        }
        for label in RULES_BEYOND_THE_SCHEMA
    ]
    # A status long poll rightly answers only after `wait` seconds when nothing changes.
    rules.append({"include-path-regex": "^/api/deployments/status$", "request-timeout": MAX_WAIT_S + 10})
    rules.append(
        {
            "include-path-regex": NEEDS_CLUSTER_OR_ENGINE,
            "checks": {"not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", 503]}},
        }
    )
    return rules


def schemathesis_config(key: str, *, rules: bool = True) -> dict[str, Any]:
    """`rules=False` leaves out the per-operation rules: their selectors would also widen
    a narrowing `schema.include(...)` (schemathesis joins the include filters)."""
    return {
        "seed": SEED,
        "workers": 1,
        "cache": {"enabled": False},  # no replay of earlier runs' failures: the run is what this code does
        "headers": {"Authorization": f"Bearer {key}"},
        # An operation's event stream stays open while its operation is queued (no runner here).
        "request-timeout": 3,
        "max-stream-events": 3,
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES},
        "phases": {"stateful": {"max-steps": 20}},
        "checks": {"enabled": True},
        "operations": _operation_rules() if rules else [],
    }


@dataclass
class Served:
    schema_url: str
    seed: Seed
    admin_key: str
    admin_id: int


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    settings = Settings.from_env(
        {
            "SHIPSTACK_DATA": str(tmp_path / "data"),
            "SHIPSTACK_CACHE": str(tmp_path / "cache"),
            "SHIPSTACK_DATABASE_URL": f"sqlite:///{tmp_path / 'shipstack.db'}",
            "KUBECONFIG": str(tmp_path / "no-cluster"),
            # The rate limit is documented (429 + Retry-After); here it would only slow the run down.
            "SHIPSTACK_RATE_LIMIT": "1000000",
        }
    )
    app = build_app(settings, run_operations=False)
    for base in serve(app):
        seed = Seed(context_of(app.state).db.reads)
        admin = seed.user("admin", admin=True, password=PASSWORD)
        member = seed.user("member", password=PASSWORD)
        team = seed.team("blue", admin, members=[member])
        seed.deployment("web", admin, status="Ready", visibility="public")
        seed.deployment("team-db", admin, team=team, status="Pending", visibility="internal")
        yield Served(f"{base}/api/openapi.json", seed, seed.key(admin, ALL_SCOPES), admin.id)


def test_schemathesis_finds_nothing(served: Served) -> None:
    run = run_schemathesis(
        served.schema_url,
        schemathesis_config(served.admin_key),
        select=lambda schema: schema.exclude(path_regex=REVOKING),
    )
    print(f"schemathesis, main run: {run.summary()}")
    assert run.errors == []
    assert run.failures == [], "\n\n".join(run.failures)
    assert run.operations >= 38 and run.requests > 500


def test_schemathesis_finds_nothing_on_the_revoking_routes(served: Served) -> None:
    """They may revoke the key they run with: a key of their own."""
    own = served.seed.key(served.seed.user("revoker", admin=True), ALL_SCOPES)
    run = run_schemathesis(
        served.schema_url,
        schemathesis_config(own, rules=False),
        select=lambda schema: schema.include(path_regex=REVOKING),
    )
    print(f"schemathesis, revoking routes: {run.summary()}")
    assert run.errors == []
    assert run.failures == [], "\n\n".join(run.failures)
    assert run.operations == 2 and run.requests > 20
