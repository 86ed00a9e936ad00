"""Stage ``holdout``: ``models/`` -> ``metrics/holdout.json``, ``reports/holdout.json``.

The model on real series it never trained on (other instruments, another period), predicted as
the server predicts them and scored against TA-Lib's signals there: how far it generalizes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from candle_ml import paths
from candle_ml.bundle import load_bundle
from candle_ml.config import AutolabelParams, EvaluateParams, HoldoutParams, parse_section, read_params
from candle_ml.holdout import (
    holdout_chart_headline,
    holdout_headline,
    load_holdout,
    score_holdout,
    score_holdout_chart,
)
from candle_ml.stageio import run_stage, write_json

log = logging.getLogger("candle_ml.holdout")


def main(params_file: Path = typer.Option(paths.PARAMS, "--params", help="params.yaml to read")) -> None:
    def run() -> None:
        all_params = read_params(params_file)
        params = parse_section(all_params, "holdout", HoldoutParams, params_file)
        patterns = parse_section(all_params, "autolabel", AutolabelParams, params_file).patterns
        min_overlap = parse_section(all_params, "evaluate", EvaluateParams, params_file).min_overlap
        bundle = load_bundle(paths.MODEL_DIR)
        report = {}
        for name in params.series:
            series = load_holdout(name)
            report[series.key] = score_holdout(bundle, series, patterns, min_overlap)
            r = report[series.key]
            r["chart_patterns"] = score_holdout_chart(bundle, series, min_overlap)
            log.info(
                "%s (%d candles): span_f1_macro %.3f, f1_macro %.3f, worst %s %.3f",
                series.key,
                r["candles"],
                r["span_f1_macro"],
                r["f1_macro"],
                r["worst_span_label"],
                r["worst_span_f1"],
            )
            if r["chart_patterns"]:
                c = r["chart_patterns"]
                log.info(
                    "%s chart patterns: span_f1_macro %.3f over %d spans the rules find, worst %s %.3f",
                    series.key,
                    c["span_f1_macro"],
                    c["spans_marked"],
                    c["worst_span_label"],
                    c["worst_span_f1"],
                )
        write_json(paths.HOLDOUT_REPORT, report)
        write_json(paths.HOLDOUT_METRICS, holdout_headline(report))
        write_json(paths.HOLDOUT_CHART_METRICS, holdout_chart_headline(report))

    run_stage(run)


if __name__ == "__main__":
    typer.run(main)
