"""The ``candle-ml`` command line.

The pipeline itself runs through DVC (``dvc repro``); this CLI holds the
commands a trader or engineer runs by hand. ``serve`` and ``predict`` join it
once a model bundle exists (see the training and serving issues).
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


if __name__ == "__main__":
    app()
