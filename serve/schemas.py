"""Request and response bodies of the HTTP API (docs/api.md), as msgspec Structs.

Requests are decoded strictly: a time sent as 1.5 or "1492592400" is an error, not a
guess, and unknown fields are rejected (a typo such as ``min_confidance`` would
otherwise be silently ignored). Times are Unix seconds, UTC, integers.
"""

from typing import Annotated, Any, Literal

import msgspec
from litestar.dto import MsgspecDTO
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Reference, Schema
from msgspec import Meta

from candle_ml.annotations import Span
from candle_ml.candles import PAIR_PATTERN, whole
from candle_ml.history import PredictionRecord
from candle_ml.label_style import Label
from candle_ml.live_precision import LabelPrecision
from candle_ml.loading import ModelSummary
from candle_ml.outcome_report import LabelOutcome
from candle_ml.prediction import CandlePrediction, PredictResponse, SpanPrediction
from candle_ml.review import QueueItem, Summary
from candle_ml.timeframes import TIMEFRAME_PATTERN

# The same rule as the series file names ingest accepts (candle_ml.candles).
SERIES_NAME = Meta(pattern=whole(PAIR_PATTERN), description="series name, e.g. AAPL or EURUSD")
TIMEFRAME = Meta(pattern=whole(TIMEFRAME_PATTERN), description="timeframe, e.g. 1d or 1h")
# 1900-01-01 .. 9999-12-31: wider than any market data, narrow enough for int64 and float64.
UNIX_SECONDS = Meta(ge=-2_208_988_800, le=253_402_300_799, description="Unix seconds, UTC, integer")
CONFIDENCE = Meta(ge=0.0, le=1.0, description="predictions below this confidence come back as O")


def _whole_floats_as_ints(value: Any) -> Any:
    """``484.0`` -> ``484`` throughout a decoded JSON value (float fields take ints as they are)."""
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, list):
        return [_whole_floats_as_ints(v) for v in value]
    if isinstance(value, dict):
        return {k: _whole_floats_as_ints(v) for k, v in value.items()}
    return value


def decode_strictly(value: bytes, model: type) -> Any:
    """Decode a body into ``model``: no "1" -> 1, no 1.5 -> int, unknown fields rejected.

    A whole number written with a fraction (``1492592400.0``) is still that integer, as JSON
    Schema's ``integer`` says; that slower path runs only when the fast typed decode fails.
    """
    try:
        return msgspec.json.decode(value, type=model)
    except UnicodeDecodeError as exc:  # msgspec's error for invalid UTF-8 inside a string
        raise msgspec.DecodeError(f"invalid UTF-8 at byte {exc.start} (JSON text must be UTF-8)") from None
    except msgspec.ValidationError as exc:
        if "Expected `int`, got `float`" not in str(exc):
            raise
    return msgspec.convert(_whole_floats_as_ints(msgspec.json.decode(value)), type=model, strict=True)


def strict_json(model: type) -> type[MsgspecDTO[Any]]:
    """A DTO that decodes the body with ``decode_strictly``."""

    class StrictJSON(MsgspecDTO[model]):  # type: ignore[valid-type]
        def decode_bytes(self, value: bytes) -> Any:
            return decode_strictly(value, model)

        @classmethod
        def create_openapi_schema(cls, *_: Any, **__: Any) -> Reference | Schema:
            # serve.openapi puts msgspec's exact schema of ``model`` here (Litestar's drops rules).
            return Reference(ref=f"#/components/schemas/{model.__name__}")

    StrictJSON.model = model  # type: ignore[attr-defined]  # serve.openapi documents the body by it
    return StrictJSON


class ErrorBody(msgspec.Struct):
    """Every error: the status, a sentence naming the field and the rule, and both where known."""

    status_code: int
    detail: str
    field: str | None = None
    rule: str | None = None
    request_id: str | None = None  # a 500 only: where the server log has the traceback


BUSY = "no model loaded, busy, past the time limit, or shutting down; Retry-After says when to retry"


def errors(**described: str) -> dict[int, ResponseSpec]:
    """OpenAPI entries for a route's error statuses: ``errors(e400="...", e422="...")``."""
    return {
        int(code[1:]): ResponseSpec(data_container=ErrorBody, description=text, generate_examples=False)
        for code, text in described.items()
    }


class Body(msgspec.Struct, forbid_unknown_fields=True):
    """Base of every request body: an unknown field (a typo) is a 400 naming it."""


# What the candle rules (candle_ml.candles) refuse per field, said in the schema; a rule across
# fields (high >= open, close >= low, times increasing) JSON Schema cannot say and stays a 422.
PRICE = Meta(gt=0.0, description="a finite price > 0")
VOLUME = Meta(ge=0.0, description="0 where the feed has none")


class Candle(Body):
    time: Annotated[int, UNIX_SECONDS]
    open: Annotated[float, PRICE]
    high: Annotated[float, PRICE]
    low: Annotated[float, PRICE]
    close: Annotated[float, PRICE]
    volume: Annotated[float, VOLUME] = 0.0  # FX feeds often have none


class CandleColumns(Body):
    """The candles as columns, as ``dataframe_split`` and charting libraries hold them: decoded
    straight into arrays (no object per candle) and answered in columns too."""

    time: Annotated[list[Annotated[int, UNIX_SECONDS]], Meta(min_length=1)]
    open: list[Annotated[float, PRICE]]
    high: list[Annotated[float, PRICE]]
    low: list[Annotated[float, PRICE]]
    close: list[Annotated[float, PRICE]]
    volume: list[Annotated[float, VOLUME]] | None = None  # none: 0 (FX feeds often have none)


class PredictRequest(Body):
    candles: (
        Annotated[list[Candle], Meta(min_length=1, description="one series, oldest first")] | CandleColumns
    )
    # Optional fields carry no msgspec Meta: Litestar's OpenAPI generator cannot render
    # Annotated[...] | None, so their rules are checked where they are used.
    pair: Annotated[str, SERIES_NAME] | None = None  # informational: the prediction uses only the candles
    timeframe: Annotated[str, TIMEFRAME] | None = None
    min_confidence: Annotated[float, CONFIDENCE] = 0.0  # predictions below it come back as "O"


class BatchRequest(Body):
    pair: Annotated[str, SERIES_NAME]
    timeframe: Annotated[str, TIMEFRAME]
    start: int | None = None  # first candle time included, Unix seconds
    end: int | None = None  # last candle time included, Unix seconds
    batch_size: Annotated[int, Meta(ge=1, le=100_000, description="candles predicted per chunk")] = 5_000
    min_confidence: Annotated[float, CONFIDENCE] = 0.0


class LabelInfo(Label, kw_only=True):
    """A label, its chart colour and, when the outcomes stage ran for this model, what followed it."""

    outcome: LabelOutcome | None = None


class ModelInfo(msgspec.Struct):
    name: str
    version: str
    source: str
    model_type: str
    run_id: str | None
    trained_at: str | None
    git_commit: str | None
    dataset_version: str | None
    min_history: int
    lookahead: int
    features: dict[str, Any]  # the featurize config and the model's input columns
    window: dict[str, int | str]
    labels: list[LabelInfo]
    metrics: dict[str, Any] | None  # test-split metrics of this model: overall, per_class, per_class_span
    metrics_source: str | None
    calibration: dict[str, Any] = msgspec.field(default_factory=dict)  # temperature, per-label thresholds
    # The chart-pattern model: its labels, smoothing window, the candles a span waits for (null: none).
    chart: dict[str, Any] | None = None
    # Traders' answers to this version's spans shown on the chart, per label (the prediction history
    # joined with the feedback log); empty before any prediction was recorded.
    live_precision: list[LabelPrecision] = msgspec.field(default_factory=list)


class HistoryResponse(msgspec.Struct):
    predictions: list[PredictionRecord]  # newest first
    written: int  # since the server started; `missed`: records dropped (queue full, store failing)
    missed: int


class Health(msgspec.Struct):
    status: str  # ok | degraded
    model_loaded: bool
    model: str | None  # name@version
    mlflow: str  # ok | unreachable | not configured
    last_reload_error: str | None = None
    series: int = 0  # stored series being served (a snapshot read at startup and on reload)
    series_error: str | None = None  # why the last read of the stored series failed (the old ones serve)
    refused: int = 0  # predictions answered 503 since start: busy, past their time, or shutting down
    # the prediction history: records written and missed since start, the store's last error (null: off)
    history: dict[str, Any] | None = None
    # `candle-ml serve --workers N`: which of the N processes answered (1..N); `refused` and
    # `history` count that worker's requests only
    worker: int = 1
    workers: int = 1


class ReloadRequest(Body):
    """``POST /model/reload`` takes ``{}`` (or no body): the JSON content type is what it checks."""


class ReloadResult(msgspec.Struct):
    reloaded: bool
    model: ModelSummary | None
    error: str | None = None
    series: int = 0  # stored series served after the reload
    series_error: str | None = None  # the stored series could not be read again: the previous ones serve


LABEL = Meta(
    pattern=whole(r"[A-Za-z0-9][A-Za-z0-9_.\- ]{0,63}"),
    description="a pattern label such as bullish_engulfing, or O (no pattern)",
)
SPAN_ID = Meta(pattern=whole(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}"), description="the span's id")


class AnnotationSpan(Body):
    """A span in the annotation format (docs/api.md)."""

    pair: Annotated[str, SERIES_NAME]
    timeframe: Annotated[str, TIMEFRAME]
    start_time: Annotated[int, UNIX_SECONDS]
    end_time: Annotated[int, UNIX_SECONDS]
    label: Annotated[str, LABEL]
    id: Annotated[str, SPAN_ID] | None = None
    confidence: Annotated[float, Meta(ge=0.0, le=1.0)] = 1.0
    source: Literal["human", "human_correction", "model_confirmed", "programmatic"] = "human"
    model_prediction: str | dict[str, Any] | None = None


def to_wire(span: Span) -> AnnotationSpan:
    return AnnotationSpan(**msgspec.structs.asdict(span))  # the same fields; no re-validation of stored spans


class FeedbackSpan(AnnotationSpan):
    """A trader's answer: confirm (model_confirmed), correct or dismiss (human_correction), or new (human)."""

    source: Literal["human", "human_correction", "model_confirmed"] = "human"


class ReviewedBody(Body):
    """A range of a stored series the trader went through while answering (the chart's visible
    candles): an unmarked candle there is not a pattern of ``labels`` (null: of any label)."""

    pair: Annotated[str, SERIES_NAME]
    timeframe: Annotated[str, TIMEFRAME]
    start_time: Annotated[int, UNIX_SECONDS]
    end_time: Annotated[int, UNIX_SECONDS]
    labels: Annotated[list[Annotated[str, LABEL]], Meta(max_length=100)] | None = None


class FeedbackRequest(Body):
    annotations: Annotated[list[FeedbackSpan], Meta(min_length=1, max_length=1000)]
    reviewed: Annotated[list[ReviewedBody], Meta(max_length=1000)] = msgspec.field(default_factory=list)


class FeedbackStored(msgspec.Struct):
    stored: int
    ids: list[str]


# A file's own name: no folder, no control character, not hidden
FILE_NAME = whole(r"[^\x00-\x1f/\\.][^\x00-\x1f/\\]{0,254}")
# Standard base64, padded: what the schema promises the server decodes
BASE64 = whole(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


class ChartUpload(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /charts``: a candle file as the trader has it (any layout ``candle-ml check`` reads)."""

    name: Annotated[str, msgspec.Meta(pattern=FILE_NAME, description="the file's own name: EURUSD_H1.csv")]
    content: Annotated[str, msgspec.Meta(pattern=BASE64, description="the file's bytes, base64")]
    naive_timezone: str = "UTC"  # of times that carry no offset (MetaTrader's: the broker's server time)


class ChartOpened(msgspec.Struct):
    pair: str
    timeframe: str
    candles: int
    first_time: int
    last_time: int
    format: str  # what was detected: metatrader5, binance, csv, ...
    detected: list[str]  # candle-ml check's lines: format, columns used and ignored, timezone
    named_by: str
    opened: bool  # false: that chart (the same candles) was open already


class AnswerUndone(msgspec.Struct):
    """``DELETE /feedback/{id}``: the answer taken back, and the earlier answer with that id that
    stands again (null: none; the candles are unanswered again)."""

    undone: AnnotationSpan
    restored: AnnotationSpan | None


class SeriesInfo(msgspec.Struct):
    pair: str
    timeframe: str
    candles: int
    first_time: int
    last_time: int


class CandlesResponse(msgspec.Struct):
    pair: str
    timeframe: str
    candles: list[dict[str, float]]


class PredictedSpan(Body):
    """A predicted span as ``POST /predict`` returns it (``avg_confidence`` and ``candles`` optional)."""

    start_time: Annotated[int, UNIX_SECONDS]
    end_time: Annotated[int, UNIX_SECONDS]
    label: Annotated[str, LABEL]
    avg_confidence: float | None = None
    candles: int | None = None
    score: float | None = None  # the review queue's margin, where it comes from there


class DisagreementsRequest(Body):
    human: Annotated[list[AnnotationSpan], Meta(max_length=10_000)]
    predicted: Annotated[list[PredictedSpan], Meta(max_length=10_000)]
    # The series both lists are on; default: the human spans' own. Candles are counted on its
    # stored candles, or on a regular grid of the timeframe when it is not stored.
    pair: Annotated[str, SERIES_NAME] | None = None
    timeframe: Annotated[str, TIMEFRAME] | None = None


class Disagreement(msgspec.Struct):
    kind: Literal["missed_by_model", "missed_by_human", "label_mismatch"]
    human: AnnotationSpan | None
    predicted: PredictedSpan | None


class DisagreementsResponse(msgspec.Struct):
    disagreements: list[Disagreement]
    summary: Summary


class ReviewResponse(msgspec.Struct):
    pair: str
    timeframe: str
    predictions: list[CandlePrediction]
    spans: list[SpanPrediction]
    human: list[AnnotationSpan]
    disagreements: list[Disagreement]
    summary: Summary
    model_info: ModelSummary


class QueueResponse(msgspec.Struct):
    queue: list[QueueItem]
    unanswered: int  # predicted spans nobody answered, over the series asked about
    model_info: ModelSummary


__all__ = [
    "Candle",
    "PredictRequest",
    "BatchRequest",
    "CandlePrediction",
    "SpanPrediction",
    "PredictResponse",
    "ModelSummary",
    "LabelInfo",
    "LabelOutcome",
    "ModelInfo",
    "Health",
    "ReloadResult",
    "HistoryResponse",
    "LabelPrecision",
]
