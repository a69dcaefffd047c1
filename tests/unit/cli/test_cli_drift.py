"""`shipstack drift` and `shipstack reconcile`: flags to request bodies, and what the
drift answer looks like to a person."""

from __future__ import annotations

import argparse

import msgspec
import pytest

from api.cli import render, run, wire
from api.cli.drift import settings_body
from api.cli.parser import build_parser


def parse(*words: str) -> argparse.Namespace:
    return build_parser().parse_args(list(words))


@pytest.mark.parametrize(
    ("words", "sent"),
    [
        ([], None),  # only show
        (["--check"], None),
        (["--policy", "reconcile"], {"policy": "reconcile"}),
        (["--interval", "600"], {"intervalSeconds": 600}),
        (["--interval", "0"], {"intervalSeconds": 0}),
        (["--default-interval"], {"intervalSeconds": None}),
        (["--policy", "report", "--interval", "900", "--check"], {"policy": "report", "intervalSeconds": 900}),
    ],
)
def test_drift_flags_send_only_what_was_given(words: list[str], sent: dict | None) -> None:
    args = parse("drift", "web", *words)
    assert args.command == "drift" and args.name == "web" and args.check == ("--check" in words)
    body = settings_body(args)
    assert (None if body is None else msgspec.json.decode(wire.encode(body))) == sent


def test_reconcile_flags() -> None:
    args = parse("reconcile", "web", "--no-wait", "--json")
    assert (args.command, args.name, args.no_wait, args.json) == ("reconcile", "web", True, True)


@pytest.mark.parametrize(
    ("words", "complaint"),
    [
        (["drift"], "the following arguments are required: name"),
        (["drift", "web", "--policy", "fix"], "invalid choice"),
        (["drift", "web", "--interval", "600", "--default-interval"], "not allowed with argument"),
        (["drift", "web", "--interval", "-1"], "expected 0 or more"),
        (["reconcile"], "the following arguments are required: name"),
    ],
)
def test_usage_errors(
    words: list[str], complaint: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHIPSTACK_URL", raising=False)
    assert run(words) == 2
    out, err = capsys.readouterr()
    assert out == "" and complaint in err


DRIFTED = b"""{
  "name": "web", "settings": {"policy": "report", "intervalSeconds": null}, "effectiveIntervalSeconds": 3600,
  "nextCheckAt": "2026-12-01T13:00:00Z", "skippedAt": null, "skipReason": null,
  "drift": {"checkedAt": "2026-12-01T12:00:00.123Z", "drifted": true, "error": null, "operationId": "op1",
            "reconcileOperationId": null,
            "objects": [
              {"kind": "Deployment", "name": "nginx", "change": "modified",
               "fields": ["metadata.labels.team", "spec.replicas"], "unmanagedFields": ["metadata.labels.team"]},
              {"kind": "Service", "name": "nginx", "change": "deleted"},
              {"kind": "Secret", "name": "nginx-env", "change": "modified", "fields": ["data.GREETING"],
               "fieldsOmitted": 2}]}
}"""


def test_drift_rendering() -> None:
    text = render.drift(msgspec.json.decode(DRIFTED, type=wire.DriftStatus))
    head, rows, note = text.split("\n\n")
    assert "policy:     report" in head and "checks:     every 3600 s" in head
    assert "next check: 2026-12-01 13:00:00 UTC" in head
    assert "drift:      3 objects drifted (checked 2026-12-01 12:00:00 UTC)" in head
    lines = rows.splitlines()
    assert lines[0].split() == ["KIND", "NAME", "CHANGE", "FIELDS"]
    assert lines[1].split() == ["Deployment", "nginx", "modified", "metadata.labels.team*,", "spec.replicas"]
    assert lines[2].split() == ["Service", "nginx", "deleted", "-"]
    assert lines[3].endswith("data.GREETING (+2 more)")
    assert note.startswith("* set by someone else")


@pytest.mark.parametrize(
    ("drift", "line"),
    [
        (wire.Drift(), "never checked"),
        (wire.Drift(checkedAt="2026-12-01T12:00:00Z", drifted=False), "none (checked 2026-12-01 12:00:00 UTC)"),
        (wire.Drift(checkedAt="2026-12-01T12:00:00Z", error="cluster unreachable"),
         "the check of 2026-12-01 12:00:00 UTC failed: cluster unreachable"),
        (wire.Drift(checkedAt="2026-12-01T12:00:00Z", drifted=True,
                    objects=[wire.DriftObject(kind="Service", name="web", change="deleted")]),
         "1 object drifted (checked 2026-12-01 12:00:00 UTC)"),
    ],
)  # fmt: skip
def test_drift_summary_and_status_line(drift: wire.Drift, line: str) -> None:
    assert render.drift_summary(drift) == line
    shown = render.status("web", wire.Status(status="Ready", drift=drift))
    if drift.checkedAt is None:  # nothing to say yet
        assert "drift" not in shown
    else:
        assert f"drift:  {line}" in shown


def test_a_clean_deployment_has_no_table() -> None:
    state = wire.DriftStatus(
        name="web", settings=wire.DriftSettings(policy="reconcile", intervalSeconds=0),
        drift=wire.Drift(checkedAt="2026-12-01T12:00:00Z", drifted=False),
    )  # fmt: skip
    text = render.drift(state)
    assert "\n\n" not in text and "checks: never on a schedule (its own setting)" in text
