"""programs.templates: the catalog files, env wiring and per-service resolution."""

from __future__ import annotations

import random
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from programs.spec import DeploymentSpec
from programs.templates import (
    GENERATED_SECRET_LENGTH,
    MAX_SERVICE_NAME_LENGTH,
    Service,
    Template,
    TemplateError,
    Volume,
    effective_image,
    fill_generated_env,
    generated_keys,
    get_template,
    keep_generated_env,
    load_catalog,
    required_missing,
    resolve_services,
    validate_for_template,
    validate_template,
)
from programs.tenancy import Compute, Resources

CATALOG = load_catalog()
SIZE = Resources(requests=Compute(cpu="50m", memory="64Mi"), limits=Compute(cpu="500m", memory="256Mi"))


def svc(**kw: object) -> Service:
    return Service(**{"resources": SIZE, **kw})  # type: ignore[arg-type]


def spec(template: str, **kw: object) -> DeploymentSpec:
    base: dict[str, object] = {"name": "abc123xyz7", "template": template, "base_domain": "ex.com"}
    base.update(kw)
    return DeploymentSpec(**base)  # type: ignore[arg-type]


def one(template: Template, **kw: object):
    (service,) = resolve_services(template, spec(template.name, **kw))
    return service


# --- the catalog ---------------------------------------------------------------------


def test_catalog_has_the_promised_templates() -> None:
    assert {"nginx", "postgres", "redis", "webapp", "image"} <= set(CATALOG)
    for name, template in CATALOG.items():
        assert template.name == name
        assert template.description
        assert validate_template(template) == []


@pytest.mark.parametrize(
    ("name", "service", "image", "port", "public"),
    [
        ("nginx", "nginx", "nginx:1.27", 80, True),
        ("postgres", "postgres", "postgres:16", 5432, False),
        ("redis", "redis", "redis:7", 6379, False),
        ("image", "app", "", 8080, True),
    ],
)
def test_single_service_templates(name: str, service: str, image: str, port: int, public: bool) -> None:
    (svc,) = CATALOG[name].services
    assert (svc.name, svc.image, svc.port, svc.public) == (service, image, port, public)


def test_postgres_has_a_volume_and_a_generated_password() -> None:
    (svc,) = CATALOG["postgres"].services
    assert svc.volume == Volume(size="1Gi", mount_path="/var/lib/postgresql/data")
    assert svc.generated_secrets == ("POSTGRES_PASSWORD",)
    # The data directory is a subfolder of the mount (initdb needs an empty folder).
    assert svc.env["PGDATA"].startswith("/var/lib/postgresql/data/")


def test_webapp_is_two_services_wired_together() -> None:
    app, db = CATALOG["webapp"].services
    assert (app.name, app.public, app.volume) == ("app", True, None)
    assert (db.name, db.public, db.image) == ("db", False, "postgres:16")
    assert db.volume is not None
    assert "DATABASE_URL" in app.env
    assert db.user_env is False


def test_only_the_image_template_is_raw() -> None:
    assert [name for name, t in CATALOG.items() if t.raw_image] == ["image"]


def test_get_template() -> None:
    assert get_template("nginx") == CATALOG["nginx"]
    assert get_template("nope") is None


def test_catalog_dict_is_a_copy() -> None:
    catalog = load_catalog()
    catalog.pop("nginx")
    assert "nginx" in load_catalog()


# --- loading and validating files ----------------------------------------------------


def _write(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / f"{name}.yaml").write_text(text)
    return tmp_path


GOOD = """
name: {name}
description: test
services:
  - name: web
    image: nginx:1
    port: 80
    resources:
      requests: {{cpu: 50m, memory: 64Mi}}
      limits: {{cpu: 500m, memory: 256Mi}}
"""


def test_loading_a_directory(tmp_path: Path) -> None:
    _write(tmp_path, "one", GOOD.format(name="one"))
    _write(tmp_path, "two", GOOD.format(name="two"))
    assert sorted(load_catalog(tmp_path)) == ["one", "two"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (GOOD.format(name="other"), "file name"),
        (GOOD.format(name="bad") + "unknown_field: 1\n", "unknown_field"),
        ("name: bad\ndescription: x\nservices: [\n", "bad.yaml"),
        (GOOD.format(name="bad").replace("nginx:1", "NGINX"), "image"),
        (GOOD.format(name="bad").replace("port: 80", "port: 0"), "port"),
        (GOOD.format(name="bad").replace("name: web", "name: 9web"), "DNS"),
    ],
)
def test_invalid_template_files_fail_at_load(tmp_path: Path, text: str, needle: str) -> None:
    _write(tmp_path, "bad", text)
    with pytest.raises(TemplateError, match=needle):
        load_catalog(tmp_path)


def _template(*services: Service, raw_image: bool = False) -> Template:
    return Template(name="t", description="d", services=services, raw_image=raw_image)


@pytest.mark.parametrize(
    "template",
    [
        _template(),
        _template(svc(name="a", image="x:1", port=1), svc(name="a", image="y:1", port=2)),
        _template(svc(name="a" * (MAX_SERVICE_NAME_LENGTH + 1), image="x:1", port=1)),
        _template(svc(name="a", image="", port=1)),
        _template(svc(name="a", image="x:1", port=1, env={"bad-key": "v"})),
        _template(svc(name="a", image="x:1", port=1, required_env=("1BAD",))),
        _template(svc(name="a", image="x:1", port=1, env={"URL": "db://${NOT_PROVIDED}"})),
        _template(svc(name="a", image="x:1", port=1, volume=Volume(size="1GB", mount_path="/d"))),
        _template(svc(name="a", image="x:1", port=1, volume=Volume(size="1Gi", mount_path="rel"))),
        _template(svc(name="a", image="", port=1), svc(name="b", image="", port=2), raw_image=True),
    ],
)
def test_template_rules(template: Template) -> None:
    assert validate_template(template)


def test_service_names_fit_in_host_labels() -> None:
    longest = "a" * MAX_SERVICE_NAME_LENGTH
    assert len(f"{longest}-{'b' * 40}") <= 63
    assert validate_template(_template(svc(name=longest, image="x:1", port=1))) == []


# --- required and generated env ------------------------------------------------------

NEEDS = _template(
    svc(name="a", image="x:1", port=1, required_env=("API_KEY", "REGION")),
    svc(name="b", image="y:1", port=2, required_env=("REGION",), generated_secrets=("TOKEN",)),
)


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({}, ["API_KEY", "REGION"]),
        ({"API_KEY": "k"}, ["REGION"]),
        ({"API_KEY": "k", "REGION": ""}, ["REGION"]),  # empty counts as missing
        ({"API_KEY": "k", "REGION": "eu"}, []),
        ({"api_key": "k", "REGION": "eu"}, ["API_KEY"]),  # names are case-sensitive
    ],
)
def test_required_missing(env: dict[str, str], missing: list[str]) -> None:
    assert required_missing(NEEDS, env) == missing


def test_generated_secrets_are_not_reported_missing() -> None:
    assert required_missing(CATALOG["postgres"], {}) == []
    assert generated_keys(CATALOG["webapp"]) == ["POSTGRES_PASSWORD"]


def test_fill_generated_env_is_deterministic_for_a_seed() -> None:
    template = CATALOG["postgres"]
    first = fill_generated_env(template, {"A": "1"}, random.Random(42))
    again = fill_generated_env(template, {"A": "1"}, random.Random(42))
    other = fill_generated_env(template, {"A": "1"}, random.Random(43))
    assert first == again
    assert first["POSTGRES_PASSWORD"] != other["POSTGRES_PASSWORD"]
    assert first["A"] == "1"
    password = first["POSTGRES_PASSWORD"]
    assert len(password) == GENERATED_SECRET_LENGTH
    assert password.isalnum() and password.isascii()


def test_fill_generated_env_keeps_a_supplied_value_and_does_not_mutate() -> None:
    env = {"POSTGRES_PASSWORD": "mine"}
    filled = fill_generated_env(CATALOG["postgres"], env, secrets.SystemRandom())
    assert filled == {"POSTGRES_PASSWORD": "mine"}
    assert filled is not env
    empty = {"POSTGRES_PASSWORD": ""}
    assert fill_generated_env(CATALOG["postgres"], empty, random.Random(0))["POSTGRES_PASSWORD"]
    assert empty == {"POSTGRES_PASSWORD": ""}


def test_fill_generated_env_once_then_the_spec_keeps_it() -> None:
    """Resolving the same spec twice (two `up`s) yields the same password."""
    env = fill_generated_env(CATALOG["postgres"], {}, secrets.SystemRandom())
    s = spec("postgres", env=env)
    first = one(CATALOG["postgres"], env=env).env["POSTGRES_PASSWORD"]
    assert first == resolve_services(CATALOG["postgres"], s)[0].env["POSTGRES_PASSWORD"]
    assert first == env["POSTGRES_PASSWORD"]


def test_fill_generated_env_without_generated_keys_is_identity() -> None:
    assert fill_generated_env(CATALOG["nginx"], {"A": "1"}, random.Random(0)) == {"A": "1"}


def test_validate_for_template() -> None:
    assert validate_for_template(CATALOG["nginx"], spec("nginx")) == []
    assert validate_for_template(CATALOG["image"], spec("image")) == ["image is required"]
    assert validate_for_template(CATALOG["image"], spec("image", image="app:1")) == []
    assert validate_for_template(CATALOG["nginx"], spec("redis"))
    needs = Template(name="t", description="d", services=NEEDS.services)
    assert validate_for_template(needs, spec("t")) == ["missing required env vars: API_KEY, REGION"]


# --- resolution ----------------------------------------------------------------------


def test_nginx_resolves_to_the_template_defaults() -> None:
    svc = one(CATALOG["nginx"], env={"PORT": "8080"})
    assert (svc.name, svc.image, svc.port) == ("nginx", "nginx:1.27", 80)
    assert svc.env == {"PORT": "8080"}
    assert (svc.replicas, svc.strategy, svc.volume) == (1, "RollingUpdate", None)
    assert svc.host == "abc123xyz7.ex.com"
    assert svc.primary


def test_image_and_port_overrides_apply_to_the_primary_service() -> None:
    svc = one(CATALOG["nginx"], image="nginx:1.26", container_port=8080)
    assert (svc.image, svc.port) == ("nginx:1.26", 8080)
    raw = one(CATALOG["image"], image="myapp:v1.0.0")
    assert (raw.name, raw.image, raw.port) == ("app", "myapp:v1.0.0", 8080)
    raw = one(CATALOG["image"], image="myapp:v1.0.0", container_port=3000)
    assert raw.port == 3000
    app, db = resolve_services(CATALOG["webapp"], spec("webapp", image="ghcr.io/me/app:2"))
    assert app.image == "ghcr.io/me/app:2"
    assert db.image == "postgres:16"


def test_effective_image() -> None:
    assert effective_image(CATALOG["nginx"], spec("nginx")) == "nginx:1.27"
    assert effective_image(CATALOG["nginx"], spec("nginx", image="nginx:1.28")) == "nginx:1.28"
    assert effective_image(CATALOG["image"], spec("image", image="a:1")) == "a:1"


@pytest.mark.parametrize(("visibility", "expected"), [("public", "abc123xyz7.ex.com"), ("internal", None)])
def test_visibility_decides_the_host(visibility: str, expected: str | None) -> None:
    assert one(CATALOG["nginx"], visibility=visibility).host == expected


@pytest.mark.parametrize("template", ["postgres", "redis"])
def test_non_http_templates_get_no_host(template: str) -> None:
    assert one(CATALOG[template]).host is None


def test_hosts_for_several_public_services() -> None:
    template = _template(
        svc(name="db", image="d:1", port=5432),
        svc(name="web", image="w:1", port=80, public=True),
        svc(name="api", image="a:1", port=81, public=True),
    )
    hosts = [s.host for s in resolve_services(template, spec("t"))]
    assert hosts == [None, "abc123xyz7.ex.com", "api-abc123xyz7.ex.com"]


@pytest.mark.parametrize(("strategy", "expected"), [("rolling", "RollingUpdate"), ("recreate", "Recreate")])
def test_strategy_maps_to_kubernetes(strategy: str, expected: str) -> None:
    svc = one(CATALOG["nginx"], strategy=strategy, replicas=3)
    assert (svc.strategy, svc.replicas) == (expected, 3)


def test_volume_services_are_single_and_recreated_whatever_the_spec_says() -> None:
    svc = one(CATALOG["postgres"], strategy="rolling", replicas=5)
    assert (svc.strategy, svc.replicas) == ("Recreate", 1)
    assert svc.volume == Volume(size="1Gi", mount_path="/var/lib/postgresql/data")


def test_webapp_env_wiring() -> None:
    env = {"POSTGRES_PASSWORD": "p@ss/word", "APP_MODE": "prod"}
    app, db = resolve_services(CATALOG["webapp"], spec("webapp", env=env))
    url = urlsplit(app.env["DATABASE_URL"])
    assert (url.scheme, url.hostname, url.port, url.username) == ("postgres", "db", 5432, "postgres")
    # The password is URL-escaped, so special characters cannot break the URL.
    assert url.password == "p%40ss%2Fword"
    assert app.env["APP_MODE"] == "prod"
    # The database gets its own settings only, not the app's env vars.
    assert db.env == {
        "PGDATA": "/var/lib/postgresql/data/pgdata",
        "POSTGRES_PASSWORD": "p@ss/word",
    }
    assert (app.host, db.host) == ("abc123xyz7.ex.com", None)


def test_user_env_overrides_template_defaults() -> None:
    svc = one(CATALOG["postgres"], env={"POSTGRES_PASSWORD": "x", "PGDATA": "/elsewhere"})
    assert svc.env["PGDATA"] == "/elsewhere"


def test_keep_generated_env_on_env_replacement() -> None:
    template = CATALOG["webapp"]
    current = {"POSTGRES_PASSWORD": "generated", "OLD": "1"}
    assert keep_generated_env(template, current, {"NEW": "2"}) == {"NEW": "2", "POSTGRES_PASSWORD": "generated"}
    # A password the user supplies wins; non-generated keys are really replaced.
    assert keep_generated_env(template, current, {"POSTGRES_PASSWORD": "mine"}) == {"POSTGRES_PASSWORD": "mine"}
    assert keep_generated_env(template, current, {"POSTGRES_PASSWORD": ""}) == {"POSTGRES_PASSWORD": "generated"}
    assert keep_generated_env(CATALOG["nginx"], current, {"NEW": "2"}) == {"NEW": "2"}
