"""XGBoost: gradient-boosted trees, early-stopped on the validation split, saved as UBJSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from candle_ml.config import XGBoostParams
from candle_ml.models.sklearn_api import SklearnClassifierModel


class XGBoostModel(SklearnClassifierModel):
    model_type = "xgboost"
    file_name = "model.ubj"  # XGBoost's own format: no pickle, loads across versions

    def __init__(
        self, params: XGBoostParams | None, n_classes: int, seed: int = 0, device: str = "cpu", booster=None
    ):
        import xgboost as xgb

        self.params = params or XGBoostParams()
        self.n_classes = n_classes
        p = self.params
        self.clf = xgb.XGBClassifier(
            n_estimators=p.n_estimators,
            max_depth=p.max_depth,
            learning_rate=p.learning_rate,
            subsample=p.subsample,
            colsample_bytree=p.colsample_bytree,
            min_child_weight=p.min_child_weight,
            reg_lambda=p.reg_lambda,
            n_jobs=p.n_jobs,
            random_state=seed,
            device=device,
            tree_method="hist",
            objective="multi:softprob",
            eval_metric="mlogloss",
        )
        if booster is not None:
            self.clf = booster

    def fit(self, X, y, sample_weight, X_val, y_val) -> dict[str, Any]:
        has_val = X_val is not None and len(X_val) > 0
        if has_val and self.params.early_stopping_rounds > 0:
            self.clf.set_params(early_stopping_rounds=self.params.early_stopping_rounds)
        self.clf.fit(
            X, y, sample_weight=sample_weight, eval_set=[(X_val, y_val)] if has_val else None, verbose=False
        )
        info: dict[str, Any] = {"n_estimators_used": int(self.clf.get_booster().num_boosted_rounds())}
        if has_val and self.params.early_stopping_rounds > 0:
            info["best_iteration"] = int(self.clf.best_iteration)
        return info

    def save(self, directory: Path) -> None:
        self.clf.save_model(Path(directory) / self.file_name)

    @classmethod
    def load(cls, directory: Path) -> XGBoostModel:
        import xgboost as xgb

        clf = xgb.XGBClassifier()
        clf.load_model(Path(directory) / cls.file_name)
        model = cls(None, int(clf.n_classes_), booster=clf)
        # Predict on the CPU whatever device trained it; serving machines rarely have a GPU.
        model.clf.set_params(device="cpu")
        return model

    def log_native(self, name: str, example):
        import mlflow.xgboost
        from mlflow.models import infer_signature

        return mlflow.xgboost.log_model(
            self.clf,
            name=name,
            model_format="ubj",
            signature=infer_signature(example, self.predict_proba(example)),
            input_example=example,
            pip_requirements=_requirements("xgboost"),
        )


def _requirements(*packages: str) -> list[str]:
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in packages]
