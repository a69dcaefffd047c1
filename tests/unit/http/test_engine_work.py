"""The pool of engine-bound request work (previews): a few at a time per process, one
per user, refused at once beyond that (429 + Retry-After), and a slot held until the
work itself ends, even when the request that started it has gone."""

from __future__ import annotations

import asyncio
import threading

import pytest

from api.errors import RateLimited
from api.http.engine_work import EngineWork
from api.http.errors import classify


class Gate:
    """Work that runs until opened, and says when it has started."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.opened = threading.Event()

    def __call__(self) -> str:
        self.started.set()
        assert self.opened.wait(10)
        return threading.current_thread().name


async def started(work: EngineWork, user: int, gate: Gate) -> asyncio.Task[str]:
    task = asyncio.ensure_future(work.run(user, gate))
    await asyncio.to_thread(gate.started.wait, 10)
    return task


def test_bounds_per_user_and_per_process() -> None:
    async def scenario() -> None:
        work = EngineWork(total=2, per_user=1)
        first, second = Gate(), Gate()
        a = await started(work, 1, first)
        with pytest.raises(RateLimited) as mine:
            await work.run(1, Gate())  # user 1 has one running
        assert mine.value.code == "engine_busy_for_you"
        b = await started(work, 2, second)
        with pytest.raises(RateLimited) as full:
            await work.run(3, Gate())  # two run: the process is full
        assert full.value.code == "engine_busy"
        status, _, _, headers = classify(full.value)
        assert status == 429 and headers == {"Retry-After": "2"}
        first.opened.set()
        assert (await a).startswith("shipstack-engine-request")  # its own threads, not anyio's
        third = Gate()
        third.opened.set()
        assert await work.run(3, third)  # a slot is free again
        second.opened.set()
        await b
        assert work.running() == 0
        work.shutdown()

    asyncio.run(scenario())


def test_a_request_that_goes_away_keeps_its_slot_until_the_work_ends() -> None:
    async def scenario() -> None:
        work = EngineWork(total=1, per_user=1)
        gate = Gate()
        task = await started(work, 1, gate)
        task.cancel()  # the client hung up; its pulumi process runs on
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(RateLimited):
            await work.run(2, Gate())
        gate.opened.set()
        for _ in range(100):
            if work.running() == 0:
                break
            await asyncio.sleep(0.02)
        done = Gate()
        done.opened.set()
        assert await work.run(2, done)
        work.shutdown()

    asyncio.run(scenario())


def test_work_that_fails_frees_its_slot() -> None:
    async def scenario() -> None:
        work = EngineWork(total=1, per_user=1)

        def boom() -> None:
            raise RuntimeError("the engine failed")

        with pytest.raises(RuntimeError):
            await work.run(1, boom)
        assert work.running() == 0
        work.shutdown()

    asyncio.run(scenario())
