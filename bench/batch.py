"""Benchmark batch prediction: `candle-ml predict` on a million candles against TA-Lib's own rules.

One invocation, the same candles (a seeded random walk of hourly candles, written once to a
Parquet file in a temporary folder):

- rule floor: the TA-Lib ``CDL*`` functions of ``autolabel.patterns`` on the candles' arrays,
  in this process: what the model imitates, at the cost of the rules themselves;
- candle-ml: ``candle-ml predict FILE -o OUT.parquet`` as a user types it, in a subprocess:
  read and validate the file, every candle's label and the chart-pattern spans, the table
  written. Wall time and the subprocess's peak RSS;
- a breakdown in this process: ``Bundle.predict`` (featurize + windows + model + spans back
  over their candles) and ``Bundle.predict_chart`` on the same candles.

Printed: candles/s of each, candle-ml's time as a multiple of the rule floor, peak RSS, and the
time a fresh process takes only to import what the command imports (Python, pandas, polars,
XGBoost with the scikit-learn and SciPy it imports), with the candles/s after it.
Run after `dvc repro` from the repository root:

    python bench/batch.py                      # 1,000,000 candles, 2 rounds
    python bench/batch.py --candles 200000 --rounds 1 --json-out bench/batch.json
"""

from __future__ import annotations

import json
import os
import resource
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

from candle_ml.bundle import load_bundle  # noqa: E402
from candle_ml.config import AutolabelParams, parse_section, read_params  # noqa: E402
from candle_ml.talib_api import import_talib  # noqa: E402


def random_walk(n: int, seed: int = 7) -> pl.DataFrame:
    """Hourly candles of a random walk: ordinary candles with every pattern now and then."""
    rng = np.random.default_rng(seed)
    close = 1.1 * np.exp(np.cumsum(rng.normal(0.0, 0.002, n)))
    open_ = np.concatenate([[close[0]], close[:-1]]) * np.exp(rng.normal(0.0, 0.0003, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.001, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.001, n)))
    return pl.DataFrame(
        {
            "time": 1_500_000_000 + 3600 * np.arange(n, dtype=np.int64),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": rng.integers(100, 10_000, n).astype(np.float64),
        }
    )


def rule_floor(candles: pl.DataFrame, patterns: list[str]) -> float:
    talib = import_talib()
    o, h, low, c = (candles[k].to_numpy() for k in ("open", "high", "low", "close"))
    started = time.perf_counter()
    for name in patterns:
        getattr(talib, name.upper())(o, h, low, c)
    return time.perf_counter() - started


def cli_predict(source: Path, out: Path, model: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of `candle-ml predict` as a fresh process."""
    code = (
        "import sys; from candle_ml.cli import app\n"
        "try:\n    app(sys.argv[1:])\n"
        "except SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
        # VmHWM: this process's own peak (ru_maxrss would count the parent's pages at fork)
        "peak = next(x.split()[1] for x in open('/proc/self/status') if x.startswith('VmHWM'))\n"
        "print('PEAK_RSS_KB', peak, file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, "predict", str(source), "-o", str(out), "--model", str(model)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": ""},
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"candle-ml predict failed ({done.returncode}):\n{done.stderr[-2000:]}")
    peak = next(int(x.split()[1]) for x in done.stderr.splitlines() if x.startswith("PEAK_RSS_KB"))
    return wall, peak / 1024


def startup() -> float:
    """Wall seconds of a fresh process that only imports what `candle-ml predict` imports: the
    part of the command's time that does not depend on the candles."""
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import candle_ml.cli, candle_ml.loading, candle_ml.predict_file, candle_ml.tracking",
        ],
        cwd=ROOT,
        check=True,
    )
    return time.perf_counter() - started


def main(
    candles: int = typer.Option(1_000_000, help="random-walk hourly candles"),
    rounds: int = typer.Option(2, help="rounds of every measurement"),
    model: Path = typer.Option(ROOT / "models", help="bundle directory"),
    json_out: Path = typer.Option(None, help="also write the results as JSON"),
) -> None:
    patterns = parse_section(read_params(ROOT / "params.yaml"), "autolabel", AutolabelParams).patterns
    bundle = load_bundle(model)
    frame = random_walk(candles)
    results: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        source, out = Path(tmp) / "RANDOM_1h.parquet", Path(tmp) / "predicted.parquet"
        frame.write_parquet(source)
        for r in range(rounds):
            floor = min(rule_floor(frame, patterns) for _ in range(3))
            wall, peak = cli_predict(source, out, model)
            imports = min(startup() for _ in range(3))
            labeled = pl.read_parquet(out)["label"]
            started = time.perf_counter()
            bundle.predict(frame)
            candle_s = time.perf_counter() - started
            started = time.perf_counter()
            chart = bundle.predict_chart(frame)
            chart_s = time.perf_counter() - started
            row = {
                "round": r + 1,
                "candles": candles,
                "rule_floor_s": round(floor, 3),
                "cli_s": round(wall, 2),
                "cli_candles_per_s": round(candles / wall),
                "cli_vs_rule_floor": round(wall / floor, 1),
                "cli_peak_rss_mb": round(peak),
                "startup_s": round(imports, 2),
                "after_startup_candles_per_s": round(candles / max(wall - imports, 1e-9)),
                "bundle_predict_s": round(candle_s, 2),
                "predict_chart_s": round(chart_s, 2),
                "labeled": int((labeled.is_not_null() & (labeled != "O")).sum()),
                "chart_spans": len(chart),
            }
            results.append(row)
            print(
                f"round {r + 1}: {candles:,} candles | TA-Lib rules {floor:.3f} s | candle-ml predict "
                f"{wall:.2f} s = {candles / wall:,.0f} candles/s = {wall / floor:.1f}x the rules, "
                f"peak RSS {peak:.0f} MB | of which starting Python and importing {imports:.2f} s; "
                f"after that {row['after_startup_candles_per_s']:,} candles/s | "
                f"in-process: Bundle.predict {candle_s:.2f} s, "
                f"predict_chart {chart_s:.2f} s | {row['labeled']:,} candles in patterns, "
                f"{len(chart):,} chart spans",
                flush=True,
            )
    print(f"(self: peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")
    if json_out:
        json_out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    typer.run(main)
