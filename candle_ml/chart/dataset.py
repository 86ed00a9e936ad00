"""The chart model's training table: proposals of every series, labelled by the spans marked there.

``chart_labels`` decides which labels the chart model learns (the chart rules' and any human label
whose spans are long); the dataset stage keeps those spans out of the candle model's rows and writes
this table and the reference spans that ``evaluate`` scores against.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from candle_ml.annotations import Annotation
from candle_ml.candles import series_key
from candle_ml.chart.model import FEATURES, proposal_labels, propose
from candle_ml.chart.patterns import ChartRules
from candle_ml.config import SplitParams
from candle_ml.dataset import SeriesFrame
from candle_ml.patterns import NO_PATTERN
from candle_ml.rows import split_bounds

MATCH_OVERLAP = 0.5  # a marked span teaches its best proposal when their IoU exceeds this


def span_candles(a: Annotation, times: dict[str, np.ndarray]) -> int:
    """Candles a span covers in its series (0 for an unknown series)."""
    t = times.get(series_key(a.span.pair.upper(), a.span.timeframe))
    if t is None:
        return 0
    return int(np.searchsorted(t, a.span.end_time, side="right") - np.searchsorted(t, a.span.start_time))


def chart_labels(
    rule_labels: list[str], human: list[Annotation], series: list[SeriesFrame], min_candles: int
) -> list[str]:
    """The labels the chart model learns: the chart rules' and every human label whose spans are
    long (median >= ``min_candles`` candles): a trader's own name for a multi-week shape."""
    times = {s.key: s.times for s in series}
    lengths: dict[str, list[int]] = {}
    for a in human:
        if a.span.label != NO_PATTERN and (n := span_candles(a, times)):
            lengths.setdefault(a.span.label, []).append(n)
    long = sorted(label for label, ns in lengths.items() if np.median(ns) >= min_candles)
    return list(dict.fromkeys([*rule_labels, *long]))


def for_chart_model(
    annotations: list[Annotation], charts: set[str], series: list[SeriesFrame], min_candles: int
) -> list[bool]:
    """Which annotations the chart model learns from instead of the candle model: its labels, and a
    trader's long ``O`` span (a dismissed chart pattern says "not a head-and-shoulders", not "no
    candlestick pattern in these 30 candles")."""
    times = {s.key: s.times for s in series}
    return [
        a.span.label in charts
        or (a.span.label == NO_PATTERN and a.span.is_human and span_candles(a, times) >= min_candles)
        for a in annotations
    ]


def split_parts(n: int, split: SplitParams) -> list[tuple[str, int, int]]:
    val_at, test_at = split_bounds(n, split)
    return [("train", 0, val_at), ("val", val_at, test_at), ("test", test_at, n)]


def part_of(bounds: list[tuple[str, int, int]], lo: int, hi: int) -> str | None:
    """The split that holds rows lo..hi, or None for a span across a split boundary."""
    return next((name for name, a, b in bounds if a <= lo and hi < b), None)


def build_chart_dataset(
    series: list[SeriesFrame], spans: list[Annotation], split: SplitParams, rules: ChartRules
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(one row per proposal: its split, label and features; every marked span of a real series
    with its split, the reference evaluate scores against). A human span (a dismissal too)
    outranks a rule span it overlaps; a proposal belongs to the split that holds all its candles
    (none if it straddles one)."""
    rows, refs = [], []
    for s in series:
        n = s.frame.height
        if n < rules.window:
            continue
        t = s.times
        mine = [a for a in spans if series_key(a.span.pair.upper(), a.span.timeframe) == s.key]
        placed = []
        for a in mine:
            lo, hi = int(np.searchsorted(t, a.span.start_time)), int(np.searchsorted(t, a.span.end_time))
            if hi < n and lo <= hi:
                placed.append((lo, hi, a.span.label, a.span.is_human))
        human = [p for p in placed if p[3]]
        placed = human + [
            p for p in placed if not p[3] and not any(h[0] <= p[1] and h[1] >= p[0] for h in human)
        ]
        # A trader's O (a dismissal) removes the rule span under it and teaches nothing positive.
        marked = [(lo, hi, label) for lo, hi, label, _ in placed if label != NO_PATTERN]
        proposals = propose(s.frame["close"].to_numpy(), rules)
        labels = proposal_labels(proposals, marked, MATCH_OVERLAP)
        bounds = split_parts(n, split)
        features = proposals.features.tolist()
        for start, end, label, values in zip(
            proposals.start.tolist(), proposals.end.tolist(), labels, features, strict=True
        ):
            where = part_of(bounds, start, end)
            if where is None or (s.augmented and where != "train"):
                continue
            rows.append((s.pair, s.timeframe, int(t[start]), int(t[end]), where, label, *values))
        if not s.augmented:
            refs += [
                (s.pair, s.timeframe, int(t[lo]), int(t[hi]), label, part_of(bounds, lo, hi))
                for lo, hi, label in marked
            ]
    frame = pl.DataFrame(
        rows,
        schema=["pair", "timeframe", "start_time", "end_time", "split", "label", *FEATURES],
        orient="row",
    )
    reference = pl.DataFrame(
        refs,
        schema={
            "pair": pl.String,
            "timeframe": pl.String,
            "start_time": pl.Int64,
            "end_time": pl.Int64,
            "label": pl.String,
            "split": pl.String,
        },
        orient="row",
    )
    return frame, reference
