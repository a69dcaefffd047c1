"""A small HTTP client for the shipstack REST API: base URL, bearer key, typed bodies,
errors as exceptions that carry the API's code and the exit status, and a
Server-Sent Events reader that reconnects with `Last-Event-ID`.

Writes carry an `Idempotency-Key`, so when the connection drops before the answer
arrives the client can send the same write again and the server replays its first
answer instead of doing it twice.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from api.cli import wire
from api.cli.errors import EXIT_FAILED, ApiFailure, CliError

T = TypeVar("T")

TIMEOUT_S = 30.0
# The API sends a comment every 15 s on an idle stream; three missed means it is gone.
STREAM_IDLE_S = 45.0
WRITE_ATTEMPTS = 3
RECONNECT_DELAY_S = 3.0  # until the server's `retry:` says otherwise
RECONNECT_GIVE_UP_S = 120.0  # of failed reconnects in a row
USER_AGENT = "shipstack-cli"


class SseEvent(msgspec.Struct, frozen=True):
    event: str  # "message" when the server named none; "reconnect" is the client's own
    data: str
    id: str | None = None


class SseParser:
    """Turns the lines of a `text/event-stream` into events (the WHATWG rules the API uses)."""

    def __init__(self) -> None:
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self.retry_ms: int | None = None

    def feed(self, line: str) -> SseEvent | None:
        """One line without its end; answers the event a blank line completes."""
        if line == "":
            if not self._data:
                self._event = ""
                return None
            event = SseEvent(event=self._event or "message", data="\n".join(self._data), id=self._id)
            self._data, self._event, self._id = [], "", None
            return event
        if line.startswith(":"):
            return None  # a comment: the server's keep-alive
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None


def deployment_path(name: str, route: str) -> str:
    """`/api/deployments/NAME/ROUTE`, the name quoted so it can only ever be one segment."""
    return f"/api/deployments/{quote(name, safe='')}/{route}"


def failure_of(response: httpx.Response) -> ApiFailure:
    """The API's `{"error", "code"}` body as an exception (a proxy's page as best it can)."""
    try:
        body = msgspec.json.decode(response.content, type=wire.ErrorBody)
        return ApiFailure(response.status_code, body.code, body.error)
    except (msgspec.DecodeError, msgspec.ValidationError):
        text = response.text.strip().splitlines()[0][:200] if response.text.strip() else response.reason_phrase
        return ApiFailure(response.status_code, "http_error", text)


class Client:
    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self._http = httpx.Client(
            base_url=url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT, "Accept": "application/json"},
            timeout=TIMEOUT_S,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _unreachable(self, exc: httpx.TransportError, timeout: float = TIMEOUT_S) -> CliError:
        if isinstance(exc, httpx.TimeoutException):
            return CliError(f"no answer from {self.url} within {timeout:.0f} s", EXIT_FAILED, "try again")
        return CliError(
            f"cannot reach {self.url}: {exc}",
            EXIT_FAILED,
            "check the URL (`shipstack login URL` or SHIPSTACK_URL) and that the service is running",
        )

    def _decode(self, response: httpx.Response, type_: type[T]) -> T:
        if response.status_code >= 400:
            raise failure_of(response)
        try:
            return msgspec.json.decode(response.content, type=type_)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise CliError(
                f"unexpected answer from {self.url}{response.request.url.path}: {exc}",
                EXIT_FAILED,
                "is the URL a shipstack service of a compatible version?",
            ) from None

    def get(self, path: str, type_: type[T], params: Mapping[str, Any] | None = None) -> T:
        return self.get_with_body(path, type_, params)[0]

    def get_with_body(
        self, path: str, type_: type[T], params: Mapping[str, Any] | None = None, *, timeout: float = TIMEOUT_S
    ) -> tuple[T, bytes]:
        """The decoded answer and the JSON as the server sent it (what `--json` prints);
        `timeout` longer than the default for a long poll."""
        try:
            response = self._http.get(path, params=params, timeout=timeout)
        except httpx.TransportError as exc:
            raise self._unreachable(exc, timeout) from None
        return self._decode(response, type_), response.content

    def send(self, method: str, path: str, body: msgspec.Struct, type_: type[T]) -> T:
        return self.send_with_body(method, path, body, type_)[0]

    def send_with_body(self, method: str, path: str, body: msgspec.Struct, type_: type[T]) -> tuple[T, bytes]:
        """A write: retried on a dropped connection, the same Idempotency-Key each time."""
        headers = {"Idempotency-Key": str(uuid.uuid4()), "Content-Type": "application/json"}
        content = wire.encode(body)
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                response = self._http.request(method, path, content=content, headers=headers)
            except httpx.TransportError as exc:
                # The server may have done it and the answer got lost: resending with the
                # same key gets that first answer back instead of a second write.
                if attempt == WRITE_ATTEMPTS:
                    raise self._unreachable(exc) from None
                time.sleep(attempt)
                continue
            return self._decode(response, type_), response.content
        raise AssertionError("unreachable")

    def events(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        last_event_id: str | None = None,
        give_up_s: float = RECONNECT_GIVE_UP_S,
    ) -> Iterator[SseEvent]:
        """The events of an SSE route, reconnecting with Last-Event-ID whenever the
        connection drops or the server ends the response; before each reconnect a
        synthetic `reconnect` event says why. Stops only when the caller stops
        iterating, or with a CliError: an error status other than 502/503/504, or
        no successful connection for `give_up_s`."""
        delay = RECONNECT_DELAY_S
        failing_since: float | None = None
        while True:
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            if last_event_id is not None:
                headers["Last-Event-ID"] = last_event_id
            parser = SseParser()
            why = "the server closed the stream"
            try:
                timeout = httpx.Timeout(TIMEOUT_S, read=STREAM_IDLE_S)
                with self._http.stream("GET", path, params=params, headers=headers, timeout=timeout) as response:
                    if response.status_code >= 400:
                        response.read()
                        failure = failure_of(response)
                        if response.status_code not in (502, 503, 504):
                            raise failure
                        why = failure.message
                    else:
                        failing_since = None
                        for line in response.iter_lines():
                            event = parser.feed(line)
                            if parser.retry_ms is not None:
                                delay = parser.retry_ms / 1000
                            if event is None:
                                continue
                            if event.id is not None:
                                last_event_id = event.id
                            yield event
            except httpx.TransportError as exc:
                why = f"connection lost ({type(exc).__name__})"
            now = time.monotonic()
            failing_since = failing_since or now
            if now - failing_since > give_up_s:
                raise CliError(
                    f"lost the event stream of {path} and could not get it back in {give_up_s:.0f} s: {why}",
                    EXIT_FAILED,
                    "check that the service is running, then run the command again",
                )
            yield SseEvent(event="reconnect", data=why, id=last_event_id)
            time.sleep(delay)
