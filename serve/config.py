"""The server's settings with their defaults, in one light module: ``candle-ml serve``'s options
take their defaults from here (it imports no web framework to show ``--help``), and the
limiter (serve/limits.py) and the connection deadlines (serve/server.py) apply them."""

from __future__ import annotations

import os

import msgspec

# ServeSettings.history_*: how long and how much prediction history the server keeps
HISTORY_RETENTION_DAYS = 90.0
HISTORY_MAX_MB = 1000.0
MAX_BODY_MB = 32.0  # ~100,000 candles at up to ~300 bytes each


def cores() -> int:
    """The cores this process may run on (a container's CPU set, not the host's count): the
    default number of server workers, and of predictions at once."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class Limits(msgspec.Struct, forbid_unknown_fields=True):
    """The bounds on prediction work (``candle-ml serve --help`` names each option)."""

    max_candles: int = 100_000  # per /predict body and per /predict/batch range (413 beyond)
    min_batch_size: int = 1_000  # /predict/batch chunks are never smaller (each carries min_history)
    max_concurrent: int = 0  # predictions running at once, per worker; 0: default_concurrency()
    max_queue: int = 0  # requests waiting for a slot, per worker; 0: 8 per slot; beyond: 503 at once
    queue_timeout: float = 2.0  # seconds a request may wait for a slot before its 503
    request_timeout: float = 30.0  # seconds from arrival to the last chunk; past it: 503


class Timeouts(msgspec.Struct, forbid_unknown_fields=True):
    """Seconds (``candle-ml serve --help`` names each option)."""

    keep_alive: float = 5.0  # an idle connection, before its first request or between requests
    header: float = 10.0  # request line and headers, counted from their first byte
    body_idle: float = 5.0  # the longest pause inside a body (a Content-Length longer than the body)
    body: float = 60.0  # the whole body, from the end of its headers
    shutdown_grace: float = 30.0  # after SIGTERM, for requests in flight to finish
