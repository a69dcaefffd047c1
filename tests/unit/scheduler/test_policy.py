"""scheduler.policy: version parsing and the semver/digest decisions, table-driven."""

from __future__ import annotations

import pytest

from programs.spec import AutoUpdate
from scheduler.policy import (
    Candidate,
    Decision,
    decide_digest,
    decide_semver,
    parse_version,
    plan_semver,
)

D = {t: f"sha256:{i:064x}" for i, t in enumerate(["1.0.1", "1.0.2", "1.1.0", "1.2.0", "2.0.0", "v1.0.1", "1.0.1-rc.1"])}


def digest_of(tag: str) -> str:
    return D.get(tag, "sha256:" + "f" * 64)


def auto(policy: str = "patch", **kw: object) -> AutoUpdate:
    return AutoUpdate(enabled=True, policy=policy, **kw)  # type: ignore[arg-type]


def verdicts(decision: Decision) -> dict[str, str]:
    return {c.tag: c.code for c in decision.candidates}


@pytest.mark.parametrize(
    ("tag", "numbers", "prerelease", "variant"),
    [
        ("1.2.3", (1, 2, 3), (), ""),
        ("v1.2.3", (1, 2, 3), (), ""),
        ("V1.2.3", (1, 2, 3), (), ""),
        ("1.2", (1, 2), (), ""),
        ("16", (16,), (), ""),
        ("1.2.3-rc.1", (1, 2, 3), ("rc", "1"), ""),
        ("1.2.3-beta2", (1, 2, 3), ("beta2",), ""),
        ("1.2.3-alpha", (1, 2, 3), ("alpha",), ""),
        ("1.2.3-1", (1, 2, 3), ("1",), ""),
        ("1.2.3-alpine", (1, 2, 3), (), "alpine"),
        ("1.2.3-alpine3.20", (1, 2, 3), (), "alpine3.20"),
        ("1.25-bookworm", (1, 25), (), "bookworm"),
        ("1.2.3+build.5", (1, 2, 3), (), ""),
    ],
)
def test_parse_version(tag: str, numbers: tuple, prerelease: tuple, variant: str) -> None:
    v = parse_version(tag)
    assert v is not None
    assert (v.numbers, v.prerelease, v.variant) == (numbers, prerelease, variant)


@pytest.mark.parametrize("tag", ["latest", "stable", "main", "sha-abc123", "1.2.3.4", "v", "1..2", "-1.0", "1.0-"])
def test_parse_version_rejects(tag: str) -> None:
    assert parse_version(tag) is None


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("1.0.0", "1.0.1"),
        ("1.0.9", "1.0.10"),  # numeric, not lexical
        ("1.0.0-rc.1", "1.0.0"),
        ("1.0.0-alpha", "1.0.0-alpha.1"),
        ("1.0.0-alpha.1", "1.0.0-alpha.beta"),
        ("1.0.0-beta.2", "1.0.0-beta.11"),
        ("1.0.0-rc.1", "1.0.0-rc.2"),
        ("1.9.0", "1.10.0"),
    ],
)
def test_precedence(lower: str, higher: str) -> None:
    a, b = parse_version(lower), parse_version(higher)
    assert a is not None and b is not None
    assert a.key() < b.key()


TAGS = ["1.0.0", "1.0.1", "1.0.2", "1.1.0", "1.2.0", "2.0.0", "latest", "1.0.3-rc.1", "0.9.0"]

# (policy, current, tags, options, expected target or None)
CASES = [
    ("patch", "1.0.0", TAGS, {}, "1.0.2"),
    ("minor", "1.0.0", TAGS, {}, "1.2.0"),
    ("major", "1.0.0", TAGS, {}, "2.0.0"),
    ("patch", "1.0.2", TAGS, {}, None),
    ("patch", "1.0.0", TAGS, {"prerelease": True}, "1.0.3-rc.1"),
    ("patch", "1.0.0", TAGS, {"exclude": r"^1\.0\.2$"}, "1.0.1"),
    ("minor", "1.0.0", TAGS, {"include": r"^1\.1\."}, "1.1.0"),
    ("major", "2.0.0", TAGS, {}, None),  # never downgrade
    ("patch", "v1.0.0", ["v1.0.1", "1.0.2", "v1.0.0"], {}, "1.0.2"),  # the v prefix is optional
    ("patch", "1.0.0", ["1.0.1", "v1.0.1"], {}, "1.0.1"),  # equal versions: the running style wins
    ("minor", "1.25", ["1.25", "1.26", "1.26.1", "2.0"], {}, "1.26"),  # shape kept
    ("major", "16", ["16", "17", "17.2", "17.2.1"], {}, "17"),
    ("patch", "1.25.3-alpine", ["1.25.4", "1.25.4-alpine", "1.25.5-bookworm"], {}, "1.25.4-alpine"),
    ("patch", "1.25.3", ["1.25.4-alpine", "1.25.4"], {}, "1.25.4"),
    ("patch", "1.0.0-rc.1", ["1.0.0-rc.2", "1.0.0"], {}, "1.0.0"),  # a release ends a pre-release
    ("patch", "1.0.0-rc.1", ["1.0.0-rc.2"], {"prerelease": True}, "1.0.0-rc.2"),
    ("patch", "1.0.9", ["1.0.10", "1.0.8"], {}, "1.0.10"),
]


@pytest.mark.parametrize(("policy", "current", "tags", "options", "expected"), CASES)
def test_decide_semver(policy: str, current: str, tags: list[str], options: dict, expected: str | None) -> None:
    decision = decide_semver(current, tags, auto(policy, **options), digest_of)
    assert decision.target_tag == expected
    assert decision.action == ("update" if expected else "none")
    # Every listed tag is accounted for exactly once.
    assert sorted(c.tag for c in decision.candidates) == sorted(set(tags))
    if expected:
        assert decision.target_digest == digest_of(expected)
        assert decision.candidates[0] == Candidate(
            tag=expected, verdict="chosen", code="chosen", digest=digest_of(expected),
            reason=f"the newest version policy {policy} allows",
        )  # fmt: skip


def test_reasons_for_every_rejection() -> None:
    decision = decide_semver("1.0.0", TAGS, auto("patch"), digest_of)
    assert verdicts(decision) == {
        "1.0.2": "chosen",
        "1.0.1": "not-newest",
        "1.0.0": "current",
        "1.1.0": "outside-policy",
        "1.2.0": "outside-policy",
        "2.0.0": "outside-policy",
        "1.0.3-rc.1": "prerelease",
        "0.9.0": "older",
        "latest": "not-semver",
    }
    reasons = {c.tag: c.reason for c in decision.candidates}
    assert reasons["2.0.0"] == "a major update; policy patch allows 1.0.x"
    assert reasons["1.1.0"] == "a minor update; policy patch allows 1.0.x"
    assert reasons["0.9.0"] == "older than the running 1.0.0 (never downgrade)"
    assert decision.reason == "1.0.0 -> 1.0.2"


def test_filters_and_shapes_explained() -> None:
    decision = decide_semver(
        "1.25.3-alpine", ["1.25.4", "1.26", "1.25.4-alpine", "nightly"], auto("minor", exclude="nightly"), digest_of
    )
    codes = verdicts(decision)
    assert codes == {"1.25.4-alpine": "chosen", "1.25.4": "other-variant", "1.26": "other-shape", "nightly": "excluded"}
    decision = decide_semver("1.0.0", ["1.0.1", "2.0.0"], auto("major", include=r"^1\."), digest_of)
    assert verdicts(decision) == {"1.0.1": "chosen", "2.0.0": "not-included"}


def test_bad_digest_falls_back_to_the_next_newer_tag() -> None:
    bad = {digest_of("1.0.2"): "rollout did not become Available"}
    decision = decide_semver("1.0.0", TAGS, auto("patch"), digest_of, bad)
    assert decision.target_tag == "1.0.1"
    skipped = next(c for c in decision.candidates if c.tag == "1.0.2")
    assert skipped.code == "bad-digest"
    assert "rollout did not become Available" in skipped.reason
    # All newer versions bad: no update, and it says why.
    bad[digest_of("1.0.1")] = "crash loop"
    decision = decide_semver("1.0.0", TAGS, auto("patch"), digest_of, bad)
    assert decision.action == "none"
    assert decision.reason == "every newer version allowed is a digest that failed before"


def test_digest_lookup_failure_is_an_error_not_an_older_tag() -> None:
    def failing(tag: str) -> str:
        raise RuntimeError("registry down")

    decision = decide_semver("1.0.0", TAGS, auto("patch"), failing)
    assert decision.action == "error"
    assert decision.target_tag is None
    assert verdicts(decision)["1.0.2"] == "no-digest"
    assert verdicts(decision)["1.0.1"] == "not-newest"


def test_running_tag_that_is_not_a_version() -> None:
    decision = decide_semver("latest", ["1.0.0", "latest"], auto("patch"), digest_of)
    assert decision.action == "error"
    assert "not a version" in decision.reason
    assert {c.code for c in decision.candidates} == {"no-baseline"}


def test_plan_ignores_duplicates_and_sorts_eligible_newest_first() -> None:
    plan = plan_semver("1.0.0", ["1.0.1", "1.0.3", "1.0.2", "1.0.3"], auto("patch"))
    assert [v.tag for v in plan.eligible] == ["1.0.3", "1.0.2", "1.0.1"]


def test_truncated_keeps_the_interesting_candidates() -> None:
    tags = [f"1.0.{i}" for i in range(1, 300)]
    decision = decide_semver("1.0.0", tags, auto("patch"), digest_of).truncated(50)
    assert len(decision.candidates) == 50
    assert decision.omitted == 249
    assert decision.candidates[0].tag == "1.0.299"


DIGEST_CASES = [
    # running, remote, bad, action
    (None, "sha256:" + "a" * 64, {}, "baseline"),
    ("sha256:" + "a" * 64, "sha256:" + "a" * 64, {}, "none"),
    ("sha256:" + "a" * 64, "sha256:" + "b" * 64, {}, "update"),
    ("sha256:" + "a" * 64, "sha256:" + "b" * 64, {"sha256:" + "b" * 64: "failed"}, "none"),
]


@pytest.mark.parametrize(("running", "remote", "bad", "action"), DIGEST_CASES)
def test_decide_digest(running: str | None, remote: str, bad: dict, action: str) -> None:
    decision = decide_digest("latest", running, remote, bad)
    assert decision.action == action
    assert decision.policy == "digest"
    assert len(decision.candidates) == 1
    if action == "update":
        assert (decision.target_tag, decision.target_digest) == ("latest", remote)
    else:
        assert decision.target_digest is None


def test_a_stored_filter_re2_cannot_run_is_an_error_not_a_crash() -> None:
    """Validated on the way in; a config written before RE2 (or by hand) may still hold one."""
    decision = decide_semver("1.0.0", ["1.0.1"], auto("patch", include=r"^1\.(?!1)"), digest_of)
    assert decision.action == "error"
    assert decision.reason.startswith("bad include/exclude pattern: is not a valid regex (RE2 syntax")
