"""``candle-ml serve --workers N``: N server processes on one port, serving one model generation.

The supervisor (this process) binds the port, starts N workers (``spawn``: nothing of its own
state leaks into them) that accept connections on the shared socket, restarts one that dies, and
runs every model load as one *round* (see ``serve.worker_link``):

1. ``prepare`` to every worker: each loads the model beside the one it serves;
2. all loaded the same version: ``commit`` (each swaps, acknowledges; the reload answers after
   the last one), otherwise ``abort`` (each keeps its model; ``/health`` and the 409 say why).

Rounds run at startup, on SIGHUP (to the supervisor or any worker) and on ``POST /model/reload``
(whichever worker took it); requests that come while a round runs share the next round. A
replacement worker loads exactly the generation served (``models:/NAME/VERSION``, or the bundle
directory if its files are unchanged) and serves only if it got it, else it is retried later.
SIGTERM/SIGINT drain every worker (``shutdown_grace``) and end in exit 0.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from serve.config import Timeouts
from serve.settings import ServeSettings

log = logging.getLogger("candle_ml.serve")

LOAD_TIMEOUT = 600.0  # seconds a worker may take to load a model (a registry download included)
RETRY_AFTER = 30.0  # seconds before a replacement that could not load the generation tries again
_ctx = multiprocessing.get_context("spawn")


@dataclass
class Worker:
    index: int  # 1..N, as /health reports it
    process: BaseProcess
    conn: Connection
    born: float = field(default_factory=time.monotonic)
    started: bool = False  # told to serve (its lifespan finished)
    hello: bool = False  # its app is up and waits for a round


@dataclass
class Generation:
    version: str | None = None  # served by every started worker; None: no model loaded yet
    pinned: str | None = None  # where exactly it loads from (serve.worker_link.pinned_source)


@dataclass
class RoundResult:
    ok: bool
    error: str | None = None


def worker_main(
    index: int,
    settings: ServeSettings,
    timeouts: Timeouts,
    log_level: str,
    sock: socket.socket,
    conn: Connection,
) -> None:
    """A worker process: the app, linked to the supervisor, on the shared socket."""
    from candle_ml.stageio import setup_logging
    from serve.app import create_app
    from serve.server import run
    from serve.worker_link import WorkerLink

    setup_logging()
    web = create_app(settings, WorkerLink(conn, index, settings.workers))
    raise SystemExit(run(web, "", 0, timeouts, log_level, web.state.work.drain, sockets=[sock]))


class Supervisor:
    def __init__(self, settings: ServeSettings, timeouts: Timeouts, log_level: str, sock: socket.socket):
        self.settings, self.timeouts, self.log_level, self.sock = settings, timeouts, log_level, sock
        self.workers: dict[int, Worker] = {}
        self.generation = Generation()
        self.rounds = 0
        self.pending: list[tuple[int, int]] = []  # reload requests: (worker index, request id)
        self.series_asked = False  # one of them (POST /model/reload) reads the stored series again too
        self.reload_asked = False  # SIGHUP
        self.stopping = False
        self.retry_at: dict[int, float] = {}  # worker slots to start again, and when
        self._delay: dict[int, float] = {}  # the last wait before starting a slot again
        self._wake_r, self._wake_w = socket.socketpair()

    # -- processes ------------------------------------------------------------------------------

    def spawn(self, index: int) -> Worker:
        parent, child = _ctx.Pipe()
        process = _ctx.Process(
            target=worker_main,
            args=(index, self.settings, self.timeouts, self.log_level, self.sock, child),
            name=f"candle-ml-worker-{index}",
            daemon=False,
        )
        process.start()
        child.close()
        worker = self.workers[index] = Worker(index, process, parent)
        log.info("worker %d started (pid %s)", index, process.pid)
        return worker

    def _gone(self, worker: Worker) -> None:
        worker.process.join(1)
        self.workers.pop(worker.index, None)
        worker.conn.close()
        if self.stopping:
            return
        log.error(
            "worker %d (pid %s) exited with %s; starting another",
            worker.index,
            worker.process.pid,
            worker.process.exitcode,
        )
        # a worker that dies as it starts (a broken install) is retried ever more slowly
        lived = time.monotonic() - worker.born
        delay = self._delay[worker.index] = (
            1.0 if lived > 60 else min(RETRY_AFTER, 2 * self._delay.get(worker.index, 0.5))
        )
        self.retry_at.setdefault(worker.index, time.monotonic() + delay)

    # -- messages -------------------------------------------------------------------------------

    def _pump(self, timeout: float, rounds: dict[str, dict[int, dict[str, Any]]] | None = None) -> None:
        """Wait up to ``timeout`` s for messages, deaths or a signal, and take in what came.
        ``rounds``: replies of the round in flight, by op (prepared/committed), by worker."""
        waitables: list[Any] = [self._wake_r]
        for w in self.workers.values():
            waitables += [w.conn, w.process.sentinel]
        for ready in wait(waitables, timeout):
            if ready is self._wake_r:
                self._wake_r.recv(64)
                continue
            worker = next((w for w in self.workers.values() if ready in (w.conn, w.process.sentinel)), None)
            if worker is None:
                continue
            try:
                while worker.conn.poll():
                    self._take(worker, worker.conn.recv(), rounds)
            except (EOFError, OSError):
                self._gone(worker)
                continue
            if not worker.process.is_alive():
                self._gone(worker)

    def _take(
        self, worker: Worker, message: dict[str, Any], rounds: dict[str, dict[int, Any]] | None
    ) -> None:
        op = message["op"]
        if op == "hello":
            worker.hello = True
        elif op == "reload":
            self.pending.append((worker.index, message["id"]))
            self.series_asked |= bool(message.get("series", True))
        elif rounds is not None and op in rounds and message.get("round") == self.rounds:
            rounds[op][worker.index] = message

    def _send(self, worker: Worker, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):  # it died; _pump notices
            worker.conn.send(message)

    # -- rounds ---------------------------------------------------------------------------------

    def run_round(
        self, workers: list[Worker], source: str | None, expect: str | None = None, series: bool = True
    ) -> RoundResult:
        """Prepare on ``workers``; commit if every one loaded the same version (``expect``, when
        given: the generation the others serve), else abort."""
        self.rounds += 1
        replies: dict[str, dict[int, dict[str, Any]]] = {"prepared": {}, "committed": {}}
        for w in workers:
            self._send(w, {"op": "prepare", "round": self.rounds, "source": source, "series": series})
        self._collect(workers, replies, "prepared", LOAD_TIMEOUT)
        prepared = replies["prepared"]
        error = _round_error(workers, prepared, self.workers, expect)
        if error is None:
            for w in workers:
                self._send(w, {"op": "commit", "round": self.rounds})
            self._collect(workers, replies, "committed", 30.0)
            first = next(iter(prepared.values()))
            self.generation = Generation(first["version"], first["pinned"])
            log.info("%d worker(s) serve version %s", len(workers), first["version"])
            return RoundResult(True)
        for w in workers:
            self._send(w, {"op": "abort", "round": self.rounds, "error": error})
        log.error("reload not applied: %s", error)
        return RoundResult(False, error)

    def _collect(
        self, workers: list[Worker], replies: dict[str, dict[int, Any]], op: str, timeout: float
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(w.index in replies[op] or w.index not in self.workers for w in workers):
                return
            self._pump(min(1.0, deadline - time.monotonic()), replies)

    def reload_everyone(self, series: bool) -> RoundResult:
        """A round over every started worker with the configured source (SIGHUP, POST /model/reload)."""
        workers = [w for w in self.workers.values() if w.started]
        if not workers:
            return RoundResult(False, "no worker is serving")
        return self.run_round(workers, None, series=series)

    def answer_pending(self) -> None:
        """Reload requests (and a SIGHUP) that came: one round for all of them."""
        if not (self.pending or self.reload_asked):
            return
        asked, series = self.pending, self.series_asked
        self.pending, self.reload_asked, self.series_asked = [], False, False
        result = self.reload_everyone(series)
        for index, request in asked:
            if index in self.workers:
                self._send(
                    self.workers[index],
                    {"op": "reloaded", "id": request, "ok": result.ok, "error": result.error},
                )

    def admit_new(self) -> None:
        """Workers that said hello: the first ones together (the startup round), a replacement alone,
        on exactly the generation the others serve."""
        new = [w for w in self.workers.values() if w.hello and not w.started]
        if not new:
            return
        if not any(w.started for w in self.workers.values()):
            if len(new) < len(self.workers):
                return  # the startup round waits for all of them
            self.run_round(new, None)  # a failure: every worker starts without a model and says why
            for w in new:
                self._start(w)
            return
        for w in new:
            if self.generation.version is None:  # no worker has a model: this one may find one
                if self.run_round([w], None).ok:
                    self.reload_asked = True  # then every worker moves to it
                self._start(w)
                continue
            result = self.run_round([w], self.generation.pinned, expect=self.generation.version)
            if result.ok:
                self._start(w)
                continue
            log.error("worker %d does not serve: %s; retrying in %g s", w.index, result.error, RETRY_AFTER)
            self._send(w, {"op": "refuse", "error": result.error})
            self.retry_at[w.index] = time.monotonic() + RETRY_AFTER
            w.hello = False

    def _start(self, worker: Worker) -> None:
        self._send(worker, {"op": "start"})
        worker.started = True

    def respawn_due(self) -> None:
        now = time.monotonic()
        for index, at in list(self.retry_at.items()):
            if at <= now and index not in self.workers:
                del self.retry_at[index]
                self.spawn(index)

    # -- the loop -------------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake_w.send(b"x")

    def serve(self) -> int:
        for index in range(1, self.settings.workers + 1):
            self.spawn(index)
        previous = {
            s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        }
        try:
            while not self.stopping:
                self._pump(1.0)
                self.admit_new()
                self.answer_pending()
                self.respawn_due()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            self.shut_down()
        return 0

    def _on_signal(self, sig: int, _frame: object) -> None:
        if sig == signal.SIGHUP:
            log.info("SIGHUP: reloading the model on every worker")
            self.reload_asked = True
        else:
            if not self.stopping:
                log.info("%s: draining %d worker(s)", signal.Signals(sig).name, len(self.workers))
            self.stopping = True
        self.wake()

    def shut_down(self) -> None:
        for w in self.workers.values():
            if w.process.is_alive() and w.process.pid is not None:
                os.kill(w.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.timeouts.shutdown_grace + 10
        for w in list(self.workers.values()):
            w.process.join(max(0.0, deadline - time.monotonic()))
            if w.process.is_alive():
                log.error("worker %d did not stop in time: killed", w.index)
                w.process.kill()
                w.process.join()


def _round_error(
    workers: list[Worker], prepared: dict[int, dict[str, Any]], alive: dict[int, Worker], expect: str | None
) -> str | None:
    """Why a round must abort (None: every worker loaded the same version)."""
    for w in workers:
        reply = prepared.get(w.index)
        if reply is None:
            what = "exited" if w.index not in alive else f"did not load within {LOAD_TIMEOUT:g} s"
            return f"worker {w.index} {what}; every worker keeps the model it serves"
        if not reply["ok"]:
            return f"worker {w.index}: {reply['error']}; every worker keeps the model it serves"
    versions = {prepared[w.index]["version"] for w in workers}
    if len(versions) > 1:
        return (
            f"the workers loaded different versions ({', '.join(sorted(versions))}): the model changed "
            "while they loaded it; reload again; every worker keeps the model it serves"
        )
    if expect is not None and versions != {expect}:
        return (
            f"it loaded version {versions.pop()} but the others serve {expect} (the source changed "
            "since their reload): POST /model/reload moves every worker"
        )
    return None


def serve_workers(settings: ServeSettings, host: str, port: int, timeouts: Timeouts, log_level: str) -> int:
    """Bind ``host:port``, run ``settings.workers`` workers on it until SIGTERM; 3 if it cannot bind."""
    import uvicorn

    try:
        sock = uvicorn.Config(app=None, host=host, port=port).bind_socket()  # type: ignore[arg-type]
    except SystemExit:  # uvicorn logged why (the port in use, a bad address)
        return 3
    sock.set_inheritable(True)
    log.info("%d workers on http://%s:%d", settings.workers, host, port)
    return Supervisor(settings, timeouts, log_level, sock).serve()
