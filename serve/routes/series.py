"""``GET /series`` (what ingest stored) and ``GET /candles`` (one stored series, for the chart)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency

from serve.queries import END, PAIR, START, TIMEFRAME
from serve.schemas import CandlesResponse, SeriesInfo, errors
from serve.series_cache import SeriesCache


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
