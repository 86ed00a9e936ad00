"""Stage ``learning_curve``: how many marked spans until the model is useful.

Trains the configured model on spans a simulated trader marked (``learning_curve.spans_per_class``
of each label, with human-like errors) and scores each on the test split against the clean rule
labels: ``reports/learning_curve.csv`` (a DVC plot), ``reports/learning_curve.json`` (per label),
and the ``learning_curve.headline`` budget's scores in ``metrics/curve.json``; the same for the
chart-pattern model (``reports/chart_curve.csv``, ``chart_f1`` in ``metrics/curve.json``); and,
for ``learning_curve.own_patterns``, each simulated trader's marks of each pattern no rule knows,
scored against its complete truth (``reports/own_patterns.csv``, ``own_span_f1_worst``).
An empty ``spans_per_class`` skips the fits and writes empty outputs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl
import typer

from candle_ml import paths
from candle_ml.annotations import read_autolabel
from candle_ml.chart.evaluation import first_test_times
from candle_ml.config import (
    AutolabelParams,
    DatasetParams,
    EvaluateParams,
    LearningCurveParams,
    TrainParams,
    parse_section,
    read_params,
)
from candle_ml.dataset import load_series
from candle_ml.learning_curve import CHART_CURVE_COLUMNS, CURVE_COLUMNS, candle_curve, chart_curve
from candle_ml.own_curve import OWN_CURVE_COLUMNS, own_curve
from candle_ml.stage_outputs import read_features_index
from candle_ml.stageio import require_file, run_stage, write_json

log = logging.getLogger("candle_ml.learning_curve")


def main(params_file: Path = typer.Option(paths.PARAMS, "--params", help="params.yaml to read")) -> None:
    def run() -> None:
        all_params = read_params(params_file)
        params = parse_section(all_params, "learning_curve", LearningCurveParams, params_file)
        dataset_params = parse_section(all_params, "dataset", DatasetParams, params_file)
        train_params = parse_section(all_params, "train", TrainParams, params_file)
        min_overlap = parse_section(all_params, "evaluate", EvaluateParams, params_file).min_overlap
        chart_params = parse_section(all_params, "autolabel", AutolabelParams, params_file).chart
        rows: list[dict] = []
        chart_rows: list[dict] = []
        own_rows: list[dict] = []
        if params.spans_per_class or params.own_patterns:
            auto = read_autolabel(require_file(paths.AUTOLABEL_SPANS, "autolabel"))
            features_index = read_features_index(paths.FEATURES_DIR)
            series, _ = load_series(paths.FEATURES_DIR, features_index.series, auto.coverage)
        if params.own_patterns:  # a trader's own patterns, marked as people mark them
            own_rows = own_curve(
                series,
                [sp for sp in auto.annotations if sp.label in set(auto.label_priority)],
                auto.label_priority,
                features_index,
                paths.CANDLES_DIR,
                dataset_params,
                train_params,
                params,
                min_overlap,
            )
        if params.spans_per_class:
            reference = pl.read_parquet(require_file(paths.REFERENCE, "dataset"))
            candle_labels, chart_labels = set(auto.label_priority), set(auto.chart_labels)
            candle_spans = [sp for sp in auto.annotations if sp.label in candle_labels]
            rows = candle_curve(
                series,
                candle_spans,
                auto.label_priority,
                features_index,
                paths.CANDLES_DIR,
                reference,
                dataset_params,
                train_params,
                params,
                min_overlap,
            )
            chart_spans = [sp for sp in auto.annotations if sp.label in chart_labels]
            if chart_spans:
                chart_rows = chart_curve(
                    series,
                    chart_spans,
                    chart_params.rules,
                    paths.CANDLES_DIR,
                    first_test_times(reference),
                    dataset_params,
                    train_params,
                    params,
                    min_overlap,
                )
        write_outputs(rows, chart_rows, own_rows, params)

    run_stage(run)


def write_outputs(
    rows: list[dict], chart_rows: list[dict], own_rows: list[dict], params: LearningCurveParams
) -> None:
    """The report, the three tables (empty ones keep their columns) and the headline budget's scores."""
    for kind, curve in (("candlestick", rows), ("chart", chart_rows)):
        for r in curve:
            log.info(
                "%s: %4d spans per label (fewest %d, %d candles reviewed): span_f1_macro %.3f",
                kind,
                r["spans_per_class"],
                r["fewest_marked"],
                r["reviewed_candles"],
                r["span_f1_macro"],
            )
    write_json(
        paths.LEARNING_CURVE_REPORT, {"curve": rows, "chart_curve": chart_rows, "own_patterns": own_rows}
    )
    pl.DataFrame(
        [{k: r[k] for k in OWN_CURVE_COLUMNS} for r in own_rows], schema=OWN_CURVE_COLUMNS
    ).write_csv(paths.OWN_CURVE_TABLE)
    pl.DataFrame([{k: r[k] for k in CURVE_COLUMNS} for r in rows], schema=CURVE_COLUMNS).write_csv(
        paths.LEARNING_CURVE_PLOT
    )
    pl.DataFrame(
        [{k: r[k] for k in CHART_CURVE_COLUMNS} for r in chart_rows], schema=CHART_CURVE_COLUMNS
    ).write_csv(paths.CHART_CURVE_PLOT)
    # The column names of metrics/evaluate.json (span_f1_macro: the candle model, chart_f1: the
    # chart model), so `dvc metrics show` gains a row, not columns.
    candle = next((r for r in rows if r["spans_per_class"] == params.headline), None)
    chart = next((r for r in chart_rows if r["spans_per_class"] == params.headline), None)
    headline = {"span_f1_macro": candle["span_f1_macro"]} if candle else {}
    if own_rows:  # the worst own pattern x trader cell; the table is reports/own_patterns.csv
        headline["own_span_f1_worst"] = min(r["span_f1"] for r in own_rows)
    write_json(
        paths.LEARNING_CURVE_METRICS, headline | ({"chart_f1": chart["span_f1_macro"]} if chart else {})
    )


if __name__ == "__main__":
    typer.run(main)
