"""What the user commands print: tables, blocks, progress lines, and where each goes."""

from __future__ import annotations

import io

import msgspec

from api.cli import render, wire


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_table_aligns_columns_and_leaves_the_last_unpadded() -> None:
    text = render.table(["NAME", "STATUS", "URL"], [["web", "Ready", "https://web.x"], ["a-long-name", "Error", "-"]])
    assert text.splitlines() == [
        "NAME         STATUS  URL",
        "web          Ready   https://web.x",
        "a-long-name  Error   -",
    ]


def test_deployments_show_the_url_when_ready_and_the_error_otherwise() -> None:
    items = msgspec.json.decode(
        b"""[{"name": "web", "status": "Ready", "template": "nginx", "visibility": "public", "canDelete": true,
              "ingresses": [{"id": "nginx", "name": "nginx", "host": "web.x", "url": "https://web.x"}]},
             {"name": "api", "status": "Error", "template": "image", "image": "repo/api:1", "visibility": "internal",
              "ingresses": [], "canDelete": true, "lastError": "rollout timed out"}]""",
        type=list[wire.DeploymentItem],
    )
    lines = render.deployments(items).splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "TEMPLATE", "/", "IMAGE", "VISIBILITY", "URL", "/", "ERROR"]
    assert lines[1].split() == ["web", "Ready", "nginx", "public", "https://web.x"]
    assert lines[2].split()[:4] == ["api", "Error", "repo/api:1", "internal"] and lines[2].endswith("rollout timed out")


def test_status_block() -> None:
    s = wire.Status(status="Ready", deploymentReady=True, ingresses=[wire.Ingress(host="web.x", url="https://web.x")])
    assert render.status("web", s) == "name:   web\nstatus: Ready\nready:  yes\nurl:    https://web.x"
    failed = wire.Status(status="Error", statusMessage="image pull failed")
    assert "message: image pull failed" in render.status("web", failed) and "url" not in render.status("web", failed)


def test_config_history_and_preview() -> None:
    assert render.config({"B": "2", "A": "x=y"}) == "A=x=y\nB=2"
    revisions = [
        wire.Revision(version=2, kind="update", result="succeeded", message="restart",
                      startTime="2025-01-02T03:04:05.123Z", resourceChanges={"update": 1, "same": 4}),
        wire.Revision(version=1, kind="update", result="failed", message="create nginx",
                      startTime="2025-01-01T00:00:00Z", resourceChanges={}),
    ]  # fmt: skip
    lines = render.history(revisions).splitlines()
    assert lines[1].split()[:4] == ["2", "2025-01-02", "03:04:05", "succeeded"]
    assert "4 unchanged, 1 updated" in lines[1] and lines[1].endswith("restart")
    assert "no changes" in lines[2]
    p = wire.Preview(
        changes={"update": 1, "same": 3},
        podsWillRoll=False,
        steps=[wire.Step(op="same", type="kubernetes:core/v1:Service", name="nginx"),
               wire.Step(op="update", type="kubernetes:apps/v1:Deployment", name="nginx", diffs=["spec"])],
    )  # fmt: skip
    text = render.preview(p)
    assert "Service" not in text and "update  kubernetes:apps/v1:Deployment  nginx  spec" in text
    assert text.endswith("3 unchanged, 1 to update; pods would keep running")


def test_progress_lines() -> None:
    urn = "urn:pulumi:web::shipstack::kubernetes:apps/v1:Deployment::nginx"
    step = wire.Progress(type="step", op="create", resource="kubernetes:apps/v1:Deployment", urn=urn)
    assert render.progress(step) == "creating kubernetes:apps/v1:Deployment nginx"
    done = wire.Progress(type="done", op="create", resource="kubernetes:apps/v1:Deployment", urn=urn)
    assert render.progress(done) == "created kubernetes:apps/v1:Deployment nginx"
    odd = wire.Progress(type="done", op="discard", resource="kubernetes:core/v1:Secret", urn=urn)
    assert render.progress(odd) == "discard kubernetes:core/v1:Secret nginx: done"
    assert render.progress(wire.Progress(type="step", op="same", urn=urn)) is None
    warning = wire.Progress(type="diagnostic", severity="warning", message="slow rollout\nmore detail")
    assert render.progress(warning) == "warning: slow rollout"
    summary = wire.Progress(type="summary", changes={"create": 4}, duration_s=12.4)
    assert render.progress(summary) == "engine finished in 12 s: 4 created"


def test_output_separates_results_from_messages() -> None:
    out, err = io.StringIO(), io.StringIO()
    o = render.Output(stdout=out, stderr=err)
    o.data(b'{"a": 1}', "human text")
    o.info("a message")
    o.status_line("step 1")
    o.status_line("step 2")
    assert out.getvalue() == "human text\n"
    assert err.getvalue() == "a message\nstep 1\nstep 2\n"  # not a terminal: plain lines
    out = io.StringIO()
    render.Output(json=True, stdout=out, stderr=io.StringIO()).data(b'{"a":[1]}', "ignored")
    assert msgspec.json.decode(out.getvalue()) == {"a": [1]}


def test_a_terminal_gets_one_live_line() -> None:
    out, err = io.StringIO(), Tty()
    o = render.Output(stdout=out, stderr=err)
    o.status_line("step 1")
    o.status_line("step 2")
    o.info("done")
    assert err.getvalue() == "\r\x1b[Kstep 1\r\x1b[Kstep 2\ndone\n"
