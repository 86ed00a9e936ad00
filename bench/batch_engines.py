"""Benchmark `candle-ml batch` on its two engines against `candle-ml predict`, same candles, one run.

The candles: ``--series`` random walks of hourly candles (bench/batch.py's generator), written as
``data/candles``-style Parquet files in a temporary folder. Measured, each as a user types it
(a fresh process, wall time):

- baseline: `candle-ml predict FILE -o OUT.parquet` once per series (the model's labels);
- `candle-ml batch DIR --engine local` (labels and the rules' spans, hive Parquet);
- `candle-ml batch DIR --engine spark --master local[N]` (the same, one Spark task per block).

Then parity: every candle's label from both batch engines against `candle-ml predict`'s.

    python bench/batch_engines.py                                  # 4 series x 250,000 candles
    python bench/batch_engines.py --series 2 --candles 100000 --block-size 50000
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import typer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from batch import random_walk  # noqa: E402


def timed(args: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "candle-ml"), *args], cwd=ROOT, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"candle-ml {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def main(
    series: int = typer.Option(4, help="random-walk series"),
    candles: int = typer.Option(250_000, help="hourly candles per series"),
    block_size: int = typer.Option(100_000, help="candles per block (batch)"),
    master: str = typer.Option("local[2]", help="Spark master"),
    model: Path = typer.Option(ROOT / "models", help="bundle directory"),
    json_out: Path = typer.Option(None, help="also write the results as JSON"),
) -> None:
    with tempfile.TemporaryDirectory(prefix="candle-ml-batch-") as tmp:
        root = Path(tmp)
        (root / "in").mkdir()
        for i in range(series):
            random_walk(candles, seed=100 + i).write_parquet(root / "in" / f"WALK{i}_1h.parquet")
        total = series * candles
        results: dict[str, float] = {}
        results["predict"] = sum(
            timed(["predict", str(f), "-o", str(root / f"{f.stem}.out.parquet"), "--model", str(model)])
            for f in sorted((root / "in").glob("*.parquet"))
        )
        for engine in ("local", "spark"):
            args = ["batch", str(root / "in"), "-o", str(root / engine), "--model", str(model)]
            args += ["--engine", engine, "--block-size", str(block_size), "--master", master]
            results[engine] = timed(args)

        expected = pl.concat(
            pl.read_parquet(f)
            .select("time", "label")
            .with_columns(pl.lit(f.name.split("_")[0]).alias("pair"))
            for f in sorted(root.glob("*.out.parquet"))
        ).sort("pair", "time")
        parity = {}
        for engine in ("local", "spark"):
            got = (
                pl.read_parquet(root / engine / "predictions" / "**" / "*.parquet", hive_partitioning=True)
                .select("time", "label", "pair")
                .sort("pair", "time")
            )
            same = got.join(expected, on=["pair", "time"], how="inner", suffix="_predict")
            agree = same.filter(pl.col("label").eq_missing(pl.col("label_predict"))).height
            parity[engine] = {"candles": got.height, "same_label": agree}

    print(f"{series} series x {candles:,} hourly candles = {total:,}; block {block_size:,}; Spark {master}\n")
    print(f"{'':34}{'seconds':>10}{'candles/s':>14}{'vs predict':>12}")
    names = {
        "predict": "candle-ml predict (per series)",
        "local": "candle-ml batch --engine local",
        "spark": "candle-ml batch --engine spark",
    }
    for key, label in names.items():
        ratio = results["predict"] / results[key]
        print(f"{label:34}{results[key]:>10.1f}{total / results[key]:>14,.0f}{ratio:>11.2f}x")
    for engine, p in parity.items():
        print(
            f"parity {engine}: {p['same_label']:,} of {p['candles']:,} candles labelled as candle-ml predict"
        )
    if json_out:
        json_out.write_text(json.dumps({"seconds": results, "parity": parity, "candles": total}, indent=1))


if __name__ == "__main__":
    typer.run(main)
