"""A worker whose stack lock is lost while its pulumi runs (the lock's PostgreSQL
session ended under it: a failover, an administrator, a cut connection) stops that
pulumi within a probe, removes the backend lock it left, and queues the operation
again; the operation then finishes, once, and the deployment is Ready."""

from __future__ import annotations

import time

from tests.integration.scaleout.fleet import Fleet


def test_a_lost_stack_lock_stops_pulumi_and_the_operation_resumes(fleet: Fleet) -> None:
    host = fleet.start("host-a")
    fleet.wait_up()
    name = "lk-a"
    # A create: long enough (a dozen objects, each awaited) for the probe to see the loss.
    created = fleet.write(host, "POST", "/api/deployments", {"template": "nginx", "name": name})
    deadline = time.monotonic() + 120
    while not fleet.lock_rows(name):  # pulumi runs the update
        assert time.monotonic() < deadline, f"the update never started\n{fleet.logs()}"
        time.sleep(0.05)
    assert fleet.end_lock_sessions() == 1
    op = fleet.wait_operations([created], timeout=240)[created]
    assert op["status"] == "succeeded", op
    assert "died or hangs: stopping its pulumi" in host.log.read_text()
    assert "queued again" in host.log.read_text()
    assert fleet.lock_rows() == []
    assert fleet.call(host, "GET", f"/api/deployments/status?name={name}").json()["status"] == "Ready"
    appliers = [r.operation_id for r in fleet.rows(
        "SELECT r.operation_id FROM revisions r JOIN deployments d ON d.id = r.deployment_id "
        "WHERE d.name = :n", n=name)]  # fmt: skip
    assert appliers == [created]  # the stopped attempt is no revision; the resumed one is
    deleted = fleet.write(host, "POST", "/api/deployments/delete", {"deployment_name": name})
    fleet.wait_operations([deleted], timeout=180)
