"""programs.spec: input rules, spec <-> config round trip, revision messages."""

from __future__ import annotations

import random
import re

import msgspec
import pytest

from programs.describe import describe_change
from programs.images import ImageRef, parse_image_ref, validate_image
from programs.names import generate_name, validate_name
from programs.spec import (
    KEY_AUTO_UPDATE,
    KEY_ENV,
    KEY_ENV_KEYS,
    KEY_IMAGE,
    KEY_REPLICAS,
    KEY_TEMPLATE,
    PROGRAM_VERSION,
    SECRET_CONFIG_KEYS,
    SPEC_CONFIG_KEYS,
    AutoUpdate,
    DeploymentSpec,
    SpecConfigError,
    config_to_spec,
    namespace_for,
    spec_to_config,
)
from programs.validate import (
    MAX_ENV_JSON_BYTES,
    check_program_version,
    validate_auto_update,
    validate_base_domain,
    validate_env,
    validate_env_key,
    validate_port,
    validate_replicas,
    validate_restart_stamp,
    validate_spec,
)
from programs.workload import env_checksum

DIGEST = "sha256:" + "0123456789abcdef" * 4


def spec(**kw: object) -> DeploymentSpec:
    base: dict[str, object] = {"name": "abc123xyz7", "template": "nginx", "base_domain": "ex.com"}
    base.update(kw)
    return DeploymentSpec(**base)  # type: ignore[arg-type]


# --- names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["a", "abc123xyz7", "my-app", "0start", "a" * 40, "a-b-c-1", "9"],
)
def test_valid_names(name: str) -> None:
    assert validate_name(name) is None


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a" * 41,
        "My-App",
        "-lead",
        "trail-",
        "under_score",
        "dot.ted",
        "spa ce",
        "ünï",
        "abc\n",
        None,
        42,
    ],
)
def test_invalid_names(name: object) -> None:
    assert validate_name(name)


def test_name_fits_namespace_and_host_label() -> None:
    longest = "a" * 40
    assert validate_name(longest) is None
    assert len(namespace_for(longest)) <= 63
    assert namespace_for("abc") == "sd-abc"


def test_generated_names_are_valid_and_shaped() -> None:
    rng = random.Random(7)
    names = {generate_name(rng) for _ in range(500)}
    assert len(names) == 500
    for name in names:
        assert re.fullmatch(r"[a-z][a-z0-9]{9}", name), name
        assert validate_name(name) is None


def test_generated_names_are_deterministic_for_a_seed_and_random_by_default() -> None:
    assert generate_name(random.Random(1)) == generate_name(random.Random(1))
    assert len({generate_name() for _ in range(20)}) == 20


# --- images --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("nginx", ImageRef(domain=None, path="nginx")),
        ("nginx:latest", ImageRef(domain=None, path="nginx", tag="latest")),
        ("nginx:1.25", ImageRef(domain=None, path="nginx", tag="1.25")),
        ("library/nginx:1.27", ImageRef(domain=None, path="library/nginx", tag="1.27")),
        ("myapp:v1.0.0", ImageRef(domain=None, path="myapp", tag="v1.0.0")),
        (
            "myregistry.com/app:v1.2.3",
            ImageRef(domain="myregistry.com", path="app", tag="v1.2.3"),
        ),
        (
            "localhost:5000/team/app:1",
            ImageRef(domain="localhost:5000", path="team/app", tag="1"),
        ),
        ("localhost/app", ImageRef(domain="localhost", path="app")),
        (
            "ghcr.io/example/web-app_x.y:2024.01.02-rc.1",
            ImageRef(domain="ghcr.io", path="example/web-app_x.y", tag="2024.01.02-rc.1"),
        ),
        (f"nginx@{DIGEST}", ImageRef(domain=None, path="nginx", digest=DIGEST)),
        (
            f"registry:5000/a/b:tag@{DIGEST}",
            ImageRef(domain="registry:5000", path="a/b", tag="tag", digest=DIGEST),
        ),
        ("127.0.0.1:5000/app:x", ImageRef(domain="127.0.0.1:5000", path="app", tag="x")),
        ("[::1]:5000/app", ImageRef(domain="[::1]:5000", path="app")),
        ("a__b/c--d:_tag", ImageRef(domain=None, path="a__b/c--d", tag="_tag")),
        ("traefik/whoami:v1.10", ImageRef(domain=None, path="traefik/whoami", tag="v1.10")),
        ("x:" + "t" * 128, ImageRef(domain=None, path="x", tag="t" * 128)),
    ],
)
def test_valid_image_refs(ref: str, expected: ImageRef) -> None:
    assert validate_image(ref) is None
    assert parse_image_ref(ref) == expected


@pytest.mark.parametrize(
    "ref",
    [
        "",
        "Nginx:latest",  # uppercase path
        "nginx:",  # empty tag
        "nginx:-bad",  # tag starts with '-'
        "nginx:.bad",
        "x:" + "t" * 129,  # tag too long
        "nginx:tæg",  # \w must be ASCII only
        "nginx@sha256:abc",  # short digest
        "nginx@md5:" + "a" * 32,
        f"nginx@{DIGEST.upper()}",
        "nginx latest",
        " nginx",
        "nginx\n",
        "reg.io//app",
        "reg.io/app/",
        "/app",
        "app.-x",
        "reg_io.com/app",  # '_' not allowed in a registry host
        "registry:99999/app",
        "a/" + "b" * 260,
        "ghcr.io/Example/app",  # path components are lowercase
        ":tag",
        "@" + DIGEST,
        None,
        5,
    ],
)
def test_invalid_image_refs(ref: object) -> None:
    assert validate_image(ref)


def test_image_ref_repository() -> None:
    assert parse_image_ref("ghcr.io/a/b:1").repository == "ghcr.io/a/b"
    assert parse_image_ref("nginx:1").repository == "nginx"


# --- env -----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["PORT", "_x", "a1", "DATABASE_URL", "x" * 253])
def test_valid_env_keys(key: str) -> None:
    assert validate_env_key(key) is None


@pytest.mark.parametrize("key", ["", "1ABC", "A-B", "A.B", "A B", "ÄB", "A\n", "x" * 254, None, 3])
def test_invalid_env_keys(key: object) -> None:
    assert validate_env_key(key)


def test_env_limits() -> None:
    assert validate_env({}) == []
    assert validate_env({f"K{i}": "v" for i in range(100)}) == []
    too_many = validate_env({f"K{i}": "v" for i in range(101)})
    assert any("100" in e for e in too_many)
    assert validate_env({"BIG": "x" * 32 * 1024}) == []
    assert validate_env({"BIG": "x" * (32 * 1024 + 1)}) == ["env var BIG is larger than 32 KiB"]
    # Multi-byte characters count as bytes, not characters.
    assert validate_env({"BIG": "é" * (16 * 1024 + 1)})
    assert validate_env({"NUL": "a\x00b"}) == ["env var NUL contains a NUL character"]
    assert validate_env({"N": 1}) == ["env var N must be a string"]
    assert validate_env(["A"])


def test_env_total_size_fits_one_config_value() -> None:
    # Four values at the per-value limit are fine one by one, not together.
    env = {f"K{i}": "x" * 32 * 1024 for i in range(4)}
    errors = validate_env(env)
    assert errors == [f"env vars together must be at most {MAX_ENV_JSON_BYTES // 1024} KiB"]


def test_env_errors_never_quote_values() -> None:
    secret = "hunter2-" + "s" * 40000
    for errors in (
        validate_env({"PASSWORD": secret}),
        validate_env({"PASSWORD": "hunter2\x00"}),
        validate_env({"bad-key": "hunter2"}),
    ):
        assert errors
        assert all("hunter2" not in e for e in errors)


# --- ports, replicas, domains, stamps, auto-update ----------------------------------


@pytest.mark.parametrize(
    ("port", "ok"),
    [
        (1, True),
        (8080, True),
        (65535, True),
        (0, False),
        (65536, False),
        (-1, False),
        (True, False),
        ("80", False),
        (80.0, False),
        (None, False),
    ],
)
def test_ports(port: object, ok: bool) -> None:
    assert (validate_port(port) is None) is ok


@pytest.mark.parametrize(
    ("replicas", "ok"), [(1, True), (20, True), (0, False), (21, False), (True, False), ("2", False)]
)
def test_replicas(replicas: object, ok: bool) -> None:
    assert (validate_replicas(replicas) is None) is ok


@pytest.mark.parametrize(
    ("domain", "ok"),
    [
        ("example.com", True),
        ("shipstack.localhost", True),
        ("localhost", True),
        ("a-b.c-d.io", True),
        ("Example.com", False),
        ("ex..com", False),
        ("-ex.com", False),
        ("ex.com.", False),
        ("", False),
        ("a" * 64 + ".com", False),
        (".".join(["abc"] * 60), False),
    ],
)
def test_base_domains(domain: str, ok: bool) -> None:
    assert (validate_base_domain(domain) is None) is ok


@pytest.mark.parametrize(
    ("stamp", "ok"),
    [
        (None, True),
        ("2024-03-05T10:30:00+00:00", True),
        ("2024-03-05T10:30:00Z", True),
        ("2024-03-05T10:30:00.123456+00:00", True),
        ("yesterday", False),
        ("", False),
        ("2024-13-01T00:00:00", False),
    ],
)
def test_restart_stamps(stamp: str | None, ok: bool) -> None:
    assert (validate_restart_stamp(stamp) is None) is ok


@pytest.mark.parametrize(
    ("auto", "n_errors"),
    [
        (AutoUpdate(), 0),
        (AutoUpdate(enabled=True, policy="minor", include=r"^v\d+", interval_s=300), 0),
        (AutoUpdate(policy="sometimes"), 1),  # type: ignore[arg-type]
        (AutoUpdate(include="(unclosed"), 1),
        (AutoUpdate(exclude="x" * 300), 1),
        # RE2 (linear time) runs tenants' filters: no look-around, no back-references, no huge programs.
        (AutoUpdate(include=r"^(a+)+$", exclude=r"-(rc|beta)\d*$"), 0),
        (AutoUpdate(include=r"^1\.(?!0\.)"), 1),
        (AutoUpdate(exclude=r"(a)\1"), 1),
        (AutoUpdate(include=r"((((a{1,100}){1,100}){1,100}){1,100})"), 1),
        (AutoUpdate(interval_s=5), 1),
        (AutoUpdate(interval_s=10**9), 1),
        (AutoUpdate(policy="bad", include="[", interval_s=1), 3),  # type: ignore[arg-type]
    ],
)
def test_auto_update_rules(auto: AutoUpdate, n_errors: int) -> None:
    assert len(validate_auto_update(auto)) == n_errors


def test_a_filter_re2_cannot_run_is_explained() -> None:
    (error,) = validate_auto_update(AutoUpdate(include=r"^1\.(?!0\.)"))
    assert error.startswith("auto-update include is not a valid regex (RE2 syntax: no look-around")


def test_validate_spec_collects_every_problem() -> None:
    assert validate_spec(spec()) == []
    bad = spec(
        name="Bad_Name",
        image="UPPER:tag",
        container_port=0,
        replicas=0,
        visibility="secret",
        strategy="bluegreen",
        env={"1X": "v"},
        base_domain="EX.com",
        restart_stamp="soon",
        auto_update=AutoUpdate(policy="weekly"),  # type: ignore[arg-type]
        program_version=PROGRAM_VERSION + 1,
    )
    errors = validate_spec(bad)
    assert len(errors) == 11, errors


def test_check_program_version() -> None:
    assert check_program_version(spec()) is None
    assert check_program_version(spec(program_version=PROGRAM_VERSION + 1))


# --- spec <-> config -----------------------------------------------------------------

ROUND_TRIP_SPECS = [
    spec(),
    spec(template="image", image="nginx:1.25", container_port=3000),
    spec(image=f"localhost:5000/a/b:c@{DIGEST}"),
    spec(env={"PORT": "8080", "DEBUG": "true"}),
    spec(env={"EMPTY": "", "JSON": '{"a": [1, "b"]}', "QUOTES": "'\"\\", "NL": "a\nb\r\n"}),
    spec(env={"UNICODE": "ünïcødé 🚀", "SPACES": "  padded  ", "EQ": "a=b=c"}),
    spec(env={f"K{i}": str(i) for i in range(100)}),
    spec(visibility="internal"),
    spec(replicas=7, strategy="recreate"),
    spec(auto_update=AutoUpdate(enabled=True, policy="patch")),
    spec(
        auto_update=AutoUpdate(
            enabled=True,
            policy="major",
            include=r"^v\d+\.\d+\.\d+$",
            exclude="-(alpha|beta)",
            interval_s=3600,
            prerelease=True,
        )
    ),
    spec(restart_stamp="2024-03-05T10:30:00+00:00"),
    spec(ingress_controller=False, base_domain="apps.internal.example.org"),
    spec(program_version=0),
    spec(
        template="postgres",
        env={"POSTGRES_PASSWORD": "x" * 32},
        visibility="internal",
        replicas=1,
        strategy="recreate",
        restart_stamp="2025-01-01T00:00:00Z",
    ),
]


@pytest.mark.parametrize("original", ROUND_TRIP_SPECS, ids=range(len(ROUND_TRIP_SPECS)))
def test_spec_config_round_trip_is_exact(original: DeploymentSpec) -> None:
    config = spec_to_config(original)
    plain = {key: value for key, (value, _secret) in config.items()}
    restored = config_to_spec(plain)
    assert restored == original
    # msgspec equality is field-wise; compare the encoded form too (types, not just ==).
    encode = msgspec.json.Encoder(order="sorted").encode
    assert encode(restored) == encode(original)
    # And config is a pure function of the spec: equal specs, byte-equal config.
    assert spec_to_config(restored) == config


def test_config_keys_are_namespaced_and_complete() -> None:
    config = spec_to_config(spec(env={"A": "1"}))
    assert set(config) == set(SPEC_CONFIG_KEYS)
    assert all(key.startswith("shipstack:") for key in config)
    assert config[KEY_TEMPLATE] == ("nginx", False)
    assert config[KEY_IMAGE] == ("", False)


def test_only_env_is_secret_and_env_keys_are_plain() -> None:
    config = spec_to_config(spec(env={"PASSWORD": "hunter2", "PORT": "80"}))
    secret_keys = {key for key, (_value, secret) in config.items() if secret}
    assert secret_keys == {KEY_ENV}
    assert KEY_ENV in SECRET_CONFIG_KEYS
    assert config[KEY_ENV_KEYS] == ('["PASSWORD","PORT"]', False)
    # No plain value carries an env value.
    assert all("hunter2" not in value for value, secret in config.values() if not secret)


def test_config_is_deterministic_whatever_the_env_order() -> None:
    a = spec(env={"A": "1", "B": "2"})
    b = spec(env={"B": "2", "A": "1"})
    assert spec_to_config(a) == spec_to_config(b)


def test_missing_optional_keys_take_defaults() -> None:
    minimal = {
        "shipstack:name": "abc",
        "shipstack:template": "redis",
        "shipstack:baseDomain": "ex.com",
    }
    assert config_to_spec(minimal) == DeploymentSpec(name="abc", template="redis", base_domain="ex.com")


def test_spec_to_config_refuses_values_that_cannot_round_trip() -> None:
    with pytest.raises(ValueError):
        spec_to_config(spec(image=""))
    with pytest.raises(ValueError):
        spec_to_config(spec(restart_stamp=""))


def _config(**overrides: str) -> dict[str, str]:
    plain = {key: value for key, (value, _s) in spec_to_config(spec()).items()}
    plain.update(overrides)
    return plain


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ({"shipstack:template": "nginx", "shipstack:baseDomain": "x.io"}, "shipstack:name"),
        (_config(**{"shipstack:template": ""}), "shipstack:template"),
        (_config(**{KEY_REPLICAS: "three"}), "shipstack:replicas"),
        (_config(**{"shipstack:containerPort": "80.5"}), "shipstack:containerPort"),
        (_config(**{"shipstack:ingressController": "yes"}), "shipstack:ingressController"),
        (_config(**{KEY_ENV: "not json"}), "shipstack:env"),
        (_config(**{KEY_ENV: '{"A": 1}'}), "shipstack:env"),
        (_config(**{KEY_AUTO_UPDATE: '{"enabled": "maybe"}'}), "shipstack:autoUpdate"),
        (_config(**{"shipstack:visibility": "secret"}), "visibility"),
        (_config(**{"shipstack:strategy": "bluegreen"}), "strategy"),
    ],
)
def test_bad_config_is_rejected_naming_the_key(config: dict[str, str], needle: str) -> None:
    with pytest.raises(SpecConfigError, match=needle):
        config_to_spec(config)


def test_bad_env_config_error_does_not_quote_the_secret() -> None:
    with pytest.raises(SpecConfigError) as info:
        config_to_spec(_config(**{KEY_ENV: '{"PASSWORD": hunter2}'}))
    assert "hunter2" not in str(info.value)


def test_repr_hides_env_values() -> None:
    s = spec(env={"PASSWORD": "hunter2"})
    assert "hunter2" not in repr(s)
    assert "hunter2" not in str(s)
    assert "PASSWORD" in repr(s)
    assert "hunter2" not in str(list(s.__rich_repr__()))


# --- revision messages ---------------------------------------------------------------

BASE = spec(image="nginx:1.25", env={"PORT": "80", "OLD": "x"})

DESCRIBE_CASES = [
    (None, spec(), "create nginx"),
    (None, spec(template="image", image="myapp:v1"), "create image myapp:v1"),
    (BASE, BASE, "no changes"),
    (
        BASE,
        msgspec.structs.replace(BASE, env={"PORT": "8080", "OLD": "x", "DEBUG": "true"}),
        "config: env keys added DEBUG; changed PORT",
    ),
    (
        BASE,
        msgspec.structs.replace(BASE, env={"PORT": "80"}),
        "config: env keys removed OLD",
    ),
    (
        BASE,
        msgspec.structs.replace(BASE, restart_stamp="2024-03-05T10:30:00+00:00"),
        "restart",
    ),
    (BASE, msgspec.structs.replace(BASE, image="nginx:1.26"), "image nginx:1.25 -> nginx:1.26"),
    (spec(), spec(image="nginx:1.26"), "image default -> nginx:1.26"),
    (BASE, msgspec.structs.replace(BASE, visibility="internal"), "visibility public -> internal"),
    (
        BASE,
        msgspec.structs.replace(BASE, auto_update=AutoUpdate(enabled=True, policy="patch")),
        "auto-update enabled (rolling, patch)",
    ),
    (
        msgspec.structs.replace(BASE, auto_update=AutoUpdate(enabled=True)),
        BASE,
        "auto-update disabled",
    ),
    (
        msgspec.structs.replace(BASE, auto_update=AutoUpdate(enabled=True)),
        msgspec.structs.replace(BASE, auto_update=AutoUpdate(enabled=True, policy="minor")),
        "auto-update policy digest -> minor",
    ),
    (
        BASE,
        msgspec.structs.replace(BASE, strategy="recreate"),
        "strategy rolling -> recreate",
    ),
    (BASE, msgspec.structs.replace(BASE, replicas=3), "replicas 1 -> 3"),
    (
        BASE,
        msgspec.structs.replace(BASE, image="nginx:1.26", env={"PORT": "80", "OLD": "y"}, visibility="internal"),
        "image nginx:1.25 -> nginx:1.26; config: env keys changed OLD; visibility public -> internal",
    ),
]


@pytest.mark.parametrize(("old", "new", "message"), DESCRIBE_CASES)
def test_describe_change(old: DeploymentSpec | None, new: DeploymentSpec, message: str) -> None:
    assert describe_change(old, new) == message


def test_describe_change_never_names_values() -> None:
    old = spec(env={"PASSWORD": "hunter2", "TOKEN": "abc-secret"})
    new = spec(env={"PASSWORD": "correct-horse", "KEY": "s3cr3t"})
    message = describe_change(old, new)
    assert message == "config: env keys added KEY; changed PASSWORD; removed TOKEN"
    for value in ("hunter2", "abc-secret", "correct-horse", "s3cr3t"):
        assert value not in message


def test_describe_change_caps_long_key_lists() -> None:
    new = spec(env={f"K{i:02}": "v" for i in range(25)})
    message = describe_change(spec(), new)
    assert message.startswith("config: env keys added K00, K01,")
    assert message.endswith("(+15 more)")


# --- checksum ------------------------------------------------------------------------


def test_env_checksum_tracks_content_not_order() -> None:
    a = env_checksum({"A": "1", "B": "2"})
    assert a == env_checksum({"B": "2", "A": "1"})
    assert a != env_checksum({"A": "1", "B": "3"})
    assert a != env_checksum({"A": "1"})
    assert re.fullmatch(r"[0-9a-f]{64}", a)
