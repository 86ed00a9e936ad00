"""The server's side of the prediction history (``candle_ml.history``): what each answered
prediction leaves behind, recorded without ever delaying or failing the answer."""

from __future__ import annotations

import time
import uuid

from candle_ml.history import HistoryWriter, PredictionRecord, ShownSpan
from candle_ml.loading import ModelSummary
from candle_ml.prediction import SpanPrediction


def remember(
    history: HistoryWriter | None,
    route: str,
    extent: tuple[int | None, int | None, int],
    spans: list[SpanPrediction],
    model_info: ModelSummary,
    pair: str | None,
    timeframe: str | None,
) -> str:
    """Queue one answered prediction for the history (``extent``: its first and last candle times
    and its candles); returns its request id (X-Request-ID)."""
    start, end, candles = extent
    request_id = uuid.uuid4().hex[:16]
    if history is not None:
        history.record(
            PredictionRecord(
                request_id=request_id,
                served_at=int(time.time() * 1000),
                route=route,
                model_version=model_info.version,
                pair=pair,
                timeframe=timeframe,
                start_time=start,
                end_time=end,
                candles=candles,
                spans=[ShownSpan(s.label, s.kind, s.start_time, s.end_time, s.avg_confidence) for s in spans],
            )
        )
    return request_id
