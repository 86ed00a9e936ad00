"""Prediction as the API defines it, independent of HTTP: candles in, predictions and spans out.

The heavy lifting is ``Bundle.predict``: the pipeline's own ``featurize`` and window
functions on the raw candles. This module adds what the chart needs around it:
``min_confidence``, span grouping, and chunked prediction with the model's history carried
into each chunk. The server and ``candle-ml predict`` share it; the server's stored series are
candle_ml/stored_series.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import msgspec
import numpy as np
import polars as pl

from candle_ml.candles import CANDLE_SCHEMA
from candle_ml.confirmation import Confirmer
from candle_ml.errors import require_history
from candle_ml.loading import LoadedModel, ModelSummary
from candle_ml.patterns import NO_PATTERN
from candle_ml.spans import span_bounds, span_means

DEFAULT_BATCH_SIZE = 5_000  # candles per chunk: ~50 ms of work, with min_history (15-300) carried in
OFFLINE_BATCH_SIZE = 100_000  # without a deadline: fewer chunks, less history recomputed (~60 MB each)

# Called between chunks; raises to stop work that ran past its time (the server's deadline).
Checkpoint = Callable[[], None]


def no_deadline() -> None:
    """The checkpoint of callers without a time limit (the CLI, tests)."""


class CandlePrediction(msgspec.Struct):
    time: int
    label: str | None  # null where the candle lacks the history the model needs
    confidence: float | None


class SpanPrediction(msgspec.Struct):
    start_time: int
    end_time: int
    label: str
    avg_confidence: float  # a chart pattern: the chart model's probability of its label
    candles: int
    kind: str = "candlestick"  # "candlestick": a run of per-candle labels | "chart": a chart pattern
    # the higher timeframes (featurize.higher_timeframes) whose finished candles show the same pattern
    confirmed_on: list[str] = msgspec.field(default_factory=list)


class PredictionColumns(msgspec.Struct):
    """The per-candle predictions as columns (what a columnar request gets back): no Python object
    per candle, and a third of the JSON."""

    time: list[int]
    label: list[str | None]  # null where the candle lacks the history the model needs
    confidence: list[float | None]


class PredictResponse(msgspec.Struct):
    predictions: list[CandlePrediction] | PredictionColumns
    spans: list[SpanPrediction]
    model_info: ModelSummary


def extent(predictions: list[CandlePrediction] | PredictionColumns) -> tuple[int | None, int | None, int]:
    """(first candle time, last candle time, candles) of an answer's predictions."""
    if isinstance(predictions, PredictionColumns):
        t = predictions.time
        return (t[0], t[-1], len(t)) if t else (None, None, 0)
    p = predictions
    return (p[0].time, p[-1].time, len(p)) if p else (None, None, 0)


def above_min_confidence(labels: np.ndarray, confidence: np.ndarray, min_confidence: float) -> np.ndarray:
    """A copy of ``labels`` where every label less sure than ``min_confidence`` is ``O``."""
    out = labels.copy()
    if min_confidence > 0:
        out[~np.isnan(confidence) & (confidence < min_confidence)] = NO_PATTERN
    return out


def respond(
    model: LoadedModel,
    times: np.ndarray,
    pred_labels: np.ndarray,
    confidence: np.ndarray,
    min_confidence: float,
    chart: list[SpanPrediction] | None = None,
    confirm: Confirmer | None = None,
    columns: bool = False,
) -> PredictResponse:
    """Per-candle predictions (labels below ``min_confidence`` become ``O``), their spans, and the
    chart-pattern spans (those below ``min_confidence`` left out), ordered by start; with a
    ``confirm``, each span says on which higher timeframes its pattern shows too."""
    labels = above_min_confidence(pred_labels, confidence, min_confidence)
    has = ~np.isnan(confidence)  # exactly the candles with a label
    predictions: list[CandlePrediction] | PredictionColumns
    if columns:  # None where there is no label: an object array, converted to a list in one call
        conf = confidence.astype(object)
        conf[~has] = None
        predictions = PredictionColumns(times.tolist(), labels.tolist(), conf.tolist())
    else:
        conf_out = np.where(has, confidence, 0.0).tolist()
        predictions = [
            CandlePrediction(t, label, c if ok else None)
            for t, label, c, ok in zip(times.tolist(), labels.tolist(), conf_out, has.tolist(), strict=True)
        ]
    starts, ends = span_bounds(labels)
    spans = [
        SpanPrediction(start_time=t0, end_time=t1, label=label, avg_confidence=c, candles=n)
        for t0, t1, label, c, n in zip(
            times[starts].tolist(),
            times[ends].tolist(),
            labels[starts].tolist(),
            span_means(confidence, starts, ends).tolist(),
            (ends - starts + 1).tolist(),
            strict=True,
        )
    ]
    spans += [c for c in chart or [] if c.avg_confidence >= min_confidence]
    spans.sort(key=lambda s: (s.start_time, s.end_time))
    if confirm is not None:
        for span in spans:
            span.confirmed_on = confirm(span.label, span.kind, span.start_time, span.end_time)
    return PredictResponse(predictions, spans, model.summary)


def confirmer(model: LoadedModel, candles: pl.DataFrame) -> Confirmer | None:
    """What confirms the model's spans in these candles (None when it has no higher timeframes)."""
    higher = model.bundle.meta.featurize.higher_timeframes
    if not higher:
        return None
    chart = model.bundle.meta.chart
    o, h, low, c = (candles[k].to_numpy().astype(np.float64) for k in ("open", "high", "low", "close"))
    return Confirmer(
        candles["time"].to_numpy(),
        o,
        h,
        low,
        c,
        higher,
        chart.rules if chart else None,
        [x for x in chart.labels if x != NO_PATTERN] if chart else [],
    )


def chart_spans(
    model: LoadedModel, series: pl.DataFrame, lo: int = 0, hi: int | None = None
) -> list[SpanPrediction]:
    return [span for span, _ in chart_predictions(model, series, lo, hi)]


def chart_predictions(
    model: LoadedModel, series: pl.DataFrame, lo: int = 0, hi: int | None = None
) -> list[tuple[SpanPrediction, float]]:
    """Chart patterns overlapping rows ``lo:hi`` with their margins, found with the candles their
    windows need around them (so the answer is the one a pass over the whole series gives)."""
    chart = model.bundle.meta.chart
    hi = series.height if hi is None else hi
    if chart is None or lo >= hi:
        return []
    first, last = max(0, lo - chart.window), min(series.height, hi + chart.window)
    part = series.slice(first, last - first)
    times = part["time"].to_numpy()
    return [
        (
            SpanPrediction(
                start_time=int(times[c.start]),
                end_time=int(times[c.end]),
                label=c.label,
                avg_confidence=c.confidence,
                candles=c.end - c.start + 1,
                kind="chart",
            ),
            c.margin,
        )
        for c in model.bundle.predict_chart(part)
        if c.start + first < hi and c.end + first >= lo
    ]


def predict_frame(
    model: LoadedModel,
    candles: pl.DataFrame,
    min_confidence: float = 0.0,
    source: str = "candles",
    checkpoint: Checkpoint = no_deadline,
    batch_size: int = DEFAULT_BATCH_SIZE,
    columns: bool = False,
) -> PredictResponse:
    """Validated canonical candles of one series -> the API's prediction response (``POST
    /predict``'s and ``candle-ml predict -o FILE.json``'s); ``columns``: the per-candle
    predictions as columns."""
    labels, confidence = predict_labels(model, candles, source, checkpoint, batch_size)
    checkpoint()
    times = candles["time"].to_numpy()
    return respond(
        model,
        times,
        labels,
        confidence,
        min_confidence,
        chart_spans(model, candles),
        confirmer(model, candles),
        columns,
    )


def predict_labels(
    model: LoadedModel,
    candles: pl.DataFrame,
    source: str = "candles",
    checkpoint: Checkpoint = no_deadline,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """Every candle's label (None without enough history) and confidence (NaN), as arrays: the
    per-candle part of the response, for a table of a million candles."""
    require_history(candles.height, model.bundle.meta.min_history, source)
    return predict_chunks(model, candles, 0, candles.height, batch_size, checkpoint)


def predict_chunks(
    model: LoadedModel, series: pl.DataFrame, lo: int, hi: int, batch_size: int, checkpoint: Checkpoint
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and confidences of rows ``lo:hi``, predicted ``batch_size`` rows at a time.

    Each chunk is taken with the model's ``min_history`` candles before it and its lookahead
    after it, so every candle gets exactly the prediction it gets in one pass over the series,
    while memory holds one chunk's features and windows at a time. ``checkpoint`` runs before
    each chunk, so a deadline stops the work within one chunk's time.
    """
    labels = np.empty(hi - lo, dtype=object)
    confidence = np.empty(hi - lo)
    for a in range(lo, hi, batch_size):
        checkpoint()
        b = min(a + batch_size, hi)
        labels[a - lo : b - lo], confidence[a - lo : b - lo] = predict_in_context(model, series, 0, a, b)
    return labels, confidence


def predict_in_context(
    model: LoadedModel, held: pl.DataFrame, start: int, a: int, b: int
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and confidences of series rows ``a:b``, predicted with the model's ``min_history``
    candles before them and its lookahead after them (what the series has of either). ``held``
    holds series rows ``start`` to ``start + held.height``, the series' last row included unless
    it holds the lookahead."""
    meta = model.bundle.meta
    first, last = max(0, a - meta.min_history), min(start + held.height, b + meta.lookahead)
    pred = model.bundle.predict(held.slice(first - start, last - first))
    return pred.label[a - first : b - first], pred.confidence[a - first : b - first]


def predict_blocks(
    model: LoadedModel, blocks: Iterable[pl.DataFrame], source: str, batch_size: int = OFFLINE_BATCH_SIZE
) -> Iterator[tuple[pl.DataFrame, np.ndarray, np.ndarray]]:
    """``predict_labels`` over a series that arrives in blocks (validated, in order, of any size):
    yields (candles, labels, confidences) ``batch_size`` rows at a time, the same chunks
    ``predict_chunks`` cuts with the same context, so every value is the one a pass over the
    whole series gives. Memory holds one chunk with its history and lookahead, never the file."""
    meta = model.bundle.meta
    held = pl.DataFrame(schema=CANDLE_SCHEMA)  # series rows start .. start + held.height
    start = done = 0  # series row of held's first row; rows before `done` are yielded

    def chunk(a: int, b: int) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
        return held.slice(a - start, b - a), *predict_in_context(model, held, start, a, b)

    for block in blocks:
        held = pl.concat([held, block], rechunk=False)
        while start + held.height >= done + batch_size + meta.lookahead:  # a chunk and its lookahead
            yield chunk(done, done + batch_size)
            done += batch_size
            keep_from = max(start, done - meta.min_history)  # the next chunk's history
            held, start = held.slice(keep_from - start), keep_from
    total = start + held.height
    if done == 0:
        require_history(total, meta.min_history, source)
    for a in range(done, total, batch_size):
        yield chunk(a, min(a + batch_size, total))
