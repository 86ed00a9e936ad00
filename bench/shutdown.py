"""SIGTERM with long requests in flight: how many finish, how many get 503, the exit code.

Starts ``candle-ml serve`` (with a queue long enough to hold every request), sends
``--requests`` concurrent ``POST /predict`` of ``--candles`` real candles each, sends SIGTERM
after ``--after`` seconds and reports every answer's status and time, and the exit code.
Run after `dvc repro` from the repository root:

    python bench/shutdown.py                      # the default grace, 30 s: all should finish
    python bench/shutdown.py --grace 3            # a short grace: the rest answer 503
"""

from __future__ import annotations

import http.client
import json
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import polars as pl
import typer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from serve.process import ServerProcess  # noqa: E402


def long_body(series: Path, n: int) -> bytes:
    """``n`` candles: the stored series, repeated later in time as often as needed."""
    frame = pl.read_parquet(series)
    span = int(frame["time"][-1] - frame["time"][0]) + 86_400
    copies = [frame.with_columns(pl.col("time") + k * span) for k in range(-(-n // frame.height))]
    rows = pl.concat(copies).head(n).select("time", "open", "high", "low", "close", "volume").to_dicts()
    return json.dumps({"candles": [{**r, "time": int(r["time"])} for r in rows]}).encode()


def main(
    grace: float = typer.Option(30.0, help="candle-ml serve --shutdown-grace"),
    requests: int = typer.Option(20, help="requests in flight at SIGTERM"),
    candles: int = typer.Option(50_000, help="candles per request"),
    after: float = typer.Option(2.0, help="seconds between sending them and SIGTERM"),
    series: Path = typer.Option(ROOT / "data/candles/AAPL_1d.parquet", help="where the candles come from"),
) -> None:
    body = long_body(series, candles)
    server = ServerProcess(
        *("--shutdown-grace", str(grace), "--max-queue", str(requests * 2), "--queue-timeout", "600"),
        *("--log-level", "warning"),
        log=Path("/tmp/candle-ml-shutdown.log"),
    ).start()
    answers: list[tuple[str, str | None, float]] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
        started = time.monotonic()
        try:
            conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            answers.append(
                (str(response.status), response.getheader("Retry-After"), time.monotonic() - started)
            )
        except OSError as exc:
            answers.append((type(exc).__name__, None, time.monotonic() - started))

    threads = [threading.Thread(target=client) for _ in range(requests)]
    for t in threads:
        t.start()
    time.sleep(after)
    assert server.proc is not None
    proc, sent = server.proc, time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(grace + 60)
    for t in threads:
        t.join()
    statuses = Counter(status for status, _, _ in answers)
    print(
        f"grace {grace:g} s, {requests} requests x {candles} candles, SIGTERM after {after:g} s: "
        f"exit code {code} {time.monotonic() - sent:.1f} s after it; answers {dict(statuses)}; "
        f"Retry-After on the 503s: {dict(Counter(r for s, r, _ in answers if s == '503'))}; "
        f"last answer at {max(t for _, _, t in answers):.1f} s"
    )


if __name__ == "__main__":
    typer.run(main)
