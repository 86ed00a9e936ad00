"""The ``candle-ml`` command line: the commands a trader or engineer runs by hand.

The pipeline itself runs through DVC (``dvc repro``). Here: checking files before they
go into ``data/``, listing the patterns, predicting a file offline with exactly the server's
code, and the outcome report (do the patterns matter?) on a trader's own series.
``candle-ml serve`` is added by ``serve.cli`` (the library knows no HTTP).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from candle_ml import paths
from candle_ml.annotations import read_annotation_export, read_feedback_log, read_reviewed_log
from candle_ml.candles import parse_series_filename, read_candle_file
from candle_ml.errors import CandleMLError

if TYPE_CHECKING:
    from candle_ml.bundle import Bundle

app = typer.Typer(
    help="candle-ml: candlestick-pattern ML backend (pipeline: `dvc repro`).", no_args_is_help=True
)


@contextmanager
def user_errors(code: int = 1) -> Iterator[None]:
    """A user's mistake (bad input or config, a missing file) -> ``error: <what and where>`` on
    stderr and exit ``code``, never a traceback: every command's epilogue."""
    try:
        yield
    except (CandleMLError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code) from None


def _version(show: bool) -> None:
    if show:
        from importlib.metadata import version

        from candle_ml import __version__

        try:  # the installed distribution's, which pip and bug reports see
            typer.echo(f"candle-ml {version('candle-ml')}")
        except Exception:  # run from a source tree that is not installed
            typer.echo(f"candle-ml {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    show_version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    """candle-ml: candlestick-pattern ML backend (pipeline: `dvc repro`)."""


@app.command()
def check(
    files: list[Path] = typer.Argument(
        ..., help="candle files ({PAIR}_{TF}.csv|parquet) or annotation files (.json/.jsonl)"
    ),
    naive_timezone: str = typer.Option("UTC", help="timezone of candle timestamps that carry none"),
    time_column: str = typer.Option(
        None, help="the time column's name when it is none of Date/Datetime/time"
    ),
) -> None:
    """Check files before dropping them into data/raw/ or data/annotations/: same rules as the pipeline."""
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
                pair, timeframe = parse_series_filename(path)
                candles, _ = read_candle_file(path, naive_timezone, time_column)
                typer.echo(f"{path}: ok, {pair} {timeframe}, {candles.height} candles")
        except (CandleMLError, FileNotFoundError) as exc:
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
def predict(
    input_file: Path = typer.Argument(
        ..., help="candles of one series: .csv or .parquet (same columns and aliases as ingest)"
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
    pair: str = typer.Option(None, help="the series' pair in the output (default: from a PAIR_TF file name)"),
    timeframe: str = typer.Option(None, help="the series' timeframe (default: from a PAIR_TF file name)"),
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
    if pair is None or timeframe is None:
        try:
            named = parse_series_filename(input_file)
        except CandleMLError:
            named = (None, None)
        pair, timeframe = pair or named[0], timeframe or named[1]
    with user_errors():
        loaded = load_model_from(model, tracking_uri or default_tracking_uri())
        if suffix == ".json":  # the API's response: per-candle predictions, candlestick and chart spans
            candles, _ = read_candle_file(input_file, naive_timezone, time_column)
            result = predict_frame(loaded, candles, min_confidence, input_file.name, batch_size=block_candles)
            assert output is not None
            output.write_bytes(msgspec.json.format(msgspec.json.encode(result), indent=1))
            n = candles.height
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


@app.command()
def batch(
    inputs: list[Path] = typer.Argument(
        ...,
        help="series: PAIR_TF.csv|parquet files, folders of them (data/candles), or a hive Parquet "
        "dataset (pair=…/timeframe=…)",
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


@app.command()
def outcomes(
    input_files: list[Path] = typer.Argument(
        ..., help="candles, one series a file: .csv or .parquet (PAIR_TF names, as ingest reads them)"
    ),
    output: Path = typer.Option(None, "-o", "--output", help="the full report (every cell) as JSON"),
    model: str = typer.Option(
        None, help="also the spans this model predicts (bundle directory or models:/NAME@ALIAS)"
    ),
    horizon: int = typer.Option(None, help="the horizon the table shows (default outcomes.summary_horizon)"),
    params_file: Path = typer.Option(
        paths.PARAMS, "--params", help="params.yaml for outcomes and autolabel (defaults when absent)"
    ),
    naive_timezone: str = typer.Option("UTC", help="timezone of timestamps that carry none"),
    time_column: str = typer.Option(
        None, help="the time column's name when it is none of Date/Datetime/time"
    ),
    tracking_uri: str = typer.Option(None, help="MLflow store for models:/ URIs"),
) -> None:
    """Do patterns matter on your series? Net returns after each pattern vs random entries.

    The rules' spans (TA-Lib's patterns and the chart rules), and with --model a model's, get
    a verdict per label: edge, no detectable edge (with the smallest edge the data could show)
    or insufficient data. Same method as the `outcomes` stage (docs/pipeline.md, "Outcomes")."""
    import json

    import polars as pl

    from candle_ml.autolabel import autolabel, check_patterns
    from candle_ml.chart.patterns import CHART_PATTERNS
    from candle_ml.config import AutolabelParams, OutcomesParams, parse_section, read_params
    from candle_ml.outcomes import OutcomeSeries, SpanEnd, model_ends, outcome_report, rule_ends
    from candle_ml.patterns import PATTERNS

    with user_errors():
        all_params = read_params(params_file) if params_file.is_file() else {}
        params = parse_section(all_params, "outcomes", OutcomesParams, params_file)
        labels = parse_section(all_params, "autolabel", AutolabelParams, params_file)
        patterns = check_patterns(labels.patterns or list(PATTERNS))
        charts = labels.chart_patterns if "autolabel" in all_params else list(CHART_PATTERNS)
        h = params.summary_horizon if horizon is None else horizon
        if h not in params.horizons:
            raise CandleMLError(f"--horizon {h}: not one of outcomes.horizons {params.horizons}")
        series: list[OutcomeSeries] = []
        frames: list[tuple[str, str, pl.DataFrame]] = []
        for path in input_files:
            try:
                pair, timeframe = parse_series_filename(path)
            except CandleMLError:
                pair, timeframe = path.stem, "?"
            candles, _ = read_candle_file(path, naive_timezone, time_column)
            frames.append((pair, timeframe, candles))
            series.append(OutcomeSeries.from_frame(pair, timeframe, candles))
        spans = [s for pair, tf, c in frames for s in autolabel(c, patterns, pair, tf)]
        rules = labels.chart.rules
        sources: dict[str, list[SpanEnd]] = {"rules": rule_ends(spans, series, charts, rules)}
        if model:
            from candle_ml.loading import load_model_from
            from candle_ml.tracking import tracking_uri as default_tracking_uri

            bundle = load_model_from(model, tracking_uri or default_tracking_uri()).bundle
            sources["model"] = [e for pair, tf, c in frames for e in model_ends(bundle, pair, tf, c)]
        report, _ = outcome_report(series, sources, params)
    for name, grid in report["sources"].items():
        typer.echo(f"{name}: net return {h} candles after entry, minus random entries' (cost {params.cost})")
        typer.echo("\n".join(outcome_lines(grid, h)))
    if output:
        output.write_text(json.dumps(report, indent=1) + "\n")
        typer.echo(f"report: {output}", err=True)


@app.command()
def history(
    db: Path = typer.Option(
        paths.HISTORY_DB, help="the server's prediction history (candle-ml serve --history)"
    ),
    pair: str = typer.Option(None, help="only this series' pair"),
    timeframe: str = typer.Option(None, help="only this timeframe"),
    start: int = typer.Option(None, help="predictions whose candles reach this time (Unix seconds)"),
    end: int = typer.Option(None, help="predictions whose candles start by this time (Unix seconds)"),
    model_version: str = typer.Option(
        None, help="only this model version (sha256:... or a registry version)"
    ),
    limit: int = typer.Option(20, min=1, help="the newest this many"),
    as_json: bool = typer.Option(False, "--json", help="the records as JSON lines, spans included"),
) -> None:
    """The predictions the server answered, newest first (what GET /history returns)."""
    import datetime as dt

    import msgspec

    from candle_ml.history import read

    if not db.is_file():
        typer.echo(f"error: {db}: no prediction history here (candle-ml serve writes it)", err=True)
        raise typer.Exit(1)
    for r in read(db, pair, timeframe, start, end, model_version, limit):
        if as_json:
            typer.echo(msgspec.json.encode(r).decode())
            continue
        served = dt.datetime.fromtimestamp(r.served_at / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        labels = ", ".join(sorted({s.label for s in r.spans})) or "-"
        typer.echo(
            f"{served}  {r.request_id}  {r.route:14} {r.model_version:20} {r.pair or '-'} "
            f"{r.timeframe or '-'} {r.candles} candles, {len(r.spans)} spans: {labels}"
        )


@app.command()
def report(
    db: Path = typer.Option(paths.HISTORY_DB, help="the server's prediction history"),
    feedback_log: Path = typer.Option(paths.FEEDBACK_LOG, help="traders' answers (POST /feedback)"),
    model_version: str = typer.Option(None, help="one model version (default: each)"),
) -> None:
    """Live precision: of the predicted spans traders were shown, how many they confirmed,
    corrected or dismissed, per model version and label."""
    from candle_ml.history import precision_report

    with user_errors():
        rows = precision_report(db, feedback_log, model_version)
    if not rows:
        typer.echo(f"no predicted spans shown yet ({db})")
        return
    typer.echo(
        f"{'model version':20} {'label':28} {'shown':>6} {'answered':>8} {'confirmed':>9} {'corrected':>9} "
        f"{'dismissed':>9} {'precision':>9}"
    )
    for r in rows:
        precision = "-" if r.precision is None else f"{r.precision:.2f}"
        typer.echo(
            f"{r.model_version:20} {r.label:28} {r.shown:6d} {r.answered:8d} {r.confirmed:9d} "
            f"{r.corrected:9d} {r.dismissed:9d} {precision:>9}"
        )


def outcome_lines(grid: dict[str, Any], h: int) -> list[str]:
    """The table ``candle-ml outcomes`` prints: one line per label at horizon h, then any flips."""
    from candle_ml.outcomes import verdict_text

    lines = [f"  {'label':28} {'n':>5} {'dir':5} {'excess':>8} {'95% interval':>20} {'hit/base':>9}  verdict"]
    for c in (c for c in grid["cells"] if c["h"] == h):
        head = f"  {c['label']:28} {c['n']:5d} {c['direction']:5}"
        if c.get("excess_return") is None:
            lines.append(f"{head} {'':>8} {'':>20} {'':>9}  {c['verdict']}")
            continue
        lo, hi = c.get("ci") or (None, None)
        interval = "" if lo is None or hi is None else f"[{lo:+.4f}, {hi:+.4f}]"  # one cluster: none
        hits = f"{c['hit_rate']:.2f}/{c['base_up_rate']:.2f}"
        lines.append(f"{head} {c['excess_return']:+8.4f} {interval:>20} {hits:>9}  {verdict_text(c)}")
    lines += [
        f"  flips: {f['label']} h={f['h']}: {f['first_half']} -> {f['second_half']}" for f in grid["flips"]
    ]
    return lines


@app.command()
def promote(
    version: str = typer.Argument(..., help="the registered model version to make champion"),
    force: bool = typer.Option(False, "--force", help="move the alias even when the version is not better"),
    params_file: Path = typer.Option(
        paths.PARAMS, "--params", help="params.yaml (mlflow and evaluate sections)"
    ),
) -> None:
    """Compare a registered version with the champion on the current test split; promote it if better.

    Exits 0 when the version is the champion afterwards (moved, or already was), 1 when it is not
    (the comparison says why)."""
    import polars as pl

    from candle_ml.config import EvaluateParams, MlflowParams, parse_section, read_params
    from candle_ml.evaluation import score_bundle
    from candle_ml.loading import load_model_from
    from candle_ml.promotion import promote as promote_version
    from candle_ml.stageio import require_file
    from candle_ml.tracking import fail_fast, tracking_uri

    fail_fast()
    with user_errors(2):
        all_params = read_params(params_file)
        cfg = parse_section(all_params, "mlflow", MlflowParams, params_file)
        min_overlap = parse_section(all_params, "evaluate", EvaluateParams, params_file).min_overlap
        reference = pl.read_parquet(require_file(paths.REFERENCE, "dataset"))
        uri = tracking_uri()

        def score(bundle: Bundle) -> dict[str, Any]:
            return score_bundle(bundle, paths.CANDLES_DIR, reference, min_overlap)[0]

        candidate = load_model_from(f"models:/{cfg.registered_model}/{version}", uri)
        champion, lines = promote_version(cfg, uri, version, score(candidate.bundle), score, force)
    typer.echo("\n".join(lines))
    raise typer.Exit(0 if champion else 1)


if __name__ == "__main__":
    app()
