"""uvicorn's server, told the moment a signal stops it (`python -m api serve`)."""

from __future__ import annotations

from collections.abc import Callable
from types import FrameType

import uvicorn


class Server(uvicorn.Server):
    """Calls `on_exit` when SIGINT or SIGTERM arrives, before the connections drain:
    `serve`'s worker process, stopped by the same signal to the process group, is then
    not started again."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self.on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.on_exit is not None:
            self.on_exit()
        super().handle_exit(sig, frame)
