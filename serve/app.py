"""The Litestar app: routes of DESIGN.md's HTTP API over a model loaded once at startup.

``create_app(settings)`` builds it; ``candle-ml serve`` runs it with uvicorn. Bodies are
decoded strictly with msgspec (``StrictJSON``); every way a request can be wrong maps to a
4xx whose ``detail`` names the field and the rule (see ``ERROR_HANDLERS``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import msgspec
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.config.cors import CORSConfig
from litestar.dto import MsgspecDTO
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Example
from litestar.params import Body
from litestar.status_codes import HTTP_200_OK, HTTP_409_CONFLICT, HTTP_503_SERVICE_UNAVAILABLE

from candle_ml.candles import CandleError
from candle_ml.tracking import tracking_uri as default_tracking_uri
from serve.model_store import LoadedModel, ModelLoadError, ModelStore
from serve.predict import EmptyRange, TooLittleHistory, UnknownSeries, predict_candles, predict_stored
from serve.schemas import (
    CANDLE_EXAMPLE,
    BatchRequest,
    Health,
    Label,
    ModelInfo,
    PredictRequest,
    PredictResponse,
    ReloadResult,
)

log = logging.getLogger("candle_ml.serve")

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024  # ~100,000 candles at up to ~300 bytes each


class ServeSettings(msgspec.Struct, forbid_unknown_fields=True):
    model: str = "models"  # bundle directory, or models:/NAME@ALIAS | models:/NAME/VERSION
    candles_dir: str = "data/candles"  # what ingest stored, for /predict/batch
    tracking_uri: str | None = None  # MLflow store; default MLFLOW_TRACKING_URI, else ./mlflow.db if present
    cors_origins: list[str] = msgspec.field(default_factory=list)  # off unless the annotation tool's origin is set
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # Threads per prediction; None: the model library's default (all cores), which measured
    # as fast as 1 thread at 8 concurrent requests and faster alone (bench/serve.py).
    model_threads: int | None = None

    def store_uri(self) -> str:
        """Where models:/ URIs resolve: --tracking-uri, else the pipeline's own store."""
        return self.tracking_uri or default_tracking_uri()

    def resolved_tracking_uri(self) -> str | None:
        """The store /health reports on; None (not configured) for a local model with no store."""
        uri = self.store_uri()
        local_store = uri.startswith("sqlite:///") and Path(uri.removeprefix("sqlite:///")).is_file()
        configured = self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or self.model.startswith("models:/")
        return uri if configured or local_store else None


class NoModel(RuntimeError):
    pass


def strict_json(model: type) -> type[MsgspecDTO]:
    """A DTO that decodes the body with msgspec in strict mode (no "1" -> 1, no 1.5 -> int)."""

    class StrictJSON(MsgspecDTO[model]):  # type: ignore[valid-type]
        def decode_bytes(self, value: bytes) -> Any:
            return msgspec.json.decode(value, type=model)

    return StrictJSON


# --- errors -> 4xx with the field and the rule -------------------------------------------

_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")


def _error(status: int, detail: str, **extra: Any) -> Response:
    return Response({"status_code": status, "detail": detail, **{k: v for k, v in extra.items() if v is not None}},
                    status_code=status, media_type=MediaType.JSON)


def _body_invalid(_: Request, exc: msgspec.ValidationError) -> Response:
    # msgspec: "Expected `int`, got `float` - at `$.candles[3].time`" -> field "candles[3].time"
    msg = str(exc)
    match = _AT.search(msg)
    field = match["path"].lstrip(".") if match else None
    rule = msg[: match.start()] if match else msg
    unknown = re.search(r"unknown field `([^`]*)`", rule)
    if unknown:  # name the offending field itself
        field = f"{field}.{unknown[1]}" if field else unknown[1]
    return _error(400, f"{field}: {rule}" if field else f"request body: {rule}", field=field, rule=rule)


def _body_malformed(_: Request, exc: msgspec.DecodeError) -> Response:
    return _error(400, f"request body is not valid JSON: {exc}", rule="malformed JSON")


def _candles_invalid(_: Request, exc: CandleError) -> Response:
    field = f"candles[{exc.row}].{exc.field}" if exc.row is not None and exc.field else "candles"
    return _error(422, str(exc), field=field, rule=exc.rule)


def _plain(status: int, field: str | None = None, rule: str | None = None):
    """A handler for an error whose message already says everything; field and rule are fixed."""

    def handler(_: Request, exc: Exception) -> Response:
        return _error(status, str(exc), field=field, rule=rule)

    return handler


ERROR_HANDLERS = {
    msgspec.ValidationError: _body_invalid,
    msgspec.DecodeError: _body_malformed,
    CandleError: _candles_invalid,
    TooLittleHistory: _plain(422, "candles", "min_history"),
    EmptyRange: _plain(422, "start", "range has candles"),
    UnknownSeries: _plain(404, "pair"),
    NoModel: _plain(503),
}


# --- MLflow store health, cached so /health stays cheap ---------------------------------

class TrackingProbe:
    TTL_S = 15.0

    def __init__(self, uri: str | None):
        self.uri = uri
        self._checked_at = -1e9
        self._state = "not configured"

    def state(self) -> str:
        if self.uri is None:
            return "not configured"
        if time.monotonic() - self._checked_at > self.TTL_S:
            self._state = "ok" if self._reachable() else "unreachable"
            self._checked_at = time.monotonic()
        return self._state

    def _reachable(self) -> bool:
        uri = self.uri or ""
        if uri.startswith("sqlite:///"):
            return Path(uri.removeprefix("sqlite:///")).is_file()
        if uri.startswith(("http://", "https://")):
            import urllib.request

            try:
                with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False
        if uri.startswith("file:") or "://" not in uri:
            return Path(uri.removeprefix("file://")).exists()
        return True  # other schemes (databricks, ...): reachable until a load says otherwise


# --- the app ---------------------------------------------------------------------------------

API_DESCRIPTION = (
    "Candlestick-pattern predictions for the annotation chart. Times are Unix seconds, UTC, integers. "
    "Bodies are decoded strictly and unknown fields are rejected; every error is a 4xx whose `detail` "
    "names the field and the rule."
)

# OpenAPI examples (module level: the handlers' annotations are resolved in this namespace).
PREDICT_EXAMPLE = Example(
    summary="candles of one series, oldest first (a real request needs at least min_history + 1)",
    value={"candles": [CANDLE_EXAMPLE], "pair": "EURUSD", "timeframe": "1h", "min_confidence": 0.5},
)
BATCH_EXAMPLE = Example(summary="a stored series from 2012 on", value={"pair": "AAPL", "timeframe": "1d", "start": 1325376000})


def create_app(settings: ServeSettings | None = None) -> Litestar:
    settings = settings or ServeSettings()
    store = ModelStore(settings.model, settings.store_uri(), settings.model_threads)
    probe = TrackingProbe(settings.resolved_tracking_uri())
    candles_dir = Path(settings.candles_dir)

    def model() -> LoadedModel:
        current = store.current  # read once: a concurrent reload cannot change it mid-request
        if current is None:
            raise NoModel(f"no model loaded ({store.last_error or 'loading'}); fix it and POST /model/reload")
        return current

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        try:
            await asyncio.to_thread(store.reload)
        except ModelLoadError:
            pass  # /health answers 503 with the reason; POST /model/reload retries
        loop = asyncio.get_running_loop()
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGHUP"):
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(_reload_quietly()))
        yield

    async def _reload_quietly() -> None:
        log.info("SIGHUP: reloading the model from %s", store.source)
        try:
            await asyncio.to_thread(store.reload)
        except ModelLoadError:
            pass  # logged by the store; the previous model keeps serving

    @post("/predict", dto=strict_json(PredictRequest), return_dto=None, status_code=HTTP_200_OK, sync_to_thread=True,
          summary="Label every candle and group the labels into spans")
    def predict(data: Annotated[PredictRequest, Body(examples=[PREDICT_EXAMPLE])]) -> PredictResponse:
        return predict_candles(model(), data.candles, data.min_confidence)

    @post("/predict/batch", dto=strict_json(BatchRequest), return_dto=None, status_code=HTTP_200_OK,
          sync_to_thread=True, summary="Label a series stored by the ingest stage, in chunks")
    def predict_batch(data: Annotated[BatchRequest, Body(examples=[BATCH_EXAMPLE])]) -> PredictResponse:
        return predict_stored(model(), candles_dir, data)

    @get("/model/info", sync_to_thread=False, summary="The served model: version, config, test metrics")
    def model_info() -> ModelInfo:
        return model().info()

    @get("/model/labels", sync_to_thread=False, summary="Labels the model can predict, with chart colours")
    def model_labels() -> list[Label]:
        return [Label(x.name, x.color) for x in model().bundle.meta.labels]

    @get("/health", sync_to_thread=True, summary="200 with a model loaded, 503 without")
    def health() -> Response[Health]:
        current = store.current
        mlflow_state = probe.state()
        ok = current is not None and mlflow_state != "unreachable" and store.last_error is None
        body = Health(
            status="ok" if ok else "degraded", model_loaded=current is not None,
            model=f"{current.name}@{current.version}" if current else None, mlflow=mlflow_state,
            last_reload_error=store.last_error,
        )
        return Response(body, status_code=HTTP_200_OK if current else HTTP_503_SERVICE_UNAVAILABLE)

    @post("/model/reload", sync_to_thread=True, status_code=HTTP_200_OK,
          summary="Load the model again and swap it in; a failed load keeps the old one (409)")
    def reload() -> Response[ReloadResult]:
        try:
            loaded = store.reload()
        except ModelLoadError as exc:
            current = store.current
            return Response(ReloadResult(False, current.summary if current else None, str(exc)),
                            status_code=HTTP_409_CONFLICT)
        return Response(ReloadResult(True, loaded.summary))

    cors = CORSConfig(allow_origins=settings.cors_origins, allow_methods=["GET", "POST"]) if settings.cors_origins else None
    app = Litestar(
        route_handlers=[predict, predict_batch, model_info, model_labels, health, reload],
        lifespan=[lifespan],
        exception_handlers=ERROR_HANDLERS,
        cors_config=cors,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(title="candle-ml", version="1", description=API_DESCRIPTION),
    )
    app.state.store = store
    return app

