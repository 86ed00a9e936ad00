"""``GET /history``: the predictions the server answered (``candle_ml.history``)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import Parameter

from candle_ml.history import HistoryWriter, read
from serve.errors import NoHistory
from serve.queries import PAIR, TIMEFRAME
from serve.schemas import HistoryResponse, errors

# Candle times are integers within +-2**53 (as everywhere in the API); SQLite takes 64-bit ones.
START = Parameter(
    ge=-(2**53), le=2**53, description="predictions whose candles reach this time, Unix seconds"
)
END = Parameter(
    ge=-(2**53), le=2**53, description="predictions whose candles start by this time, Unix seconds"
)


class HistoryController(Controller):
    tags = ["history"]

    @get(
        "/history",
        responses=errors(e400="bad query parameter", e404="the server keeps no history (--history '')"),
        sync_to_thread=True,
        summary="Predictions answered, newest first: model version, series, candles, spans, request id",
    )
    def history(
        self,
        history: NamedDependency[HistoryWriter | None],
        pair: Annotated[str | None, PAIR] = None,
        timeframe: Annotated[str | None, TIMEFRAME] = None,
        start: Annotated[int | None, START] = None,
        end: Annotated[int | None, END] = None,
        model_version: Annotated[str | None, Parameter(max_length=200, description="e.g. sha256:…")] = None,
        limit: Annotated[int, Parameter(ge=1, le=1000, description="predictions at most")] = 100,
    ) -> HistoryResponse:
        if history is None:
            raise NoHistory("this server keeps no prediction history (it was started with --history '')")
        found = read(history.path, pair, timeframe, start, end, model_version, limit)
        return HistoryResponse(found, history.written, history.missed)
