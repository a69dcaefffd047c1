"""Wall time of one nginx `up` and `destroy` through the real engine, and the
peak memory of the pulumi CLI plus the Kubernetes provider during `up`.

    .venv/bin/python bench/engine_footprint.py

Starts its own local cluster and data folder (needs `make toolchain` first),
samples /proc every 50 ms for processes named pulumi or
pulumi-resource-kubernetes, and prints the figures.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from programs.spec import DeploymentSpec
from stacks import engine
from stacks.settings import Settings
from toolchain.cluster import LocalCluster

WATCHED = ("pulumi", "pulumi-resource-kubernetes")


def engine_rss_kib() -> int:
    """Summed resident memory of the engine's processes right now."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except OSError:
            continue
        if fields.get("Name", "").strip() in WATCHED:
            total += int(fields.get("VmRSS", "0 kB").split()[0])
    return total


class PeakSampler:
    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, engine_rss_kib())
            time.sleep(0.05)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="shipstack-bench-"))
    cluster = LocalCluster(root / "cluster")
    cluster.up(wait_metrics=False)
    try:
        settings = Settings.from_env(
            {"SHIPSTACK_DATA": str(root / "data"), "KUBECONFIG": str(cluster.kubeconfig_path), "HOME": str(Path.home())}
        )
        spec = DeploymentSpec(name="bench-nginx", template="nginx", base_domain=settings.service.base_domain)
        with PeakSampler() as sampler:
            t = time.monotonic()
            applied = engine.apply(settings, spec, "create nginx", previous=None, create=True)
            up_s = time.monotonic() - t
        t = time.monotonic()
        engine.destroy(settings, spec.name, applied.config)
        destroy_s = time.monotonic() - t
    finally:
        cluster.down()
    print(f"nginx up (Namespace, Secret, Deployment, Service, Ingress, until Available): {up_s:.1f} s")
    print(f"nginx destroy (namespace gone): {destroy_s:.1f} s")
    print(f"peak RSS of pulumi CLI + kubernetes provider during up: {sampler.peak / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
