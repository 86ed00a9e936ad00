"""What every model with scikit-learn's classifier API (``predict_proba``, ``n_jobs``,
``feature_importances_``) does the same way; ``clf`` is the fitted estimator."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

import numpy as np


class SklearnClassifierModel:
    clf: Any  # the library's estimator

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        # Columns follow clf.classes_, which are 0..n-1 because every class is in train.
        return self.clf.predict_proba(X)

    def set_threads(self, n: int | None) -> None:
        """Threads per predict call (None: the library's default, all cores)."""
        self.clf.set_params(n_jobs=n)

    def logged_io(self, example: np.ndarray) -> dict[str, Any]:
        """What an MLflow flavour logs about the inputs: a signature and an input example."""
        from mlflow.models import infer_signature

        return {"signature": infer_signature(example, self.predict_proba(example)), "input_example": example}

    def feature_importance(self) -> np.ndarray:
        return np.asarray(self.clf.feature_importances_, dtype=float)


def pinned(*modules: str) -> list[str]:
    """pip requirements for an MLflow model: the installed distribution of each imported module at
    its version (by module, because one module ships under several names: ``xgboost`` is also
    the CPU-only ``xgboost-cpu``)."""
    from importlib.metadata import version

    dists = _packages_distributions()
    return [f"{d}=={version(d)}" for d in (dists[m][0] for m in modules)]


@cache
def _packages_distributions() -> Mapping[str, list[str]]:
    """Module -> distributions of every installed package (a scan of site-packages: ~1 s, once)."""
    from importlib.metadata import packages_distributions

    return packages_distributions()
