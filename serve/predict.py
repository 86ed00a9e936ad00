"""Prediction as the API defines it, independent of HTTP: candles in, predictions and spans out.

The heavy lifting is ``Bundle.predict``: the pipeline's own ``featurize`` and window
functions on the raw candles. This module adds what the chart needs around it: request
validation with the pipeline's candle rules, ``min_confidence``, span grouping, and
chunked prediction over a stored series with the model's history carried into each chunk.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from candle_ml.bundle import Prediction
from candle_ml.candles import CANDLE_COLUMNS, CandleError, validate_candles
from candle_ml.patterns import NO_PATTERN
from candle_ml.spans import group_spans
from candle_ml.stageio import read_json
from serve.model_store import LoadedModel
from serve.schemas import BatchRequest, Candle, CandlePrediction, PredictResponse, SpanPrediction


class TooLittleHistory(ValueError):
    """The request has no candle with the history the model needs."""


class UnknownSeries(LookupError):
    """No stored series with that pair and timeframe."""


class EmptyRange(ValueError):
    """The stored series has no candle between start and end."""


def request_candles(candles: list[Candle], min_history: int) -> pl.DataFrame:
    """Request candles -> validated canonical frame; errors name ``candles[i].field`` and the rule."""
    rows = np.array([(c.time, c.open, c.high, c.low, c.close, c.volume) for c in candles], dtype=np.float64)
    # Times are validated integers below 2**53, so float64 holds them exactly.
    frame = pl.DataFrame({name: rows[:, i] for i, name in enumerate(CANDLE_COLUMNS)})
    validated, _ = validate_candles(frame, "candles", "error", row_name=lambda i: f"candles[{i}]")
    require_history(validated.height, min_history, "candles")
    return validated


def require_history(n: int, min_history: int, source: str) -> None:
    """No candle of ``n`` could be labeled: say how many the model needs."""
    if n <= min_history:
        raise TooLittleHistory(
            f"{source}: {n} candles sent; the model needs at least {min_history + 1} "
            f"({min_history} candles of history before the first candle it can label)"
        )


def respond(model: LoadedModel, times: np.ndarray, pred_labels: np.ndarray, confidence: np.ndarray,
            min_confidence: float) -> PredictResponse:
    labels = pred_labels.copy()
    has = ~np.isnan(confidence)  # exactly the candles with a label
    if min_confidence > 0:
        labels[has & (confidence < min_confidence)] = NO_PATTERN
    conf_out = np.where(has, confidence, 0.0).tolist()
    predictions = [
        CandlePrediction(t, label, c if ok else None)
        for t, label, c, ok in zip(times.tolist(), labels.tolist(), conf_out, has.tolist(), strict=True)
    ]
    spans = [
        SpanPrediction(
            start_time=int(times[s.start]), end_time=int(times[s.end]), label=s.label,
            avg_confidence=float(confidence[s.start: s.end + 1].mean()), candles=s.length,
        )
        for s in group_spans(labels)
    ]
    return PredictResponse(predictions, spans, model.summary)


def predict_candles(model: LoadedModel, candles: list[Candle], min_confidence: float = 0.0) -> PredictResponse:
    frame = request_candles(candles, model.bundle.meta.min_history)
    pred: Prediction = model.bundle.predict(frame)
    return respond(model, pred.time, pred.label, pred.confidence, min_confidence)


def stored_series(candles_dir: Path) -> dict[tuple[str, str], Path]:
    """(pair, timeframe) -> Parquet file of each real series ``ingest`` stored (augmented copies left out)."""
    index_file = candles_dir / "index.json"
    if not index_file.is_file():
        return {}
    return {
        (e["pair"], e["timeframe"]): candles_dir / e["file"]
        for e in read_json(index_file)["series"]
        if not e.get("augmented_from")
    }


def predict_stored(model: LoadedModel, candles_dir: Path, req: BatchRequest) -> PredictResponse:
    """Predict a stored series (or its ``start``..``end`` range) ``batch_size`` candles at a time.

    Each chunk is read with the model's ``min_history`` candles before it and its lookahead
    after it, so every candle gets exactly the prediction it gets in one pass over the series,
    while memory holds one chunk's features and windows at a time.
    """
    known = stored_series(candles_dir)
    # The file comes from ingest's index, never from the request: pair/timeframe only select.
    path = known.get((req.pair, req.timeframe))
    if path is None:
        listing = ", ".join(f"{p} {t}" for p, t in sorted(known)) or f"none (run `dvc repro` to ingest into {candles_dir})"
        raise UnknownSeries(f"no stored series {req.pair} {req.timeframe}; known: {listing}")
    series = pl.scan_parquet(path)
    times = series.select("time").collect()["time"].to_numpy()
    lo = 0 if req.start is None else int(np.searchsorted(times, req.start, "left"))
    hi = times.size if req.end is None else int(np.searchsorted(times, req.end, "right"))
    if lo >= hi:
        raise EmptyRange(
            f"start/end: no candles of {req.pair} {req.timeframe} between {req.start} and {req.end} "
            f"(stored: {int(times[0])} to {int(times[-1])})"
        )
    meta = model.bundle.meta
    labels = np.empty(hi - lo, dtype=object)
    confidence = np.empty(hi - lo)
    for a in range(lo, hi, req.batch_size):
        b = min(a + req.batch_size, hi)
        first, last = max(0, a - meta.min_history), min(times.size, b + meta.window.after)
        chunk = series.slice(first, last - first).collect()
        pred = model.bundle.predict(chunk)
        labels[a - lo: b - lo] = pred.label[a - first: b - first]
        confidence[a - lo: b - lo] = pred.confidence[a - first: b - first]
    return respond(model, times[lo:hi], labels, confidence, req.min_confidence)


__all__ = ["CandleError", "EmptyRange", "TooLittleHistory", "UnknownSeries", "predict_candles", "predict_stored",
           "require_history"]
