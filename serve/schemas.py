"""Request and response bodies of the HTTP API (DESIGN.md "HTTP API"), as msgspec Structs.

Requests are decoded strictly: a time sent as 1.5 or "1492592400" is an error, not a
guess, and unknown fields are rejected (a typo such as ``min_confidance`` would
otherwise be silently ignored). Times are Unix seconds, UTC, integers.
"""

from typing import Annotated, Any

import msgspec
from msgspec import Meta

# Series names become file names under data/candles/: letters, digits, '.', '-' and no
# leading dot, so '../', '/' and NUL can never reach the file system.
SERIES_NAME = Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,63}$", description="series name, e.g. AAPL or EURUSD")
TIMEFRAME = Meta(pattern=r"^[A-Za-z0-9]{1,16}$", description="timeframe, e.g. 1d or 1h")
# 1900-01-01 .. 9999-12-31: wider than any market data, narrow enough for int64 and float64.
UNIX_SECONDS = Meta(ge=-2_208_988_800, le=253_402_300_799, description="Unix seconds, UTC, integer")
CONFIDENCE = Meta(ge=0.0, le=1.0, description="predictions below this confidence come back as O")

CANDLE_EXAMPLE = {"time": 1492592400, "open": 1.0716, "high": 1.0722, "low": 1.0708, "close": 1.0722, "volume": 1413}


class Candle(msgspec.Struct, forbid_unknown_fields=True):
    time: Annotated[int, UNIX_SECONDS]
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0  # FX feeds often have none


class PredictRequest(msgspec.Struct, forbid_unknown_fields=True):
    candles: Annotated[list[Candle], Meta(min_length=1, description="one series, oldest first")]
    # Optional fields carry no msgspec Meta: Litestar's OpenAPI generator cannot render
    # Annotated[...] | None, so their rules are checked where they are used.
    pair: str | None = None  # informational: the prediction uses only the candles
    timeframe: str | None = None
    min_confidence: Annotated[float, CONFIDENCE] = 0.0  # predictions below it come back as "O"


class BatchRequest(msgspec.Struct, forbid_unknown_fields=True):
    pair: Annotated[str, SERIES_NAME]
    timeframe: Annotated[str, TIMEFRAME]
    start: int | None = None  # first candle time included, Unix seconds
    end: int | None = None  # last candle time included, Unix seconds
    batch_size: Annotated[int, Meta(ge=1, le=100_000, description="candles predicted per chunk")] = 5_000
    min_confidence: Annotated[float, CONFIDENCE] = 0.0


class CandlePrediction(msgspec.Struct):
    time: int
    label: str | None  # null where the candle lacks the history the model needs
    confidence: float | None


class SpanPrediction(msgspec.Struct):
    start_time: int
    end_time: int
    label: str
    avg_confidence: float
    candles: int


class ModelSummary(msgspec.Struct):
    name: str
    version: str
    model_type: str
    run_id: str | None
    trained_at: str
    min_history: int  # candles a prediction needs before it
    lookahead: int  # later candles a prediction looks at; the last ones of a request can still change


class PredictResponse(msgspec.Struct):
    predictions: list[CandlePrediction]
    spans: list[SpanPrediction]
    model_info: ModelSummary


class Label(msgspec.Struct):
    name: str
    color: str


class ModelInfo(msgspec.Struct):
    name: str
    version: str
    source: str
    model_type: str
    run_id: str | None
    trained_at: str
    git_commit: str | None
    dataset_version: str | None
    min_history: int
    lookahead: int
    features: dict[str, Any]  # the featurize config and the model's input columns
    window: dict[str, int]
    labels: list[Label]
    metrics: dict[str, Any] | None  # test-split metrics of this model: overall, per_class, per_class_span
    metrics_source: str | None


class Health(msgspec.Struct):
    status: str  # ok | degraded
    model_loaded: bool
    model: str | None  # name@version
    mlflow: str  # ok | unreachable | not configured
    last_reload_error: str | None = None


class ReloadResult(msgspec.Struct):
    reloaded: bool
    model: ModelSummary | None
    error: str | None = None
