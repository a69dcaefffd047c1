"""Three shipstack processes as if on three hosts, one PostgreSQL for the service and
for Pulumi's state (postgres://), the test cluster:

1. 30 writes spread across the three (creates, config changes, restarts): each
   operation runs exactly once, never two pulumi operations on one stack at once (the
   revisions' start and end times), each deployment's operations in order, its last
   write in force; event streams and `status?wait=` answer from every process,
   whichever runs the operation;
2. `kill -9` of the process running an `up` (a config change, its config rendered,
   the engine working) while a later write undoes that change: another process
   finishes both within 90 s, applies the spec of record rather than answering "no
   change", and leaves no pending operation in the state and no lock row;
3. every process stopped, a fresh one on an empty data folder serves the config,
   history and rollback of every deployment.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import defaultdict
from typing import Any

from kubernetes import client, config

from stacks.settings import Settings
from tests.integration.scaleout.fleet import Fleet, Host

NAMES = [f"sc-{c}" for c in "abcde"]


def _writes(fleet: Fleet, hosts: list[Host]) -> tuple[dict[str, list[str]], dict[str, dict[str, str]]]:
    """5 creates, 22 config changes and 3 restarts, round-robin over the hosts:
    {deployment: its operation ids in order}, {deployment: the env it must end with}."""
    ops: dict[str, list[str]] = defaultdict(list)
    env: dict[str, dict[str, str]] = {name: {} for name in NAMES}
    turn = iter(range(10**6))

    def host() -> Host:
        return hosts[next(turn) % len(hosts)]

    for name in NAMES:
        ops[name].append(fleet.write(host(), "POST", "/api/deployments", {"template": "nginx", "name": name}))
    plan = [("config", NAMES[i % 5], i) for i in range(22)] + [("restart", n, 0) for n in NAMES[:3]]
    plan.sort(key=lambda p: (p[2] % 7, p[1]))  # interleave deployments and kinds
    for kind, name, i in plan:
        if kind == "restart":
            ops[name].append(fleet.write(host(), "POST", "/api/deployments/restart", {"deployment_name": name}))
        else:
            env[name] = {"ROUND": str(i)}
            body = {"deployment_name": name, "configData": env[name]}
            ops[name].append(fleet.write(host(), "PUT", "/api/deployments/config", body))
    return ops, env


def _follow_everywhere(fleet: Fleet, hosts: list[Host], name: str, op_id: str) -> dict[str, Any]:
    """From every host at once: the operation's event stream (event names), and
    `status?wait=45` long polls, each answer's (status, message, seconds taken), until
    one answers early (only a change of status or message ends a wait early)."""
    streams: dict[str, list[str]] = {h.name: [] for h in hosts}
    threads = [fleet.events(h, op_id, streams[h.name]) for h in hosts]
    waits: dict[str, list[tuple[str, str | None, float]]] = {h.name: [] for h in hosts}

    def poll(host: Host) -> None:
        for _ in range(6):
            t0 = time.monotonic()
            body = fleet.call(host, "GET", f"/api/deployments/status?name={name}&wait=45").json()
            waits[host.name].append((body["status"], body.get("statusMessage"), time.monotonic() - t0))
            if waits[host.name][-1][2] < 40:
                return

    pollers = [threading.Thread(target=poll, args=(h,), daemon=True) for h in hosts]
    for thread in pollers:
        thread.start()
    for thread in [*threads, *pollers]:
        thread.join(300)
    return {"streams": streams, "waits": waits}


def _check_history(fleet: Fleet, ops: dict[str, list[str]], finished: dict[str, dict[str, Any]]) -> None:
    """Exactly once, one at a time per stack, in order."""
    for name, ids in ops.items():
        for op_id in ids:
            assert finished[op_id]["status"] == "succeeded", finished[op_id]
        revisions = fleet.rows("SELECT r.operation_id, r.started_at, r.finished_at, r.result FROM revisions r "
                               "JOIN deployments d ON d.id = r.deployment_id WHERE d.name = :n ORDER BY r.number",
                               n=name)  # fmt: skip
        appliers = [r.operation_id for r in revisions]
        assert len(appliers) == len(set(appliers)), f"{name}: an operation applied twice: {appliers}"
        for earlier, later in itertools.pairwise(revisions):
            assert later.started_at >= earlier.finished_at, f"{name}: two updates at once: {earlier} {later}"
        for op_id in ids:  # every update an operation caused is a revision, applied by one operation
            applied_by = (finished[op_id].get("result") or {}).get("appliedBy")
            assert applied_by is None or applied_by in appliers, (name, op_id, finished[op_id])
        rows = fleet.rows("SELECT id, created_at, started_at, finished_at FROM operations WHERE id = ANY(:ids) "
                          "ORDER BY created_at", ids=list(ids))  # fmt: skip
        ends = [r.finished_at for r in rows]
        assert ends == sorted(ends), f"{name}: operations finished out of order"
        for earlier, later in itertools.pairwise(rows):  # a batch shares its start
            assert later.started_at == earlier.started_at or later.started_at >= earlier.finished_at, name


def _secret_env(settings: Settings, name: str) -> dict[str, str]:
    import base64

    core = client.CoreV1Api(config.new_client_from_config(config_file=str(settings.engine.kubeconfig)))
    (secret,) = [s for s in core.list_namespaced_secret(f"sd-{name}").items if s.metadata.name.endswith("-env")]
    return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}


def test_three_processes_share_the_work_survive_a_kill_and_a_fresh_one_serves_all(
    fleet: Fleet, settings: Settings
) -> None:
    hosts = [fleet.start(n) for n in ("host-a", "host-b", "host-c")]
    fleet.wait_up()

    # 1. Thirty writes across the three.
    ops, env = _writes(fleet, hosts)
    followed = _follow_everywhere(fleet, hosts, NAMES[0], ops[NAMES[0]][0])
    finished = fleet.wait_operations([i for ids in ops.values() for i in ids], timeout=420)
    assert sum(len(ids) for ids in ops.values()) == 30
    for host, events in followed["streams"].items():
        assert "step" in events and events[-1] == "end", (host, events)
    for host, seen in followed["waits"].items():  # woken by a change another process made
        assert seen and seen[-1][2] < 40, (host, seen)
    _check_history(fleet, ops, finished)
    workers = {r.claimed_by for r in fleet.rows("SELECT DISTINCT claimed_by FROM operations")}
    assert len(workers) >= 2, "one process did all the work"
    for name in NAMES:
        got = fleet.call(hosts[1], "GET", f"/api/deployments/config?name={name}").json()["configData"]
        assert got == env[name]

    # 2. kill -9 of the process running an up, while a later write undoes its change.
    name = NAMES[0]
    before = env[name]
    crash = fleet.write(hosts[0], "PUT", "/api/deployments/config", {"deployment_name": name,
                                                                     "configData": {"ROUND": "crash"}})  # fmt: skip
    deadline = time.monotonic() + 120
    while not fleet.lock_rows(name):  # pulumi holds the stack: the config was rendered, `up` runs
        assert time.monotonic() < deadline, f"the update never started\n{fleet.logs()}"
        time.sleep(0.05)
    victim = fleet.runner_of(crash)
    assert victim is not None, "no live process holds the running update"
    fleet.kill(victim)
    killed_at = time.monotonic()
    assert fleet.lock_rows(name), "the update ended before the kill"  # the dead pulumi's lock, left behind
    survivors = fleet.live()
    undo = fleet.write(survivors[0], "PUT", "/api/deployments/config", {"deployment_name": name, "configData": before})
    done = fleet.wait_operations([crash, undo], timeout=180)
    took = time.monotonic() - killed_at
    assert took <= 90, f"the interrupted update took {took:.0f} s to finish elsewhere"
    for op in done.values():
        assert op["status"] == "succeeded", op
        assert not op["message"].startswith("no change"), op
    status = fleet.call(survivors[-1], "GET", f"/api/deployments/status?name={name}").json()
    assert status["status"] == "Ready", status
    assert fleet.call(survivors[-1], "GET", f"/api/deployments/config?name={name}").json()["configData"] == before
    assert _secret_env(settings, name)["ROUND"] == before["ROUND"]  # the cluster holds the record, not "crash"
    assert fleet.lock_rows() == []
    for stack in NAMES:
        assert fleet.pending_operations(settings, stack) == []

    # 3. Everything stopped; a fresh process on an empty data folder serves every deployment.
    fleet.stop_all()
    fresh = fleet.start("host-fresh")
    fleet.wait_up()
    rollbacks = {}
    for name in NAMES:
        assert fleet.call(fresh, "GET", f"/api/deployments/config?name={name}").json()["configData"] == env[name]
        revisions = fleet.call(fresh, "GET", f"/api/deployments/{name}/history").json()["revisions"]
        assert revisions[-1]["version"] == 1 and revisions[-1]["message"] == "create nginx", revisions[-1]
        assert len(revisions) >= 2
        rollbacks[name] = fleet.write(fresh, "POST", f"/api/deployments/{name}/rollback", {"version": 1})
    for op in fleet.wait_operations(list(rollbacks.values()), timeout=240).values():
        assert op["status"] == "succeeded", op
    for name in NAMES:
        assert fleet.call(fresh, "GET", f"/api/deployments/config?name={name}").json()["configData"] == {}
    deletes = [fleet.write(fresh, "POST", "/api/deployments/delete", {"deployment_name": n}) for n in NAMES]
    fleet.wait_operations(deletes, timeout=240)
    assert fleet.lock_rows() == []
