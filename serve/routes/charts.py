"""``POST /charts``: open any candle file in the review page, served like a stored series."""

from __future__ import annotations

import base64
from typing import Annotated

from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.params import Body
from litestar.status_codes import HTTP_201_CREATED

from candle_ml.opened_charts import read_upload
from serve.schemas import ChartOpened, ChartUpload, errors, strict_json
from serve.series_cache import SeriesCache


class ChartsController(Controller):
    path = "/charts"
    tags = ["series"]

    @post(
        responses=errors(
            e400="malformed body, wrong type, unknown field",
            e409="the series name is taken by other candles (rename the file)",
            e413="a file over the body limit (candle-ml serve --max-body-mb)",
            e422="not a candle file candle-ml reads: the message names the file, the row and the rule",
        ),
        dto=strict_json(ChartUpload),
        return_dto=None,
        status_code=HTTP_201_CREATED,
        sync_to_thread=True,
        summary="Open a candle file (any layout `candle-ml check` reads) as a chart to review",
        description="The file is read with the readers ingest uses and named as `check` names it; the "
        "chart is then listed by `GET /series` and served by `/candles`, `/review`, `/predict/batch` "
        "like an ingested series, and kept (durably) across restarts. Answers on it (`POST /feedback`) "
        "write its candles into `data/raw/` first, so the next `dvc repro` trains on them.",
    )
    def open(
        self, data: Annotated[ChartUpload, Body()], series_cache: NamedDependency[SeriesCache]
    ) -> ChartOpened:
        chart = read_upload(base64.b64decode(data.content, validate=True), data.name, data.naive_timezone)
        opened = series_cache.open_chart(chart)
        times = chart.candles["time"]
        return ChartOpened(
            chart.pair,
            chart.timeframe,
            chart.candles.height,
            int(times[0]),
            int(times[-1]),
            chart.layout.format,
            chart.layout.describe(data.naive_timezone),
            chart.named_by,
            opened,
        )
