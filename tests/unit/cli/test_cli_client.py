"""The HTTP client against a real HTTP server on loopback (the standard library's):
error bodies become exit codes, and the SSE reader resumes with Last-Event-ID."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from api.cli import wire
from api.cli.client import Client, SseParser
from api.cli.errors import ApiFailure, CliError, exit_code_for_status

Handler = Callable[[BaseHTTPRequestHandler, int], None]


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], tuple[str, list[dict[str, str]]]]]:
    """Serves `handler(request, n)` (n: how many requests came before) and records each request's headers."""
    servers: list[ThreadingHTTPServer] = []

    def start(handler: Handler) -> tuple[str, list[dict[str, str]]]:
        seen: list[dict[str, str]] = []

        class H(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append({k.lower(): v for k, v in self.headers.items()} | {"path": self.path})
                handler(self, len(seen) - 1)

            def log_message(self, *_args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", seen

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def reply(req: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str = "application/json") -> None:
    req.send_response(status)
    req.send_header("Content-Type", content_type)
    req.send_header("Content-Length", str(len(body)))
    req.end_headers()
    req.wfile.write(body)


def test_exit_codes_by_status() -> None:
    statuses = (400, 401, 403, 404, 409, 422, 429, 500, 503)
    assert [exit_code_for_status(s) for s in statuses] == [2, 4, 4, 3, 1, 2, 1, 1, 1]


def test_api_errors_carry_message_code_and_hint(serve) -> None:  # type: ignore[no-untyped-def]
    def handler(req: BaseHTTPRequestHandler, _n: int) -> None:
        if req.path.startswith("/api/deployments/status"):
            reply(req, 404, json.dumps({"error": "Deployment 'nope' not found", "code": "not_found"}).encode())
        else:
            reply(req, 502, b"<html>Bad Gateway</html>", "text/html")

    url, seen = serve(handler)
    with Client(url, "ssk_test") as client:
        with pytest.raises(ApiFailure) as info:
            client.get("/api/deployments/status", wire.Status, params={"name": "nope"})
        assert info.value.exit_code == 3 and info.value.code == "not_found"
        assert info.value.lines() == [
            "error: Deployment 'nope' not found (not_found, HTTP 404)",
            "hint: `shipstack ls` lists the deployments you can see",
        ]
        with pytest.raises(ApiFailure) as info:
            client.get("/api/deployments", list[wire.DeploymentItem])
        failure = info.value
        assert (failure.exit_code, failure.code, failure.api_message) == (1, "http_error", "<html>Bad Gateway</html>")
    assert seen[0]["authorization"] == "Bearer ssk_test" and seen[0]["path"] == "/api/deployments/status?name=nope"


def test_an_unreachable_service_says_what_to_check() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with Client(f"http://127.0.0.1:{port}", "k") as client, pytest.raises(CliError) as info:
        client.get("/api/templates", wire.Templates)
    assert info.value.exit_code == 1 and "cannot reach" in info.value.message
    assert "shipstack login URL" in (info.value.hint or "")


def test_sse_parser() -> None:
    parser = SseParser()
    lines = ["retry: 2500", "", ": keep-alive", "", "id: 7", "event: step", "data: {\"a\":", "data: 1}", "",
             "data: plain", "", "id", "data: x", ""]  # fmt: skip
    events = [e for line in lines if (e := parser.feed(line)) is not None]
    assert parser.retry_ms == 2500
    assert [(e.event, e.id, e.data) for e in events] == [
        ("step", "7", '{"a":\n1}'),
        ("message", None, "plain"),
        ("message", "", "x"),
    ]


def test_the_event_stream_resumes_after_the_last_id(serve) -> None:  # type: ignore[no-untyped-def]
    def handler(req: BaseHTTPRequestHandler, n: int) -> None:
        if n == 1:  # the second connection finds the server busy: retried
            reply(req, 503, json.dumps({"error": "Too many open log streams", "code": "too_many_streams"}).encode())
            return
        req.send_response(200)
        req.send_header("Content-Type", "text/event-stream")
        req.end_headers()
        if n == 0:
            req.wfile.write(b"retry: 10\n\nid: 1\ndata: a\n\n: keep-alive\n\nid: 2\ndata: b\n\nid: 3\ndata: half")
            req.wfile.flush()  # and the connection drops mid-event
        else:
            req.wfile.write(b"id: 3\ndata: c\n\nevent: end\ndata: {}\n\n")
        req.close_connection = True

    url, seen = serve(handler)
    got = []
    with Client(url, "k") as client:
        for event in client.events("/stream", {"tail": 5}):
            got.append((event.event, event.data))
            if event.event == "end":
                break
    assert [g for g in got if g[0] != "reconnect"] == [("message", "a"), ("message", "b"), ("message", "c"),
                                                       ("end", "{}")]  # fmt: skip
    assert [g[0] for g in got].count("reconnect") == 2
    assert [h.get("last-event-id") for h in seen] == [None, "2", "2"]
    assert all(h["path"] == "/stream?tail=5" and h["accept"] == "text/event-stream" for h in seen)


def test_the_event_stream_gives_up_on_a_missing_deployment(serve) -> None:  # type: ignore[no-untyped-def]
    url, _ = serve(lambda req, _n: reply(req, 404, b'{"error": "Deployment \'x\' not found", "code": "not_found"}'))
    with Client(url, "k") as client, pytest.raises(ApiFailure) as info:
        next(iter(client.events("/api/deployments/x/logs/stream")))
    assert info.value.exit_code == 3
