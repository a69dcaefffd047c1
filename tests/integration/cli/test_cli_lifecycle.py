"""One deployment's whole life through the `shipstack` command line, against the real
service over HTTP, the real engine and the local cluster: login, templates, deploy
with env, status --wait, ls, config, config set/unset, history, preview, rollback
(a good one and one that fails), restart, auto-update, rm. Each step is checked
where a user would look (stdout, stderr, the exit code) and in the cluster."""

from __future__ import annotations

import json
import stat

from tests.integration.cli.conftest import Cli, HttpService, Kube

NAME = "cli-web"
NS = f"sd-{NAME}"


def fields(out: str) -> dict[str, str]:
    """`key: value` lines as the CLI prints them."""
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}


def test_a_deployment_from_login_to_rm(http_service: HttpService, cli: Cli, kube: Kube) -> None:
    url = http_service.url
    host = f"{NAME}.{http_service.settings.service.base_domain}"

    r = cli.login(url, http_service.key)
    assert r.code == 0, r.err
    assert f"logged in to {url} as tester (deployments:read, deployments:write)" in r.err
    assert stat.S_IMODE(cli.config_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.config_file.parent.stat().st_mode) == 0o700

    r = cli("templates")
    assert r.code == 0 and r.out.splitlines()[0].split()[:3] == ["TEMPLATE", "SERVICES", "REQUIRED"]
    assert any(line.startswith("nginx ") and "nginx:1.27:80" in line for line in r.out.splitlines())

    # Deploy: waits for the operation, showing the engine's progress (plain lines: not a terminal).
    r = cli("deploy", "nginx", "--name", NAME, "--env", "GREETING=hello")
    assert r.code == 0, r.err
    assert r.out == f"{NAME}\n"
    assert f"create {NAME}: creating kubernetes:apps/v1:Deployment nginx" in r.err
    assert f"create {NAME}: created kubernetes:apps/v1:Deployment nginx" in r.err
    assert f"create {NAME}: done" in r.err
    assert f"{NAME} is Ready: https://{host}" in r.err
    assert kube.apps.read_namespaced_deployment("nginx", NS).status.available_replicas == 1
    assert kube.env(NS, "nginx") == {"GREETING": "hello"}

    r = cli("status", NAME, "--wait")
    assert r.code == 0 and r.out.splitlines() == [
        f"name:   {NAME}", "status: Ready", "ready:  yes", f"url:    https://{host}"
    ]  # fmt: skip
    assert json.loads(cli("status", NAME, "--json").out)["deploymentReady"] is True

    r = cli("ls")
    assert r.code == 0 and r.out.splitlines()[1].split() == [NAME, "Ready", "nginx", "public", f"https://{host}"]
    listed = json.loads(cli("ls", "--json").out)
    assert [d["name"] for d in listed] == [NAME] and listed[0]["canDelete"] is True

    assert cli("config", NAME).out == "GREETING=hello\n"

    # config set: read-modify-write, so GREETING is changed and nothing else lost.
    pods_before = kube.running_pods(NS)
    r = cli("config", "set", NAME, "DEBUG=1", "GREETING=bye")
    assert r.code == 0, r.err
    assert f"config {NAME} (set DEBUG, GREETING): done" in r.err
    assert json.loads(cli("config", NAME, "--json").out) == {"configData": {"GREETING": "bye", "DEBUG": "1"}}
    assert kube.env(NS, "nginx") == {"GREETING": "bye", "DEBUG": "1"}
    assert not kube.running_pods(NS) & pods_before, "an env change rolls the pods"
    r = cli("config", "unset", NAME, "DEBUG", "NOPE")
    assert r.code == 0, r.err
    assert f"NOPE is not set on {NAME}" in r.err
    assert cli("config", NAME).out == "GREETING=bye\n"
    assert kube.env(NS, "nginx") == {"GREETING": "bye"}
    r = cli("config", "set", NAME, "GREETING=bye")
    assert r.code == 0 and f"config {NAME}: no change" in r.err

    r = cli("history", NAME)
    assert r.code == 0, r.err
    rows = r.out.splitlines()
    assert rows[0].split()[:3] == ["REVISION", "STARTED", "(UTC)"]
    assert [row.split()[0] for row in rows[1:]] == ["3", "2", "1"]
    assert rows[3].endswith("create nginx") and "succeeded" in rows[3]
    assert "bye" not in r.out and "hello" not in r.out  # env values never show in history
    assert [rev["version"] for rev in json.loads(cli("history", NAME, "--json").out)["revisions"]] == [3, 2, 1]

    # Preview merges --env onto the current env, as `config set` would, and changes nothing.
    r = cli("preview", NAME, "--env", "GREETING=preview")
    assert r.code == 0, r.err
    assert "kubernetes:apps/v1:Deployment" in r.out and r.out.rstrip().endswith("pods would be replaced")
    assert json.loads(cli("preview", NAME, "--image", "nginx:1.27", "--json").out)["podsWillRoll"] is False
    assert cli("config", NAME).out == "GREETING=bye\n"

    r = cli("rollback", NAME, "1")
    assert r.code == 0, r.err
    assert cli("config", NAME).out == "GREETING=hello\n"
    assert kube.env(NS, "nginx") == {"GREETING": "hello"}
    assert "rollback to revision 1" in cli("history", NAME).out.splitlines()[1]

    # A rollback to a revision that does not exist: refused before anything is queued (404, exit 3).
    r = cli("rollback", NAME, "99")
    assert r.code == 3
    assert f"error: Deployment '{NAME}' has no revision 99; its revisions are 1 to" in r.err
    assert "(revision_not_found, HTTP 404)" in r.err

    pods_before = kube.running_pods(NS)
    r = cli("restart", NAME)
    assert r.code == 0 and f"restart {NAME}: done" in r.err
    assert pods_before and not kube.running_pods(NS) & pods_before

    r = cli("auto-update", NAME)
    assert r.code == 0 and fields(r.out) == {
        "enabled": "no", "strategy": "rolling", "policy": "digest", "interval": "the service's default (300 s)",
        "prerelease": "no", "last check": "never",
    }  # fmt: skip
    r = cli("auto-update", NAME, "--enable", "--strategy", "recreate", "--policy", "patch", "--exclude", "alpine")
    assert r.code == 0, r.err
    assert f"auto-update enabled (recreate, patch) on {NAME}: done" in r.err
    shown = json.loads(cli("auto-update", NAME, "--json").out)
    assert shown["settings"] | {"intervalSeconds": None} == {
        "enabled": True, "strategy": "recreate", "policy": "patch", "include": None, "exclude": "alpine",
        "intervalSeconds": None, "prerelease": False,
    }  # fmt: skip
    assert shown["status"]["name"] == NAME
    assert kube.apps.read_namespaced_deployment("nginx", NS).spec.strategy.type == "Recreate"
    r = cli("auto-update", NAME, "--exclude", "")  # only the filter changes; still enabled
    assert r.code == 0, r.err
    shown = fields(cli("auto-update", NAME).out)
    assert shown["enabled"] == "yes" and shown["strategy"] == "recreate" and "exclude" not in shown

    r = cli("rm", NAME)
    assert r.code == 0, r.err
    assert f"delete {NAME}: done" in r.err
    assert NS not in kube.namespaces()
    assert cli("ls").out == ""
    r = cli("status", NAME)
    assert r.code == 3 and f"Deployment '{NAME}' not found" in r.err
