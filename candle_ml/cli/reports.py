"""The commands that report on a model: ``outcomes`` (do the patterns matter on a trader's own
series?), ``history`` (what the server predicted, and live precision), ``report`` and ``promote``
(``@champion`` only moves to a better version)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from candle_ml import paths
from candle_ml.candle_files import read_candle_file
from candle_ml.candles import parse_series_filename
from candle_ml.cli.common import user_errors
from candle_ml.errors import CandleMLError

if TYPE_CHECKING:
    from candle_ml.bundle import Bundle


def outcomes(
    input_files: list[Path] = typer.Argument(
        ..., help="candles, one series a file: .csv, .txt or .parquet (named as ingest names them)"
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
    from candle_ml.outcome_report import model_ends, outcome_report, rule_ends
    from candle_ml.outcomes import OutcomeSeries, SpanEnd
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


def report(
    db: Path = typer.Option(paths.HISTORY_DB, help="the server's prediction history"),
    feedback_log: Path = typer.Option(paths.FEEDBACK_LOG, help="traders' answers (POST /feedback)"),
    model_version: str = typer.Option(None, help="one model version (default: each)"),
) -> None:
    """Live precision: of the predicted spans traders were shown, how many they confirmed,
    corrected or dismissed, per model version and label."""
    from candle_ml.live_precision import precision_report

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
    from candle_ml.outcome_report import verdict_text

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

        def score(bundle: Bundle) -> dict[str, Any]:  # imported here: the champion itself needs no score
            from candle_ml.evaluation import score_bundle

            return score_bundle(bundle, paths.CANDLES_DIR, reference, min_overlap)[0]

        def candidate() -> dict[str, Any]:
            from candle_ml.loading import load_model_from

            return score(load_model_from(f"models:/{cfg.registered_model}/{version}", uri).bundle)

        champion, lines = promote_version(cfg, uri, version, candidate, score, force)
    typer.echo("\n".join(lines))
    raise typer.Exit(0 if champion else 1)
