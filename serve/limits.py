"""Bounded work per request: at most N predictions at once, a short queue, a time limit, a drain.

Every route that predicts runs through ``WorkLimiter.run``. Past the cap a request waits in a
short queue; when the queue is full, or the wait runs past ``queue_timeout``, it is answered
at once with **503 and Retry-After** instead of seconds of waiting behind everyone else
(what 50 clients measured without it: bench/overload.py). The prediction itself runs in a
worker thread and calls the checkpoint between chunks, so a request that runs past
``request_timeout`` (or past the shutdown grace) stops within one chunk and answers 503.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from candle_ml.prediction import Checkpoint
from serve.config import Limits, cores
from serve.errors import Unavailable

T = TypeVar("T")


def default_concurrency(workers: int = 1) -> int:
    """One prediction per core (at least 2 in one process), shared among the server's workers:
    featurizing a request is mostly single-threaded and the model's threads share the cores, so
    more at once only queue inside (bench/overload.py on 2 cores)."""
    return max(1, max(2, cores()) // workers)


def threads_per_prediction(work: WorkLimiter, workers: int = 1) -> int:
    """The cores shared among the predictions that run at once (at least 1): the models' default.
    With every core per prediction, ``slots`` predictions oversubscribe the cores and OpenMP's
    idle threads spin: the same latency for twice the CPU (3.6 vs 7.2 ms per 500-candle request in
    process), and 8-9 % less throughput at 8 concurrent requests (bench/serve.py, 2 cores)."""
    return max(1, cores() // (work.slots * workers))


class WorkLimiter:
    """The cap on concurrent predictions, their queue, their deadlines and the shutdown drain
    (one per server process: with ``--workers N`` each worker has its own)."""

    def __init__(self, limits: Limits, workers: int = 1):
        self.limits = limits
        self.slots = limits.max_concurrent or default_concurrency(workers)
        self.max_queue = limits.max_queue or 8 * self.slots
        self._free = asyncio.Semaphore(self.slots)  # binds to the server's loop on first use
        self.waiting = 0
        self.rejected = 0  # 503s so far (busy, late or draining): /health reports it as `refused`
        self.drain_deadline: float | None = None

    def drain(self, grace: float) -> None:
        """Shutdown began: work still running ``grace`` seconds from now stops with a 503."""
        self.drain_deadline = time.monotonic() + grace

    async def run(self, fn: Callable[[Checkpoint], T]) -> T:
        """Run ``fn(checkpoint)`` in a worker thread once a slot is free (or answer 503 now)."""
        deadline = time.monotonic() + self.limits.request_timeout
        self.checkpoint(deadline)
        await self._acquire()
        try:
            return await anyio.to_thread.run_sync(fn, lambda: self.checkpoint(deadline))
        finally:
            self._free.release()

    def refuse_if_full(self) -> None:
        """503 now when no slot is free and the queue is full (also run before a body is decoded)."""
        if self._free.locked() and self.waiting >= self.max_queue:
            raise self._reject(
                f"busy: {self.slots} predictions running and {self.waiting} waiting; retry in a second",
                "server busy",
                retry_after=1,
            )

    async def _acquire(self) -> None:
        self.refuse_if_full()
        self.waiting += 1
        try:
            await asyncio.wait_for(self._free.acquire(), self.limits.queue_timeout)
        except TimeoutError:
            raise self._reject(
                f"busy: no free prediction slot within {self.limits.queue_timeout:g} s; retry in a second",
                "server busy",
                retry_after=1,
            ) from None
        finally:
            self.waiting -= 1

    def checkpoint(self, deadline: float) -> None:
        """Raise 503 once the request's time is up or the shutdown grace has run out."""
        now = time.monotonic()
        if self.drain_deadline is not None and now >= self.drain_deadline:
            raise self._reject(
                "the server is shutting down and this prediction could not finish in time; "
                "retry against the restarted server",
                "shutting down",
                retry_after=5,
            )
        if now >= deadline:
            raise self._reject(
                f"the prediction ran past the {self.limits.request_timeout:g} s limit per request "
                "(server busy, or too many candles for one call): ask for fewer, or retry",
                f"at most {self.limits.request_timeout:g} s per request",
                retry_after=1,
            )

    def _reject(self, message: str, rule: str, retry_after: int) -> Unavailable:
        self.rejected += 1
        return Unavailable(message, rule=rule, retry_after=retry_after)


def admit(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard of the predicting routes: a full queue answers 503 before the body is even decoded."""
    work: WorkLimiter = connection.app.state.work
    work.refuse_if_full()
