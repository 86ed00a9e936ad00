"""The ``candle-ml`` command line.

The pipeline itself runs through DVC (``dvc repro``); this CLI holds the
commands a trader or engineer runs by hand: checking files, serving the model
over HTTP, and predicting a file offline with exactly the server's code path.
"""

from __future__ import annotations

from pathlib import Path

import typer

from candle_ml.annotations import AnnotationError, read_annotation_file, read_feedback_log
from candle_ml.candles import CandleError, parse_series_filename, read_series_file, validate_candles

app = typer.Typer(help="candle-ml: candlestick-pattern ML backend (pipeline: `dvc repro`).", no_args_is_help=True)


@app.command()
def check(
    files: list[Path] = typer.Argument(..., help="candle files ({PAIR}_{TF}.csv|parquet) or annotation files (.json/.jsonl)"),
    naive_timezone: str = typer.Option("UTC", help="timezone of candle timestamps that carry none"),
) -> None:
    """Check files before dropping them into data/raw/ or data/annotations/: same rules as the pipeline."""
    failed = False
    for path in files:
        try:
            if path.suffix.lower() == ".json":
                spans = read_annotation_file(path)
                typer.echo(f"{path}: ok, {len(spans)} annotation(s)")
            elif path.suffix.lower() == ".jsonl":
                spans, torn = read_feedback_log(path)
                typer.echo(f"{path}: ok, {len(spans)} annotation(s)" + (f", {torn} torn last line" if torn else ""))
            else:
                pair, timeframe = parse_series_filename(path)
                frame, raw_times = read_series_file(path, naive_timezone)
                candles, _ = validate_candles(frame, path.name, "error", raw_times)
                typer.echo(f"{path}: ok, {pair} {timeframe}, {candles.height} candles")
        except (CandleError, AnnotationError, FileNotFoundError) as exc:
            typer.echo(f"error: {exc}", err=True)
            failed = True
    raise typer.Exit(1 if failed else 0)


@app.command()
def patterns() -> None:
    """List the TA-Lib patterns autolabel knows: function, labels, span length in candles."""
    from candle_ml.patterns import PATTERNS, labels_for

    for name, info in PATTERNS.items():
        typer.echo(f"{name:22} {info.length}  {', '.join(labels_for(name))}")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="interface to listen on (0.0.0.0 exposes it to the network)"),
    port: int = typer.Option(8001, help="port"),
    model: str = typer.Option("models", help="bundle directory, or models:/NAME@ALIAS | models:/NAME/VERSION"),
    candles_dir: Path = typer.Option(Path("data/candles"), help="series stored by ingest, for /predict/batch"),
    tracking_uri: str = typer.Option(None, help="MLflow store (default MLFLOW_TRACKING_URI, else ./mlflow.db)"),
    cors_origin: list[str] = typer.Option([], help="origin allowed by CORS (the annotation tool's); repeatable"),
    max_body_mb: float = typer.Option(32.0, help="largest request body accepted (413 beyond)"),
    model_threads: int = typer.Option(None, min=1, help="threads per prediction (default: all cores)"),
    log_level: str = typer.Option("info", help="uvicorn log level"),
) -> None:
    """Serve predictions over HTTP (routes: /predict, /predict/batch, /model/info, /model/labels, /health)."""
    import uvicorn

    from candle_ml.stageio import setup_logging
    from serve.app import ServeSettings, create_app

    setup_logging()  # our loggers (model loads, reloads) next to uvicorn's
    settings = ServeSettings(model=model, candles_dir=str(candles_dir), tracking_uri=tracking_uri,
                             cors_origins=list(cors_origin), max_body_bytes=int(max_body_mb * 1024 * 1024),
                             model_threads=model_threads)
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)


@app.command()
def predict(
    input_file: Path = typer.Argument(..., help="candles of one series: .csv or .parquet (same columns and aliases as ingest)"),
    output: Path = typer.Option(None, "-o", "--output", help=".csv, .parquet or .json (spans included); default CSV on stdout"),
    model: str = typer.Option("models", help="bundle directory, or models:/NAME@ALIAS"),
    min_confidence: float = typer.Option(0.0, min=0.0, max=1.0, help="predictions below this become O"),
    naive_timezone: str = typer.Option("UTC", help="timezone of timestamps that carry none"),
    tracking_uri: str = typer.Option(None, help="MLflow store for models:/ URIs"),
) -> None:
    """Predict every candle of a file offline, with the same code as POST /predict."""
    import msgspec
    import polars as pl

    from candle_ml.tracking import tracking_uri as default_tracking_uri
    from serve.model_store import ModelLoadError, load_model_from
    from serve.predict import TooLittleHistory, require_history, respond

    try:
        frame, raw_times = read_series_file(input_file, naive_timezone)
        candles, _ = validate_candles(frame, input_file.name, "error", raw_times)
        loaded = load_model_from(model, tracking_uri or default_tracking_uri())
        require_history(candles.height, loaded.bundle.meta.min_history, input_file.name)
    except (CandleError, FileNotFoundError, ModelLoadError, TooLittleHistory) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    pred = loaded.bundle.predict(candles)
    result = respond(loaded, pred.time, pred.label, pred.confidence, min_confidence)
    table = candles.with_columns(
        label=pl.Series([p.label for p in result.predictions], dtype=pl.String),
        confidence=pl.Series([p.confidence for p in result.predictions], dtype=pl.Float64),
    )
    suffix = output.suffix.lower() if output else ".csv"
    if output is None:
        typer.echo(table.write_csv(), nl=False)
    elif suffix == ".parquet":
        table.write_parquet(output)
    elif suffix == ".json":
        output.write_bytes(msgspec.json.format(msgspec.json.encode(result), indent=1))
    else:
        table.write_csv(output)
    labeled = sum(p.label not in (None, "O") for p in result.predictions)
    typer.echo(f"{input_file.name}: {candles.height} candles, {labeled} in patterns, {len(result.spans)} spans "
               f"(model {loaded.name}@{loaded.version})" + (f" -> {output}" if output else ""), err=True)


if __name__ == "__main__":
    app()
