"""Update policies: which tag, if any, a deployment should move to. Pure functions.

Every tag the registry listed gets a verdict and a reason, so the status endpoint
can say why 2.0.0 was not taken ("major update; policy minor") as well as why
1.0.1 was. Keeping this free of I/O makes the rules table-testable; the only
outside input, a tag's digest, comes in through a callable the caller provides.

Rules (semver policies `patch`, `minor`, `major`):
- A version is 1 to 3 dot-separated numbers with an optional leading `v`, then an
  optional `-suffix` and `+build`. A suffix that starts like a pre-release
  (`rc.1`, `beta2`, `alpha`, a number, ...) is a pre-release; any other suffix
  (`alpine`, `bookworm`) names a *variant*: `1.25.3-alpine` only moves to
  `1.25.4-alpine`, never to `1.25.4`.
- A candidate must have the same number of components as the current tag
  (`1.25` does not jump to `1.25.4`, `16` does not jump to `17.2`), so floating
  and pinned tag styles are kept.
- Include/exclude regexes (RE2 `search`, programs/tag_filter.py: linear time, as the
  patterns are tenants') are applied first: they are the user's word.
- Pre-releases only when `prerelease` is set. Never a version older than, or equal
  to, the running one. Within the policy's range of the running version.
- The newest eligible tag whose digest is not recorded as bad wins.

`digest` policy: the running tag's digest changed in the registry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Literal

import msgspec

from programs.spec import AutoUpdate
from programs.tag_filter import FilterError, TagFilter, compile_filter

Verdict = Literal["chosen", "current", "eligible", "rejected"]
Action = Literal["update", "none", "baseline", "error"]
MAX_TAG_LENGTH = 128

_VERSION = re.compile(
    r"(?P<prefix>[vV]?)(?P<numbers>[0-9]+(?:\.[0-9]+){0,2})"
    r"(?:-(?P<suffix>[0-9A-Za-z][0-9A-Za-z.-]*))?(?:\+(?P<build>[0-9A-Za-z.-]+))?",
    re.ASCII,
)
# `m[0-9]+` stands apart: inside the group, `m[0-9]+[0-9]*` would try every split of the
# digits (quadratic backtracking on a long hostile tag).
_PRERELEASE_START = re.compile(
    r"(?:alpha|beta|rc|pre|preview|dev|snapshot|canary|nightly|next|milestone)[0-9]*|m[0-9]+|[0-9]+",
    re.ASCII | re.IGNORECASE,
)


class Version(msgspec.Struct, frozen=True):
    tag: str
    prefix: str
    numbers: tuple[int, ...]  # 1 to 3 components, as written
    prerelease: tuple[str, ...] = ()
    variant: str = ""
    build: str = ""

    @property
    def core(self) -> tuple[int, int, int]:
        padded = (*self.numbers, 0, 0)
        return padded[0], padded[1], padded[2]

    @property
    def is_prerelease(self) -> bool:
        return bool(self.prerelease)

    def key(self) -> tuple:
        """Semver precedence: core, then a release above its pre-releases, then
        pre-release identifiers (numeric below alphanumeric, shorter below longer)."""
        ids = tuple((0, int(i), "") if i.isdigit() else (1, 0, i) for i in self.prerelease)
        return (self.core, 0 if self.prerelease else 1, ids)


def parse_version(tag: str) -> Version | None:
    """`v1.2.3-rc.1+b5` -> Version; None for tags that are not versions (`latest`)."""
    if len(tag) > MAX_TAG_LENGTH:  # not a tag at all (the OCI limit); never worth a regex
        return None
    match = _VERSION.fullmatch(tag)
    if match is None:
        return None
    numbers = tuple(int(n) for n in match["numbers"].split("."))
    suffix = match["suffix"] or ""
    prerelease: tuple[str, ...] = ()
    variant = ""
    if suffix:
        first = re.split(r"[.-]", suffix, maxsplit=1)[0]
        if _PRERELEASE_START.fullmatch(first):
            prerelease = tuple(suffix.split("."))
        else:
            variant = suffix
    return Version(
        tag=tag,
        prefix=match["prefix"],
        numbers=numbers,
        prerelease=prerelease,
        variant=variant,
        build=match["build"] or "",
    )


class Candidate(msgspec.Struct, frozen=True, omit_defaults=True):
    """One tag the poll saw and what became of it."""

    tag: str
    verdict: Verdict
    code: str  # machine-readable reason: chosen, older, prerelease, outside-policy, ...
    reason: str
    digest: str | None = None


class Decision(msgspec.Struct, frozen=True, omit_defaults=True):
    """The outcome of one poll for one deployment, stored for the status endpoint."""

    policy: str
    action: Action
    reason: str
    current_tag: str | None = None
    current_digest: str | None = None
    target_tag: str | None = None
    target_digest: str | None = None
    candidates: list[Candidate] = []
    omitted: int = 0  # candidates dropped by `truncated`

    def truncated(self, limit: int) -> Decision:
        """At most `limit` candidates, the interesting ones (chosen, eligible, newest) first."""
        if len(self.candidates) <= limit:
            return self
        return msgspec.structs.replace(
            self, candidates=self.candidates[:limit], omitted=self.omitted + len(self.candidates) - limit
        )


class SemverPlan(msgspec.Struct, frozen=True):
    """Tags sorted into eligible (newest first) and the rest (with reasons)."""

    current: Version | None
    eligible: list[Version]
    rejected: list[Candidate]
    error: str | None = None


def _range_label(policy: str, current: Version) -> str:
    major, minor, _ = current.core
    if policy == "patch":
        return f"{major}.{minor}.x"
    if policy == "minor":
        return f"{major}.x"
    return "any newer version"


def _in_range(policy: str, current: Version, candidate: Version) -> bool:
    if policy == "patch":
        return candidate.core[:2] == current.core[:2]
    if policy == "minor":
        return candidate.core[0] == current.core[0]
    return True


def _bump(current: Version, candidate: Version) -> str:
    if candidate.core[0] != current.core[0]:
        return "major"
    if candidate.core[1] != current.core[1]:
        return "minor"
    if candidate.core[2] != current.core[2]:
        return "patch"
    return "pre-release"


def _compile(pattern: str | None) -> TagFilter | None:
    return compile_filter(pattern) if pattern else None


def plan_semver(current_tag: str | None, tags: Iterable[str], auto: AutoUpdate) -> SemverPlan:
    """Sorts every listed tag into eligible or rejected relative to `current_tag`."""
    tags = list(dict.fromkeys(tags))  # keep order, drop duplicates
    current = parse_version(current_tag) if current_tag else None
    if current is None:
        shown = current_tag or "(no tag)"
        reason = f"the running tag {shown} is not a version, so policy {auto.policy} has nothing to compare with"
        rejected = [Candidate(tag=t, verdict="rejected", code="no-baseline", reason=reason) for t in tags]
        return SemverPlan(current=None, eligible=[], rejected=rejected, error=reason)
    try:
        include, exclude = _compile(auto.include), _compile(auto.exclude)
    except FilterError as exc:  # validated on the way in; an older or hand-edited config may still hold one
        return SemverPlan(current=current, eligible=[], rejected=[], error=f"bad include/exclude pattern: {exc}")
    eligible: list[Version] = []
    rejected: list[Candidate] = []

    def reject(tag: str, code: str, reason: str) -> None:
        rejected.append(Candidate(tag=tag, verdict="rejected", code=code, reason=reason))

    for tag in tags:
        if tag == current.tag:
            rejected.append(Candidate(tag=tag, verdict="current", code="current", reason="the running tag"))
            continue
        if exclude is not None and exclude.search(tag):
            reject(tag, "excluded", f"matches the exclude pattern {auto.exclude!r}")
            continue
        if include is not None and not include.search(tag):
            reject(tag, "not-included", f"does not match the include pattern {auto.include!r}")
            continue
        version = parse_version(tag)
        if version is None:
            reject(tag, "not-semver", "not a version")
            continue
        if len(version.numbers) != len(current.numbers):
            reject(
                tag,
                "other-shape",
                f"{len(version.numbers)} version components; the running tag has {len(current.numbers)}",
            )
            continue
        if version.variant != current.variant:
            want = repr(current.variant) if current.variant else "none"
            reject(tag, "other-variant", f"variant {version.variant or 'none'!r} differs from the running {want}")
            continue
        if version.is_prerelease and not auto.prerelease:
            reject(tag, "prerelease", "a pre-release; pre-releases are not enabled")
            continue
        order = (version.key() > current.key()) - (version.key() < current.key())
        if order < 0:
            reject(tag, "older", f"older than the running {current.tag} (never downgrade)")
            continue
        if order == 0:
            reject(tag, "same-version", f"the same version as the running {current.tag}")
            continue
        if not _in_range(auto.policy, current, version):
            reject(
                tag,
                "outside-policy",
                f"a {_bump(current, version)} update; policy {auto.policy} allows {_range_label(auto.policy, current)}",
            )
            continue
        eligible.append(version)

    # Newest first; among equal versions prefer the running tag's `v` style, then the shortest tag.
    eligible.sort(key=lambda v: (v.key(), v.prefix == current.prefix, -len(v.tag), v.tag), reverse=True)
    return SemverPlan(current=current, eligible=eligible, rejected=rejected)


def _ordered(rejected: list[Candidate]) -> list[Candidate]:
    """Status order: the running tag, then versions newest first, then non-versions."""

    def key(c: Candidate) -> tuple:
        version = parse_version(c.tag)
        return (c.verdict != "current", version is None, tuple(-x for x in version.core) if version else (), c.tag)

    return sorted(rejected, key=key)


def choose_semver(
    plan: SemverPlan,
    auto: AutoUpdate,
    digest_of: Callable[[str], str],
    bad_digests: Mapping[str, str],
    current_digest: str | None = None,
) -> Decision:
    """The newest eligible tag whose digest is not recorded as bad.

    `digest_of(tag)` looks a digest up (a HEAD in production); when it raises, the
    decision is an error rather than a silent fall back to an older tag.
    """
    current_tag = plan.current.tag if plan.current else None
    base = {"policy": auto.policy, "current_tag": current_tag, "current_digest": current_digest}
    if plan.error:
        return Decision(**base, action="error", reason=plan.error, candidates=_ordered(plan.rejected))
    seen: list[Candidate] = []
    chosen: Version | None = None
    chosen_digest: str | None = None
    error: str | None = None
    for version in plan.eligible:
        if chosen is not None:
            reason = f"allowed, but {chosen.tag} is newer"
            seen.append(Candidate(tag=version.tag, verdict="eligible", code="not-newest", reason=reason))
            continue
        if error is not None:
            reason = "allowed, but a newer version could not be checked; not falling back to an older one"
            seen.append(Candidate(tag=version.tag, verdict="eligible", code="not-newest", reason=reason))
            continue
        try:
            digest = digest_of(version.tag)
        except Exception as exc:
            error = f"could not read the digest of {version.tag}: {exc}"
            seen.append(Candidate(tag=version.tag, verdict="rejected", code="no-digest", reason=error))
            continue
        if digest in bad_digests:
            seen.append(
                Candidate(
                    tag=version.tag,
                    verdict="rejected",
                    code="bad-digest",
                    digest=digest,
                    reason=f"this digest failed before and is never retried: {bad_digests[digest]}",
                )
            )
            continue
        chosen, chosen_digest = version, digest
        seen.append(
            Candidate(
                tag=version.tag,
                verdict="chosen",
                code="chosen",
                digest=digest,
                reason=f"the newest version policy {auto.policy} allows",
            )
        )
    candidates = seen + _ordered(plan.rejected)
    if chosen is not None:
        return Decision(
            **base,
            action="update",
            target_tag=chosen.tag,
            target_digest=chosen_digest,
            reason=f"{current_tag} -> {chosen.tag}",
            candidates=candidates,
        )
    if error is not None:
        return Decision(**base, action="error", reason=error, candidates=candidates)
    if any(c.code == "bad-digest" for c in seen):
        reason = "every newer version allowed is a digest that failed before"
    else:
        reason = f"{current_tag} is the newest version policy {auto.policy} allows"
    return Decision(**base, action="none", reason=reason, candidates=candidates)


def decide_semver(
    current_tag: str | None,
    tags: Iterable[str],
    auto: AutoUpdate,
    digest_of: Callable[[str], str],
    bad_digests: Mapping[str, str] | None = None,
    current_digest: str | None = None,
) -> Decision:
    """`plan_semver` then `choose_semver`: the whole semver decision."""
    plan = plan_semver(current_tag, tags, auto)
    return choose_semver(plan, auto, digest_of, bad_digests or {}, current_digest)


def decide_digest(
    tag: str,
    running_digest: str | None,
    remote_digest: str,
    bad_digests: Mapping[str, str] | None = None,
) -> Decision:
    """Policy `digest`: follow `tag` (e.g. `latest`) to whatever it points at now.

    `running_digest` is the digest the image is pinned to, or the first one the
    poller saw for an unpinned image; None means nothing is known yet, and the
    remote digest becomes that baseline instead of triggering an update.
    """
    bad = bad_digests or {}
    base = {"policy": "digest", "current_tag": tag, "current_digest": running_digest}
    if running_digest is None:
        candidate = Candidate(
            tag=tag,
            verdict="current",
            code="baseline",
            digest=remote_digest,
            reason="first digest seen for this tag; a later change updates",
        )
        return Decision(**base, action="baseline", reason=f"{tag} is at {remote_digest}", candidates=[candidate])
    if remote_digest == running_digest:
        candidate = Candidate(
            tag=tag, verdict="current", code="current", digest=remote_digest, reason="the running digest"
        )
        return Decision(
            **base, action="none", reason=f"{tag} still points at the running digest", candidates=[candidate]
        )
    if remote_digest in bad:
        candidate = Candidate(
            tag=tag,
            verdict="rejected",
            code="bad-digest",
            digest=remote_digest,
            reason=f"this digest failed before and is never retried: {bad[remote_digest]}",
        )
        return Decision(
            **base, action="none", reason=f"{tag} points at a digest that failed before", candidates=[candidate]
        )
    candidate = Candidate(
        tag=tag, verdict="chosen", code="chosen", digest=remote_digest, reason=f"{tag} now points at a new digest"
    )
    return Decision(
        **base,
        action="update",
        target_tag=tag,
        target_digest=remote_digest,
        reason=f"{tag} moved from {running_digest} to {remote_digest}",
        candidates=[candidate],
    )
