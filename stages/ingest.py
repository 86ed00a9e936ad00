"""Stage ``ingest``: bundled real OHLCV + user files -> ``data/candles/`` (validated canonical candles).

Writes one ``{PAIR}_{TIMEFRAME}.parquet`` per series, ``index.json`` and ``reports/ingest.json``.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import typer

from candle_ml import paths
from candle_ml.config import IngestParams, load_section
from candle_ml.ingest import augmented, ingest, ingest_metrics, series_index
from candle_ml.stageio import run_stage, write_json

log = logging.getLogger("candle_ml.ingest")


def main(params_file: Path = typer.Option(paths.PARAMS, "--params", help="params.yaml to read")) -> None:
    def run() -> None:
        params = load_section("ingest", IngestParams, params_file)
        series = ingest(params)
        series += augmented(series, params.augment)
        shutil.rmtree(paths.CANDLES_DIR, ignore_errors=True)
        paths.CANDLES_DIR.mkdir(parents=True)
        for s in series:
            s.candles.write_parquet(paths.CANDLES_DIR / f"{s.key}.parquet")
            log.info("%s: %d candles from %s", s.key, s.candles.height, s.source)
        write_json(paths.CANDLES_DIR / paths.INDEX, series_index(series))
        write_json(paths.report_file("ingest"), ingest_metrics(series))

    run_stage(run)


if __name__ == "__main__":
    typer.run(main)
