"""``GET /model/info``, ``GET /model/labels`` and ``POST /model/reload``."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_409_CONFLICT

from candle_ml.errors import CandleMLError, ModelLoadError
from candle_ml.history import HistoryWriter
from candle_ml.live_precision import precision_report
from candle_ml.loading import LoadedModel
from serve.model_store import ModelStore, label_infos, model_info
from serve.schemas import LabelInfo, ModelInfo, ReloadRequest, ReloadResult, decode_strictly, errors
from serve.series_cache import SeriesCache
from serve.worker_link import WorkerLink


class ModelController(Controller):
    path = "/model"
    tags = ["model"]

    @get(
        "/info",
        responses=errors(e503="no model loaded"),
        sync_to_thread=True,  # reads the prediction history and the feedback log
        summary="The served model: version, config, test metrics, live precision",
    )
    def info(
        self,
        model: NamedDependency[LoadedModel],
        history: NamedDependency[HistoryWriter | None],
        feedback_log: NamedDependency[Path],
    ) -> ModelInfo:
        info = model_info(model)
        if history is not None:
            info.live_precision = precision_report(history.path, feedback_log, model.version)
        return info

    @get(
        "/labels",
        responses=errors(e503="no model loaded"),
        sync_to_thread=False,
        summary="Labels the model can predict, with chart colours and what followed each (outcomes stage)",
    )
    def labels(self, model: NamedDependency[LoadedModel]) -> list[LabelInfo]:
        return label_infos(model)

    @post(
        "/reload",
        responses={
            **errors(e400="a body other than {}"),
            409: ResponseSpec(ReloadResult, description="load failed; the old model keeps serving"),
        },
        status_code=HTTP_200_OK,
        summary="Load the model again and swap it in; a failed load keeps the old one (409)",
        opt={"body": ReloadRequest},  # what serve.openapi documents; read from the raw body below
    )
    async def reload(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[ModelStore],
        series_cache: NamedDependency[SeriesCache],
    ) -> Response[ReloadResult]:
        """The stored series are read again too: a rebuild that failed keeps the last good ones."""
        body = await request.body()
        if body:  # none, or {}: anything else (whitespace too, which is no JSON) is a 400 naming why
            decode_strictly(body, ReloadRequest)
        link: WorkerLink | None = request.app.state.link
        if link is not None:  # every worker, one round: answered once all serve it (or none do)
            ok, error = await link.reload()
            return reload_result(store, series_cache, None if ok else error or "reload failed")
        return await anyio.to_thread.run_sync(reload_both, store, series_cache)


def reload_both(store: ModelStore, series_cache: SeriesCache) -> Response[ReloadResult]:
    with contextlib.suppress(CandleMLError):  # kept in series_cache.last_error
        series_cache.reload()
    try:
        store.reload()
    except ModelLoadError as exc:
        return reload_result(store, series_cache, str(exc))
    return reload_result(store, series_cache, None)


def reload_result(store: ModelStore, series_cache: SeriesCache, error: str | None) -> Response[ReloadResult]:
    """200 with the model now served, or 409 with why the reload failed (the old model serves)."""
    current, served = store.current, len(series_cache.stored.candles)
    body = ReloadResult(
        error is None, current.summary if current else None, error, served, series_cache.last_error
    )
    return Response(body, status_code=HTTP_200_OK if error is None else HTTP_409_CONFLICT)
