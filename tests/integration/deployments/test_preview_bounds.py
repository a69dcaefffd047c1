"""Previews run a pulumi process each, in a pool of their own: at most
SHIPSTACK_PREVIEWS (2) at once in the service and one per user; beyond either the
answer is 429 with Retry-After at once, and the previews under way answer as usual.
Three members of one team preview the team's deployment to see both bounds."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

from api.http.context import context_of
from api.http.engine_work import EngineWork
from tests.integration.conftest import Service
from tests.seed import Seed, bearer


class Background(threading.Thread):
    """One preview request, sent from its own thread."""

    def __init__(self, service: Service, url: str, headers: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.service, self.url, self.headers = service, url, headers
        self.response: Any = None

    def run(self) -> None:
        self.response = self.service.client.post(self.url, json={"configData": {"A": "2"}}, headers=self.headers)


def wait_running(work: EngineWork, count: int) -> None:
    deadline = time.monotonic() + 30
    while work.running() < count:
        assert time.monotonic() < deadline, "the previews did not start"
        time.sleep(0.005)


def test_previews_beyond_the_bounds_are_429_with_retry_after(service: Service) -> None:
    c = service.client
    context = context_of(c.app.state)
    seed = Seed(context.db.writes)  # immediate transactions: the runner writes meanwhile
    alice, bob, carol = seed.user("alice"), seed.user("bob"), seed.user("carol")
    team = seed.team("red", alice, members=[bob, carol])
    keys = {who.name: bearer(seed.key(who)) for who in (alice, bob, carol)}
    r = c.post("/api/deployments", json={"template": "nginx", "team_id": team.id}, headers=keys["alice"])
    name = r.json()["name"]
    as_alice = dataclasses.replace(service, headers=keys["alice"])  # the tester is not in the team
    assert as_alice.wait_status(name, {"Ready", "Error"})["status"] == "Ready"
    url = f"/api/deployments/{name}/preview"
    work = context.engine_work
    assert work.total == 2

    def refused(who: str, code: str) -> None:
        r = c.post(url, json={"configData": {"A": "3"}}, headers=keys[who])
        assert r.status_code == 429 and r.json()["code"] == code, r.text
        assert int(r.headers["retry-after"]) >= 1

    first = Background(service, url, keys["alice"])
    first.start()
    wait_running(work, 1)
    refused("alice", "engine_busy_for_you")  # one of hers runs
    second = Background(service, url, keys["bob"])
    second.start()
    wait_running(work, 2)
    refused("carol", "engine_busy")  # two run: the service is full

    for thread in (first, second):
        thread.join(120)
        assert thread.response.status_code == 200, thread.response.text
        assert thread.response.json()["podsWillRoll"] is True
    assert c.post(url, json={"configData": {"A": "5"}}, headers=keys["carol"]).status_code == 200
    c.post("/api/deployments/delete", json={"deployment_name": name}, headers=keys["alice"])
    as_alice.wait_status(name, {"Gone"})
