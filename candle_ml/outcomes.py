"""Do patterns matter? Forward returns after each pattern against matched random entries.

For one label and horizon h, each occurrence is a trade: entry at the open of the candle after
the one the pattern is known on, exit at the close h candles later (h=1: that candle's close),
in the label's direction (bullish patterns and bottoms long, bearish patterns and tops short,
any other label, doji included, long), net of a round-trip cost. A candlestick pattern is known
on its last candle; a chart pattern on the candle whose window confirmed it, at least
``confirm`` candles after its last turn and often more, so no trade uses a candle its signal
had not seen (entering at the turn itself shows every top falling: look-ahead, not an edge).

The question is not whether that trade makes money (a rising market makes every long look
good) but whether it beats the same trade entered at random: each occurrence is compared with
``random_entries`` entries drawn on the same series within ``match_window`` candles of it,
same direction, horizon and cost. Its excess return is its return minus theirs.

The mean excess return gets a cluster-robust test and a bootstrap confidence interval that
resample clusters, not occurrences: occurrences whose entries fall in the same h-candle block
of time (across series too) move together, so one market move seen in five stocks, or twenty
overlapping 20-candle windows, do not pass as independent evidence. The p-values of the whole
label x horizon grid are corrected for multiple testing (Benjamini-Hochberg or Holm). A cell
gets a verdict:

- ``edge``: the corrected p-value is below ``alpha``;
- ``no detectable edge``: it is not; ``mde`` says the smallest mean excess return the test would
  have detected with ``power`` (an honest "no" needs it: with 40 occurrences it is large);
- ``insufficient data``: fewer than ``min_occurrences`` occurrences or ``min_clusters`` clusters.

The same grid is computed on the first and second half of the history and on the test split
alone, so a verdict that flips, or that only holds in sample, is visible next to it.
Method after Marshall, Young & Rose (2006), who test candlesticks against bootstrapped nulls.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from candle_ml.config import OutcomesParams
from candle_ml.label_style import direction as label_direction

VERDICTS = ("edge", "no detectable edge", "insufficient data")
SCOPES = ("full", "first_half", "second_half", "test")


def direction(label: str) -> int:
    """+1 long, -1 short: the trade a trader takes on this label (long unless it is bearish)."""
    return -1 if label_direction(label) == "bearish" else 1


@dataclass(frozen=True)
class OutcomeSeries:
    """One series' candles as arrays (times in seconds, ascending)."""

    pair: str
    timeframe: str
    time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray

    @classmethod
    def from_frame(cls, pair: str, timeframe: str, candles: pl.DataFrame) -> OutcomeSeries:
        cols = {k: candles[k].to_numpy().astype(np.float64) for k in ("open", "high", "low", "close")}
        return cls(pair, timeframe, candles["time"].to_numpy().astype(np.int64), **cols)

    @property
    def key(self) -> tuple[str, str]:
        return self.pair, self.timeframe

    @property
    def spacing(self) -> float:
        """Seconds per candle on average (weekends and holidays included), for h-candle blocks."""
        return float(self.time[-1] - self.time[0]) / max(len(self.time) - 1, 1)


@dataclass(frozen=True)
class SpanEnd:
    """Where a span ends: the series, its last candle's time, the label, and how many candles
    after that last candle the pattern is known (a chart pattern waits for its confirmation)."""

    pair: str
    timeframe: str
    end_time: int
    label: str
    known_after: int = 0


@dataclass
class _Trades:
    """One label at one horizon: a row per occurrence that has h candles after it."""

    excess: np.ndarray
    ret: np.ndarray
    random_mean: np.ndarray
    random_up: np.ndarray  # share of its random entries with a positive net return
    unconditional: np.ndarray  # mean net return of every entry of its series
    mfe: np.ndarray
    mae: np.ndarray
    entry_time: np.ndarray
    series: np.ndarray  # index into the series list
    cluster: np.ndarray
    draws: np.ndarray  # every random entry's net return, for the distribution plot


def occurrences(series: list[OutcomeSeries], ends: Iterable[SpanEnd]) -> dict[str, list[tuple[int, int]]]:
    """label -> [(series index, index of the candle the pattern is known on)]; spans on candles
    the series does not have are dropped."""
    where = {s.key: i for i, s in enumerate(series)}
    found: dict[str, list[tuple[int, int]]] = {}
    for end in ends:
        i = where.get((end.pair, end.timeframe))
        if i is None:
            continue
        at = int(np.searchsorted(series[i].time, end.end_time))
        if at < len(series[i].time) and series[i].time[at] == end.end_time:
            found.setdefault(end.label, []).append((i, at + end.known_after))
    return found


def _trades(
    series: list[OutcomeSeries], events: list[tuple[int, int]], label: str, h: int, params: OutcomesParams
) -> _Trades:
    sign = direction(label)
    rng = np.random.default_rng([params.seed, h, zlib.crc32(label.encode())])
    parts: dict[str, list[np.ndarray]] = {f: [] for f in _Trades.__dataclass_fields__}
    by_series: dict[int, list[int]] = {}
    for s, end in events:
        by_series.setdefault(s, []).append(end)
    for s, ends in sorted(by_series.items()):
        ser = series[s]
        n = len(ser.time)
        if n < h + 1:
            continue
        # Every entry with h candles to hold: index j, return from open[j] to close[j + h - 1].
        net = sign * (ser.close[h - 1 :] / ser.open[: n - h + 1] - 1.0) - params.cost
        entry = np.asarray(ends, dtype=np.int64) + 1
        entry = entry[entry <= n - h]
        if not entry.size:
            continue
        lo = np.maximum(entry - params.match_window, 0)
        hi = np.minimum(entry + params.match_window, n - h)
        draws = lo[:, None] + (
            rng.random((entry.size, params.random_entries)) * (hi - lo + 1)[:, None]
        ).astype(np.int64)
        rand = net[draws]
        hold = entry[:, None] + np.arange(h)
        top, bottom = ser.high[hold].max(axis=1), ser.low[hold].min(axis=1)
        start = ser.open[entry]
        best, worst = (top, bottom) if sign > 0 else (bottom, top)
        block = params_block(ser, h)
        parts["ret"].append(net[entry])
        parts["random_mean"].append(rand.mean(axis=1))
        parts["excess"].append(net[entry] - rand.mean(axis=1))
        parts["random_up"].append((rand > 0).mean(axis=1))
        parts["unconditional"].append(np.full(entry.size, net.mean()))
        parts["mfe"].append(sign * (best / start - 1.0))
        parts["mae"].append(sign * (worst / start - 1.0))
        parts["entry_time"].append(ser.time[entry])
        parts["series"].append(np.full(entry.size, s))
        parts["cluster"].append(ser.time[entry] // block)
        parts["draws"].append(rand.ravel())
    return _Trades(
        **{
            k: np.concatenate(v)
            if v
            else np.empty(0, dtype=np.int64 if k in ("series", "cluster") else float)
            for k, v in parts.items()
        }
    )


def params_block(ser: OutcomeSeries, h: int) -> int:
    """Seconds in a block of h candles: the clusters of the test and the bootstrap."""
    return max(int(round(h * ser.spacing)), 1)


def bootstrap_counts(rng: np.random.Generator, g: int, draws: int) -> np.ndarray:
    """How often each of ``g`` clusters is taken in each of ``draws`` bootstrap samples of g with
    replacement (multinomial counts, ``draws x g``), from one bincount over all the picks: 6-10x
    faster than ``rng.multinomial`` per draw (bench/bootstrap.py)."""
    picks = rng.integers(0, g, size=(draws, g)) + g * np.arange(draws)[:, None]
    return np.bincount(picks.ravel(), minlength=draws * g).reshape(draws, g)


def cluster_test(
    x: np.ndarray, clusters: np.ndarray, params: OutcomesParams, rng: np.random.Generator
) -> dict:
    """Mean of x with a cluster-robust t-test, a cluster bootstrap interval and the MDE."""
    from scipy import stats  # here, not at the top: the server reads LabelOutcome without SciPy

    _, inv = np.unique(clusters, return_inverse=True)
    g = int(inv.max()) + 1 if inv.size else 0
    n, mean = x.size, float(x.mean()) if x.size else float("nan")
    if g < 2:
        return {
            "mean": mean,
            "clusters": g,
            "se": float("nan"),
            "p": float("nan"),
            "ci": [None, None],
            "mde": None,
        }
    sums, counts = np.bincount(inv, weights=x, minlength=g), np.bincount(inv, minlength=g).astype(float)
    resid = sums - counts * mean
    se = float(np.sqrt(g / (g - 1) * np.sum(resid**2)) / n)
    # t with (clusters - 1) degrees of freedom: honest when there are few clusters
    p = float(2 * stats.t.sf(abs(mean) / se, df=g - 1)) if se > 0 else float(mean == 0)
    weights = bootstrap_counts(rng, g, params.bootstrap).astype(float)
    boot = (weights @ sums) / np.maximum(weights @ counts, 1)
    lo, hi = np.percentile(boot, [50 * params.alpha, 100 - 50 * params.alpha])
    z = stats.norm.ppf(1 - params.alpha / 2) + stats.norm.ppf(params.power)
    return {"mean": mean, "clusters": g, "se": se, "p": p, "ci": [float(lo), float(hi)], "mde": float(z * se)}


def adjust(p: np.ndarray, method: str) -> np.ndarray:
    """Multiple-testing corrected p-values (NaN stays NaN)."""
    from scipy import stats

    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if not ok.any():
        return out
    if method == "bh":
        out[ok] = stats.false_discovery_control(p[ok], method="bh")
    else:  # holm
        q = p[ok]
        order = np.argsort(q)
        m = q.size
        stepped = np.maximum.accumulate((m - np.arange(m)) * q[order])
        adjusted = np.empty(m)
        adjusted[order] = np.minimum(stepped, 1.0)
        out[ok] = adjusted
    return out


def _cell(
    label: str, h: int, t: _Trades, mask: np.ndarray, params: OutcomesParams, rng: np.random.Generator
) -> dict[str, Any]:
    x = t.excess[mask]
    test = cluster_test(x, t.cluster[mask], params, rng)
    cell: dict[str, Any] = {
        "label": label,
        "h": h,
        "direction": "long" if direction(label) > 0 else "short",
        "n": int(x.size),
        "dates": int(np.unique(t.entry_time[mask] // 86_400).size),
        "series": int(np.unique(t.series[mask]).size),
        "clusters": test["clusters"],
    }
    if not x.size:
        return {**cell, "verdict": "insufficient data", "p": None, "p_adjusted": None}
    ret = t.ret[mask]
    cell |= {
        "hit_rate": float((ret > 0).mean()),
        "base_up_rate": float(t.random_up[mask].mean()),
        "mean_return": float(ret.mean()),
        "median_return": float(np.median(ret)),
        "unconditional_mean": float(t.unconditional[mask].mean()),
        "vs_unconditional": float(ret.mean() - t.unconditional[mask].mean()),
        "random_mean": float(t.random_mean[mask].mean()),
        "excess_return": test["mean"],
        "ci": test["ci"],
        "p": test["p"],
        "mde": test["mde"],
        "mfe": float(t.mfe[mask].mean()),
        "mae": float(t.mae[mask].mean()),
    }
    enough = cell["n"] >= params.min_occurrences and cell["clusters"] >= params.min_clusters
    cell["verdict"] = "pending" if enough and not np.isnan(test["p"]) else "insufficient data"
    return cell


def _decide(cells: list[dict[str, Any]], params: OutcomesParams) -> None:
    """Correct the grid's p-values together and give each testable cell its verdict."""
    testable = [c for c in cells if c["verdict"] == "pending"]
    adjusted = adjust(np.array([c["p"] for c in testable], dtype=float), params.correction)
    for c, q in zip(testable, adjusted, strict=True):
        c["p_adjusted"] = float(q)
        c["verdict"] = "edge" if q < params.alpha else "no detectable edge"
    for c in cells:
        c.setdefault("p_adjusted", None)


def outcome_grid(
    series: list[OutcomeSeries],
    ends: Iterable[SpanEnd],
    params: OutcomesParams,
    test_from: dict[tuple[str, str], int] | None = None,
) -> dict[str, Any]:
    """The label x horizon grid for one source of spans: every cell over the full history, with
    the same cell on each half of it and (given each series' first test time) the test split."""
    found = occurrences(series, ends)
    first = min(int(s.time[0]) for s in series)
    last = max(int(s.time[-1]) for s in series)
    middle = (first + last) // 2
    test_start = np.array([(test_from or {}).get(s.key, np.iinfo(np.int64).max) for s in series])
    grids: dict[str, list[dict[str, Any]]] = {scope: [] for scope in SCOPES}
    samples: dict[str, dict[str, np.ndarray]] = {}
    for label in sorted(found):
        for h in params.horizons:
            t = _trades(series, found[label], label, h, params)
            rng = np.random.default_rng([params.seed, h, zlib.crc32(label.encode()), 1])
            masks = {
                "full": np.ones(t.excess.size, dtype=bool),
                "first_half": t.entry_time < middle,
                "second_half": t.entry_time >= middle,
                "test": t.entry_time >= test_start[t.series] if t.series.size else np.zeros(0, dtype=bool),
            }
            for scope, mask in masks.items():
                if scope == "test" and test_from is None:
                    continue
                grids[scope].append(_cell(label, h, t, mask, params, rng))
            if h == params.summary_horizon:
                samples[label] = {"pattern": t.ret, "random": t.draws}
    for cells in grids.values():
        _decide(cells, params)
    table = grids["full"]
    for scope in SCOPES[1:]:
        by_key = {(c["label"], c["h"]): c for c in grids[scope]}
        for c in table:
            other = by_key.get((c["label"], c["h"]))
            if other is not None:
                c[scope] = {k: other.get(k) for k in ("n", "excess_return", "ci", "p_adjusted", "verdict")}
    return {
        "halves_split_at": middle,
        "cells": [_rounded(c) for c in table],
        "flips": [
            {
                "label": c["label"],
                "h": c["h"],
                "first_half": c["first_half"]["verdict"],
                "second_half": c["second_half"]["verdict"],
            }
            for c in table
            if "first_half" in c
            and "second_half" in c
            and {c["first_half"]["verdict"], c["second_half"]["verdict"]} == {"edge", "no detectable edge"}
        ],
        "_samples": samples,
    }


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return None if np.isnan(value) else round(value, 6)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


# --- The two sources of spans: the rules (TA-Lib and the chart rules) and a model's predictions
