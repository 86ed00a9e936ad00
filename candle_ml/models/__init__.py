"""Model registry: ``train.model_type`` -> the class that fits, predicts, saves and loads it.

A new model type (a sequence model, say) plugs in with one module exposing a
class with the ``PatternModel`` methods and one entry in ``MODEL_TYPES``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from candle_ml.errors import ConfigError
from candle_ml.models.random_forest import RandomForestModel
from candle_ml.models.xgboost_model import XGBoostModel
from candle_ml.models.xgboost_spark import SparkXGBoostModel


class PatternModel(Protocol):
    model_type: str
    file_name: str  # the fitted model's file inside the bundle

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        sample_weight: np.ndarray | None,
        X_val: np.ndarray | None,
        y_val: np.ndarray | None,
    ) -> dict[str, Any]: ...
    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...
    def set_threads(self, n: int | None) -> None: ...
    def feature_importance(self) -> np.ndarray: ...
    def save(self, directory: Path) -> None: ...
    def log_native(self, name: str, example: np.ndarray) -> Any: ...  # log with the library's MLflow flavor


# Each class follows PatternModel and has a ``load(directory)`` classmethod.
MODEL_TYPES: dict[str, Any] = {
    "xgboost": XGBoostModel,
    "random_forest": RandomForestModel,
    "xgboost_spark": SparkXGBoostModel,  # trained on Spark (the spark extra), served like xgboost
}


class UnknownModelType(ConfigError):
    """``train.model_type`` names no registered model."""


def model_class(model_type: str) -> Any:
    try:
        return MODEL_TYPES[model_type]
    except KeyError:
        raise UnknownModelType(
            f"train.model_type: unknown model type '{model_type}' (supported: {', '.join(MODEL_TYPES)})"
        ) from None


def create_model(model_type: str, hyperparams: Any, n_classes: int, seed: int, device: str) -> PatternModel:
    return model_class(model_type)(hyperparams, n_classes, seed, device)


def load_model(model_type: str, directory: Path) -> PatternModel:
    return model_class(model_type).load(directory)
