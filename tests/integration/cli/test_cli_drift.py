"""`shipstack drift` and `shipstack reconcile` against the real service over HTTP,
the engine and the local cluster: a scaled Deployment is reported by `drift --check`
(table and JSON), `reconcile` puts it back, and the next check finds nothing."""

from __future__ import annotations

import json

from tests.integration.cli.conftest import Cli, HttpService, Kube

NAME = "cli-drift"
NS = f"sd-{NAME}"


def test_drift_check_and_reconcile_from_the_command_line(http_service: HttpService, cli: Cli, kube: Kube) -> None:
    assert cli.login(http_service.url, http_service.key).code == 0
    assert cli("deploy", "nginx", "--name", NAME).code == 0

    r = cli("drift", NAME, "--check")
    assert r.code == 0, r.err
    assert f"drift check of {NAME}: drift check: no drift" in r.err
    lines = dict(line.split(":", 1) for line in r.out.splitlines())
    assert lines["policy"].strip() == "report" and lines["drift"].strip().startswith("none (checked ")

    kube.apps.patch_namespaced_deployment_scale("nginx", NS, {"spec": {"replicas": 2}})
    r = cli("drift", NAME, "--check")
    assert r.code == 0, r.err
    table = r.out.split("\n\n")[1].splitlines()
    assert table[1].split() == ["Deployment", "nginx", "modified", "spec.replicas"]
    shown = json.loads(cli("drift", NAME, "--json").out)
    assert shown["drift"]["drifted"] is True and shown["drift"]["objects"][0]["fields"] == ["spec.replicas"]
    assert "drift:  1 object drifted" in cli("status", NAME).out

    r = cli("reconcile", NAME)
    assert r.code == 0, r.err
    assert f"reconcile {NAME}: done" in r.err
    assert kube.apps.read_namespaced_deployment("nginx", NS).spec.replicas == 1
    r = cli("drift", NAME, "--check", "--policy", "reconcile", "--interval", "600")
    assert r.code == 0, r.err
    lines = dict(line.split(":", 1) for line in r.out.splitlines())
    assert lines["policy"].strip() == "reconcile" and lines["checks"].strip() == "every 600 s (its own interval)"
    assert lines["drift"].strip().startswith("none (checked ")
    assert cli("rm", NAME).code == 0
