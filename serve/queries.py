"""The query parameters several routes take, defined once so their OpenAPI entries agree."""

from __future__ import annotations

from litestar.openapi.spec import Example
from litestar.params import Parameter

from candle_ml.candles import PAIR_PATTERN, whole
from candle_ml.timeframes import TIMEFRAME_PATTERN

PAIR = Parameter(
    pattern=whole(PAIR_PATTERN), description="series name, e.g. AAPL", examples=[Example(value="AAPL")]
)
TIMEFRAME = Parameter(
    pattern=whole(TIMEFRAME_PATTERN), description="timeframe, e.g. 1d", examples=[Example(value="1d")]
)
START = Parameter(description="first candle time included, Unix seconds")
END = Parameter(description="last candle time included, Unix seconds")
