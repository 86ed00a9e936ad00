"""One worker's end of ``candle-ml serve --workers N`` (the supervisor is ``serve.workers``).

A worker never swaps its model on its own: ``POST /model/reload`` and SIGHUP ask the supervisor,
which has every worker *prepare* the new model (load it beside the one serving) and then
*commit* only when all of them loaded the same version, or *abort* everywhere (each keeps the
model it serves, and ``/health`` says why). So the workers serve one model generation, and two
versions side by side at most for the moment the commit messages take.

Messages are small dicts over a ``multiprocessing`` pipe; a thread reads them, so a model
loads without blocking the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import threading
from multiprocessing.connection import Connection
from typing import Any

from candle_ml.errors import CandleMLError, ModelLoadError
from candle_ml.loading import LoadedModel
from serve.model_store import ModelStore
from serve.series_cache import SeriesCache

log = logging.getLogger("candle_ml.serve")


class WorkerLink:
    """Reload requests up to the supervisor, prepare/commit/abort/start down from it."""

    def __init__(self, conn: Connection, index: int, workers: int):
        self.conn, self.index, self.workers = conn, index, workers
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._prepared: LoadedModel | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._start: asyncio.Event | None = None
        self._refused: str | None = None
        self.store: ModelStore | None = None
        self.series_cache: SeriesCache | None = None

    def send(self, message: dict[str, Any]) -> None:
        with self._send_lock:
            self.conn.send(message)

    async def join(self, store: ModelStore, series_cache: SeriesCache) -> None:
        """In the lifespan: report for work and wait until the supervisor says serve (by then the
        model of the generation is committed, or every worker failed to load it and says why)."""
        self.store, self.series_cache = store, series_cache
        self._loop, self._start = asyncio.get_running_loop(), asyncio.Event()
        threading.Thread(target=self._read, name="worker-link", daemon=True).start()
        self.send({"op": "hello", "pid": os.getpid()})
        await self._start.wait()
        if self._refused:
            raise RuntimeError(f"worker {self.index}: {self._refused}")

    async def reload(self, series: bool = True) -> tuple[bool, str | None]:
        """Every worker to the model the source holds now (and, with ``series``, the stored series
        read again, as ``POST /model/reload`` does; SIGHUP reloads the model only): (True, None)
        once all serve it, (False, why) when one could not load it (every worker keeps its model)."""
        assert self._loop is not None
        request = next(self._ids)
        answer = self._waiting[request] = self._loop.create_future()
        self.send({"op": "reload", "id": request, "series": series})
        try:
            reply = await answer
        finally:
            self._waiting.pop(request, None)
        return bool(reply["ok"]), reply.get("error")

    def _read(self) -> None:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):  # the supervisor is gone: drain and end, as on SIGTERM
                log.error("worker %d: the supervisor is gone; shutting down", self.index)
                os.kill(os.getpid(), signal.SIGTERM)
                return
            self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        op = message["op"]
        assert self.store is not None and self._loop is not None and self._start is not None
        if op == "prepare":
            prepared = self._prepare(message.get("source"), message.get("series", True))
            self.send({"op": "prepared", "round": message["round"], **prepared})
        elif op == "commit":
            if self._prepared is not None:
                self.store.commit(self._prepared)
            self._prepared = None
            self.send({"op": "committed", "round": message["round"]})
        elif op == "abort":
            self._prepared = None
            self.store.last_error = message["error"]  # every worker's /health says why
        elif op == "start":
            self._loop.call_soon_threadsafe(self._start.set)
        elif op == "refuse":  # a replacement worker that cannot serve the generation the others serve
            self._refused = message["error"]
            self._loop.call_soon_threadsafe(self._start.set)
        elif op == "reloaded":
            future = self._waiting.get(message["id"])
            if future is not None:
                self._loop.call_soon_threadsafe(_resolve, future, message)

    def _prepare(self, source: str | None, series: bool) -> dict[str, Any]:
        assert self.store is not None and self.series_cache is not None
        if series:
            with contextlib.suppress(CandleMLError):  # kept in series_cache.last_error; old series serve
                self.series_cache.reload()
        try:
            self._prepared = self.store.prepare(source)
        except ModelLoadError as exc:
            self._prepared = None
            return {"ok": False, "error": str(exc)}
        model = self._prepared
        return {"ok": True, "version": model.version, "pinned": pinned_source(model)}


def _resolve(future: asyncio.Future[dict[str, Any]], message: dict[str, Any]) -> None:
    if not future.done():
        future.set_result(message)


def pinned_source(model: LoadedModel) -> str:
    """Where exactly this model comes from: ``models:/NAME/VERSION`` for a registry alias (which
    may move), the bundle directory itself (its version is the hash of its files)."""
    return f"models:/{model.name}/{model.version}" if model.source.startswith("models:/") else model.source
