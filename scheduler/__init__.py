"""APScheduler jobs, the OCI registry client and auto-update policies.

Deployments that opted in (`shipstack:autoUpdate` in their stack config) are
polled for newer images; an update is queued as an ordinary operation (kind
"auto-update", `Change(image="repo:tag@sha256:...", strategy=...)`), so it runs
through the same runner, history and rollback as a user's change.

Modules, each small and with one reason to change:

- `registry`  the OCI distribution client (tags, digests, tokens, 429s) on httpx,
              hardened against hostile registries (SSRF guard, deadlines, caps)
- `policy`    pure decisions: digest | patch | minor | major, filters, bad digests
- `targets`   which deployments to poll, read from their stack config files
- `poll`      one poll: group by repository, decide, queue, record
- `lanes`     a poll's work spread over registries: per-registry concurrency and share
- `leader`    the database lease that makes one process the active scheduler
- `jobs`      APScheduler (persistent job store) behind that lease; settings
- `store`     the scheduler's tables: lease, repository memory, decisions, bad digests
- `failures`  what the runner calls when an auto-update's rollout fails
- `drift`     scheduled drift checks: which deployments are due, their checks queued
- `metrics_sampler`  every SHIPSTACK_METRICS_INTERVAL, CPU and memory per service of
              each Ready deployment into `metric_samples` (a second job of the leader)
- `metrics_kube`  the sampler's cluster reads (the `kubernetes` package, synchronous)
- `retention` pure: what the samples table keeps (6 h in full, 5-minute means to 24 h)

Why it is built this way: one tag list per
repository per poll however many deployments share it; tokens cached per scope
until they expire; Retry-After honoured, and a long one pauses that registry
across restarts instead of being slept through; what was seen (tags, digests,
baselines, due times) survives restarts; a failed digest is never retried; every
decision keeps each candidate and why it was chosen or rejected. Registries and
filters belong to tenants, and the scheduler serves all of them from the API
process: filters run on RE2 (linear time), each registry gets a few workers and a
share of each poll, and what a registry says is checked and cleaned before anyone
reads it.
"""
