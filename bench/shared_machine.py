"""Training on a machine another process is using: alone, and beside one busy core.

Fits the train stage's model (``candle_ml.training.train`` on ``data/dataset/``, params.yaml's
``train`` section, nothing written) in a fresh process under four OpenMP wait policies: OpenMP's
own (the baseline: what training did before candle-ml set one), candle-ml's (a 1,000-spin wait,
then sleep), plain passive and a 10,000-spin wait; each alone and while a second process keeps
one core busy with a Python loop. Prints each fit's seconds and the busy/alone ratio.

    dvc repro dataset && python bench/shared_machine.py      # ~6 min on 2 cores
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parent.parent

FIT = """
import json, os, sys, time
import candle_ml  # sets its wait policy unless the environment has one
# before any OpenMP runtime loads: the policy under test (none: libgomp's own default)
for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
    os.environ.pop(name)
os.environ.update(json.loads(sys.argv[1]))
import polars as pl
from candle_ml import paths
from candle_ml.config import TrainParams, load_section
from candle_ml.stage_outputs import read_model_schema
from candle_ml.training import train
frame, schema = pl.read_parquet(paths.DATASET), read_model_schema(paths.SCHEMA)
params = load_section("train", TrainParams, paths.PARAMS)
start = time.perf_counter()
train(frame, schema, params)
print(f"{time.perf_counter() - start:.2f}")
"""


POLICIES = {  # name -> the OpenMP settings the fit runs with
    "openmp-default": {},
    "candle-ml": {"GOMP_SPINCOUNT": "1000", "OMP_WAIT_POLICY": "PASSIVE"},  # what candle_ml sets
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "spin-10k": {"GOMP_SPINCOUNT": "10000"},
}


def fit_seconds(policy: str, busy: bool) -> float:
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        done = subprocess.run(
            [sys.executable, "-c", FIT, json.dumps(POLICIES[policy])],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
    finally:
        if spinner:
            spinner.kill()
            spinner.wait()
    if done.returncode:
        raise SystemExit(f"the fit failed ({policy}):\n{done.stderr}")
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    if not (ROOT / "data" / "dataset" / "dataset.parquet").exists():
        raise SystemExit("run `dvc repro dataset` first: the benchmark fits on data/dataset/")
    started = time.perf_counter()
    print("policy          alone s   beside a busy core s   busy/alone")
    for policy in POLICIES:
        alone = fit_seconds(policy, busy=False)
        busy = fit_seconds(policy, busy=True)
        print(f"{policy:<15} {alone:7.1f}   {busy:20.1f}   {busy / alone:10.2f}x", flush=True)
    print(f"({time.perf_counter() - started:.0f} s in all; candle-ml is what candle_ml sets)")


if __name__ == "__main__":
    typer.run(main)
