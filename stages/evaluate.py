"""Stage ``evaluate``: ``models/`` + candles + reference labels -> ``reports/``, ``metrics/``, ``plots/``.

Predicts every candle exactly as the server does (``Bundle.predict`` on raw candles), scores the
test split per candle and per span against the reference and two baselines, and logs the
metrics and plots to the model's MLflow run.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import typer

from candle_ml import paths
from candle_ml.bundle import Bundle, load_bundle
from candle_ml.chart.evaluation import first_test_times, score_chart
from candle_ml.config import EvaluateParams, MlflowParams, parse_section, read_params
from candle_ml.evaluation import (
    evaluation_headline,
    feature_importance,
    log_evaluation,
    per_class_table,
    reliability,
    score_bundle,
    write_plots,
)
from candle_ml.promotion import Scorer, promote, version_of_run
from candle_ml.stage_outputs import read_model_schema
from candle_ml.stageio import require_file, run_stage, write_json
from candle_ml.tracking import connect, guarded, tracking_uri

log = logging.getLogger("candle_ml.evaluate")


def main(params_file: Path = typer.Option(paths.PARAMS, "--params", help="params.yaml to read")) -> None:
    def run() -> None:
        all_params = read_params(params_file)
        params = parse_section(all_params, "evaluate", EvaluateParams, params_file)
        cfg = parse_section(all_params, "mlflow", MlflowParams, params_file)
        bundle = load_bundle(paths.MODEL_DIR)
        reference = pl.read_parquet(require_file(paths.REFERENCE, "dataset"))
        if read_model_schema(paths.SCHEMA).split.method == "random":
            log.warning(
                "dataset.split.method=random: test candles are scattered, so span metrics are only indicative"
            )
        metrics, test = score_bundle(bundle, paths.CANDLES_DIR, reference, params.min_overlap)
        chart: dict[str, Any] = {}
        if bundle.chart_model is not None:
            marked = pl.read_parquet(require_file(paths.CHART_REFERENCE, "dataset"))
            chart = score_chart(
                bundle.chart_model, paths.CANDLES_DIR, marked, first_test_times(reference), params.min_overlap
            )
            metrics["chart_patterns"] = chart
            log.info(
                "chart patterns, test: span_f1_macro %.3f over %d marked spans, worst %s %.3f",
                chart["span_f1_macro"],
                chart["spans_marked"],
                chart["worst_span_label"],
                chart["worst_span_f1"],
            )
        write_outputs(metrics, test, bundle, params)
        track(cfg, bundle, metrics, reference, params)

    run_stage(run)


def write_outputs(
    metrics: dict[str, Any], test: pl.DataFrame, bundle: Bundle, params: EvaluateParams
) -> None:
    """``reports/evaluate.json``, the headline, the plots' tables and figures."""
    shutil.rmtree(paths.PLOTS_DIR, ignore_errors=True)
    write_json(paths.EVALUATE_REPORT, metrics)  # every number, per class and per pattern
    write_json(paths.EVALUATE_METRICS, evaluation_headline(metrics))
    per_class_table(metrics).write_csv(paths.PER_CLASS_PLOT)
    reliability(test).write_csv(paths.RELIABILITY_PLOT)
    write_plots(
        paths.PLOTS_DIR,
        test.filter(pl.col("predicted").is_not_null()),
        feature_importance(bundle),
        metrics,
        bundle.meta.label_names,
        params.top_features,
    )
    log.info(
        "test: accuracy %.3f, f1_macro %.3f, span_f1_macro %.3f, worst %s %.3f "
        "(majority %.3f, TA-Lib rule %.3f); ECE %.4f (uncalibrated %.4f, temperature %.3f)",
        metrics["accuracy"],
        metrics["f1_macro"],
        metrics["span_f1_macro"],
        metrics["worst_span_label"],
        metrics["worst_span_f1"],
        metrics["baselines"]["majority"]["span_f1_macro"],
        metrics["baselines"]["talib_rule"]["span_f1_macro"],
        metrics["calibration"].get("ece", float("nan")),
        metrics["calibration"].get("ece_uncalibrated", float("nan")),
        metrics["calibration"]["temperature"],
    )


def track(
    cfg: MlflowParams,
    bundle: Bundle,
    metrics: dict[str, Any],
    reference: pl.DataFrame,
    params: EvaluateParams,
) -> None:
    """The scores onto the model's MLflow run, and ``@champion`` moved if this version beats it."""
    run_id = bundle.meta.training.run_id
    if run_id and connect(cfg):
        guarded(
            cfg,
            "logging evaluation",
            log_evaluation,
            run_id,
            metrics,
            paths.EVALUATE_REPORT,
            paths.PLOTS_DIR,
        )
        if cfg.registered_model and cfg.champion_alias:
            guarded(
                cfg,
                "promoting the champion",
                promote_run,
                cfg,
                run_id,
                metrics,
                lambda other: score_bundle(other, paths.CANDLES_DIR, reference, params.min_overlap)[0],
            )
    elif not run_id:
        log.warning(
            "the bundle has no MLflow run (tracking was unavailable at train time); metrics not logged"
        )


def promote_run(cfg: MlflowParams, run_id: str, report: dict[str, Any], score: Scorer) -> None:
    """Move the champion alias to this run's version if it beats the champion on this test split."""
    version = version_of_run(cfg, tracking_uri(), run_id)
    if version is None:
        return
    _, lines = promote(cfg, tracking_uri(), version, lambda: report, score)
    log.info("champion: %s", "\n  ".join(lines))


if __name__ == "__main__":
    typer.run(main)
