"""One poll: which deployments are due, one registry visit per repository, a
decision per deployment, and the updates queued as ordinary operations.

Deployments are grouped by repository before anything is sent, so a poll makes at
most one tag-list request per distinct repository however many deployments use it
(and none for repositories whose deployments all follow a digest), and at most one
manifest HEAD per (repository, tag). Repositories are visited in parallel threads,
a few per registry at once and each registry within its share of the poll, so a
slow or hostile registry costs its own deployments this poll and nobody else's;
everything a poll learns is written in one transaction at the end, behind the
leader fence, together with the operations it queues.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import msgspec
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from persistence import operations as ops
from persistence.base import utcnow
from persistence.models import Operation
from scheduler import store
from scheduler.lanes import run_in_lanes, share_label
from scheduler.leader import LeaderLease
from scheduler.policy import Candidate, Decision, decide_digest, decide_semver
from scheduler.registry import RateLimited, RegistryClient, RegistryError, is_tag
from scheduler.targets import ConfigCache, Skipped, Target, load_targets
from stacks.changes import Change
from stacks.settings import Settings

log = logging.getLogger("shipstack.scheduler.poll")
OPERATION_KIND = "auto-update"
MAX_STORED_CANDIDATES = 200


class Update(msgspec.Struct, frozen=True):
    deployment: str
    operation_id: str
    message: str
    image: str


class PollReport(msgspec.Struct, kw_only=True):
    """What one poll did; also the bench's figures."""

    started_at: datetime
    wall_s: float = 0.0
    deployments: int = 0  # opted in
    due: int = 0
    repositories: int = 0
    requests: int = 0  # every HTTP request, tokens included
    tag_pages: int = 0
    manifest_heads: int = 0
    token_requests: int = 0
    updates: list[Update] = []
    skipped: int = 0
    errors: int = 0
    fenced_out: bool = False  # the lease was lost before the results could be written


class _Seen(msgspec.Struct, frozen=True, kw_only=True):
    """What a poll read before visiting registries, for every repository's visit."""

    bad: dict[str, dict[str, store.BadDigest]]  # deployment -> digest -> why it is bad
    statuses: dict[str, store.DeploymentStatus]
    now: datetime


class _RepoResult(msgspec.Struct, kw_only=True):
    state: store.RepositoryState
    decisions: dict[str, Decision]
    baselines: dict[str, str]  # deployment -> baseline digest recorded this poll


def _fail_all(members: list[Target], state: store.RepositoryState, reason: str) -> _RepoResult:
    """The same error for every deployment of a repository this poll."""
    decisions = {
        t.name: Decision(
            policy=t.auto.policy, action="error", reason=reason, current_tag=t.tag, current_digest=t.running_digest
        )
        for t in members
    }
    state.error = reason
    return _RepoResult(state=state, decisions=decisions, baselines={})


def new_image_ref(target: Target, tag: str, digest: str) -> str:
    """`repo:tag@sha256:...`, keeping the repository as the user spelled it."""
    return f"{target.ref.repository}:{tag}@{digest}"


def update_message(target: Target, decision: Decision) -> str:
    """`auto-update nginx:1.25.3 -> 1.25.4 (sha256:...)`: the revision message."""
    return f"auto-update {target.ref.repository}:{target.tag} -> {decision.target_tag} ({decision.target_digest})"


class Poller:
    """Runs polls against the shared database; `poll()` is what the scheduled job calls."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        client: RegistryClient,
        *,
        poll_interval_s: float = 300,
        lease: LeaderLease | None = None,
        cache: ConfigCache | None = None,
        max_workers: int = 8,
        clock: Callable[[], datetime] = utcnow,
        notify: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.client = client
        self.poll_interval_s = poll_interval_s
        self.lease = lease
        self.cache = cache or ConfigCache()
        self.max_workers = max_workers
        self.clock = clock
        self.notify = notify

    # --- when ---------------------------------------------------------------

    def interval_of(self, target: Target) -> float:
        return float(target.auto.interval_s or self.poll_interval_s)

    def is_due(self, target: Target, status: store.DeploymentStatus | None, now: datetime) -> bool:
        if status is None or status.checked_at is None or status.image != target.image:
            return True
        interval = self.interval_of(target)
        # A tick that fires a moment early must not push the poll a whole tick later.
        slack = min(5.0, interval * 0.1)
        return now - status.checked_at >= timedelta(seconds=interval - slack)

    # --- one poll -------------------------------------------------------------

    def poll(self, *, force: bool = False) -> PollReport:
        """Polls every due deployment (`force`: every opted-in one) and writes the results."""
        started = self.clock()
        t0 = time.perf_counter()
        before = self.client.stats.snapshot()
        with self.sessions() as s:
            targets, skipped = load_targets(s, self.cache)
            names = [t.name for t in targets]
            statuses = store.load_statuses(s, names + [k.name for k in skipped])
            bad = store.bad_digests(s, names)
            due = [t for t in targets if force or self.is_due(t, statuses.get(t.name), started)]
            groups: dict[str, list[Target]] = {}
            for t in due:
                groups.setdefault(t.repository.key, []).append(t)
            repo_states = store.load_repositories(s, groups)

        seen = _Seen(bad=bad, statuses=statuses, now=started)
        results = self._poll_registries(groups, repo_states, seen) if groups else []

        report = PollReport(
            started_at=started, deployments=len(targets) + len(skipped), due=len(due), repositories=len(groups)
        )
        by_name = {t.name: t for t in due}
        self._commit(results, skipped, statuses, by_name, report)
        after = self.client.stats.snapshot()
        for field in ("requests", "tag_pages", "manifest_heads", "token_requests"):
            setattr(report, field, int(after[field]) - int(before[field]))  # type: ignore[call-overload]
        report.wall_s = time.perf_counter() - t0
        if report.updates and self.notify is not None:
            self.notify()
        return report

    def _poll_registries(
        self, groups: dict[str, list[Target]], repo_states: dict[str, store.RepositoryState], seen: _Seen
    ) -> list[_RepoResult]:
        """Every repository, in lanes per registry (scheduler/lanes.py): a few of one
        registry's repositories at once, all within its share of the poll, so that a
        slow or hostile registry delays no other."""
        options = self.client.options
        by_host: dict[str, list[str]] = {}
        for key, members in groups.items():
            by_host.setdefault(members[0].repository.host, []).append(key)

        def state_of(key: str) -> store.RepositoryState:
            return repo_states.get(key) or store.RepositoryState(repository=key)

        def ran_out(host: str, key: str) -> _RepoResult:
            reason = f"{host}: not polled: {share_label(options.registry_deadline_s)} ran out; next poll"
            return _fail_all(groups[key], state_of(key), reason)

        return run_in_lanes(
            by_host,
            lambda key: self._poll_repository_safely(key, groups[key], state_of(key), seen),
            ran_out,
            concurrency=options.registry_concurrency,
            share_s=options.registry_deadline_s,
            max_workers=self.max_workers,
        )

    def _poll_repository_safely(
        self, key: str, members: list[Target], state: store.RepositoryState, seen: _Seen
    ) -> _RepoResult:
        """`_poll_repository`, with whatever a registry's answer breaks kept to that
        repository's deployments: one registry must not fail everyone's poll."""
        try:
            return self._poll_repository(key, members, state, seen)
        except Exception as exc:
            log.exception("polling %s failed", key)
            reason = f"{key}: the poll failed ({type(exc).__name__}); the service log has the details"
            return _fail_all(members, state, reason)

    def _poll_repository(
        self, key: str, members: list[Target], state: store.RepositoryState, seen: _Seen
    ) -> _RepoResult:
        """Everything about one repository: at most one tag list, HEADs on demand."""
        bad, statuses, now = seen.bad, seen.statuses, seen.now
        repo = members[0].repository
        decisions: dict[str, Decision] = {}
        baselines: dict[str, str] = {}
        state = msgspec.structs.replace(state, digests=dict(state.digests))

        def fail_all(reason: str) -> _RepoResult:
            return _fail_all(members, state, reason)

        if state.blocked_until is not None and state.blocked_until > now:
            return fail_all(
                f"{repo.host} asked us to wait (HTTP 429); next try after {state.blocked_until:%H:%M:%S} UTC"
            )
        state.blocked_until = None

        digest_cache: dict[str, str | Exception] = {}

        def digest_of(tag: str) -> str:
            if tag not in digest_cache:
                try:
                    digest_cache[tag] = self.client.digest(repo, tag)
                except RegistryError as exc:
                    digest_cache[tag] = exc
            found = digest_cache[tag]
            if isinstance(found, Exception):
                raise found
            state.digests[tag] = found
            return found

        ignored = 0
        try:
            if any(t.auto.policy != "digest" for t in members):
                listed = self.client.list_tags(repo, etag=state.etag)
                ignored = listed.invalid
                if not listed.not_modified:
                    if listed.tags != state.tags:
                        state.changed_at = now
                    state.tags, state.etag = listed.tags, listed.etag
                    state.pages, state.truncated = listed.pages, listed.truncated
            state.polled_at = now
            state.error = None
        except RateLimited as exc:
            state.blocked_until = now + timedelta(seconds=exc.retry_after_s)
            return fail_all(str(exc))
        except RegistryError as exc:
            return fail_all(str(exc))

        # A list stored before tags were checked on the way in may still hold anything.
        tags = [t for t in state.tags if is_tag(t)]
        for t in members:
            bad_for = {d: b.reason for d, b in bad.get(t.name, {}).items()}
            try:
                if t.auto.policy == "digest":
                    running = t.running_digest
                    previous = statuses.get(t.name)
                    if running is None and previous is not None and previous.image == t.image:
                        running = previous.baseline_digest
                    decision = decide_digest(t.tag, running, digest_of(t.tag), bad_for)
                    if decision.action == "baseline" and decision.candidates:
                        baselines[t.name] = decision.candidates[0].digest or ""
                else:
                    decision = decide_semver(t.tag, tags, t.auto, digest_of, bad_for, t.running_digest)
                    notes = [f"tag list cut at {state.pages} pages"] if state.truncated else []
                    if ignored:
                        notes.append(f"{ignored} listed names are not valid tags and were ignored")
                    if notes and decision.action != "error":
                        decision = msgspec.structs.replace(decision, reason=f"{decision.reason} ({'; '.join(notes)})")
            except RateLimited as exc:
                state.blocked_until = now + timedelta(seconds=exc.retry_after_s)
                decision = Decision(policy=t.auto.policy, action="error", reason=str(exc), current_tag=t.tag)
            except RegistryError as exc:
                decision = Decision(policy=t.auto.policy, action="error", reason=str(exc), current_tag=t.tag)
            decisions[t.name] = decision.truncated(MAX_STORED_CANDIDATES)
        return _RepoResult(state=state, decisions=decisions, baselines=baselines)

    def _commit(
        self,
        results: list[_RepoResult],
        skipped: list[Skipped],
        statuses: dict[str, store.DeploymentStatus],
        targets: dict[str, Target],
        report: PollReport,
    ) -> None:
        """Writes repository state, decisions and queued updates in one transaction,
        only while this process still holds the lease."""
        now = self.clock()
        with self.sessions() as s, s.begin():
            if self.lease is not None and not self.lease.fence(s):
                log.warning("lost the scheduler lease during a poll; its results are dropped")
                report.fenced_out = True
                return
            # Read inside the transaction: a user's change that arrived during the poll wins.
            busy = set(s.scalars(select(Operation.deployment_name).where(Operation.status.in_(ops.ACTIVE))))
            rows: list[store.DeploymentStatus] = []
            for result in results:
                store.save_repository(s, result.state)
                for name, decision in result.decisions.items():
                    target = targets[name]
                    previous = statuses.get(name)
                    status = store.DeploymentStatus(
                        deployment_name=name,
                        repository=target.repository.key,
                        image=target.image,
                        checked_at=now,
                        action=decision.action,
                        reason=decision.reason,
                        decision=decision,
                    )
                    if previous is not None and previous.image == target.image:
                        status.baseline_digest, status.baseline_tag = previous.baseline_digest, previous.baseline_tag
                    if name in result.baselines:
                        status.baseline_digest, status.baseline_tag = result.baselines[name], target.tag
                    if decision.action == "error":
                        report.errors += 1
                    if decision.action == "update":
                        status = self._enqueue(s, target, decision, status, report, busy=name in busy)
                    rows.append(status)
            for skip in skipped:
                previous = statuses.get(skip.name) or store.DeploymentStatus(deployment_name=skip.name)
                previous.action, previous.reason = "skipped", skip.reason
                previous.image = previous.image or skip.image
                rows.append(previous)
                report.skipped += 1
            store.save_statuses(s, rows)
            store.forget_deployments(s)

    def _enqueue(
        self,
        s: Session,
        target: Target,
        decision: Decision,
        status: store.DeploymentStatus,
        report: PollReport,
        *,
        busy: bool,
    ) -> store.DeploymentStatus:
        assert decision.target_tag and decision.target_digest
        if busy:  # a user's change arrived during the poll
            status.action = "skipped"
            status.reason = f"{decision.reason}: not queued, another operation arrived first; next poll"
            return status
        image = new_image_ref(target, decision.target_tag, decision.target_digest)
        change = Change(image=image, strategy=target.strategy)
        message = update_message(target, decision)
        payload = {
            "change": msgspec.to_builtins(change),
            # For the runner: what to check before applying (the spec still runs `from`)
            # and what to record and roll back to if the rollout fails.
            "auto_update": {
                "expect_image": target.spec_image,  # the spec's image field when the poll decided
                "from": target.image,
                "to": image,
                "tag": decision.target_tag,
                "digest": decision.target_digest,
                "policy": target.auto.policy,
                "strategy": target.strategy,
            },
        }
        op = ops.enqueue(s, target.name, OPERATION_KIND, payload, message)
        status.operation_id = op.id
        status.reason = f"queued: {message}"
        report.updates.append(Update(deployment=target.name, operation_id=op.id, message=message, image=image))
        log.info("%s: %s (operation %s)", target.name, message, op.id)
        return status


def reject_reasons(decision: Decision) -> list[Candidate]:
    """The rejected candidates of a decision (for logs and tests)."""
    return [c for c in decision.candidates if c.verdict == "rejected"]
