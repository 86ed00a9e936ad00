"""Autolabel: TA-Lib CDL* detections (and chart-pattern rules) -> programmatic span annotations.

Every non-zero output (+-80, +-100, +-200) is a signal on the pattern's last
candle; the span reaches back over the candles the pattern covers (the table in
candle_ml/patterns.py). Candles before the patterns' lookback are unknown, not
``O``: the output records from which candle each series is labeled.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from candle_ml.annotations import Span
from candle_ml.chart.patterns import ChartRules, find_chart_patterns
from candle_ml.errors import ConfigError
from candle_ml.patterns import HIKKAKE_CONFIRM_WINDOW, label_for, labels_for, pattern_info
from candle_ml.talib_api import import_talib, talib_abstract


def check_patterns(patterns: list[str]) -> list[str]:
    talib = import_talib()
    names = [p.upper() for p in patterns]
    for name in names:
        pattern_info(name)  # unknown names fail with close matches
        if not hasattr(talib, name):
            raise ConfigError(f"autolabel.patterns: TA-Lib {talib.__version__} has no function {name}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"autolabel.patterns: listed twice: {', '.join(dup)}")
    return names


def lookback(patterns: list[str]) -> int:
    """Candles at the start of a series on which no listed pattern can be computed."""
    abstract = talib_abstract()
    return max((int(abstract.Function(p).lookback) for p in patterns), default=0)


def span_starts(function_name: str, signals: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Index of each span's first candle, for the signals at ``idx`` (vectorized)."""
    length = pattern_info(function_name).length
    starts = idx - (length - 1)
    if function_name in ("CDLHIKKAKE", "CDLHIKKAKEMOD"):
        # A +-200 confirms the +-100 pattern of the same sign up to 3 candles earlier:
        # its span runs from that pattern's first candle to the confirmation.
        confirm = np.abs(signals[idx]) == 200
        for sign in (1, -1):
            base = idx[(signals[idx] == 100 * sign)]
            sel = confirm & (np.sign(signals[idx]) == sign)
            if base.size and sel.any():
                pos = np.searchsorted(base, idx[sel], side="left") - 1
                found = pos >= 0
                origin = np.where(found, base[np.clip(pos, 0, None)], -1)
                near = found & (idx[sel] - origin <= HIKKAKE_CONFIRM_WINDOW)
                starts[np.flatnonzero(sel)[near]] = origin[near] - (length - 1)
    return np.clip(starts, 0, None)


def autolabel(candles: pl.DataFrame, patterns: list[str], pair: str, timeframe: str) -> list[Span]:
    """Pure per-series core: one programmatic span per non-zero CDL* output."""
    talib = import_talib()
    o, h, low, c = (
        candles[k].to_numpy().astype(np.float64, copy=False) for k in ("open", "high", "low", "close")
    )
    times = candles["time"].to_numpy()
    spans: list[Span] = []
    for name in patterns:
        signals = getattr(talib, name)(o, h, low, c)
        idx = np.flatnonzero(signals)
        if idx.size == 0:
            continue
        starts = span_starts(name, signals, idx)
        conf = np.minimum(np.abs(signals[idx]) / 100.0, 1.0)
        spans.extend(
            Span(
                id=f"ta-{pair}-{timeframe}-{name}-{int(times[e])}",
                pair=pair,
                timeframe=timeframe,
                start_time=int(times[s]),
                end_time=int(times[e]),
                label=label_for(name, int(signals[e])),
                confidence=float(cf),
                source="programmatic",
            )
            for s, e, cf in zip(starts, idx, conf, strict=True)
        )
    spans.sort(key=lambda sp: (sp.end_time, sp.start_time, sp.label))
    return spans


def chart_spans(
    candles: pl.DataFrame, labels: list[str], rules: ChartRules, pair: str, timeframe: str
) -> list[Span]:
    """One programmatic span per chart pattern the rules find in the closes (candle_ml/chart/patterns.py)."""
    times = candles["time"].to_numpy()
    return [
        Span(
            id=f"chart-{pair}-{timeframe}-{c.label}-{int(times[c.end])}",
            pair=pair,
            timeframe=timeframe,
            start_time=int(times[c.start]),
            end_time=int(times[c.end]),
            label=c.label,
            source="programmatic",
        )
        for c in find_chart_patterns(candles["close"].to_numpy(), labels, rules)
    ]


def label_priority(patterns: list[str]) -> list[str]:
    """Every label the patterns produce; earlier patterns win where spans overlap."""
    return [label for p in patterns for label in labels_for(p)]


def spans_per_label(spans: list[Span], priority: list[str]) -> dict[str, int]:
    counts = dict.fromkeys(priority, 0)
    for sp in spans:
        counts[sp.label] += 1
    return counts
