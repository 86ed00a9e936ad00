"""Benchmark GET /review and GET /review/queue on the longest bundled series, against the compute floor.

The floor (the named baseline, measured in the same run) is the in-process prediction of the
whole series: ``Bundle.predict`` on every stored candle (featurize + windows + model), the work a
review needs once per series and model version. The server runs as ``candle-ml serve`` with the
pipeline's model and a feedback log of ``--answers`` traders' answers on the series, so the
human spans and disagreements are real work too. Cold = the first request for a series
(it predicts the whole series); warm = later ones (the cached pass is sliced). Server time is
the route's own ``Server-Timing``; wall time adds HTTP and JSON. Run after `dvc repro`:

    python bench/review.py
"""

from __future__ import annotations

import http.client
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import typer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from candle_ml.annotations import Span  # noqa: E402
from candle_ml.bundle import load_bundle  # noqa: E402
from candle_ml.feedback import append_spans  # noqa: E402
from serve.process import free_port, stop, wait_ready  # noqa: E402


def get(port: int, path: str) -> tuple[float, float, int]:
    """(wall ms, server ms from Server-Timing, bytes) of one GET."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    wall = (time.perf_counter() - started) * 1000
    assert response.status == 200, (path, response.status, body[:300])
    timing = response.getheader("server-timing") or "x;dur=nan"
    return wall, float(timing.split("dur=")[1]), len(body)


def fake_answers(times: np.ndarray, n: int, pair: str) -> list[Span]:
    rng = random.Random(0)
    out = []
    for i in range(n):
        k = rng.randrange(len(times) - 3)
        label = rng.choice(["O", "doji", "bullish_engulfing", "bearish_harami"])
        out.append(
            Span(
                pair=pair,
                timeframe="1d",
                start_time=int(times[k]),
                end_time=int(times[k + rng.randrange(3)]),
                label=label,
                id=f"bench-{i}",
                source="human_correction",
                model_prediction="doji",
            )
        )
    return out


def main(
    model: Path = typer.Option(ROOT / "models", help="bundle directory (the pipeline's models/)"),
    candles_dir: Path = typer.Option(ROOT / "data/candles", help="series stored by ingest"),
    pair: str = typer.Option("AAPL", help="the series reviewed cold and warm"),
    cold_pair: str = typer.Option("IBM", help="a second series of the same length, for the cold queue"),
    answers: int = typer.Option(1000, help="traders' answers in the feedback log, per series"),
    repeats: int = typer.Option(30, help="warm requests per route"),
) -> None:
    bundle = load_bundle(model)
    candles = pl.read_parquet(candles_dir / f"{pair}_1d.parquet")
    floor = []
    for _ in range(5):
        started = time.perf_counter()
        bundle.predict(candles)
        floor.append((time.perf_counter() - started) * 1000)
    floor_ms = float(np.median(floor))

    tmp = Path(tempfile.mkdtemp(prefix="candle-ml-bench-"))
    log = tmp / "feedback.jsonl"
    for p in (pair, cold_pair):
        times = pl.read_parquet(candles_dir / f"{p}_1d.parquet")["time"].to_numpy()
        append_spans(log, fake_answers(times, answers, p))
    port = free_port()
    cmd = [
        str(Path(sys.executable).with_name("candle-ml")),
        "serve",
        "--port",
        str(port),
        "--model",
        str(model),
        "--candles-dir",
        str(candles_dir),
        "--feedback-log",
        str(log),
        "--history",
        str(tmp / "history.sqlite"),
        "--human-dir",
        str(tmp / "human"),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ}
    )
    rows: dict[str, tuple[float, float, int]] = {}
    try:
        wait_ready(port, "/health", proc)
        review = f"/review?pair={pair}&timeframe=1d"
        queue = "/review/queue?pair={}&timeframe=1d&limit=20"
        rows["review cold"] = get(port, review)
        rows["queue cold"] = get(port, queue.format(cold_pair))
        for name, path in (("review warm", review), ("queue warm", queue.format(pair))):
            runs = np.array([get(port, path) for _ in range(repeats)])
            rows[name] = (float(np.median(runs[:, 0])), float(np.median(runs[:, 1])), int(runs[0, 2]))
    finally:
        stop(proc)

    print(
        f"{pair} 1d: {candles.height} candles, {answers} answers per series in the log, {os.cpu_count()} CPUs"
    )
    print(f"\n{'':14} {'server ms':>10} {'wall ms':>9} {'bytes':>9}")
    print(f"{'floor':14} {floor_ms:10.1f} {'':>9} {'':>9}   (in-process Bundle.predict of the whole series)")
    for name, (wall, server, size) in rows.items():
        print(f"{name:14} {server:10.1f} {wall:9.1f} {size:9d}")
    print()
    for name in rows:
        print(f"{name + ' server / floor':32} {rows[name][1] / floor_ms:6.2f}x")
    print("target: a full review <= 1000 ms server-side")


if __name__ == "__main__":
    typer.run(main)
