"""Fake registries on loopback for tests that need real connections: one served by
http.server with the test's handler, and one that answers as slowly as the test
likes (the client's deadlines, a slow registry's share of a poll)."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps the test output clean."""

    def log_message(self, *_: object) -> None:
        pass


class FakeHttpRegistry:
    """Serves `handler` (a QuietHandler subclass) on a free loopback port until `stop`."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, name="fake-http-registry", daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakeSlowRegistry:
    """Answers every request with a small tag list, `chunk` bytes at a time (status
    line and headers included), `every_s` apart: each read well within a per-read
    timeout, the whole answer as slow as the test likes. Counts the requests it
    serves, and the most it served at once."""

    def __init__(self, *, every_s: float, chunk: int = 1) -> None:
        self.every_s, self.chunk = every_s, chunk
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(32)
        self.lock = threading.Lock()
        self.in_flight = self.most_at_once = self.requests = 0
        threading.Thread(target=self._serve, name="fake-slow-registry", daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # stopped
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        body = b'{"tags": ["1.0.0", "1.0.1"]}'
        data = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
        with self.lock:
            self.in_flight += 1
            self.requests += 1
            self.most_at_once = max(self.most_at_once, self.in_flight)
        try:
            conn.recv(65536)
            for i in range(0, len(data), self.chunk):
                conn.sendall(data[i : i + self.chunk])
                time.sleep(self.every_s)
        except OSError:  # the client gave up: what the tests want
            pass
        finally:
            with self.lock:
                self.in_flight -= 1
            conn.close()

    def stop(self) -> None:
        self.sock.close()
