"""The outcomes stage's cluster bootstrap: how often each cluster is drawn, two ways.

Baseline: ``rng.multinomial(g, [1/g] * g, size=B)`` (what ``cluster_test`` did before); candle-ml:
``candle_ml.outcomes.bootstrap_counts`` (``B x g`` uniform draws counted by one ``np.bincount``).
The same distribution (g draws with replacement, counted), other draws. Times each on the cluster
counts of the bundled series' grid cells (30 to 1,000 clusters) at params.yaml's
``outcomes.bootstrap``, then ``cluster_test`` on a cell, and prints the baseline/candle-ml ratio.

    python bench/bootstrap.py      # ~10 s
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import typer

from candle_ml.config import OutcomesParams, load_section
from candle_ml.outcomes import bootstrap_counts, cluster_test

ROOT = Path(__file__).resolve().parent.parent


def multinomial(rng: np.random.Generator, g: int, b: int) -> np.ndarray:
    return rng.multinomial(g, np.full(g, 1.0 / g), size=b)


def best_of(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main(clusters: str = "30,100,300,1000", calls: int = 20) -> None:
    params = load_section("outcomes", OutcomesParams, ROOT / "params.yaml")
    b = params.bootstrap
    print(f"bootstrap = {b} draws; best of 5 runs of {calls} calls, ms per call")
    print(f"{'clusters':>9} {'multinomial':>12} {'bincount':>9} {'ratio':>6}")
    for g in map(int, clusters.split(",")):
        rng = np.random.default_rng(0)
        base = best_of(lambda g=g, rng=rng: [multinomial(rng, g, b) for _ in range(calls)]) / calls
        ours = best_of(lambda g=g, rng=rng: [bootstrap_counts(rng, g, b) for _ in range(calls)]) / calls
        print(f"{g:>9} {base * 1e3:>12.2f} {ours * 1e3:>9.2f} {base / ours:>6.1f}")
    rng = np.random.default_rng(1)
    x, cl = rng.normal(size=2000), rng.integers(0, 300, size=2000)
    per = best_of(lambda: [cluster_test(x, cl, params, rng) for _ in range(calls)]) / calls
    print(f"cluster_test, 2,000 trades in 300 clusters: {per * 1e3:.2f} ms per cell")


if __name__ == "__main__":
    typer.run(main)
