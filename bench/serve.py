"""Benchmark POST /predict: candle-ml's server against `mlflow models serve` and the compute floor.

All three run in one invocation on the same 500 candles and the same model bundle:

- floor: in-process ``Bundle.predict`` (featurize + windows + model) and ``Bundle.predict_chart``
  (the chart-pattern spans ``/predict`` returns too), no HTTP, no JSON;
- candle-ml: ``candle-ml serve`` as a subprocess, ``POST /predict``;
- candle-ml[columns]: the same with a columnar body (``{"time": [...], "open": [...], ...}``),
  answered in columns; candle-ml[invocations]: candle-ml's ``POST /invocations`` with MLflow's
  body (MLflow's parsing and encoding, the same per-candle table MLflow answers);
- mlflow: ``mlflow models serve --env-manager local`` on the pyfunc that ``train`` logged
  for the same bundle (``runs:/<bundle run id>/candles_pyfunc``), ``POST /invocations``. Its
  per-candle table has no chart-pattern spans, so it does less work per request than ours.

Each server is measured at concurrency 1 and 8 (threads with keep-alive connections):
p50/p99 latency and throughput. Both servers run at once and are measured in alternating
rounds (the floor in between), so drift on a shared machine hits all three alike.
Ratios printed: throughput candle-ml / mlflow, and p50 candle-ml / floor. ``--workers N`` runs
both servers with N processes (candle-ml serve --workers, mlflow models serve --workers).
Run after `dvc repro` from the repository root:

    python bench/serve.py                       # 400 requests per server and level
    python bench/serve.py --requests 1000 --json-out bench/results.json
    python bench/serve.py --workers 2            # both servers with 2 processes each
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl
import typer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from candle_ml.bundle import load_bundle  # noqa: E402
from candle_ml.candles import validate_candles  # noqa: E402
from serve.process import free_port, stop, wait_ready  # noqa: E402


class Client:
    """``concurrency`` threads, each with one keep-alive connection to one server."""

    def __init__(self, port: int, path: str, body: bytes, concurrency: int, check):
        self.port, self.path, self.body, self.check = port, path, body, check
        self.local = threading.local()
        self.pool = ThreadPoolExecutor(concurrency)
        self.concurrency = concurrency
        self.latencies: list[float] = []
        self.wall = 0.0
        self.run(concurrency * 3, record=False)  # warm-up: connections, caches, lazy imports

    def one(self, _: int) -> float:
        if not hasattr(self.local, "conn"):
            self.local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        started = time.perf_counter()
        self.local.conn.request("POST", self.path, self.body, {"Content-Type": "application/json"})
        resp = self.local.conn.getresponse()
        data = resp.read()
        elapsed = time.perf_counter() - started
        if resp.status != 200:
            raise RuntimeError(f"{self.path}: HTTP {resp.status}: {data[:300]!r}")
        self.check(data)
        return elapsed

    def run(self, requests: int, record: bool = True) -> None:
        started = time.perf_counter()
        latencies = list(self.pool.map(self.one, range(requests)))
        if record:
            self.wall += time.perf_counter() - started
            self.latencies += latencies

    def result(self) -> dict:
        ms = np.array(self.latencies) * 1000
        return {
            "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)),
            "throughput_rps": len(ms) / self.wall,
        }


def main(
    model: Path = typer.Option(ROOT / "models", help="bundle directory (the pipeline's models/)"),
    series: Path = typer.Option(
        ROOT / "data/candles/AAPL_1d.parquet", help="candles to take the request from"
    ),
    candles: int = typer.Option(500, help="candles per request"),
    requests: int = typer.Option(400, help="requests per server and concurrency level"),
    rounds: int = typer.Option(8, help="alternating rounds the requests are spread over"),
    tracking_uri: str = typer.Option(
        None, help="MLflow store holding the bundle's run (default ./mlflow.db)"
    ),
    json_out: Path = typer.Option(None, help="also write the results here"),
    history_cost: bool = typer.Option(
        True,
        help="also run candle-ml without its prediction history (--history ''): the history's "
        "cost per request, in the same run, and its size per 10,000 predictions",
    ),
    variants: bool = typer.Option(
        True,
        help="also candle-ml with a columnar body ({'time': [...], 'open': [...]}, answered in columns) "
        "and candle-ml's own /invocations with MLflow's body",
    ),
    workers: int = typer.Option(
        1,
        min=1,
        help="server processes for both servers: candle-ml serve --workers, mlflow models serve --workers",
    ),
    model_threads: list[int] = typer.Option(
        [],
        help="candle-ml serve --model-threads; repeat to compare settings "
        "in one run (default: the server's default)",
    ),
) -> None:
    bundle = load_bundle(model)
    frame = pl.read_parquet(series).tail(candles)
    rows = frame.to_dicts()
    n_labeled = max(frame.height - bundle.meta.min_history, 0)
    print(
        f"model {model} ({bundle.meta.model_type}), {frame.height} candles per request, "
        f"{n_labeled} with enough history (min_history {bundle.meta.min_history}); {os.cpu_count()} CPUs; "
        f"{workers} worker(s) per server"
    )

    # Compute floor: what our server must compute per request (featurize + windows + model, and
    # the chart-pattern model), in-process.
    validated, _ = validate_candles(frame, "bench")

    def compute() -> None:
        bundle.predict(validated)
        bundle.predict_chart(validated)

    for _ in range(5):
        compute()
    ours_body = json.dumps({"candles": rows}).encode()
    mlflow_body = json.dumps(
        {"dataframe_split": {"columns": list(rows[0]), "data": [list(r.values()) for r in rows]}}
    ).encode()

    columns_body = json.dumps({"candles": frame.to_dict(as_series=False)}).encode()

    def check_columns(data: bytes) -> None:
        assert len(json.loads(data)["predictions"]["time"]) == frame.height

    def check_ours(data: bytes) -> None:
        assert len(json.loads(data)["predictions"]) == frame.height

    def check_mlflow(data: bytes) -> None:
        assert len(json.loads(data)["predictions"]) == frame.height

    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri
        or os.environ.get("MLFLOW_TRACKING_URI")
        or f"sqlite:///{ROOT / 'mlflow.db'}",
    }
    exe = Path(sys.executable).parent
    # mlflow models serve starts `uvicorn` by name (with --workers > 1): this environment's
    env["PATH"] = f"{exe}{os.pathsep}{env.get('PATH', '')}"
    history_dir = Path(tempfile.mkdtemp(prefix="candle-ml-bench-"))
    history_db = history_dir / "history.sqlite"  # a fresh one per run, never the repository's
    serve_cmd = [str(exe / "candle-ml"), "serve", "--model", str(model), "--log-level", "warning"]
    serve_cmd += ["--workers", str(workers)]
    serve_cmd += ["--history", str(history_db)]
    servers = {
        f"candle-ml[t={t}]" if len(model_threads) > 1 else "candle-ml": (
            serve_cmd + ["--model-threads", str(t)],
            "/health",
            "/predict",
            ours_body,
            check_ours,
        )
        for t in model_threads
    } or {"candle-ml": (serve_cmd, "/health", "/predict", ours_body, check_ours)}
    if history_cost:
        servers["candle-ml[no history]"] = (
            serve_cmd[:-2] + ["--history", ""],
            "/health",
            "/predict",
            ours_body,
            check_ours,
        )
    if variants:
        servers["candle-ml[columns]"] = (serve_cmd, "/health", "/predict", columns_body, check_columns)
        servers["candle-ml[invocations]"] = (serve_cmd, "/health", "/invocations", mlflow_body, check_mlflow)
    run_id = bundle.meta.training.run_id
    if run_id:
        servers["mlflow"] = (
            [
                str(exe / "mlflow"),
                "models",
                "serve",
                "-m",
                f"runs:/{run_id}/candles_pyfunc",
                "--env-manager",
                "local",
                "--host",
                "127.0.0.1",
                "--workers",
                str(workers),
            ],
            "/ping",
            "/invocations",
            mlflow_body,
            check_mlflow,
        )
    else:
        print("the bundle has no MLflow run id (trained without tracking): skipping mlflow models serve")

    results = measure(servers, env, bundle, validated, requests, rounds)
    if history_cost and history_db.is_file():
        results["history"] = history_size(history_db)
    report(results, servers, json_out, frame.height, workers)
    shutil.rmtree(history_dir, ignore_errors=True)


def history_size(db: Path) -> dict:
    """Bytes the prediction history took per prediction the server answered in this run."""
    import sqlite3

    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    n = con.execute("SELECT count(*) FROM predictions").fetchone()[0]
    spans = con.execute("SELECT count(*) FROM shown").fetchone()[0]  # distinct spans shown
    con.close()
    size = db.stat().st_size
    return {"predictions": n, "spans": spans, "bytes": size, "mb_per_10k": size / max(n, 1) * 1e4 / 1e6}


def measure(servers: dict, env: dict, bundle, validated: pl.DataFrame, requests: int, rounds: int) -> dict:
    """p50/p99 and throughput per server and concurrency level, plus the in-process floor."""
    results: dict = {}
    # Both servers run side by side and are measured in alternating rounds, with the floor
    # between them, so a noisy machine slows every contender alike.
    procs, ports = {}, {}
    try:
        for name, (cmd, *_rest) in servers.items():
            ports[name] = free_port()
            procs[name] = subprocess.Popen(
                [*cmd, "--port", str(ports[name])],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        for name, (_cmd, ready, *_rest) in servers.items():
            wait_ready(ports[name], ready, procs[name])
        for c in (1, 8):
            clients = {
                name: Client(ports[name], path, body, c, check)
                for name, (_cmd, _ready, path, body, check) in servers.items()
            }
            floor_ms: list[float] = []
            for _ in range(rounds):
                for client in clients.values():
                    client.run(requests // rounds)
                if c == 1:
                    for _ in range(requests // rounds):
                        t = time.perf_counter()
                        bundle.predict(validated)
                        bundle.predict_chart(validated)
                        floor_ms.append((time.perf_counter() - t) * 1000)
            for name, client in clients.items():
                results[f"{name}@{c}"] = client.result()
                client.pool.shutdown()
            if c == 1:
                results["floor"] = {
                    "p50_ms": float(np.percentile(floor_ms, 50)),
                    "p99_ms": float(np.percentile(floor_ms, 99)),
                }
    finally:
        for proc in procs.values():
            stop(proc)
    return results


def report(results: dict, servers: dict, json_out: Path | None, n_candles: int, workers: int) -> None:

    history = results.pop("history", None)
    print(f"\n{'':28} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}")
    for key in sorted(results, key=lambda k: (k != "floor", k.split("@")[-1], k)):
        r = results[key]
        print(f"{key:28} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r.get('throughput_rps', float('nan')):8.1f}")
    ratios = {}
    if "candle-ml[no history]@1" in results and "candle-ml@1" in results:
        for c in (1, 8):
            off = results[f"candle-ml[no history]@{c}"]
            ratios[f"p50 with history / without @{c}"] = results[f"candle-ml@{c}"]["p50_ms"] / off["p50_ms"]
    for ours in (k for k in servers if k.startswith("candle-ml")):
        for c in (1, 8):
            if f"mlflow@{c}" in results:
                ratios[f"throughput {ours}/mlflow @{c}"] = (
                    results[f"{ours}@{c}"]["throughput_rps"] / results[f"mlflow@{c}"]["throughput_rps"]
                )
        ratios[f"p50 {ours}@1 / floor"] = results[f"{ours}@1"]["p50_ms"] / results["floor"]["p50_ms"]
    print()
    for k, v in ratios.items():
        print(f"{k:44} {v:6.2f}x")
    print("targets: throughput >= 3x mlflow at equal workers, p50 <= 1.5x floor (issue #28)")
    if history:
        results["history"] = history
        print(
            f"prediction history: {history['predictions']} predictions, {history['spans']} distinct spans, "
            f"{history['bytes'] / 1e6:.2f} MB: {history['mb_per_10k']:.2f} MB per 10,000 predictions"
        )
    if json_out:
        json_out.write_text(
            json.dumps(
                {
                    "results": results,
                    "ratios": ratios,
                    "candles": n_candles,
                    "cpus": os.cpu_count(),
                    "workers": workers,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    typer.run(main)
