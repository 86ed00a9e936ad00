"""Stage ``featurize``: ``data/candles/`` -> ``data/features/`` (candle features + TA-Lib indicators).

Per series: ``featurize`` every candle, drop the warm-up rows, write the rest. Then measure
how much history a served request needs (``served_history``) and record it, with the
featurize config, in ``index.json`` so a model bundle can rebuild features without params.yaml.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import polars as pl
import typer

from candle_ml import paths
from candle_ml.config import FeaturizeParams, load_section
from candle_ml.convergence import served_history
from candle_ml.features import drop_warmup, feature_columns, featurize
from candle_ml.stage_outputs import FeatureSeriesEntry, FeaturesIndex, features_entry, read_candles_index
from candle_ml.stageio import run_stage, write_json
from candle_ml.timeframes import check_shorter

log = logging.getLogger("candle_ml.featurize")


def main(params_file: Path = typer.Option(paths.PARAMS, "--params", help="params.yaml to read")) -> None:
    def run() -> None:
        cfg = load_section("featurize", FeaturizeParams, params_file)
        index = read_candles_index(paths.CANDLES_DIR).series
        shutil.rmtree(paths.FEATURES_DIR, ignore_errors=True)
        paths.FEATURES_DIR.mkdir(parents=True)
        out_index: list[FeatureSeriesEntry] = []
        warmup: dict[str, int] = {}
        full: dict[str, pl.DataFrame] = {}
        columns: list[str] = []
        for entry in index:
            key = entry.key
            check_shorter(key, entry.timeframe, cfg.higher_timeframes)
            frame = full[key] = featurize(pl.read_parquet(paths.CANDLES_DIR / entry.file), cfg)
            kept, warmup[key] = drop_warmup(frame)
            columns = feature_columns(frame)
            if kept.height == 0:
                log.warning("%s: all %d candles are warm-up; series skipped", key, frame.height)
            kept.write_parquet(paths.FEATURES_DIR / entry.file)
            log.info("%s: %d feature rows, %d warm-up rows dropped", key, kept.height, warmup[key])
            out_index.append(features_entry(entry, kept, warmup[key]))
        served = served_history(full, warmup, cfg)
        history = served.candles
        log.log(logging.INFO if served.measured else logging.WARNING, served.how)
        write_json(
            paths.FEATURES_DIR / paths.INDEX,
            FeaturesIndex(
                series=out_index,
                feature_columns=columns,
                config=cfg,
                history_candles=history,
                # per column, so a model reading some features needs only their history
                history_by_column=served.by_column,
                warmup_by_column=served.warmup_by_column,
            ),
        )
        write_json(
            paths.report_file("featurize"),
            {
                "rows": sum(e.rows for e in out_index),
                "feature_columns": len(columns),
                "warmup_rows_dropped": sum(warmup.values()),
                "warmup_rows_dropped_per_series": warmup,
                "history_candles": history,
            },
        )

    run_stage(run)


if __name__ == "__main__":
    typer.run(main)
