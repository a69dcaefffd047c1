"""The auto-update scheduler's tables, on the service's one MetaData so Alembic
creates and upgrades them with the rest (queries: `scheduler.store`).

- `scheduler_leader`: the lease that makes exactly one process the active scheduler.
- `registry_repositories`: what the last poll of each repository saw (tags, the
  digests it looked up, ETag, errors, a rate-limit pause), so a restart neither
  forgets a baseline digest nor hammers a registry that asked us to wait.
- `auto_update_status`: the last decision per deployment, with every candidate
  and why, for `GET /api/deployments/{name}/auto-update/status`.
- `auto_update_bad_digests`: digests whose rollout failed; never tried again.
- `apscheduler_jobs`: APScheduler's job store (its own schema, created here so
  nothing creates tables at run time).
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Float, Integer, LargeBinary, String, Table, Text, Unicode

from persistence.base import Base, UTCDateTime

metadata = Base.metadata

leader_table = Table(
    "scheduler_leader",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),
    # Bumped on every change of holder: a fencing number for logs and checks.
    Column("term", Integer, nullable=False, default=1),
    Column("acquired_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
)

repositories_table = Table(
    "registry_repositories",
    metadata,
    Column("repository", String(512), primary_key=True),  # host/path
    Column("tags", JSON, nullable=False, default=list),
    Column("digests", JSON, nullable=False, default=dict),  # tag -> digest, as last looked up
    Column("etag", String(255)),
    Column("pages", Integer, nullable=False, default=0),
    Column("truncated", Boolean, nullable=False, default=False),
    Column("polled_at", UTCDateTime()),
    Column("changed_at", UTCDateTime()),  # when the tag list last differed
    Column("error", Text),
    Column("blocked_until", UTCDateTime()),  # a 429 asked us to wait this long
)

status_table = Table(
    "auto_update_status",
    metadata,
    Column("deployment_name", String(63), primary_key=True),
    # The row it was decided for: a deployment re-created under the name starts clean.
    Column("deployment_id", Integer),
    Column("repository", String(512)),
    Column("image", String(512)),
    Column("checked_at", UTCDateTime()),
    Column("action", String(16)),  # update | none | baseline | error | skipped
    Column("reason", Text),
    Column("decision", JSON),
    Column("operation_id", String(36)),
    # Policy `digest` on an unpinned tag: the first digest seen is the baseline.
    Column("baseline_digest", String(80)),
    Column("baseline_tag", String(128)),
)

bad_digests_table = Table(
    "auto_update_bad_digests",
    metadata,
    Column("deployment_name", String(63), primary_key=True),
    Column("digest", String(80), primary_key=True),
    # Whose rollout failed: a deployment re-created under the name starts clean.
    Column("deployment_id", Integer),
    Column("image", String(512)),
    Column("reason", Text, nullable=False),
    Column("recorded_at", UTCDateTime(), nullable=False),
)

# APScheduler 3's SQLAlchemyJobStore schema, exactly (it checks for the table and
# finds it).
apscheduler_jobs_table = Table(
    "apscheduler_jobs",
    metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)
