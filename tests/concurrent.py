"""Running one call from several threads at once, as several processes' starts would."""

from __future__ import annotations

import threading
from collections.abc import Callable


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
