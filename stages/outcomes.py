"""Stage ``outcomes``: candles + the rules' spans + ``models/`` -> ``reports/outcomes.json``,
``metrics/outcomes.json``, ``reports/outcomes.csv``, ``reports/outcomes_*.png``.

Do patterns matter? Forward returns after every label, as the rules find it and as the model
predicts it, against matched random entries, with clustered intervals, multiple-testing
correction and a verdict per label and horizon (``candle_ml/outcomes.py``). Real series only:
the training-only augmented copies are not markets.
"""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl
import typer

from candle_ml import paths
from candle_ml.annotations import read_autolabel
from candle_ml.bundle import load_bundle
from candle_ml.chart.evaluation import first_test_times
from candle_ml.config import AutolabelParams, OutcomesParams, parse_section, read_params
from candle_ml.outcome_report import (
    excess_table,
    headline,
    label_summary,
    model_ends,
    outcome_report,
    rule_ends,
    verdict_text,
    write_distribution_plot,
)
from candle_ml.outcomes import OutcomeSeries, SpanEnd
from candle_ml.stage_outputs import real_series
from candle_ml.stageio import require_file, run_stage, write_json

log = logging.getLogger("candle_ml.outcomes")


def main(params_file: Path = typer.Option(paths.PARAMS, "--params", help="params.yaml to read")) -> None:
    def run() -> None:
        all_params = read_params(params_file)
        params = parse_section(all_params, "outcomes", OutcomesParams, params_file)
        chart_rules = parse_section(all_params, "autolabel", AutolabelParams, params_file).chart.rules
        bundle = load_bundle(paths.MODEL_DIR)
        frames = {(e.pair, e.timeframe): c for e, c in real_series(paths.CANDLES_DIR)}
        series = [OutcomeSeries.from_frame(p, tf, c) for (p, tf), c in frames.items()]
        rules = read_autolabel(require_file(paths.AUTOLABEL_SPANS, "autolabel"))
        model: list[SpanEnd] = []
        for (pair, tf), candles in frames.items():
            model += model_ends(bundle, pair, tf, candles)
        reference = pl.read_parquet(require_file(paths.REFERENCE, "dataset"))
        report, samples = outcome_report(
            series,
            {
                "rules": rule_ends(
                    rules.annotations,
                    series,
                    rules.chart_labels,
                    chart_rules,
                ),
                "model": model,
            },
            params,
            first_test_times(reference),
        )
        report["model_version"] = bundle.digest
        report["summary"] = label_summary(report["sources"]["model"], params.summary_horizon)
        write_json(paths.OUTCOMES_REPORT, report)
        write_json(paths.OUTCOMES_METRICS, headline(report))
        excess_table(report, params.summary_horizon).write_csv(paths.OUTCOMES_PLOT)
        for name, title in (("rules", "the rules' spans"), ("model", "the model's spans")):
            write_distribution_plot(
                samples[name],
                params.summary_horizon,
                paths.REPORTS_DIR / f"outcomes_{name}.png",
                f"Net return {params.summary_horizon} candles after {title} (line) vs random entries (grey)",
            )
        for name, grid in report["sources"].items():
            cells = [c for c in grid["cells"] if c["h"] == params.summary_horizon]
            log.info(
                "%s: %d of %d label x horizon cells show an edge; at h=%d: %s",
                name,
                grid["edges"],
                len(grid["cells"]),
                params.summary_horizon,
                ", ".join(f"{c['label']} {verdict_text(c)}" for c in cells if c["verdict"] == "edge")
                or "none",
            )

    run_stage(run)


if __name__ == "__main__":
    typer.run(main)
