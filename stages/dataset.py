"""Stage ``dataset``: features + programmatic spans + human answers -> ``data/dataset/``.

Reads ``data/features/``, ``data/autolabel/spans.json``, the traders' exports
``data/annotations/human/*.json``, the feedback log ``data/annotations/feedback.jsonl`` and the
ranges traders reviewed ``data/annotations/reviewed.jsonl``;
writes ``dataset.parquet``, ``reference.parquet`` (every candle's reference label, for
evaluate), ``chart.parquet`` and ``chart_reference.parquet`` (the chart-pattern model's proposals
and marked spans), ``schema.json`` (what a model needs to rebuild its inputs), ``report.json``
(skipped annotations with examples, and every mark of a trader's own label whose end the dataset
learned elsewhere: ``learned_ends``), ``reports/dataset.json`` and ``metrics/dataset.json`` (headline).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import polars as pl
import typer

from candle_ml import paths
from candle_ml.annotations import Annotation, read_autolabel, read_human_annotations, read_reviewed
from candle_ml.chart.dataset import build_chart_dataset, chart_labels, for_chart_model
from candle_ml.config import AutolabelParams, DatasetParams, parse_section, read_params
from candle_ml.dataset import DatasetResult, build_dataset, load_series
from candle_ml.dataset_report import dataset_headline
from candle_ml.patterns import NO_PATTERN
from candle_ml.stage_outputs import ModelSchema, model_schema, read_features_index
from candle_ml.stageio import require_file, run_stage, write_json

log = logging.getLogger("candle_ml.dataset")


def main(params_file: Path = typer.Option(paths.PARAMS, "--params", help="params.yaml to read")) -> None:
    def run() -> None:
        all_params = read_params(params_file)
        params = parse_section(all_params, "dataset", DatasetParams, params_file)
        chart_params = parse_section(all_params, "autolabel", AutolabelParams, params_file).chart
        rules = chart_params.rules
        auto = read_autolabel(require_file(paths.AUTOLABEL_SPANS, "autolabel"))
        features_index = read_features_index(paths.FEATURES_DIR)
        series, trimmed = load_series(paths.FEATURES_DIR, features_index.series, auto.coverage)
        human, torn = read_human_annotations(paths.HUMAN_DIR, paths.FEEDBACK_LOG)
        programmatic = [Annotation(sp, "autolabel") for sp in auto.annotations]
        # Chart patterns (weeks long) go to the chart model; the candle model learns the rest.
        charts = set(chart_labels(auto.chart_labels, human, series, params.chart_min_candles))
        everything = human + programmatic
        to_chart = for_chart_model(everything, charts, series, params.chart_min_candles)
        result = build_dataset(
            series,
            [a for a, c in zip(human, to_chart[: len(human)], strict=True) if not c],
            [a for a in programmatic if a.span.label not in charts],
            auto.label_priority,
            params,
            reviewed=read_reviewed(paths.HUMAN_DIR, paths.REVIEWED_LOG),
        )
        chart_rows, chart_reference = build_chart_dataset(
            series, [a for a, c in zip(everything, to_chart, strict=True) if c], params.split, rules
        )
        metrics = {
            **result.metrics,
            "warmup_rows_dropped": sum(e.warmup_rows_dropped for e in features_index.series) + trimmed,
            "feedback_torn_lines": torn,
            "human_annotations": len(human),
            "chart_labels": sorted(charts),
            "chart_proposals": chart_rows.height,
            "chart_proposals_marked": chart_rows.filter(pl.col("label") != NO_PATTERN).height,
            "chart_spans_real": chart_reference.height,
        }
        write_outputs(
            result,
            chart_rows,
            chart_reference,
            model_schema(result.schema, features_index, chart_params),
            metrics,
        )
        log_summary(result, chart_rows, chart_reference, metrics)

    run_stage(run)


def write_outputs(
    result: DatasetResult,
    chart_rows: pl.DataFrame,
    chart_reference: pl.DataFrame,
    schema: ModelSchema,
    metrics: dict,
) -> None:
    """``data/dataset/`` replaced whole, then the report and the headline."""
    shutil.rmtree(paths.DATASET_DIR, ignore_errors=True)
    paths.DATASET_DIR.mkdir(parents=True)
    result.frame.write_parquet(paths.DATASET)
    result.reference.write_parquet(paths.REFERENCE)
    chart_rows.write_parquet(paths.CHART_DATASET)
    chart_reference.write_parquet(paths.CHART_REFERENCE)
    # (the chart rules' settings too: the proposals' smoothing, for the chart model)
    write_json(paths.SCHEMA, schema)
    write_json(paths.DATASET_REPORT, result.report | {"learned_ends": result.learned_ends})
    write_json(paths.report_file("dataset"), metrics)
    write_json(paths.metrics_file("dataset"), dataset_headline(metrics))


def log_summary(
    result: DatasetResult, chart_rows: pl.DataFrame, chart_reference: pl.DataFrame, metrics: dict
) -> None:
    """What the stage made, and each kind of skipped annotation with examples."""
    for reason, examples in result.report["examples"].items():
        # TA-Lib spans in the warm-up are expected and nothing a user can act on (counted in the
        # report); anything touching human work is a warning.
        level = logging.DEBUG if all(e.startswith("autolabel:") for e in examples) else logging.WARNING
        log.log(
            level,
            "skipped %d annotation(s) (%s), e.g.:\n  %s",
            result.report["skipped_annotations"][reason],
            reason,
            "\n  ".join(examples),
        )
    log.info(
        "chart patterns: %d proposals (%d marked), %d marked spans on real series",
        chart_rows.height,
        chart_rows.filter(pl.col("label") != NO_PATTERN).height,
        chart_reference.height,
    )
    log.info(
        "dataset: %d rows (%s), labels: %s",
        result.frame.height,
        ", ".join(f"{k}={v}" for k, v in metrics["split_rows"].items()),
        metrics["label_counts"],
    )


if __name__ == "__main__":
    typer.run(main)
