"""scikit-learn RandomForest, saved with skops (a safe, inspectable format; no arbitrary pickle)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from candle_ml.config import RandomForestParams
from candle_ml.models.sklearn_api import SklearnClassifierModel, pinned

log = logging.getLogger(__name__)

TRUSTED_TYPES = {"sklearn.tree._tree.Tree"}


class RandomForestModel(SklearnClassifierModel):
    model_type: ClassVar[str] = "random_forest"
    params_type: ClassVar[type] = RandomForestParams
    file_name: ClassVar[str] = "model.skops"

    def __init__(
        self,
        params: RandomForestParams | None,
        n_classes: int,
        seed: int = 0,
        device: str = "cpu",
        clf: Any = None,
    ) -> None:
        from sklearn.ensemble import RandomForestClassifier

        if device != "cpu":
            log.warning("random_forest runs on the CPU; train.device=%s is ignored", device)
        self.params = params or RandomForestParams()
        self.n_classes = n_classes
        p = self.params
        self.clf = clf or RandomForestClassifier(
            n_estimators=p.n_estimators,
            max_depth=p.max_depth,
            min_samples_leaf=p.min_samples_leaf,
            max_features=p.max_features,
            n_jobs=p.n_jobs,
            random_state=seed,
        )

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        sample_weight: np.ndarray | None,
        X_val: np.ndarray | None,
        y_val: np.ndarray | None,
    ) -> dict[str, Any]:
        # joblib's progress lines while the trees grow (a minute on 2 cores); quiet again for predict.
        self.clf.set_params(verbose=1)
        try:
            self.clf.fit(X, y, sample_weight=sample_weight)  # no early stopping: val is only reported
        finally:
            self.clf.set_params(verbose=0)
        return {"n_estimators_used": len(self.clf.estimators_)}

    def save(self, directory: Path) -> None:
        import skops.io as sio

        sio.dump(self.clf, Path(directory) / self.file_name)

    @classmethod
    def load(cls, directory: Path) -> RandomForestModel:
        import skops.io as sio

        path = Path(directory) / cls.file_name
        # skops refuses types it does not trust by default; a forest needs only its tree type.
        # Anything else in the file means it is not a forest we wrote: refuse it.
        untrusted = sio.get_untrusted_types(file=path)
        unexpected = sorted(set(untrusted) - TRUSTED_TYPES)
        if unexpected:
            raise ValueError(f"{path}: refusing to load unexpected types {', '.join(unexpected)}")
        clf = sio.load(path, trusted=untrusted)
        return cls(None, len(clf.classes_), clf=clf)

    def log_native(self, name: str, example: np.ndarray) -> Any:
        import mlflow.sklearn

        return mlflow.sklearn.log_model(
            self.clf,
            name=name,
            serialization_format="skops",
            **self.logged_io(example),
            skops_trusted_types=sorted(TRUSTED_TYPES),
            pip_requirements=pinned("sklearn", "skops"),
        )
