"""Running the real server as a subprocess on loopback: for tests, benchmarks and scripts."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, path: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Poll ``GET path`` on loopback until it answers 200; fail if the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"server on port {port} not ready after {timeout} s")


def stop(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """SIGTERM (graceful shutdown), then SIGKILL if it does not end in ``timeout`` seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class ServerProcess:
    """``candle-ml serve`` as a subprocess on a loopback port it keeps across restarts.

    ``options`` are the command line after ``serve`` (``--model``, ``--feedback-log``, ...);
    its output goes to ``log`` (appended, so restarts keep the earlier runs' lines), and its
    prediction history, opened charts and the candles answers keep beside it unless told where.
    One worker unless ``--workers`` is among the options.
    """

    def __init__(self, *options: str, log: Path, port: int | None = None):
        self.port = port or free_port()
        history = [] if "--history" in options else ["--history", str(log.with_name("history.sqlite"))]
        # opened charts and the candles answers keep: beside the log too, never in the repository
        for option, name in (("--charts-dir", "charts"), ("--raw-dir", "raw")):
            if option not in options:
                history += [option, str(log.with_name(name))]
        if "--workers" not in options:  # one process unless told: counters and limits are per worker
            history += ["--workers", "1"]
        self.cmd = [
            str(Path(sys.executable).with_name("candle-ml")),
            "serve",
            "--port",
            str(self.port),
            *history,
            *options,
        ]
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60, ready: str | None = "/health") -> ServerProcess:
        """Start it and wait until ``GET ready`` answers 200 (``/health`` is 503 without a model);
        ``ready=None`` returns once it is spawned (the caller sees it serve some other way)."""
        with open(self.log, "ab") as out:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ})
        if ready is not None:
            wait_ready(self.port, ready, self.proc, timeout)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None

    def kill(self) -> None:
        """SIGKILL, as a crash: no shutdown code runs."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None
