"""``candle-ml``: the library's commands (``candle_ml.cli``) plus ``candle-ml serve``.

The console script points here so the library never imports the server.
"""

from __future__ import annotations

from pathlib import Path

import typer

from candle_ml import paths
from candle_ml.cli import app
from serve.config import HISTORY_MAX_MB, HISTORY_RETENTION_DAYS, MAX_BODY_MB, Limits, Timeouts, cores

__all__ = ["app"]

LIMITS, TIMEOUTS = Limits(), Timeouts()  # the defaults every option below shows


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="interface to listen on (0.0.0.0 exposes it to the network)"),
    port: int = typer.Option(8001, help="port"),
    model: str = typer.Option(
        str(paths.MODEL_DIR), help="bundle directory, or models:/NAME@ALIAS | models:/NAME/VERSION"
    ),
    candles_dir: Path = typer.Option(
        paths.CANDLES_DIR, help="series stored by ingest (batch and review routes)"
    ),
    feedback_log: Path = typer.Option(
        paths.FEEDBACK_LOG, help="where POST /feedback appends traders' answers"
    ),
    charts_dir: str = typer.Option(
        str(paths.CHARTS_DIR), help="where charts opened in the page are kept ('' keeps none)"
    ),
    raw_dir: Path = typer.Option(paths.RAW_DIR, help="where answers on an opened chart keep its candles"),
    history: str = typer.Option(
        str(paths.HISTORY_DB), help="SQLite file every answered prediction is appended to ('' keeps none)"
    ),
    history_retention_days: float = typer.Option(
        HISTORY_RETENTION_DAYS, min=0.0, help="days of prediction history kept"
    ),
    history_max_mb: float = typer.Option(
        HISTORY_MAX_MB, min=1.0, help="prediction history size cap, oldest out first"
    ),
    human_dir: Path = typer.Option(
        paths.HUMAN_DIR, help="traders' exports (*.json), shown with the feedback"
    ),
    tracking_uri: str = typer.Option(
        None, help="MLflow store (default MLFLOW_TRACKING_URI, else ./mlflow.db)"
    ),
    cors_origin: list[str] = typer.Option(
        [], help="origin allowed by CORS (the annotation tool's); repeatable"
    ),
    allowed_host: list[str] = typer.Option(
        [],
        help="a Host name the server answers to (400 for others); repeatable; "
        "default: localhost, 127.0.0.1, ::1 and --host; '*' for any",
    ),
    max_body_mb: float = typer.Option(MAX_BODY_MB, help="largest request body accepted (413 beyond)"),
    max_candles: int = typer.Option(
        LIMITS.max_candles, min=1, help="candles per /predict or /predict/batch call (413)"
    ),
    min_batch_size: int = typer.Option(
        LIMITS.min_batch_size, min=1, help="smallest chunk /predict/batch uses"
    ),
    workers: int = typer.Option(
        None,
        min=1,
        help="server processes sharing the port, one model version across them (docs/api.md); "
        "default: one per core; 1: this process only",
        show_default=False,
    ),
    max_concurrent: int = typer.Option(
        LIMITS.max_concurrent,
        min=0,
        help="predictions at once per worker (0: the cores shared among the workers)",
    ),
    max_queue: int = typer.Option(
        LIMITS.max_queue, min=0, help="requests waiting for a slot per worker (0: 8 per slot); 503 beyond"
    ),
    queue_timeout: float = typer.Option(
        LIMITS.queue_timeout, min=0.0, help="seconds a request waits for a slot (503 after)"
    ),
    request_timeout: float = typer.Option(
        LIMITS.request_timeout, min=0.1, help="seconds of prediction per request (503 after)"
    ),
    keep_alive_timeout: float = typer.Option(
        TIMEOUTS.keep_alive, min=0.1, help="seconds an idle connection stays open"
    ),
    header_timeout: float = typer.Option(
        TIMEOUTS.header, min=0.1, help="seconds for a request's headers (408 after)"
    ),
    body_timeout: float = typer.Option(
        TIMEOUTS.body, min=0.1, help="seconds for a whole request body (408 after)"
    ),
    body_idle_timeout: float = typer.Option(
        TIMEOUTS.body_idle, min=0.1, help="longest pause inside a body (408 after)"
    ),
    shutdown_grace: float = typer.Option(
        TIMEOUTS.shutdown_grace, min=0.0, help="seconds requests in flight get after SIGTERM (503 past it)"
    ),
    model_threads: int = typer.Option(
        None,
        min=1,
        help="threads each prediction gives either model, candles and chart "
        "(default: the cores divided among the predictions at once, --max-concurrent)",
    ),
    label_studio_auth: str = typer.Option(
        "",
        envvar="CANDLE_ML_LABEL_STUDIO_AUTH",
        help="USER:PASSWORD Label Studio must send (Basic Auth) to /label-studio; empty: open",
    ),
    log_level: str = typer.Option("info", help="uvicorn log level"),
) -> None:
    """Serve predictions, the review page (/) and the feedback routes over HTTP (docs/api.md)."""
    from candle_ml.stageio import setup_logging
    from serve.app import create_app
    from serve.guards import default_allowed_hosts
    from serve.server import run
    from serve.settings import ServeSettings

    setup_logging()  # our loggers (model loads, reloads) next to uvicorn's
    settings = ServeSettings(
        model=model,
        candles_dir=str(candles_dir),
        feedback_log=str(feedback_log),
        history=history,
        history_retention_days=history_retention_days,
        history_max_mb=history_max_mb,
        human_dir=str(human_dir),
        charts_dir=charts_dir,
        raw_dir=str(raw_dir),
        tracking_uri=tracking_uri,
        cors_origins=list(cors_origin),
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        model_threads=model_threads,
        limits=Limits(
            max_candles=max_candles,
            min_batch_size=min_batch_size,
            max_concurrent=max_concurrent,
            max_queue=max_queue,
            queue_timeout=queue_timeout,
            request_timeout=request_timeout,
        ),
        allowed_hosts=list(allowed_host) or default_allowed_hosts(host),
        label_studio_auth=label_studio_auth or None,
        workers=workers or cores(),
    )
    timeouts = Timeouts(
        keep_alive=keep_alive_timeout,
        header=header_timeout,
        body_idle=body_idle_timeout,
        body=body_timeout,
        shutdown_grace=shutdown_grace,
    )
    if settings.workers > 1:
        from serve.workers import serve_workers

        raise typer.Exit(serve_workers(settings, host, port, timeouts, log_level))
    web = create_app(settings)
    raise typer.Exit(run(web, host, port, timeouts, log_level, web.state.work.drain))


if __name__ == "__main__":
    app()
