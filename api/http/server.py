"""uvicorn's server, telling `python -m api serve` the moment a signal stops it and
once it has stopped serving."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from types import FrameType

import uvicorn


class Server(uvicorn.Server):
    """Calls `on_exit` when SIGINT or SIGTERM arrives, before the connections drain
    (`serve`'s worker process, stopped by the same signal to the process group, is then
    not started again), and `on_stopped` once the app has shut down: uvicorn then raises
    the signal again, which ends the process before any code after `run()`."""

    def __init__(
        self,
        config: uvicorn.Config,
        on_exit: Callable[[], None] | None = None,
        on_stopped: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(config)
        self.on_exit = on_exit
        self.on_stopped = on_stopped

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        if self.on_stopped is not None:
            await asyncio.to_thread(self.on_stopped)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.on_exit is not None:
            self.on_exit()
        super().handle_exit(sig, frame)
