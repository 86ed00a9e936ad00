"""XGBoost: gradient-boosted trees, early-stopped on the validation split, saved as UBJSON."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import xgboost as xgb

from candle_ml.config import XGBoostParams
from candle_ml.models.sklearn_api import SklearnClassifierModel, pinned

log = logging.getLogger("candle_ml.train")

CURVE_FILE = "training_curve.csv"  # validation loss per round, beside the model (a DVC plot)


class Progress(xgb.callback.TrainingCallback):
    """A log line every ``every_s`` seconds: the round, the validation loss, the time so far."""

    def __init__(self, rounds: int, every_s: float = 5.0):
        self.rounds, self.every_s = rounds, every_s
        self.started = self.last = time.monotonic()

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            loss = next((v[-1] for d in evals_log.values() for v in d.values()), None)
            shown = f", validation mlogloss {float(loss):.4f}" if loss is not None else ""
            log.info("round %d/%d%s (%.0f s)", epoch + 1, self.rounds, shown, now - self.started)
        return False  # never stops training itself: early stopping does that


def booster_params(p: XGBoostParams) -> dict[str, Any]:
    """The trees' knobs, the same whether XGBoost trains in process or on Spark."""
    return {
        "n_estimators": p.n_estimators,
        "max_depth": p.max_depth,
        "learning_rate": p.learning_rate,
        "subsample": p.subsample,
        "colsample_bytree": p.colsample_bytree,
        "min_child_weight": p.min_child_weight,
        "reg_lambda": p.reg_lambda,
        "tree_method": "hist",
        "multi_strategy": p.multi_strategy,
        "max_bin": p.max_bin,
        "eval_metric": "mlogloss",
    }


class XGBoostModel(SklearnClassifierModel):
    model_type: ClassVar[str] = "xgboost"
    params_type: ClassVar[type] = XGBoostParams
    file_name: ClassVar[str] = "model.ubj"  # XGBoost's own format: no pickle, loads across versions
    progress_every_s = 5.0  # seconds between progress lines while fitting

    def __init__(
        self,
        params: XGBoostParams | None,
        n_classes: int,
        seed: int = 0,
        device: str = "cpu",
        booster: Any = None,
    ) -> None:
        self.params = params or XGBoostParams()
        self.n_classes = n_classes
        self.clf = xgb.XGBClassifier(
            **booster_params(self.params),
            n_jobs=self.params.n_jobs,
            random_state=seed,
            device=device,
            objective="multi:softprob",
        )
        if booster is not None:
            self.clf = booster

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        sample_weight: np.ndarray | None,
        X_val: np.ndarray | None,
        y_val: np.ndarray | None,
    ) -> dict[str, Any]:
        has_val = X_val is not None and len(X_val) > 0
        if has_val and self.params.early_stopping_rounds > 0:
            self.clf.set_params(early_stopping_rounds=self.params.early_stopping_rounds)
        self.clf.set_params(callbacks=[Progress(self.params.n_estimators, self.progress_every_s)])
        self.clf.fit(
            X, y, sample_weight=sample_weight, eval_set=[(X_val, y_val)] if has_val else None, verbose=False
        )
        info: dict[str, Any] = {"n_estimators_used": int(self.clf.get_booster().num_boosted_rounds())}
        if has_val and self.params.early_stopping_rounds > 0:
            info["best_iteration"] = int(self.clf.best_iteration)
        return info

    def save(self, directory: Path) -> None:
        self.clf.set_params(callbacks=None)  # not part of the model
        self.clf.save_model(Path(directory) / self.file_name)
        curve = self.training_curve()
        if curve:
            lines = ["round,validation_mlogloss", *(f"{i + 1},{v:.6f}" for i, v in enumerate(curve))]
            (Path(directory) / CURVE_FILE).write_text("\n".join(lines) + "\n")

    def training_curve(self) -> list[float]:
        """Validation loss after each round (empty when the model was loaded, or fit without val)."""
        try:
            history = self.clf.evals_result()
        except Exception:  # XGBoost raises when there is no evaluation history
            return []
        return [float(v) for v in next(iter(history.get("validation_0", {}).values()), [])]

    @classmethod
    def load(cls, directory: Path) -> Any:  # an instance of cls: xgboost_spark loads the same way
        clf = xgb.XGBClassifier()
        clf.load_model(Path(directory) / cls.file_name)
        model = cls(None, int(clf.n_classes_), booster=clf)
        # Predict on the CPU whatever device trained it; serving machines rarely have a GPU.
        model.clf.set_params(device="cpu")
        return model

    def log_native(self, name: str, example: np.ndarray) -> Any:
        import mlflow.xgboost

        return mlflow.xgboost.log_model(
            self.clf,
            name=name,
            model_format="ubj",
            **self.logged_io(example),
            pip_requirements=pinned("xgboost"),
        )
