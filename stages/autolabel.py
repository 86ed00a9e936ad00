"""Stage ``autolabel``: ``data/candles/`` -> ``data/autolabel/spans.json`` (TA-Lib CDL* spans,
and the chart patterns of ``autolabel.chart_patterns``).

Also records, per series, from which candle it is labeled (before the patterns' lookback
candles are unknown, not ``O``) and the label priority the dataset stage paints by.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import polars as pl
import typer

from candle_ml import paths
from candle_ml.annotations import Span, write_annotation_file
from candle_ml.autolabel import (
    autolabel,
    chart_spans,
    check_patterns,
    label_priority,
    lookback,
    spans_per_label,
)
from candle_ml.chart.patterns import check_chart_patterns
from candle_ml.config import AutolabelParams, load_section
from candle_ml.stage_outputs import read_candles_index
from candle_ml.stageio import run_stage, write_json

log = logging.getLogger("candle_ml.autolabel")

RARE_SPANS = 20  # fewer spans than this: warn that the label is hard to learn


def main(params_file: Path = typer.Option(paths.PARAMS, "--params", help="params.yaml to read")) -> None:
    def run() -> None:
        params = load_section("autolabel", AutolabelParams, params_file)
        patterns = check_patterns(params.patterns)
        charts = check_chart_patterns(params.chart_patterns)
        rules = params.chart.rules
        skip = lookback(patterns)
        index = read_candles_index(paths.CANDLES_DIR).series
        shutil.rmtree(paths.AUTOLABEL_DIR, ignore_errors=True)
        paths.AUTOLABEL_DIR.mkdir(parents=True)
        spans: list[Span] = []
        coverage = {}
        for entry in index:
            candles = pl.read_parquet(paths.CANDLES_DIR / entry.file)
            key = entry.key
            found = autolabel(candles, patterns, entry.pair, entry.timeframe)
            found_charts = chart_spans(candles, charts, rules, entry.pair, entry.timeframe)
            spans.extend(found + found_charts)
            coverage[key] = {"labeled_from": int(candles["time"][skip]) if candles.height > skip else None}
            log.info("%s: %d candlestick and %d chart-pattern spans", key, len(found), len(found_charts))
        priority = label_priority(patterns)
        write_annotation_file(
            paths.AUTOLABEL_SPANS,
            spans,
            label_priority=priority,
            chart_labels=charts,
            coverage=coverage,
            lookback=skip,
        )
        counts = spans_per_label(spans, priority + charts)
        write_json(
            paths.report_file("autolabel"),
            {"spans": len(spans), "spans_per_label": counts, "lookback_candles": skip},
        )
        rare = [k for k, v in counts.items() if v < RARE_SPANS]
        if rare:
            log.warning("labels with fewer than %d spans (hard to learn): %s", RARE_SPANS, ", ".join(rare))

    run_stage(run)


if __name__ == "__main__":
    typer.run(main)
