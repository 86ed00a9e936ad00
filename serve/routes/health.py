"""``GET /health``: readiness (200 with a model loaded, 503 without) and the MLflow store's state."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from candle_ml.history import HistoryWriter
from serve.health import TrackingProbe
from serve.limits import WorkLimiter
from serve.model_store import ModelStore
from serve.schemas import Health
from serve.series_cache import SeriesCache
from serve.worker_link import WorkerLink


class HealthController(Controller):
    tags = ["health"]

    @get("/health/live", sync_to_thread=False, summary="Liveness: 200 while the process runs, model or not")
    def live(self) -> dict[str, str]:
        return {"status": "alive"}

    @get(
        "/health",
        sync_to_thread=True,
        responses={503: ResponseSpec(Health, description="no model loaded")},
        summary="200 with a model loaded, 503 without",
    )
    def health(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[ModelStore],
        probe: NamedDependency[TrackingProbe],
        series_cache: NamedDependency[SeriesCache],
        work: NamedDependency[WorkLimiter],
        history: NamedDependency[HistoryWriter | None],
    ) -> Response[Health]:
        current = store.current
        mlflow_state = probe.state()
        ok = (
            current is not None
            and mlflow_state != "unreachable"
            and store.last_error is None
            and series_cache.last_error is None
        )
        body = Health(
            status="ok" if ok else "degraded",
            model_loaded=current is not None,
            model=f"{current.name}@{current.version}" if current else None,
            mlflow=mlflow_state,
            last_reload_error=store.last_error,
            series=len(series_cache.stored.candles),
            series_error=series_cache.last_error,
            refused=work.rejected,
            history=history.stats() if history is not None else None,
        )
        link: WorkerLink | None = request.app.state.link
        if link is not None:
            body.worker, body.workers = link.index, link.workers
        return Response(body, status_code=HTTP_200_OK if current else HTTP_503_SERVICE_UNAVAILABLE)
