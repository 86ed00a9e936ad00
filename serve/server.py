"""Running the app: uvicorn, with deadlines on slow or idle connections and a drain on SIGTERM.

uvicorn closes a keep-alive connection only after a response; a connection that never sends
a request, sends its headers a byte at a time, or promises a longer body than it sends would
hold a socket forever. ``GuardedProtocol`` (uvicorn's httptools protocol) adds the missing
deadlines (answering 408 where a request had started), and ``CandleServer`` turns SIGTERM into
a drain: no new connections, running predictions get ``shutdown_grace`` seconds and answer
503 (not 500) past it, exit 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Callable
from types import FrameType
from typing import Any

import msgspec
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from serve.config import Timeouts

log = logging.getLogger("candle_ml.serve")


def _timeout_response(detail: str, rule: str) -> bytes:
    body = msgspec.json.encode({"status_code": 408, "detail": detail, "rule": rule})
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus one timer per connection for the phase it is in.

    The phase follows the parser's callbacks: ``idle`` (no byte of a request yet), ``headers``
    (from the first byte to the end of the headers), ``body`` (to the end of the message),
    ``answering`` (the app has the whole request; uvicorn's keep-alive timer follows it).
    """

    timeouts = Timeouts()

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._phase = "idle"
        self._began = 0.0  # when the current phase began (loop time)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.timeouts.keep_alive, self._idle_expired)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._phase == "idle":
            self._enter("headers")
        super().data_received(data)
        self._follow()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._phase != "headers":  # a pipelined request begins
            self._enter("headers")

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._enter("body")

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._enter("answering")

    def on_response_complete(self) -> None:
        super().on_response_complete()  # arms uvicorn's keep-alive timer; the next request re-arms ours
        if self._phase == "answering":
            self._enter("idle")
        self._follow()

    def _enter(self, phase: str) -> None:
        self._phase, self._began = phase, self.loop.time()

    def _follow(self) -> None:
        """Arm the deadline of the phase the connection is in now."""
        if self.transport is None or self.transport.is_closing():
            return
        now = self.loop.time()
        if self._phase == "headers":
            left = self._began + self.timeouts.header - now
            self._arm(left, self._expired, f"request headers not complete within {self.timeouts.header:g} s")
        elif self._phase == "body":
            left = min(self.timeouts.body_idle, self._began + self.timeouts.body - now)
            self._arm(left, self._expired, self._body_rule())
        else:
            self._disarm()

    def _body_rule(self) -> str:
        return (
            f"request body stalled for {self.timeouts.body_idle:g} s or not complete within "
            f"{self.timeouts.body:g} s (is Content-Length larger than the body?)"
        )

    def _arm(self, seconds: float, callback: Callable[..., None], *args: Any) -> None:
        self._disarm()
        self._timer = self.loop.call_later(max(seconds, 0.0), callback, *args)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _idle_expired(self) -> None:
        if self._phase == "idle" and self.cycle is None:
            self.transport.close()  # opened and never used: nobody to answer

    def _expired(self, detail: str) -> None:
        if self.flow.read_paused:  # we stopped reading (the app is behind), not the client
            self._arm(self.timeouts.body_idle, self._expired, detail)
            return
        log.info("closing %s: %s", self.client, detail)
        cycle = self.cycle if self._phase == "body" else None
        if cycle is None or not cycle.response_started:
            self.transport.write(_timeout_response(detail, "timeout"))
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's next receive() is a disconnect
            cycle.message_event.set()
        self.transport.close()


def guarded_protocol(timeouts: Timeouts) -> type[GuardedProtocol]:
    return type("GuardedProtocol", (GuardedProtocol,), {"timeouts": timeouts})


class CandleServer(uvicorn.Server):
    """uvicorn's server; the first SIGTERM/SIGINT starts the app's drain, and ends in exit 0."""

    def __init__(self, config: uvicorn.Config, grace: float, drain: Callable[[float], None]):
        super().__init__(config)
        self.grace = grace
        self.drain = drain

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not recorded in _captured_signals: uvicorn would raise it again after its shutdown, and
        # the process would end as killed by SIGTERM (143) instead of a clean exit 0.
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl+C: stop waiting
            return
        if not self.should_exit:
            log.info("%s: draining, %g s for requests in flight", signal.Signals(sig).name, self.grace)
            self.drain(self.grace)
        self.should_exit = True


def run(
    app: Any,
    host: str,
    port: int,
    timeouts: Timeouts,
    log_level: str,
    drain: Callable[[float], None],
    sockets: list[socket.socket] | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT; 0 after a clean drain, 3 when the server could not start.
    ``sockets``: listen there instead of binding ``host:port`` (a worker of serve.workers)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        http=guarded_protocol(timeouts),
        timeout_keep_alive=timeouts.keep_alive,  # type: ignore[arg-type]  # a float works: call_later
        # A backstop only: predictions stop at the grace themselves (503), this cancels anything else.
        timeout_graceful_shutdown=int(timeouts.shutdown_grace) + 5,
    )
    server = CandleServer(config, timeouts.shutdown_grace, drain)
    server.run(sockets=sockets)
    return 0 if server.started else 3
