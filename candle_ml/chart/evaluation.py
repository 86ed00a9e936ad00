"""Scores of the chart-pattern model: its spans on the test split against the marked chart spans.

Every real series is predicted whole, as serving predicts it (``ChartModel.predict`` on the closes
of its raw candles, what ``Bundle.predict_chart`` runs). A predicted span counts where it starts
in the test split, and matches a marked span of its label when their IoU in candles exceeds
``evaluate.min_overlap`` (one to one, as for candles).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from candle_ml.chart.model import ChartModel
from candle_ml.spans import LabelSpan, add_span_counts, match_spans, span_table
from candle_ml.stage_outputs import read_candles_index


def chart_counts(
    model: ChartModel,
    candles: pl.DataFrame,
    marked: list[tuple[int, int, str]],
    first: int,
    min_overlap: float,
    totals: dict[str, Counter],
) -> None:
    """Add one series' matches to ``totals``: predicted spans starting at row ``first`` or later
    against the marked spans (rows) there."""
    predicted = model.predict(candles["close"].to_numpy())
    pred = [LabelSpan(c.start, c.end, c.label) for c in predicted if c.start >= first]
    ref = sorted(LabelSpan(a, b, label) for a, b, label in marked if a >= first)
    add_span_counts(totals, match_spans(pred, ref, min_overlap))


def summarize(totals: dict[str, Counter], min_overlap: float) -> dict[str, Any]:
    """Per-label precision/recall/F1, their macro mean over the labels marked, the worst label."""
    per_label = span_table(totals, with_predicted=True)
    f1 = {k: v["f1"] for k, v in per_label.items() if v["support"]}
    worst = min(f1, key=lambda k: (f1[k], k)) if f1 else None
    return {
        "span_f1_macro": round(float(np.mean(list(f1.values()))), 4) if f1 else 0.0,
        "worst_span_f1": f1[worst] if worst else 0.0,
        "worst_span_label": worst,
        "spans_marked": sum(v["support"] for v in per_label.values()),
        "per_class_span": per_label,
        "min_overlap": min_overlap,
    }


def score_chart(
    model: ChartModel,
    candles_dir: Path,
    marked: pl.DataFrame,
    test_from: dict[tuple[str, str], int],
    min_overlap: float,
) -> dict[str, Any]:
    """The chart model on the test split of every real series. ``test_from``: each series' first
    test candle time; ``marked``: the dataset's chart reference spans."""
    totals: dict[str, Counter] = {}
    for e in read_candles_index(candles_dir).series:
        key = (e.pair, e.timeframe)
        if key not in test_from:
            continue
        candles = pl.read_parquet(candles_dir / e.file)
        t = candles["time"].to_numpy()
        mine = marked.filter((pl.col("pair") == key[0]) & (pl.col("timeframe") == key[1]))
        rows = [
            (int(np.searchsorted(t, a)), int(np.searchsorted(t, b)), str(label))
            for a, b, label in mine.select("start_time", "end_time", "label").iter_rows()
        ]
        chart_counts(model, candles, rows, int(np.searchsorted(t, test_from[key])), min_overlap, totals)
    return summarize(totals, min_overlap)


def first_test_times(reference: pl.DataFrame) -> dict[tuple[str, str], int]:
    """Each real series' first test candle (from the candle reference of the dataset stage)."""
    first = (
        reference.filter(pl.col("split") == "test").group_by("pair", "timeframe").agg(pl.col("time").min())
    )
    return {(p, tf): int(t) for p, tf, t in first.iter_rows()}
