"""``GET /series`` (what ingest stored) and ``GET /candles`` (one stored series, for the chart)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.openapi.spec import Example
from litestar.params import Parameter

from candle_ml.candles import PAIR_PATTERN, TIMEFRAME_PATTERN, whole
from serve.schemas import CandlesResponse, SeriesInfo, errors
from serve.series_cache import SeriesCache

PAIR = Parameter(
    pattern=whole(PAIR_PATTERN), description="series name, e.g. AAPL", examples=[Example(value="AAPL")]
)
TIMEFRAME = Parameter(
    pattern=whole(TIMEFRAME_PATTERN), description="timeframe, e.g. 1d", examples=[Example(value="1d")]
)
START = Parameter(description="first candle time included, Unix seconds")
END = Parameter(description="last candle time included, Unix seconds")


class SeriesController(Controller):
    tags = ["series"]

    @get(
        "/series",
        sync_to_thread=False,
        summary="The series ingest stored: pair, timeframe, candles, first/last time",
    )
    def series(self, series_cache: NamedDependency[SeriesCache]) -> list[SeriesInfo]:
        return [SeriesInfo(**e) for e in series_cache.stored.info()]  # type: ignore[arg-type]

    @get(
        "/candles",
        responses=errors(e400="bad pair, timeframe, start or end", e404="series not stored"),
        sync_to_thread=True,
        summary="The stored candles of a series, oldest first",
    )
    def candles(
        self,
        series_cache: NamedDependency[SeriesCache],
        pair: Annotated[str, PAIR],
        timeframe: Annotated[str, TIMEFRAME],
        start: Annotated[int | None, START] = None,
        end: Annotated[int | None, END] = None,
    ) -> CandlesResponse:
        frame = series_cache.series(pair, timeframe)
        if start is not None:
            frame = frame.filter(frame["time"] >= start)
        if end is not None:
            frame = frame.filter(frame["time"] <= end)
        return CandlesResponse(pair, timeframe, frame.to_dicts())
