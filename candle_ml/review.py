"""Comparing the model with what traders marked: disagreements and the review queue.

Two spans **correspond** when the candles they cover overlap by more than half of the
candles either covers, i.e. intersection over union of their candle ranges > ``min_overlap``
(0.5; the same rule ``evaluate`` uses for span F1). A 1-candle span therefore corresponds
only to the same candle, a 2-candle span to a span sharing both candles or to a 3-candle span
sharing two, and so on. Candles are counted on the series' stored candle times, or on a
regular grid of the timeframe (``1d``, ``4h``, ``15m``) when the series is not stored.

Pairs are matched one to one, best overlap first. A matched pair with the same label is an
agreement; with different labels a ``label_mismatch`` (a trader's dismissal, label ``O``,
that still has a prediction on it is one). An unmatched human span is ``missed_by_model``
(unless it is a dismissal: then the model agrees nothing is there); an unmatched predicted
span is ``missed_by_human``. Everything here is pure: the external annotation tool's backend
can import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol

import msgspec
import numpy as np

from candle_ml.errors import TimeframeError
from candle_ml.patterns import NO_PATTERN
from candle_ml.spans import match_ranges, span_bounds, span_means
from candle_ml.timeframes import parse_timeframe

Kind = Literal["missed_by_model", "missed_by_human", "label_mismatch"]
KINDS: tuple[Kind, ...] = ("missed_by_model", "missed_by_human", "label_mismatch")


class TimedSpan(Protocol):
    @property
    def start_time(self) -> int: ...

    @property
    def end_time(self) -> int: ...

    @property
    def label(self) -> str: ...


class Summary(msgspec.Struct):
    predicted: int
    human: int
    agreements: int
    disagreements: int
    by_kind: dict[str, int]


def timeframe_seconds(timeframe: str) -> int:
    """``1d`` -> 86400, ``4h`` -> 14400, ``15m`` -> 900; an unknown form is a 422."""
    seconds = parse_timeframe(timeframe)
    if seconds is None:
        raise TimeframeError(
            f"timeframe '{timeframe}': not stored, and not of the form <n>s|m|h|d|w (e.g. 1d, 4h, 15m), "
            "so its candles cannot be counted",
            field="timeframe",
            rule="stored series or <n>s|m|h|d|w",
        )
    return seconds


def candle_ranges(
    spans: Sequence[TimedSpan], times: np.ndarray | None, step: int
) -> tuple[np.ndarray, np.ndarray]:
    """The candle indices each span covers, (first, last) arrays: on stored candle times (sorted),
    else on a grid of ``step`` seconds."""
    start = np.array([s.start_time for s in spans], dtype=np.int64)
    end = np.array([s.end_time for s in spans], dtype=np.int64)
    if times is not None:
        return np.searchsorted(times, start, "left"), np.searchsorted(times, end, "right") - 1
    return start // step, end // step


def disagreements(
    human: Sequence[TimedSpan],
    predicted: Sequence[TimedSpan],
    times: np.ndarray | None = None,
    step: int = 86400,
    min_overlap: float = 0.5,
) -> tuple[list[tuple[Kind, TimedSpan | None, TimedSpan | None]], Summary]:
    """Disagreements between the human and the predicted spans of one series, ordered by time.

    ``times``: the series' candle times (sorted); without them candles are counted on a grid
    of ``step`` seconds. Predicted spans labeled ``O`` are ignored (they say nothing is there).
    """
    predicted = [p for p in predicted if p.label != NO_PATTERN]
    h_first, h_last = candle_ranges(human, times, step)
    pairs = match_ranges(h_first, h_last, *candle_ranges(predicted, times, step), min_overlap)
    found: list[tuple[Kind, TimedSpan | None, TimedSpan | None]] = []
    agreements = 0
    for i, j in pairs:
        if human[i].label == predicted[j].label:
            agreements += 1
        else:
            found.append(("label_mismatch", human[i], predicted[j]))
    matched_h = {i for i, _ in pairs}
    matched_p = {j for _, j in pairs}
    for i, h in enumerate(human):
        if i not in matched_h:
            if h.label == NO_PATTERN:
                agreements += 1  # dismissed, and the model predicts nothing there
            else:
                found.append(("missed_by_model", h, None))
    found += [("missed_by_human", None, p) for j, p in enumerate(predicted) if j not in matched_p]
    found.sort(key=lambda d: min(s.start_time for s in (d[1], d[2]) if s is not None))
    by_kind: dict[str, int] = {k: sum(1 for d in found if d[0] == k) for k in KINDS}
    return found, Summary(len(predicted), len(human), agreements, len(found), by_kind)


def unanswered(
    predicted: Sequence[TimedSpan],
    human: Sequence[TimedSpan],
    times: np.ndarray | None = None,
    step: int = 86400,
    min_overlap: float = 0.5,
) -> list[int]:
    """Indices of predicted spans that no human span corresponds to (nobody answered them)."""
    # Any corresponding human span answers a prediction, whatever its label.
    h_first, h_last = candle_ranges(human, times, step)
    pairs = match_ranges(h_first, h_last, *candle_ranges(predicted, times, step), min_overlap)
    answered = {j for _, j in pairs}
    return [j for j in range(len(predicted)) if j not in answered]


class QueueItem(msgspec.Struct):
    pair: str
    timeframe: str
    start_time: int
    end_time: int
    label: str
    avg_confidence: float
    candles: int
    score: float  # mean margin between the two most likely labels over the span: low = unsure


class ScoredSeries(Protocol):
    """A whole series predicted with its margins (``candle_ml.stored_series.SeriesPrediction``)."""

    @property
    def times(self) -> np.ndarray: ...
    @property
    def labels(self) -> np.ndarray: ...  # object: label, or None without enough history
    @property
    def confidence(self) -> np.ndarray: ...
    @property
    def margin(self) -> np.ndarray: ...
    @property
    def chart(self) -> list[Any]: ...  # spans with start_time, end_time, label, avg_confidence, candles
    @property
    def chart_margin(self) -> list[float]: ...


def review_queue(
    pair: str, timeframe: str, full: ScoredSeries, human: Sequence[TimedSpan]
) -> list[QueueItem]:
    """Every unanswered predicted span of one series with its score: the mean margin over its
    candles, or the chart model's margin for a chart pattern (``GET /review/queue`` ranks them)."""
    starts, ends = span_bounds(full.labels)
    confidence, margin = span_means(full.confidence, starts, ends), span_means(full.margin, starts, ends)
    items = [
        QueueItem(
            pair,
            timeframe,
            int(full.times[a]),
            int(full.times[b]),
            full.labels[a],
            float(c),
            b - a + 1,
            round(float(m), 6),
        )
        for a, b, c, m in zip(starts.tolist(), ends.tolist(), confidence, margin, strict=True)
    ]
    items += [
        QueueItem(
            pair, timeframe, c.start_time, c.end_time, c.label, c.avg_confidence, c.candles, round(m, 6)
        )
        for c, m in zip(full.chart, full.chart_margin, strict=True)
    ]
    return [items[j] for j in unanswered(items, human, full.times)]


def margins(proba: np.ndarray) -> np.ndarray:
    """Per candle, the probability of the most likely label minus the second's (NaN without a prediction).

    Small margins are where the model is least sure, the answers that teach it most.
    """
    if proba.shape[1] < 2:
        return np.where(np.isnan(proba[:, 0]), np.nan, 1.0)
    top2 = -np.sort(-np.nan_to_num(proba, nan=-1.0), axis=1)[:, :2]
    out = top2[:, 0] - top2[:, 1]
    out[np.isnan(proba).any(axis=1)] = np.nan
    return out
