"""Benchmark the server under overload: 50 clients at once, bounded work against unbounded.

Two runs of ``candle-ml serve`` on the same model, one after the other, each hit by
``--clients`` threads (one keep-alive connection each) sending ``POST /predict`` with 500
real candles back to back for ``--seconds``:

- unbounded (the baseline): no effective cap, queue or time limit
  (``--max-concurrent 1000 --max-queue 1000 --queue-timeout 600 --request-timeout 600``),
  which is how the server behaved before the limits existed;
- bounded: the defaults (one prediction per core, 8 waiting per slot, 2 s queue timeout).

Printed per run: answers by status, p50/p99 latency of the 200s, p50/p99 of the 503s
(how fast a client learns to back off; it then sleeps Retry-After, as a well-behaved client
does), and the ratio bounded / unbounded for p99.
Run after `dvc repro` from the repository root:

    python bench/overload.py
    python bench/overload.py --clients 50 --seconds 20 --json-out bench/overload.json
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import polars as pl
import typer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from serve.process import ServerProcess  # noqa: E402

UNBOUNDED = ["--max-concurrent", "1000", "--max-queue", "1000", "--queue-timeout", "600"]
UNBOUNDED += ["--request-timeout", "600"]


def hammer(port: int, body: bytes, clients: int, seconds: float) -> dict[int, list[float]]:
    """``clients`` threads POST ``body`` back to back until ``seconds`` pass; latencies by status."""
    by_status: dict[int, list[float]] = defaultdict(list)
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while time.monotonic() < stop_at:
            started, back_off = time.perf_counter(), 0.0
            try:
                conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                status = response.status
                if status == 503:  # a well-behaved client comes back when told to
                    back_off = float(response.getheader("Retry-After") or 1)
            except OSError:
                status = 0  # connection error
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            with lock:
                by_status[status].append(time.perf_counter() - started)
            time.sleep(back_off)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return by_status


def summary(by_status: dict[int, list[float]], seconds: float) -> dict:
    def pct(values: list[float], q: float) -> float | None:
        return round(float(np.percentile(values, q)) * 1000, 1) if values else None

    ok, busy = by_status.get(200, []), by_status.get(503, [])
    return {
        "answers": {str(k): len(v) for k, v in sorted(by_status.items())},
        "ok_per_s": round(len(ok) / seconds, 1),
        "ok_p50_ms": pct(ok, 50),
        "ok_p99_ms": pct(ok, 99),
        "busy_p50_ms": pct(busy, 50),
        "busy_p99_ms": pct(busy, 99),
        "errors": sum(len(v) for k, v in by_status.items() if k not in (200, 503)),
    }


def main(
    clients: int = typer.Option(50, help="concurrent clients"),
    seconds: float = typer.Option(15.0, help="how long each run lasts"),
    candles: int = typer.Option(500, help="candles per request"),
    series: Path = typer.Option(ROOT / "data/candles/AAPL_1d.parquet", help="where the candles come from"),
    json_out: Path = typer.Option(None, help="also write the results here"),
) -> None:
    frame = pl.read_parquet(series).tail(candles)
    rows = frame.select("time", "open", "high", "low", "close", "volume").to_dicts()
    body = json.dumps({"candles": [{**r, "time": int(r["time"])} for r in rows]}).encode()
    results = {}
    for name, options in [("unbounded", UNBOUNDED), ("bounded", [])]:
        log = Path("/tmp") / f"candle-ml-overload-{name}.log"
        server = ServerProcess("--log-level", "warning", *options, log=log).start()
        try:
            hammer(server.port, body, 4, 2.0)  # warm-up: imports, caches
            results[name] = summary(hammer(server.port, body, clients, seconds), seconds)
        finally:
            server.stop()
        print(f"{name:>10}: {json.dumps(results[name])}", flush=True)
    base, ours = results["unbounded"], results["bounded"]
    ratio = ours["ok_p99_ms"] / base["ok_p99_ms"] if base["ok_p99_ms"] and ours["ok_p99_ms"] else None
    print(
        f"\n{clients} clients x {candles} candles, {seconds:g} s each: "
        f"p99 of 200s bounded/unbounded = {ratio:.3f}; "
        f"503s bounded: {ours['answers'].get('503', 0)} "
        f"(p50 {ours['busy_p50_ms']} ms, p99 {ours['busy_p99_ms']} ms)"
        if ratio
        else "no ratio: a run had no 200s"
    )
    if json_out:
        json_out.write_text(json.dumps({"clients": clients, "candles": candles, **results}, indent=2) + "\n")


if __name__ == "__main__":
    typer.run(main)
