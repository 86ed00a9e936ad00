"""Model registry: ``train.model_type`` -> the class that fits, predicts, saves and loads it.

A new model type (a sequence model, say) plugs in with one module exposing a class that
follows ``PatternModel`` (its ``params_type`` included), one entry in ``MODEL_TYPES`` and a
``TrainParams`` field of that name and type (params.yaml's ``train.<model_type>`` section);
tests/test_models.py checks all three. docs/contributing.md has the checklist.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from candle_ml.errors import ConfigError
from candle_ml.models.random_forest import RandomForestModel
from candle_ml.models.xgboost_model import XGBoostModel
from candle_ml.models.xgboost_spark import SparkXGBoostModel


class PatternModel(Protocol):
    model_type: ClassVar[str]  # its key in MODEL_TYPES and train.model_type
    file_name: ClassVar[str]  # the fitted model's file inside the bundle
    params_type: ClassVar[type]  # its hyperparameters: TrainParams' field named model_type

    def __init__(self, params: Any, n_classes: int, seed: int = 0, device: str = "cpu") -> None: ...
    @classmethod
    def load(cls, directory: Path) -> PatternModel: ...  # what save wrote

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


MODEL_TYPES: dict[str, type[PatternModel]] = {
    "xgboost": XGBoostModel,
    "random_forest": RandomForestModel,
    "xgboost_spark": SparkXGBoostModel,  # trained on Spark (the spark extra), served like xgboost
}


class UnknownModelType(ConfigError):
    """``train.model_type`` names no registered model."""


def model_class(model_type: str) -> type[PatternModel]:
    try:
        return MODEL_TYPES[model_type]
    except KeyError:
        raise UnknownModelType(
            f"train.model_type: unknown model type '{model_type}' (supported: {', '.join(MODEL_TYPES)})"
        ) from None


def hyperparams(train: Any) -> Any:
    """``train.<model_type>``: the registered class's params section of a ``TrainParams``."""
    cls = model_class(train.model_type)
    section = getattr(train, cls.model_type, None)
    if not isinstance(section, cls.params_type):
        raise ConfigError(f"train.{cls.model_type}: expected {cls.params_type.__name__} settings")
    return section


def create_model(train: Any, n_classes: int) -> PatternModel:
    """A fresh model of ``train.model_type`` with its own params section, seed and device."""
    return model_class(train.model_type)(hyperparams(train), n_classes, train.seed, train.device)


def load_model(model_type: str, directory: Path) -> PatternModel:
    return model_class(model_type).load(directory)
