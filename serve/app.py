"""The Litestar app: the routes of the HTTP API (docs/api.md) over a model loaded once at startup.

``create_app(settings)`` builds it; ``candle-ml serve`` runs it with uvicorn. The model store
and the MLflow probe live on ``app.state`` (set up in the lifespan) and reach handlers
through ``Provide``; errors map to 4xx in ``serve.errors``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import MutableScopeHeaders, State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.routes import HTTPRoute
from litestar.types import Message, Scope

from candle_ml.errors import CandleMLError, ModelLoadError
from candle_ml.history import HistoryWriter
from candle_ml.loading import LoadedModel
from serve import openapi
from serve.errors import EXCEPTION_HANDLERS
from serve.guards import allowed_hosts_guard, integer_queries, require_json
from serve.health import TrackingProbe
from serve.limits import WorkLimiter, threads_per_prediction
from serve.model_store import ModelStore
from serve.routes import ROUTES
from serve.series_cache import SeriesCache
from serve.settings import ServeSettings
from serve.worker_link import WorkerLink

log = logging.getLogger("candle_ml.serve")

API_DESCRIPTION = (
    "Candlestick-pattern predictions for the annotation chart. Times are Unix seconds, UTC, integers. "
    "Bodies are decoded strictly and unknown fields are rejected; every error is a 4xx whose `detail` "
    "names the field and the rule."
)


async def _reload_quietly(store: ModelStore) -> None:
    # A failure is logged by the store: /health answers with the reason, the previous model keeps serving.
    with contextlib.suppress(ModelLoadError):
        await asyncio.to_thread(store.reload)


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    """Load the model before the first request; ``kill -HUP`` reloads it like ``POST /model/reload``."""
    store: ModelStore = app.state.store
    link: WorkerLink | None = app.state.link
    if link is not None:  # a worker of `candle-ml serve --workers N`: its supervisor runs the load
        await link.join(store, app.state.series_cache)
    else:
        with contextlib.suppress(CandleMLError):  # logged; /health says why; the next reload retries
            await asyncio.to_thread(app.state.series_cache.reload)
        await _reload_quietly(store)
    history: HistoryWriter | None = app.state.history
    if history is not None:
        history.start()
    loop = asyncio.get_running_loop()
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGHUP"):
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(_on_sighup(store, link)))
    try:
        yield
    finally:
        if history is not None:  # what is queued is written before the process ends
            await asyncio.to_thread(history.close)


async def _on_sighup(store: ModelStore, link: WorkerLink | None) -> None:
    log.info("SIGHUP: reloading the model from %s", store.source)
    if link is not None:
        await link.reload(series=False)  # every worker, one round (the supervisor logs the outcome)
    else:
        await _reload_quietly(store)


def _store(state: State) -> ModelStore:
    store: ModelStore = state.store
    return store


def _model(state: State) -> LoadedModel:
    return _store(state).require()


def _probe(state: State) -> TrackingProbe:
    probe: TrackingProbe = state.probe
    return probe


def _work(state: State) -> WorkLimiter:
    work: WorkLimiter = state.work
    return work


def _feedback_log(state: State) -> Path:
    return Path(state.settings.feedback_log)


def _human_dir(state: State) -> Path:
    return Path(state.settings.human_dir)


def _history(state: State) -> HistoryWriter | None:
    history: HistoryWriter | None = state.history
    return history


def _series_cache(state: State) -> SeriesCache:
    cache: SeriesCache = state.series_cache
    return cache


DEPENDENCIES = {
    "store": _store,
    "model": _model,
    "probe": _probe,
    "feedback_log": _feedback_log,
    "human_dir": _human_dir,
    "series_cache": _series_cache,
    "work": _work,
    "history": _history,
}


def every_method_allowed(allow: dict[str, str]) -> Callable[[Message, Scope], Awaitable[None]]:
    """A ``before_send`` hook: an OPTIONS answer's ``Allow`` lists every method of its path.

    Litestar's automatic OPTIONS handler lists only the methods registered before it was made
    (``OPTIONS /feedback`` said ``GET, OPTIONS`` without ``POST``).
    """

    async def fix(message: Message, scope: Scope) -> None:
        if message["type"] == "http.response.start" and scope.get("method") == "OPTIONS":
            methods = allow.get(scope["path"])
            if methods:
                MutableScopeHeaders.from_message(message)["Allow"] = methods

    return fix


def create_app(settings: ServeSettings | None = None, link: WorkerLink | None = None) -> Litestar:
    """The app; ``link``: this process is one of ``candle-ml serve --workers N`` (serve.workers)."""
    settings = settings or ServeSettings()
    work = WorkLimiter(settings.limits, settings.workers)
    origins = settings.cors_origins
    allow: dict[str, str] = {}
    app = Litestar(
        route_handlers=ROUTES,
        dependencies={name: Provide(fn, sync_to_thread=False) for name, fn in DEPENDENCIES.items()},
        state=State(
            {
                "settings": settings,
                "probe": TrackingProbe(settings.resolved_tracking_uri()),
                "store": ModelStore(
                    settings.model,
                    settings.store_uri(),
                    settings.model_threads or threads_per_prediction(work, settings.workers),
                ),
                "series_cache": SeriesCache(
                    Path(settings.candles_dir),
                    Path(settings.charts_dir) if settings.charts_dir else None,
                    Path(settings.raw_dir) if settings.raw_dir else None,
                ),
                "work": work,
                "link": link,
                "history": HistoryWriter(
                    Path(settings.history), settings.history_retention_days, settings.history_max_mb
                )
                if settings.history
                else None,
            }
        ),
        guards=[allowed_hosts_guard(settings.allowed_hosts), require_json, integer_queries],
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        cors_config=CORSConfig(allow_origins=origins, allow_methods=["GET", "POST", "DELETE"])
        if origins
        else None,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="candle-ml",
            version="1",
            description=API_DESCRIPTION,
            render_plugins=openapi.render_plugins(),
        ),
        before_send=[every_method_allowed(allow)],
    )
    allow.update({r.path: ", ".join(sorted(r.methods)) for r in app.routes if isinstance(r, HTTPRoute)})
    return app
