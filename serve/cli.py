"""``candle-ml``: the library's commands (``candle_ml.cli``) plus ``candle-ml serve``.

The console script points here so the library never imports the server.
"""

from __future__ import annotations

from pathlib import Path

import typer

from candle_ml import paths
from candle_ml.cli import app

__all__ = ["app"]


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
    human_dir: Path = typer.Option(
        paths.HUMAN_DIR, help="traders' exports (*.json), shown with the feedback"
    ),
    tracking_uri: str = typer.Option(
        None, help="MLflow store (default MLFLOW_TRACKING_URI, else ./mlflow.db)"
    ),
    cors_origin: list[str] = typer.Option(
        [], help="origin allowed by CORS (the annotation tool's); repeatable"
    ),
    max_body_mb: float = typer.Option(32.0, help="largest request body accepted (413 beyond)"),
    model_threads: int = typer.Option(None, min=1, help="threads per prediction (default: all cores)"),
    log_level: str = typer.Option("info", help="uvicorn log level"),
) -> None:
    """Serve predictions, the review page (/) and the feedback routes over HTTP (docs/api.md)."""
    import uvicorn

    from candle_ml.stageio import setup_logging
    from serve.app import create_app
    from serve.settings import ServeSettings

    setup_logging()  # our loggers (model loads, reloads) next to uvicorn's
    settings = ServeSettings(
        model=model,
        candles_dir=str(candles_dir),
        feedback_log=str(feedback_log),
        human_dir=str(human_dir),
        tracking_uri=tracking_uri,
        cors_origins=list(cors_origin),
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        model_threads=model_threads,
    )
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)


if __name__ == "__main__":
    app()
