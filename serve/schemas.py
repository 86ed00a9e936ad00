"""Request and response bodies of the HTTP API (docs/api.md), as msgspec Structs.

Requests are decoded strictly: a time sent as 1.5 or "1492592400" is an error, not a
guess, and unknown fields are rejected (a typo such as ``min_confidance`` would
otherwise be silently ignored). Times are Unix seconds, UTC, integers.
"""

from typing import Annotated, Any

import msgspec
from litestar.dto import MsgspecDTO
from msgspec import Meta

from candle_ml.bundle import Label
from candle_ml.candles import PAIR_PATTERN, TIMEFRAME_PATTERN
from candle_ml.loading import ModelSummary
from candle_ml.prediction import CandlePrediction, PredictResponse, SpanPrediction

# The same rule as the series file names ingest accepts (candle_ml.candles).
SERIES_NAME = Meta(pattern=f"^{PAIR_PATTERN}$", description="series name, e.g. AAPL or EURUSD")
TIMEFRAME = Meta(pattern=f"^{TIMEFRAME_PATTERN}$", description="timeframe, e.g. 1d or 1h")
# 1900-01-01 .. 9999-12-31: wider than any market data, narrow enough for int64 and float64.
UNIX_SECONDS = Meta(ge=-2_208_988_800, le=253_402_300_799, description="Unix seconds, UTC, integer")
CONFIDENCE = Meta(ge=0.0, le=1.0, description="predictions below this confidence come back as O")

CANDLE_EXAMPLE = {
    "time": 1492592400,
    "open": 1.0716,
    "high": 1.0722,
    "low": 1.0708,
    "close": 1.0722,
    "volume": 1413,
}


def strict_json(model: type) -> type[MsgspecDTO[Any]]:
    """A DTO that decodes the body with msgspec in strict mode (no "1" -> 1, no 1.5 -> int)."""

    class StrictJSON(MsgspecDTO[model]):  # type: ignore[valid-type]
        def decode_bytes(self, value: bytes) -> Any:
            return msgspec.json.decode(value, type=model)

    return StrictJSON


class Body(msgspec.Struct, forbid_unknown_fields=True):
    """Base of every request body: an unknown field (a typo) is a 400 naming it."""


class Candle(Body):
    time: Annotated[int, UNIX_SECONDS]
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0  # FX feeds often have none


class PredictRequest(Body):
    candles: Annotated[list[Candle], Meta(min_length=1, description="one series, oldest first")]
    # Optional fields carry no msgspec Meta: Litestar's OpenAPI generator cannot render
    # Annotated[...] | None, so their rules are checked where they are used.
    pair: str | None = None  # informational: the prediction uses only the candles
    timeframe: str | None = None
    min_confidence: Annotated[float, CONFIDENCE] = 0.0  # predictions below it come back as "O"


class BatchRequest(Body):
    pair: Annotated[str, SERIES_NAME]
    timeframe: Annotated[str, TIMEFRAME]
    start: int | None = None  # first candle time included, Unix seconds
    end: int | None = None  # last candle time included, Unix seconds
    batch_size: Annotated[int, Meta(ge=1, le=100_000, description="candles predicted per chunk")] = 5_000
    min_confidence: Annotated[float, CONFIDENCE] = 0.0


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


__all__ = [
    "Candle",
    "PredictRequest",
    "BatchRequest",
    "CandlePrediction",
    "SpanPrediction",
    "PredictResponse",
    "ModelSummary",
    "Label",
    "ModelInfo",
    "Health",
    "ReloadResult",
]
