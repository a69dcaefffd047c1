"""Service settings, read once from the environment.

Every setting has an embedded default so `make run` works on a fresh machine:
a data folder under the checkout, SQLite, a `file://` Pulumi backend inside the
data folder and the local cluster's kubeconfig.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

REPO_ROOT = Path(__file__).resolve().parent.parent


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    data_dir: Path
    database_url: str
    backend_url: str
    passphrase: str
    pulumi_home: Path
    kubeconfig: Path | None
    base_domain: str = "shipstack.localhost"
    # The local cluster has an ingress status writer; a real cluster without an
    # ingress controller sets this false so Ingresses are not awaited.
    ingress_controller: bool = True
    billing_enabled: bool = False
    workers: int = 4
    # How long Pulumi waits for a rollout (Deployment Available, Service endpoints,
    # Ingress address) before the update fails: "the deployment's timeout".
    rollout_timeout_s: int = 300
    rate_limit_per_minute: int = 600
    # Browser sessions (api/auth): lifetime, and whether the cookie is marked
    # Secure. Off by default only because `make run` serves plain http on
    # localhost; production behind TLS sets SHIPSTACK_SECURE_COOKIES=1.
    session_ttl_s: int = 12 * 3600
    session_cookie_secure: bool = False
    # Failed logins allowed per (user, client IP) in each window before 429.
    login_max_attempts: int = 5
    login_window_s: int = 300

    @property
    def stacks_dir(self) -> Path:
        """One persistent Pulumi workspace folder per stack (salt, config)."""
        return self.data_dir / "stacks"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = dict(os.environ if env is None else env)
        data_dir = Path(e.get("SHIPSTACK_DATA", str(REPO_ROOT / ".shipstack"))).resolve()
        cache = Path(e.get("SHIPSTACK_CACHE", str(Path.home() / ".cache" / "shipstack")))
        kubeconfig = e.get("KUBECONFIG") or str(data_dir / "cluster" / "kubeconfig")
        return cls(
            data_dir=data_dir,
            database_url=e.get("SHIPSTACK_DATABASE_URL", f"sqlite:///{data_dir / 'shipstack.db'}"),
            backend_url=e.get("PULUMI_BACKEND_URL", f"file://{data_dir / 'state'}"),
            passphrase=e.get("PULUMI_CONFIG_PASSPHRASE", "shipstack-local-passphrase"),
            pulumi_home=Path(e.get("PULUMI_HOME", str(cache / "pulumi-home"))),
            kubeconfig=Path(kubeconfig),
            base_domain=e.get("SHIPSTACK_BASE_DOMAIN", "shipstack.localhost"),
            ingress_controller=_bool(e.get("SHIPSTACK_INGRESS_CONTROLLER"), True),
            billing_enabled=_bool(e.get("SHIPSTACK_BILLING"), False),
            workers=int(e.get("SHIPSTACK_WORKERS", "4")),
            rollout_timeout_s=int(e.get("SHIPSTACK_ROLLOUT_TIMEOUT", "300")),
            rate_limit_per_minute=int(e.get("SHIPSTACK_RATE_LIMIT", "600")),
            session_ttl_s=int(e.get("SHIPSTACK_SESSION_TTL", str(12 * 3600))),
            session_cookie_secure=_bool(e.get("SHIPSTACK_SECURE_COOKIES"), False),
            login_max_attempts=int(e.get("SHIPSTACK_LOGIN_MAX_ATTEMPTS", "5")),
            login_window_s=int(e.get("SHIPSTACK_LOGIN_WINDOW", "300")),
        )
