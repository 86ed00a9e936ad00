"""``POST /predict`` (candles in the body) and ``POST /predict/batch`` (a stored series)."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import polars as pl
from litestar import Controller, Response, post
from litestar.di import NamedDependency
from litestar.params import Body
from litestar.status_codes import HTTP_200_OK

from candle_ml.candles import CANDLE_COLUMNS, validate_candles
from candle_ml.errors import CandleError, TooManyCandles
from candle_ml.history import HistoryWriter
from candle_ml.loading import LoadedModel
from candle_ml.prediction import PredictResponse, extent, predict_frame
from candle_ml.stored_series import predict_stored
from serve.history import remember
from serve.limits import WorkLimiter, admit
from serve.schemas import BUSY, BatchRequest, Candle, CandleColumns, PredictRequest, errors, strict_json
from serve.series_cache import SeriesCache


def request_candles(candles: list[Candle] | CandleColumns) -> pl.DataFrame:
    """Request candles -> validated canonical frame; errors name ``candles[i].field`` (or the
    column and row) and the rule."""
    if isinstance(candles, CandleColumns):
        return column_candles(candles)
    rows = np.array([(c.time, c.open, c.high, c.low, c.close, c.volume) for c in candles], dtype=np.float64)
    # Times are validated integers below 2**53, so float64 holds them exactly.
    frame = pl.DataFrame({name: rows[:, i] for i, name in enumerate(CANDLE_COLUMNS)})
    validated, _ = validate_candles(frame, "candles", "error", row_name=lambda i: f"candles[{i}]")
    return validated


def column_candles(columns: CandleColumns) -> pl.DataFrame:
    """Columnar request candles -> validated canonical frame, one array per column."""
    n = len(columns.time)
    for name in CANDLE_COLUMNS[1:]:
        values = getattr(columns, name)
        if values is not None and len(values) != n:
            raise CandleError(
                f"candles.{name}: {len(values)} values, candles.time has {n} (one per candle)",
                field=f"candles.{name}",
                rule="columns of one length",
            )
    frame = pl.DataFrame(
        {
            "time": np.asarray(columns.time, dtype=np.int64),
            **{c: np.asarray(getattr(columns, c), dtype=np.float64) for c in CANDLE_COLUMNS[1:5]},
            "volume": np.zeros(n) if columns.volume is None else np.asarray(columns.volume, dtype=np.float64),
        }
    )
    validated, _ = validate_candles(frame, "candles", "error", row_name=lambda i: f"candles row {i}")
    return validated


class PredictController(Controller):
    tags = ["predict"]

    @post(
        "/predict",
        responses=errors(
            e400="malformed body, wrong type, unknown field, a field breaking its pattern",
            e413="more candles than --max-candles (or a body over --max-body-mb)",
            e422="a candle breaks a rule, or too little history",
            e503=BUSY,
        ),
        dto=strict_json(PredictRequest),
        return_dto=None,
        status_code=HTTP_200_OK,
        summary="Label every candle and group the labels into spans",
        guards=[admit],
    )
    async def predict(
        self,
        data: Annotated[PredictRequest, Body()],
        model: NamedDependency[LoadedModel],
        work: NamedDependency[WorkLimiter],
        history: NamedDependency[HistoryWriter | None],
    ) -> Response[PredictResponse]:
        cap = work.limits.max_candles
        sent = len(data.candles.time) if isinstance(data.candles, CandleColumns) else len(data.candles)
        if sent > cap:
            raise TooManyCandles(
                f"candles: {sent} sent; one request predicts at most {cap} "
                "(send the series in several requests, each with min_history candles of overlap)",
                field="candles",
                rule=f"at most {cap} candles per request",
            )
        answer = await work.run(
            lambda checkpoint: predict_frame(
                model,
                request_candles(data.candles),
                data.min_confidence,
                checkpoint=checkpoint,
                columns=isinstance(data.candles, CandleColumns),
            )
        )
        return recorded(history, "/predict", answer, data.pair, data.timeframe)

    @post(
        "/predict/batch",
        responses=errors(
            e400="malformed body, wrong type, unknown field, a field breaking its pattern",
            e404="series not stored, or no stored candle between start and end",
            e413="the start..end range holds more candles than --max-candles",
            e503=BUSY,
        ),
        dto=strict_json(BatchRequest),
        return_dto=None,
        status_code=HTTP_200_OK,
        summary="Label a series stored by the ingest stage, in chunks",
        guards=[admit],
    )
    async def predict_batch(
        self,
        data: Annotated[BatchRequest, Body()],
        model: NamedDependency[LoadedModel],
        series_cache: NamedDependency[SeriesCache],
        work: NamedDependency[WorkLimiter],
        history: NamedDependency[HistoryWriter | None],
    ) -> Response[PredictResponse]:
        series = series_cache.series(data.pair, data.timeframe)
        answer = await work.run(
            lambda checkpoint: predict_stored(
                model,
                series,
                data.pair,
                data.timeframe,
                data.start,
                data.end,
                # The answer does not depend on it; tiny chunks would only multiply the work.
                max(data.batch_size, work.limits.min_batch_size),
                data.min_confidence,
                checkpoint,
                work.limits.max_candles,
            )
        )
        return recorded(history, "/predict/batch", answer, data.pair, data.timeframe)


def recorded(
    history: HistoryWriter | None,
    route: str,
    answer: PredictResponse,
    pair: str | None,
    timeframe: str | None,
) -> Response[PredictResponse]:
    """The answer, with the id it has in the prediction history (X-Request-ID)."""
    rid = remember(
        history, route, extent(answer.predictions), answer.spans, answer.model_info, pair, timeframe
    )
    return Response(answer, headers={"X-Request-ID": rid})
