"""``POST /predict`` (candles in the body) and ``POST /predict/batch`` (a stored series)."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import polars as pl
from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.openapi.spec import Example
from litestar.params import Body
from litestar.status_codes import HTTP_200_OK

from candle_ml.candles import CANDLE_COLUMNS, validate_candles
from candle_ml.loading import LoadedModel
from candle_ml.prediction import PredictResponse, predict_frame, predict_stored
from serve.schemas import CANDLE_EXAMPLE, BatchRequest, Candle, PredictRequest, errors, strict_json
from serve.series_cache import SeriesCache

PREDICT_EXAMPLE = Example(
    summary="candles of one series, oldest first (a real request needs at least min_history + 1)",
    value={"candles": [CANDLE_EXAMPLE], "pair": "EURUSD", "timeframe": "1h", "min_confidence": 0.5},
)
BATCH_EXAMPLE = Example(
    summary="a stored series from 2012 on", value={"pair": "AAPL", "timeframe": "1d", "start": 1325376000}
)


def request_candles(candles: list[Candle]) -> pl.DataFrame:
    """Request candles -> validated canonical frame; errors name ``candles[i].field`` and the rule."""
    rows = np.array([(c.time, c.open, c.high, c.low, c.close, c.volume) for c in candles], dtype=np.float64)
    # Times are validated integers below 2**53, so float64 holds them exactly.
    frame = pl.DataFrame({name: rows[:, i] for i, name in enumerate(CANDLE_COLUMNS)})
    validated, _ = validate_candles(frame, "candles", "error", row_name=lambda i: f"candles[{i}]")
    return validated


class PredictController(Controller):
    tags = ["predict"]

    @post(
        "/predict",
        responses=errors(
            e400="malformed body, wrong type, unknown field",
            e422="a candle breaks a rule, or too little history",
            e503="no model loaded",
        ),
        dto=strict_json(PredictRequest),
        return_dto=None,
        status_code=HTTP_200_OK,
        sync_to_thread=True,
        summary="Label every candle and group the labels into spans",
    )
    def predict(
        self,
        data: Annotated[PredictRequest, Body(examples=[PREDICT_EXAMPLE])],
        model: NamedDependency[LoadedModel],
    ) -> PredictResponse:
        return predict_frame(model, request_candles(data.candles), data.min_confidence)

    @post(
        "/predict/batch",
        responses=errors(
            e400="malformed body",
            e404="series not stored",
            e422="no candles in range",
            e503="no model loaded",
        ),
        dto=strict_json(BatchRequest),
        return_dto=None,
        status_code=HTTP_200_OK,
        sync_to_thread=True,
        summary="Label a series stored by the ingest stage, in chunks",
    )
    def predict_batch(
        self,
        data: Annotated[BatchRequest, Body(examples=[BATCH_EXAMPLE])],
        model: NamedDependency[LoadedModel],
        series_cache: NamedDependency[SeriesCache],
    ) -> PredictResponse:
        return predict_stored(
            model,
            series_cache.series(data.pair, data.timeframe),
            data.pair,
            data.timeframe,
            data.start,
            data.end,
            data.batch_size,
            data.min_confidence,
        )
