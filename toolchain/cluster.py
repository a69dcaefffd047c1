"""The embedded local Kubernetes cluster: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, kwok and metrics-server on loopback.

It is a real control plane (TLS everywhere clients talk to the API server,
RBAC, service-account tokens, the aggregation layer) whose nodes are simulated
by kwok: the scheduler binds pods, the controller manager runs Deployments and
ReplicaSets, and kwok moves pods to Running and Ready, so pulumi-kubernetes'
own await logic passes unchanged. kwok also plays the ingress controller (a
Stage writes a load-balancer status on every Ingress), serves pod logs from a
file a small writer keeps appending to, and simulates resource usage that
metrics-server turns into `metrics.k8s.io`.

Usage:
    python -m toolchain.cluster up   [--dir DIR]   # prints the kubeconfig path
    python -m toolchain.cluster down [--dir DIR]
    python -m toolchain.cluster status [--dir DIR]

Everything it starts is recorded in DIR/state.json; `down` stops exactly those
processes and nothing else. Ports are picked free, so two clusters (two test
runs) on one machine do not collide. Only the standard library is used, so the
launcher runs before the project's virtualenv exists.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from toolchain.common import BIN, CACHE, Api, ClusterError, log
from toolchain.kwok_setup import LOG_WRITER, cluster_objects, kwok_config, node
from toolchain.pki import kubeconfig, make_pki

__all__ = ["CACHE", "ClusterError", "LocalCluster"]

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = Path(os.environ.get("SHIPSTACK_DATA", str(REPO_ROOT / ".shipstack"))) / "cluster"
NODES = ("kwok-node-0", "kwok-node-1")
SERVICE_CIDR = "10.96.0.0/16"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found:
        return found
    raise ClusterError(f"{name} is not built yet: run 'make toolchain' first")


# --- PKI --------------------------------------------------------------------


def wait_for(what: str, check, timeout: float, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    last_report = time.monotonic()
    while True:
        try:
            if check():
                return
        except (OSError, urllib.error.URLError, ssl.SSLError):
            pass
        if time.monotonic() > deadline:
            raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}")
        if time.monotonic() - last_report > 15:
            log(f"  ... still waiting for {what}")
            last_report = time.monotonic()
        time.sleep(interval)


@dataclass
class LocalCluster:
    dir: Path = DEFAULT_DIR

    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    @property
    def kubeconfig_path(self) -> Path:
        return self.dir / "kubeconfig"

    def state(self) -> dict | None:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None

    def running(self) -> bool:
        st = self.state()
        if not st:
            return False
        if not all(_alive(pid) for pid in st["pids"].values()):
            return False
        api = Api(st["server"], self.dir / "pki")
        try:
            status, _ = api.request("GET", "/readyz", timeout=3)
        except OSError:
            return False
        return status == 200

    def up(self, *, wait_metrics: bool = True) -> Path:
        if self.running():
            log(f"already running; kubeconfig: {self.kubeconfig_path}")
            return self.kubeconfig_path
        if self.state():
            log("a previous cluster here is not healthy; stopping what is left of it")
            self.down()
        started = time.monotonic()
        try:
            self._start(wait_metrics=wait_metrics)
        except BaseException:
            log(f"start failed; logs are in {self.dir / 'logs'}")
            self.down(keep_logs=True)
            raise
        log(f"ready in {time.monotonic() - started:.1f} s; kubeconfig: {self.kubeconfig_path}")
        return self.kubeconfig_path

    def _start(self, *, wait_metrics: bool) -> None:
        d = self.dir
        if d.exists():
            for sub in ("etcd", "pki", "logs"):
                shutil.rmtree(d / sub, ignore_errors=True)
        (d / "logs").mkdir(parents=True, exist_ok=True)
        pki = d / "pki"
        log("generating certificates")
        make_pki(pki)

        ports = {k: free_port() for k in ("etcd", "etcd_peer", "apiserver", "kcm", "scheduler", "kwok", "metrics")}
        server = f"https://127.0.0.1:{ports['apiserver']}"
        for user in ("admin", "controller-manager", "scheduler", "kwok", "metrics-server"):
            (d / f"{user}.kubeconfig").write_text(kubeconfig(pki, server, user))
        state: dict = {"server": server, "ports": ports, "pids": {}}

        def start(name: str, args: list[str]) -> None:
            logf = open(d / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
            proc = subprocess.Popen(
                args, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
            logf.close()
            state["pids"][name] = proc.pid
            self.state_file.write_text(json.dumps(state, indent=2))

        log(f"starting etcd on 127.0.0.1:{ports['etcd']}")
        etcd_url = f"http://127.0.0.1:{ports['etcd']}"
        peer_url = f"http://127.0.0.1:{ports['etcd_peer']}"
        start("etcd", [
            binary("etcd"), "--name", "default", "--data-dir", str(d / "etcd"),
            "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
            "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", f"default={peer_url}", "--log-level", "warn",
            # A disposable development cluster: durability is not worth the fsyncs.
            "--unsafe-no-fsync", "--quota-backend-bytes", str(2 * 1024**3),
        ])  # fmt: skip
        wait_for("etcd", lambda: urllib.request.urlopen(etcd_url + "/health", timeout=2).status == 200, 60)

        log(f"starting kube-apiserver on {server}")
        start("kube-apiserver", [
            binary("kube-apiserver"),
            "--etcd-servers", etcd_url,
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
            "--secure-port", str(ports["apiserver"]),
            "--tls-cert-file", str(pki / "apiserver.crt"), "--tls-private-key-file", str(pki / "apiserver.key"),
            "--client-ca-file", str(pki / "ca.crt"),
            "--authorization-mode", "Node,RBAC",
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file", str(pki / "sa.pub"),
            "--service-account-signing-key-file", str(pki / "sa.key"),
            "--service-cluster-ip-range", SERVICE_CIDR,
            "--kubelet-client-certificate", str(pki / "apiserver-kubelet-client.crt"),
            "--kubelet-client-key", str(pki / "apiserver-kubelet-client.key"),
            "--kubelet-preferred-address-types", "InternalIP",
            "--requestheader-client-ca-file", str(pki / "front-proxy-ca.crt"),
            "--requestheader-allowed-names", "front-proxy-client",
            "--requestheader-extra-headers-prefix", "X-Remote-Extra-",
            "--requestheader-group-headers", "X-Remote-Group",
            "--requestheader-username-headers", "X-Remote-User",
            "--proxy-client-cert-file", str(pki / "front-proxy-client.crt"),
            "--proxy-client-key-file", str(pki / "front-proxy-client.key"),
            # The "kubernetes" Service cannot point at a loopback address.
            "--endpoint-reconciler-type", "none",
            "--allow-privileged=true", "--profiling=false",
        ])  # fmt: skip
        api = Api(server, pki)
        wait_for("kube-apiserver /readyz", lambda: api.request("GET", "/readyz", timeout=3)[0] == 200, 120)

        log("starting kube-controller-manager and kube-scheduler")
        kcm = str(d / "controller-manager.kubeconfig")
        start("kube-controller-manager", [
            binary("kube-controller-manager"),
            "--kubeconfig", kcm, "--authentication-kubeconfig", kcm, "--authorization-kubeconfig", kcm,
            "--bind-address", "127.0.0.1", "--secure-port", str(ports["kcm"]),
            "--service-account-private-key-file", str(pki / "sa.key"),
            "--root-ca-file", str(pki / "ca.crt"),
            "--use-service-account-credentials=true",
            "--cluster-signing-cert-file", str(pki / "ca.crt"), "--cluster-signing-key-file", str(pki / "ca.key"),
            "--leader-elect=false", "--profiling=false",
            # kwok renews node leases from a process that may be starved of CPU on a
            # small, busy machine; a generous grace keeps nodes (and so pods) Ready.
            "--node-monitor-grace-period", "2m",
            # Volumes: kcm's development provisioner makes a hostPath PV (a folder under
            # /tmp/hostpath_pv) for every claim of the default StorageClass, and deletes it
            # with the claim, as a cloud provisioner would.
            "--enable-hostpath-provisioner=true",
        ])  # fmt: skip
        sched = str(d / "scheduler.kubeconfig")
        start("kube-scheduler", [
            binary("kube-scheduler"),
            "--kubeconfig", sched, "--authentication-kubeconfig", sched, "--authorization-kubeconfig", sched,
            "--bind-address", "127.0.0.1", "--secure-port", str(ports["scheduler"]),
            "--leader-elect=false", "--profiling=false",
        ])  # fmt: skip

        log("starting kwok (simulated nodes, pod lifecycle, logs, usage, ingress status)")
        for path, obj in cluster_objects(ports["metrics"]):
            api.create(path, obj)
        logs_file = d / "logs" / "container.log"
        logs_file.touch()
        start("log-writer", [sys.executable, "-c", LOG_WRITER, str(logs_file)])
        (d / "kwok.yaml").write_text(kwok_config(logs_file))
        start("kwok", [
            binary("kwok"), "--config", str(d / "kwok.yaml"),
            "--kubeconfig", str(d / "kwok.kubeconfig"),
            "--manage-nodes-with-annotation-selector", "kwok.x-k8s.io/node=fake",
            "--node-ip", "127.0.0.1", "--node-port", str(ports["kwok"]),
            "--server-address", f"127.0.0.1:{ports['kwok']}",
            "--tls-cert-file", str(pki / "kwok-serving.crt"), "--tls-private-key-file", str(pki / "kwok-serving.key"),
            "--cidr", "10.244.0.1/16",
            # Renew node leases as a kubelet does: node health then does not hang on
            # kwok's slower status heartbeats, which a busy machine can delay past the
            # controller manager's grace period.
            "--node-lease-duration-seconds", "40",
        ])  # fmt: skip
        for name in NODES:
            api.create("/api/v1/nodes", node(name))

        log(f"starting metrics-server on 127.0.0.1:{ports['metrics']}")
        ms = str(d / "metrics-server.kubeconfig")
        start("metrics-server", [
            binary("metrics-server"),
            "--kubeconfig", ms, "--authentication-kubeconfig", ms, "--authorization-kubeconfig", ms,
            "--bind-address", "127.0.0.1", "--secure-port", str(ports["metrics"]),
            "--tls-cert-file", str(pki / "metrics-server-serving.crt"),
            "--tls-private-key-file", str(pki / "metrics-server-serving.key"),
            "--kubelet-preferred-address-types", "InternalIP", "--kubelet-use-node-status-port",
            "--kubelet-insecure-tls", "--metric-resolution", "15s", "--kubelet-request-timeout", "5s",
        ])  # fmt: skip

        def nodes_ready() -> bool:
            status, body = api.request("GET", "/api/v1/nodes")
            if status != 200 or not isinstance(body, dict):
                return False

            def ready(n: dict) -> bool:
                conditions = n.get("status", {}).get("conditions", [])
                return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

            return sum(ready(n) for n in body.get("items", [])) == len(NODES)

        wait_for("kwok to mark the nodes Ready", nodes_ready, 120)
        wait_for(
            "the default service account",
            lambda: api.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")[0] == 200,
            120,
        )
        self.kubeconfig_path.write_text(kubeconfig(pki, server, "admin"))
        self.kubeconfig_path.chmod(0o600)
        if wait_metrics:
            try:
                wait_for(
                    "metrics.k8s.io",
                    lambda: api.request("GET", "/apis/metrics.k8s.io/v1beta1/nodes")[0] == 200,
                    90,
                    interval=2,
                )
            except ClusterError as e:
                log(f"warning: {e}; logs and deployments work, metrics will answer 503 (see {d / 'logs'})")

    def down(self, *, keep_logs: bool = False) -> None:
        st = self.state()
        if st:
            # Stop in reverse start order: clients before the API server, etcd last.
            for name, pid in reversed(list(st["pids"].items())):
                _stop(name, pid)
        with contextlib.suppress(FileNotFoundError):
            self.state_file.unlink()
        with contextlib.suppress(FileNotFoundError):
            self.kubeconfig_path.unlink()
        shutil.rmtree(self.dir / "etcd", ignore_errors=True)
        if not keep_logs:
            shutil.rmtree(self.dir / "logs", ignore_errors=True)
        log("stopped")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of this process still answers kill(0).
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _stop(name: str, pid: int) -> None:
    if not _alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while _alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    if _alive(pid):
        log(f"{name} ignored SIGTERM; killing it")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolchain.cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"cluster folder (default {DEFAULT_DIR})")
    parser.add_argument("--no-metrics-wait", action="store_true", help="do not wait for metrics.k8s.io")
    args = parser.parse_args(argv)
    cluster = LocalCluster(args.dir.resolve())
    try:
        if args.command == "up":
            print(cluster.up(wait_metrics=not args.no_metrics_wait))
        elif args.command == "down":
            cluster.down()
        else:
            ok = cluster.running()
            print("running" if ok else "stopped")
            return 0 if ok else 1
    except ClusterError as e:
        log(f"error: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
