"""Training: the labeled dataset -> a fitted model, its bundle metadata, and its MLflow run.

The model type comes from ``train.model_type`` through the registry in
``candle_ml.models``; classes are weighted (``train.class_weight``) because most
candles are ``O``; XGBoost early-stops on the val split. The bundle carries the
featurize/window/label config so the server needs no params.yaml.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd
import polars as pl
from sklearn.utils.class_weight import compute_sample_weight

from candle_ml.annotations import HUMAN_SOURCES
from candle_ml.bundle import Bundle, BundleMeta, RunRecord, TrainingInfo
from candle_ml.calibration import fit_temperature
from candle_ml.candles import CANDLE_COLUMNS
from candle_ml.config import MlflowParams, TrainParams
from candle_ml.errors import ConfigError, DatasetError
from candle_ml.input_selection import choose_inputs, column_history, input_shares, read_history
from candle_ml.label_style import label_colors
from candle_ml.models import PatternModel, create_model, model_class
from candle_ml.models.sklearn_api import pinned
from candle_ml.patterns import NO_PATTERN
from candle_ml.stage_outputs import ModelSchema, read_candles_index, real_series
from candle_ml.tracking import dataset_version, flatten, git_commit, queued_experiment, run_tags

log = logging.getLogger("candle_ml.train")

PACKAGE_DIR = Path(__file__).resolve().parent
PYFUNC_CODE = PACKAGE_DIR / "mlflow_pyfunc.py"
PRICE_AND_VOLUME = CANDLE_COLUMNS[1:]


@dataclass
class TrainResult:
    model: PatternModel
    classes: list[str]
    fit_info: dict[str, Any]
    class_counts: dict[str, dict[str, int]]
    seconds: float
    example: np.ndarray  # a few training inputs: the logged model's input example and signature
    input_columns: list[str]  # the window columns the model reads (train.top_inputs), in order


def training_classes(frame: pl.DataFrame, labels: list[str]) -> list[str]:
    """The labels the model can learn: those with rows in train, in the dataset's order."""
    present = set(frame.filter(pl.col("split") == "train")["label"].unique())
    missing = [lab for lab in labels if lab not in present]
    if missing:
        log.warning("labels with no training rows (the model cannot predict them): %s", ", ".join(missing))
    return [lab for lab in labels if lab in present]


def split_xy(
    frame: pl.DataFrame, inputs: list[str], classes: list[str], split: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs, class indices and which rows a trader labeled (exports or feedback) of one split."""
    part = frame.filter((pl.col("split") == split) & pl.col("label").is_in(classes))
    y = part["label"].replace_strict({c: i for i, c in enumerate(classes)}, return_dtype=pl.Int32).to_numpy()
    human = (
        part["source"].is_in(sorted(HUMAN_SOURCES)).fill_null(False).to_numpy()
        if "source" in part.columns
        else np.zeros(part.height, dtype=bool)
    )
    return part.select(inputs).to_numpy().astype(np.float32), y, human


def sample_weights(
    y: np.ndarray, mode: str, human: np.ndarray | None = None, human_weight: float = 1.0
) -> np.ndarray | None:
    """``balanced``: each class weighs the same in total (n / (k * count)); ``none``: no weights.

    Rows a trader labeled then weigh ``human_weight`` times as much: one answer outweighs the
    TA-Lib labels of look-alike candles, so a dismissal or correction actually moves the model.
    """
    weights = compute_sample_weight("balanced", y) if mode == "balanced" else None
    if human is None or human_weight == 1.0 or not human.any():
        return weights
    base = np.ones(len(y)) if weights is None else weights
    return base * np.where(human, human_weight, 1.0)


def train(frame: pl.DataFrame, schema: ModelSchema, params: TrainParams) -> TrainResult:
    """Pure core: fit the configured model on the train split (val for early stopping)."""
    if frame.filter(pl.col("split") == "train").height == 0:
        raise DatasetError("train: the dataset has no train rows (check dataset.split)")
    model_class(params.model_type)  # fail on an unknown type before any work
    if schema.encoding not in ("end", "window"):
        raise DatasetError(
            f"train: {params.model_type} needs dataset.encoding: end or window (got {schema.encoding})"
        )
    classes = training_classes(frame, schema.labels)
    inputs = schema.input_columns
    X, y, human = split_xy(frame, inputs, classes, "train")
    X_val, y_val, _ = split_xy(frame, inputs, classes, "val")
    weights = sample_weights(y, params.class_weight, human, params.human_weight)
    started = time.perf_counter()
    if 0 < params.top_inputs < len(inputs):
        share = input_shares(X, y, weights, X_val, y_val, params)
        own = [i for i, c in enumerate(classes) if c != NO_PATTERN and c not in set(schema.label_priority)]
        own_only = np.isin([c.rpartition("@")[0] for c in inputs], schema.own_label_features)
        kept = choose_inputs(
            share, own, own_only, column_history(schema, inputs), X, y, weights, X_val, y_val, params
        )
        log.info("top_inputs: the model reads %d of %d input columns", kept.size, len(inputs))
        X, X_val, inputs = X[:, kept], X_val[:, kept], [inputs[i] for i in kept]
    model = create_model(params, len(classes))
    info = model.fit(X, y, weights, X_val, y_val)
    seconds = time.perf_counter() - started
    counts = {
        split: {
            r["label"]: int(r["len"])
            for r in frame.filter(pl.col("split") == split)
            .group_by("label")
            .len()
            .sort("label")
            .iter_rows(named=True)
        }
        for split in ("train", "val", "test")
    }
    return TrainResult(model, classes, info, counts, seconds, X[:5], inputs)


def bundle_meta(result: TrainResult, schema: ModelSchema, params: TrainParams) -> BundleMeta:
    """The bundle's description: only what the data and params determine, so that the same inputs
    give the same bytes (this run's time, MLflow run and commit go in ``run_record``)."""
    warmup, history = read_history(schema, result.input_columns)
    return BundleMeta(
        model_type=params.model_type,
        labels=label_colors(result.classes),
        featurize=schema.featurize,
        window_size=schema.window.window_size,
        context=schema.window.context,
        anchor=schema.window.anchor,
        label_lengths={k: v for k, v in schema.label_lengths.items() if k in result.classes},
        feature_columns=schema.feature_columns,
        input_columns=result.input_columns,
        warmup=warmup,
        # The leftmost candle of the anchor's window needs converged features.
        min_history=max(history, warmup) + schema.window.before,
        label_priority=schema.label_priority,
        training=TrainingInfo(
            dataset_version=dataset_version(),
            params=msgspec.to_builtins(params),
            fit=dict(result.fit_info),
            class_counts=result.class_counts,
        ),
    )


def run_record(result: TrainResult, run_id: str | None) -> RunRecord:
    """This training run: when, which MLflow run and commit, how long the fit took."""
    return RunRecord(
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        run_id=run_id,
        git_commit=git_commit(),
        seconds=round(result.seconds, 2),
    )


def validation_probabilities(
    bundle: Bundle, candles_dir: Path, reference: pl.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """Uncalibrated probabilities and reference class of every val-split candle, predicted as served.

    The whole series goes through ``Bundle.predict``, so the candles (every one, not the
    dataset's sampled windows) have the class balance the server meets.
    """
    names = bundle.meta.label_names
    index = {name: i for i, name in enumerate(names)}
    val = reference.filter((pl.col("split") == "val") & pl.col("label").is_in(names))
    probas, classes = [], []
    for entry, candles in real_series(candles_dir):
        rows = val.filter((pl.col("pair") == entry.pair) & (pl.col("timeframe") == entry.timeframe))
        if rows.height == 0:
            continue
        pred = bundle.predict(candles, calibrated=False)
        at = np.searchsorted(pred.time, rows["time"].to_numpy())
        proba = pred.proba[at]
        has = ~np.isnan(proba[:, 0])
        probas.append(proba[has])
        classes.append(np.array([index[x] for x in rows["label"].to_list()])[has])
    if not probas:
        return np.empty((0, len(names))), np.empty(0, dtype=int)
    return np.concatenate(probas), np.concatenate(classes)


def calibrated(
    meta: BundleMeta, model: PatternModel, params: TrainParams, candles_dir: Path, reference: pl.DataFrame
) -> BundleMeta:
    """The bundle description with its decision thresholds and, by default, a fitted temperature."""
    unknown = sorted(set(params.thresholds) - set(meta.label_names))
    if unknown:
        raise ConfigError(
            f"train.thresholds: no label {', '.join(unknown)} in this model "
            f"(its labels: {', '.join(meta.label_names)})"
        )
    thresholds = {
        name: params.thresholds.get(name, params.threshold) for name in meta.label_names if name != NO_PATTERN
    }
    temperature = 1.0
    if params.calibration == "temperature":
        proba, classes = validation_probabilities(Bundle(meta, model, candles_dir), candles_dir, reference)
        temperature = fit_temperature(proba, classes)
        log.info("calibration: temperature %.3f fitted on %d val candles", temperature, len(classes))
    return msgspec.structs.replace(meta, temperature=temperature, thresholds=thresholds)


def candles_example(candles_dir: Path, min_history: int) -> pd.DataFrame:
    """What the raw-candle pyfunc takes: the last ``min_history + 5`` candles of the first stored
    series (real candles; the last 5 get labels), logged as its input example."""
    entry = read_candles_index(candles_dir).real()[0]
    frame = pl.read_parquet(candles_dir / entry.file).tail(min_history + 5)
    return frame.select(CANDLE_COLUMNS).to_pandas()


def log_to_mlflow(
    result: TrainResult,
    all_params: dict[str, Any],
    meta: BundleMeta,
    cfg: MlflowParams,
    params_file: Path,
    bundle_dir: Path,
    example: pd.DataFrame,
) -> None:
    """Record the run: params, data facts, tags, the native model and a raw-candle pyfunc."""
    import mlflow

    from candle_ml.pyfunc_model import signature

    mlflow.log_params(flatten(all_params))
    mlflow.log_params(
        {
            f"data.rows.{split}.{label}": n
            for split, c in result.class_counts.items()
            for label, n in c.items()
        }
    )
    mlflow.log_param("data.dataset_version", meta.training.dataset_version)
    mlflow.set_tags(
        run_tags(meta.model_type, all_params) | {"dataset_version": str(meta.training.dataset_version)}
    )
    mlflow.log_metrics(
        {f"fit.{k}": float(v) for k, v in meta.training.fit.items() if isinstance(v, int | float)}
        | {"calibration.temperature": meta.temperature}
    )
    mlflow.log_artifact(str(params_file))
    result.model.log_native("model", result.example)
    info = mlflow.pyfunc.log_model(
        name="candles_pyfunc",
        python_model=str(PYFUNC_CODE),
        artifacts={"bundle": str(bundle_dir.resolve())},
        code_paths=[str(PACKAGE_DIR)],  # the library alone: it never imports stages/ or serve/
        signature=signature(),
        input_example=example,
        pip_requirements=_pip_requirements(),
        registered_model_name=cfg.registered_model or None,
    )
    version = info.registered_model_version
    if not cfg.registered_model or version is None:
        return
    if queued_experiment():  # a variant being tried: registered, but the alias stays where it is
        log.info(
            "registered %s version %s (a queued experiment: @%s not moved)",
            cfg.registered_model,
            version,
            cfg.alias,
        )
        return
    mlflow.MlflowClient().set_registered_model_alias(cfg.registered_model, cfg.alias, version)
    log.info("registered %s version %s as @%s", cfg.registered_model, version, cfg.alias)


def _pip_requirements() -> list[str]:
    """The pyfunc's environment: what the bundle imports, at the versions installed here."""
    return pinned("numpy", "pandas", "polars", "talib", "msgspec", "sklearn", "skops", "xgboost", "yaml")
