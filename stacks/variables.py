"""Every environment variable the service reads, with its default as the README's
settings table shows it (`python -m stacks.settings` prints the table; a test keeps
the README equal to it)."""

from __future__ import annotations

import msgspec

DEFAULT_PASSPHRASE = "shipstack-local-passphrase"


class Variable(msgspec.Struct, frozen=True):
    name: str
    default: str  # as the README shows it; "" for none
    meaning: str


VARIABLES: tuple[Variable, ...] = (
    Variable("KUBECONFIG", "the local cluster's",
             "the cluster deployments go to; when set, `make run` starts no local cluster"),
    Variable("PULUMI_BACKEND_URL", "file://.shipstack/state",
             "any Pulumi backend: `s3://bucket`, `gs://...`, `azblob://...`, `postgres://...`"),
    Variable("PULUMI_CONFIG_PASSPHRASE", DEFAULT_PASSPHRASE,
             "encrypts env values in stack config and state: set your own"),
    Variable("PULUMI_HOME", "~/.cache/shipstack/pulumi-home", "where the pulumi CLI finds the provider plugin"),
    Variable("SHIPSTACK_DATA", ".shipstack", "the data folder (SQLite database, file backend, stack config)"),
    Variable("SHIPSTACK_CACHE", "~/.cache/shipstack", "the built toolchain (`bin/pulumi` and friends)"),
    Variable("SHIPSTACK_DATABASE_URL", "sqlite:///.shipstack/shipstack.db", "e.g. `postgresql://user:pass@host/db`"),
    Variable("SHIPSTACK_BASE_DOMAIN", "shipstack.localhost",
             "ingress hosts are `NAME.BASE_DOMAIN`, urls `https://NAME.BASE_DOMAIN`"),
    Variable("SHIPSTACK_INGRESS_CONTROLLER", "true",
             "set `false` on a cluster without an ingress controller: Ingresses are then not awaited"),
    Variable("SHIPSTACK_ROLE", "all",
             "`all` serves the API and runs operations and the scheduler; `api` only serves; `worker` only runs "
             "(`python -m api worker` is a worker whatever this says)"),
    Variable("SHIPSTACK_WORKERS", "16",
             "operations run at once (one per deployment at a time; one user gets all but one); each running one "
             "costs a pulumi and a provider process, about 190 MiB"),
    Variable("SHIPSTACK_WORKER_PROCESS", "true",
             "with role `all`, `python -m api serve` runs the operations and the scheduler in a child process "
             "(`python -m api worker`, restarted if it dies, stopped with the service) so reads never wait for "
             "their CPU; `false` runs them in the API process (one process, about 150 MiB, less)"),
    Variable("SHIPSTACK_WORKER_NICE", "10", "the niceness of that child worker process"),
    Variable("SHIPSTACK_PREVIEWS", "2",
             "previews (a pulumi process each) one API process runs at once, one per user; 429 with Retry-After "
             "beyond"),
    Variable("SHIPSTACK_BILLING", "false", "enforce tier limits (free 1, business 10, enterprise unlimited)"),
    Variable("SHIPSTACK_ENGINE_NICE", "10",
             "how much nicer than the process running the operations pulumi and its provider run (`nice -n`, at most "
             "19 in all): below the API, so reads never wait for a rollout's CPU"),
    Variable("SHIPSTACK_ROLLOUT_TIMEOUT", "300",
             "seconds a rollout may take before the update fails (and an auto-update is rolled back)"),
    Variable("SHIPSTACK_INGRESS_NAMESPACE_SELECTOR", "kubernetes.io/metadata.name=ingress-nginx",
             "labels of the ingress controller's namespace: the only other namespace a deployment's pods accept "
             "traffic from"),
    Variable("SHIPSTACK_EGRESS_DENY", "the private ranges",
             "comma-separated CIDRs pods may not reach (default: every private, link-local and loopback range); "
             "`none` opens egress"),
    Variable("SHIPSTACK_QUOTA_CPU", "16", "CPU limits all pods of one deployment may add up to"),
    Variable("SHIPSTACK_QUOTA_MEMORY", "16Gi", "memory limits all pods of one deployment may add up to"),
    Variable("SHIPSTACK_QUOTA_PODS", "40", "pods per deployment"),
    Variable("SHIPSTACK_QUOTA_VOLUME_CLAIMS", "4", "volume claims per deployment"),
    Variable("SHIPSTACK_QUOTA_STORAGE", "20Gi", "storage per deployment"),
    Variable("SHIPSTACK_CONTAINER_MAX_CPU", "4", "largest CPU limit of one container"),
    Variable("SHIPSTACK_CONTAINER_MAX_MEMORY", "8Gi", "largest memory limit of one container"),
    Variable("SHIPSTACK_RESOURCES", "",
             'JSON `{"template": {"service": {"requests": {"cpu", "memory"}, "limits": {...}}}}` replacing the '
             "sizes a template file gives its containers"),
    Variable("SHIPSTACK_RATE_LIMIT", "600", "requests per minute per API key or session (429 beyond)"),
    Variable("SHIPSTACK_SESSION_TTL", "43200", "seconds a browser session lasts"),
    Variable(
        "SHIPSTACK_SECURE_COOKIES", "false", "set `true` behind TLS: cookies are then Secure and `__Host-` prefixed"
    ),
    Variable("SHIPSTACK_LOGIN_MAX_ATTEMPTS", "5", "failed sign-ins per user and client address per window"),
    Variable("SHIPSTACK_LOGIN_WINDOW", "300", "seconds of that window"),
    Variable("SHIPSTACK_MAX_API_KEYS", "100",
             "live API keys one user may hold; creating one more is a 409 `key_limit` until one is revoked or expires"),
    Variable("SHIPSTACK_SCHEDULER", "true",
             "`false` in API-only processes, so they never lead the auto-update scheduler"),
    Variable("SHIPSTACK_POLL_INTERVAL", "300",
             "seconds between registry polls (a deployment may ask for its own interval)"),
    Variable("SHIPSTACK_SCHEDULER_LEASE", "30", "seconds the scheduler's leader lease lasts without renewal"),
    Variable("SHIPSTACK_DRIFT_INTERVAL", "3600",
             "seconds between drift checks of a deployment (a deployment may ask for its own); `0` turns "
             "scheduled checks off"),
    Variable("SHIPSTACK_DRIFT_CONCURRENCY", "2",
             "scheduled drift checks queued or running at once, across all deployments"),
    Variable("SHIPSTACK_METRICS_INTERVAL", "60",
             "seconds between samples of each Ready deployment's CPU and memory, kept for a day (`0`: no "
             "sampling)"),
    Variable("SHIPSTACK_REGISTRY_AUTH", "",
             'registry credentials, JSON `{"host": {"username": "...", "password": "..."}}`'),
    Variable("SHIPSTACK_REGISTRY_INSECURE", "", "comma-separated registry hosts spoken to over plain http"),
    Variable("SHIPSTACK_REGISTRY_ALLOW_PRIVATE", "",
             "comma-separated `host`, `host:port` or CIDR entries a registry may resolve to on loopback, private "
             "or link-local addresses (nothing else may)"),
    Variable("SHIPSTACK_REGISTRY_REALM_HOSTS", "",
             'JSON `{"registry host": ["token host", ...]}`: other hosts a registry\'s token realm may name '
             "(Docker Hub's and GitLab's are built in)"),
    Variable("SHIPSTACK_REGISTRY_TIMEOUT", "15", "seconds one read, write or connect to a registry may take"),
    Variable("SHIPSTACK_REGISTRY_REQUEST_DEADLINE", "30", "seconds one registry request may take, start to last byte"),
    Variable("SHIPSTACK_REGISTRY_POLL_DEADLINE", "120", "seconds one registry gets in each poll"),
    Variable("SHIPSTACK_REGISTRY_CONCURRENCY", "4", "repositories of one registry polled at once"),
    Variable("SHIPSTACK_REGISTRY_MAX_PAGES", "20", "tag-list pages read per repository and poll"),
)  # fmt: skip
BY_NAME = {v.name: v for v in VARIABLES}


def readme_table() -> str:
    """The README's settings table (`python -m stacks.settings` prints it)."""

    def cell(default: str) -> str:
        described = ("the local cluster's", "the private ranges")
        return "none" if not default else default if default in described else f"`{default}`"

    rows = [f"| `{v.name}` | {cell(v.default)} | {v.meaning} |" for v in VARIABLES]
    return "\n".join(["| variable | default | meaning |", "| --- | --- | --- |", *rows])
