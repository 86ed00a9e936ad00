"""Stage ``train``: ``data/dataset/`` -> the model bundle in ``models/``, tracked as an MLflow run.

Without a reachable MLflow store the bundle is still written (``mlflow.required: false``).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import msgspec
import polars as pl
import typer

from candle_ml import paths
from candle_ml.bundle import save_bundle, with_run
from candle_ml.chart.model import train_chart_model
from candle_ml.config import MlflowParams, TrainParams, parse_section, read_params
from candle_ml.models import model_class
from candle_ml.stage_outputs import read_model_schema
from candle_ml.stageio import require_file, run_stage
from candle_ml.tracking import connect, guarded, run_name
from candle_ml.training import bundle_meta, calibrated, candles_example, log_to_mlflow, run_record, train

log = logging.getLogger("candle_ml.train")


def main(params_file: Path = typer.Option(paths.PARAMS, "--params", help="params.yaml to read")) -> None:
    def run() -> None:
        all_params = read_params(params_file)
        params = parse_section(all_params, "train", TrainParams, params_file)
        cfg = parse_section(all_params, "mlflow", MlflowParams, params_file)
        model_class(params.model_type)  # an unknown type fails before the dataset is read
        frame = pl.read_parquet(require_file(paths.DATASET, "dataset"))
        schema = read_model_schema(paths.SCHEMA)
        result = train(frame, schema, params)
        log.info(
            "%s trained in %.1f s on %d rows, %d classes (%s)",
            params.model_type,
            result.seconds,
            sum(result.class_counts["train"].values()),
            len(result.classes),
            result.fit_info,
        )
        reference = pl.read_parquet(require_file(paths.REFERENCE, "dataset"))
        chart_model, chart_info = train_chart_model(
            pl.read_parquet(require_file(paths.CHART_DATASET, "dataset")),
            msgspec.to_builtins(schema.chart),
            params.chart,
            params.seed,
        )
        log.info("chart-pattern model: %s", chart_info)

        meta = bundle_meta(result, schema, params)
        meta = msgspec.structs.replace(meta, chart=chart_model.settings if chart_model else None)
        meta = calibrated(meta, result.model, params, paths.CANDLES_DIR, reference)

        shutil.rmtree(paths.MODEL_DIR, ignore_errors=True)
        if not connect(cfg):
            save_bundle(paths.MODEL_DIR, result.model, meta, chart_model, run_record(result, None))
            return
        import mlflow

        with mlflow.start_run(run_name=run_name()) as active:
            run = run_record(result, active.info.run_id)
            save_bundle(paths.MODEL_DIR, result.model, meta, chart_model, run)
            guarded(
                cfg,
                "logging the training run",
                log_to_mlflow,
                result,
                all_params,
                with_run(meta, run),
                cfg,
                params_file,
                paths.MODEL_DIR,
                candles_example(paths.CANDLES_DIR, meta.min_history),
            )
            log.info("MLflow run %s in experiment '%s'", active.info.run_id, cfg.experiment)

    run_stage(run)


if __name__ == "__main__":
    typer.run(main)
