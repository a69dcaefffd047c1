"""Running one call from several threads at once, as several processes' starts would;
another writer committing beside a test, as a running worker would."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Engine


def errors_when_run_at_once(call: Callable[[], object], times: int) -> list[BaseException]:
    """Runs `call` in `times` threads started together; what they raised."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # collected for the caller to assert on
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@contextmanager
def busy_writer(engine: Engine) -> Iterator[None]:
    """Another connection to `engine`'s database committing as fast as it can, for the
    block's length: a worker's heartbeats and the scheduler's writes, compressed."""
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS noise (n INTEGER)")
    stop = threading.Event()

    def keep_writing() -> None:
        while not stop.is_set():
            with engine.begin() as conn:
                conn.exec_driver_sql("INSERT INTO noise VALUES (1)")

    writer = threading.Thread(target=keep_writing, name="busy-writer")
    writer.start()
    try:
        yield
    finally:
        stop.set()
        writer.join()
