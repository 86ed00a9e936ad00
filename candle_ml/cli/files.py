"""The commands on a trader's files: ``check`` them before they go into ``data/``, list the
``patterns``, ``predict`` a file offline with exactly the server's code, label many in ``batch``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from candle_ml import paths
from candle_ml.annotations import read_annotation_export, read_feedback_log, read_reviewed_log
from candle_ml.candle_files import file_layout, read_candle_file
from candle_ml.cli.common import user_errors
from candle_ml.errors import CandleMLError
from candle_ml.series_names import name_candle_file, name_series

if TYPE_CHECKING:
    pass


def check(
    files: list[Path] = typer.Argument(
        ..., help="candle files (any layout and name, docs/candle-files.md) or annotations (.json/.jsonl)"
    ),
    naive_timezone: str = typer.Option("UTC", help="timezone of candle timestamps that carry none"),
    time_column: str = typer.Option(
        None, help="the time column's name when it is none of Date/Datetime/time"
    ),
    params_file: Path = typer.Option(paths.PARAMS, "--params", help="params.yaml for ingest.names, if any"),
) -> None:
    """Check files before dropping them into data/raw/ or data/annotations/: same rules as the
    pipeline. For a candle file: the series it is, and what was detected (format, columns used
    and ignored, timezone)."""
    names = _ingest_names(params_file)
    failed = False
    for path in files:
        try:
            if path.suffix.lower() == ".json":
                export = read_annotation_export(path)
                ranges = f", {len(export.reviewed)} reviewed range(s)" if export.reviewed else ""
                typer.echo(f"{path}: ok, {len(export.annotations)} annotation(s){ranges}")
            elif path.name == paths.REVIEWED_LOG.name:
                typer.echo(f"{path}: ok, {len(read_reviewed_log(path))} reviewed range(s)")
            elif path.suffix.lower() == ".jsonl":
                spans, torn = read_feedback_log(path)
                typer.echo(
                    f"{path}: ok, {len(spans)} annotation(s)" + (f", {torn} torn last line" if torn else "")
                )
            else:
                layout = file_layout(path, time_column)
                candles, _ = read_candle_file(path, naive_timezone, time_column)
                name = name_series(path, candles["time"].to_numpy(), names)
                typer.echo(f"{path}: ok, {name.pair} {name.timeframe}, {candles.height} candles")
                typer.echo(f"  series: named by {name.how}")
                for line in layout.describe(naive_timezone):
                    typer.echo(f"  {line}")
        except (CandleMLError, FileNotFoundError) as exc:
            typer.echo(f"error: {exc}", err=True)
            failed = True
    raise typer.Exit(1 if failed else 0)


def _ingest_names(params_file: Path) -> dict[str, str]:
    """``ingest.names`` of params.yaml (none without the file), so check names a file as ingest does."""
    if not params_file.is_file():
        return {}
    from candle_ml.config import IngestParams, parse_section, read_params

    return parse_section(read_params(params_file), "ingest", IngestParams, params_file).names


def patterns() -> None:
    """List the TA-Lib patterns autolabel knows: function, labels, span length in candles."""
    from candle_ml.patterns import PATTERNS, labels_for

    for name, info in PATTERNS.items():
        typer.echo(f"{name:22} {info.length}  {', '.join(labels_for(name))}")


def predict(
    input_file: Path = typer.Argument(
        ..., help="candles of one series: .csv, .txt or .parquet (any layout `candle-ml check` reads)"
    ),
    output: Path = typer.Option(
        None, "-o", "--output", help=".csv, .parquet or .json (spans included); default CSV on stdout"
    ),
    model: str = typer.Option(str(paths.MODEL_DIR), help="bundle directory, or models:/NAME@ALIAS"),
    min_confidence: float = typer.Option(0.0, min=0.0, max=1.0, help="predictions below this become O"),
    naive_timezone: str = typer.Option("UTC", help="timezone of timestamps that carry none"),
    time_column: str = typer.Option(
        None, help="the time column's name when it is none of Date/Datetime/time"
    ),
    tracking_uri: str = typer.Option(None, help="MLflow store for models:/ URIs"),
    pair: str = typer.Option(None, help="the series' pair in the output (default: as check names the file)"),
    timeframe: str = typer.Option(None, help="the series' timeframe (default: as check names the file)"),
    block_candles: int = typer.Option(
        50_000, min=1_000, help="candles read, predicted and written at a time (memory grows with it)"
    ),
) -> None:
    """Predict every candle of a file offline, with the same code as POST /predict.

    Columns: time (Unix seconds), time_utc (ISO 8601), pair, timeframe, the candle, label and
    confidence (empty where the candle lacks the history the model needs). A .csv or .parquet
    output is written a block of --block-candles at a time, so memory stays bounded whatever the
    file's length; it appears only once complete. -o FILE.json (the API's response, with the
    chart-pattern spans) holds the whole series in memory."""
    import msgspec

    from candle_ml.loading import load_model_from
    from candle_ml.patterns import NO_PATTERN
    from candle_ml.predict_file import predict_file
    from candle_ml.prediction import predict_frame
    from candle_ml.tracking import tracking_uri as default_tracking_uri

    suffix = output.suffix.lower() if output else ".csv"
    if suffix not in (".csv", ".parquet", ".json"):
        typer.echo(f"error: {output}: unsupported output type (use .csv, .parquet or .json)", err=True)
        raise typer.Exit(1)
    with user_errors():
        if pair is None or timeframe is None:  # named as ingest and check name it
            name = name_candle_file(input_file, _ingest_names(paths.PARAMS), naive_timezone, time_column)
            pair, timeframe = pair or name.pair, timeframe or name.timeframe
        loaded = load_model_from(model, tracking_uri or default_tracking_uri())
        if suffix == ".json":  # the API's response: per-candle predictions, candlestick and chart spans
            candles, _ = read_candle_file(input_file, naive_timezone, time_column)
            result = predict_frame(loaded, candles, min_confidence, input_file.name, batch_size=block_candles)
            assert output is not None
            output.write_bytes(msgspec.json.format(msgspec.json.encode(result), indent=1))
            n = candles.height
            assert isinstance(result.predictions, list)  # the per-candle form (not columns)
            labeled = sum(p.label not in (None, NO_PATTERN) for p in result.predictions)
            spans, kinds = len(result.spans), "spans"
        else:  # one row per candle, a block at a time
            summary = predict_file(
                loaded,
                input_file,
                output,
                pair=pair,
                timeframe=timeframe,
                min_confidence=min_confidence,
                naive_timezone=naive_timezone,
                time_column=time_column,
                block_rows=block_candles,
            )
            n, labeled, spans = summary.candles, summary.labeled, summary.spans
            kinds = "candlestick spans (chart patterns: -o FILE.json)"
    typer.echo(
        f"{input_file.name}: {n} candles, {labeled} in patterns, {spans} {kinds} "
        f"(model {loaded.name}@{loaded.version})" + (f" -> {output}" if output else ""),
        err=True,
    )


def batch(
    inputs: list[Path] = typer.Argument(
        ...,
        help="series: candle files (local: any layout and name check reads; spark: PAIR_TF.parquet), "
        "folders of them (data/candles), or a hive Parquet dataset (pair=…/timeframe=…)",
    ),
    output: Path = typer.Option(
        ..., "-o", "--output", help="folder for predictions/ and spans/ (hive Parquet)"
    ),
    model: Path = typer.Option(paths.MODEL_DIR, help="the model bundle directory"),
    engine: str = typer.Option(
        "local", help="local: this process | spark: a Spark session (the spark extra)"
    ),
    master: str = typer.Option("local[*]", help="Spark master: local[N], spark://host:7077, yarn, k8s://…"),
    block_size: int = typer.Option(100_000, min=1, help="candles each block labels (one Spark task each)"),
    params_file: Path = typer.Option(
        paths.PARAMS, "--params", help="params.yaml whose autolabel section the rules follow"
    ),
) -> None:
    """Label many series at once: the model's label per candle and the rules' spans.

    Long series are cut into blocks that carry the history before them and the lookahead after,
    so every candle gets the label `candle-ml predict` gives it. --engine spark runs each block
    as a Spark task (docs/pipeline.md, "Batch and Spark")."""

    from candle_ml.autolabel import check_patterns
    from candle_ml.batch import Rules, run_local, run_spark
    from candle_ml.chart.patterns import CHART_PATTERNS
    from candle_ml.config import AutolabelParams, parse_section, read_params

    with user_errors():
        if engine not in ("local", "spark"):
            raise CandleMLError(f"--engine {engine}: local or spark")
        all_params = read_params(params_file) if params_file.is_file() else {}
        labels = parse_section(all_params, "autolabel", AutolabelParams, params_file)
        rules = Rules(
            check_patterns(labels.patterns),
            labels.chart_patterns if "autolabel" in all_params else list(CHART_PATTERNS),
            labels.chart.rules,
        )
        if output.exists() and any(output.iterdir()):
            raise CandleMLError(f"--output {output}: not empty; batch writes a fresh folder")
        if engine == "spark":
            from candle_ml.spark import session

            done = run_spark(session(master, "candle-ml batch"), inputs, model, rules, output, block_size)
        else:
            done = run_local(inputs, model, rules, output, block_size)
    rate = done["candles"] / max(done["seconds"], 1e-9)
    typer.echo(
        f"{done['candles']} candles in {done['seconds']:.1f} s ({rate:,.0f} candles/s, {engine}) -> "
        f"{output}/predictions, {output}/spans",
        err=True,
    )
