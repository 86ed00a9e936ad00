"""XGBoost trained on Spark (``xgboost.spark.SparkXGBClassifier``), for a dataset that outgrows
one machine. The fitted booster is the same kind of model as ``xgboost``'s: it is saved in the
same file and format, so the bundle, evaluation and serving load it without Spark.

``train.model_type: xgboost_spark`` with ``train.xgboost_spark`` (the ``xgboost`` hyperparameters
plus ``master`` and ``num_workers``). Needs the ``spark`` extra to train, nothing extra to serve.
"""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

import numpy as np
import xgboost as xgb

from candle_ml.config import XGBoostSparkParams
from candle_ml.models.xgboost_model import XGBoostModel, booster_params

log = logging.getLogger("candle_ml.train")


class SparkXGBoostModel(XGBoostModel):
    model_type: ClassVar[str] = "xgboost_spark"
    params_type: ClassVar[type] = XGBoostSparkParams

    def __init__(
        self,
        params: XGBoostSparkParams | None,
        n_classes: int,
        seed: int = 0,
        device: str = "cpu",
        booster: Any = None,
    ):
        super().__init__(params or XGBoostSparkParams(), n_classes, seed, device, booster)
        self.seed, self.device = seed, device

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        sample_weight: np.ndarray | None,
        X_val: np.ndarray | None,
        y_val: np.ndarray | None,
    ) -> dict[str, Any]:
        import pandas as pd
        from pyspark.ml.functions import array_to_vector
        from pyspark.sql import functions as sf
        from xgboost.spark import SparkXGBClassifier

        from candle_ml.spark import session

        p = self.params
        assert isinstance(p, XGBoostSparkParams)  # set so in __init__
        has_val = X_val is not None and len(X_val) > 0

        def table(X: np.ndarray, y: np.ndarray, weight: np.ndarray | None, is_val: bool) -> pd.DataFrame:
            return pd.DataFrame(
                {
                    "features": list(np.asarray(X, dtype=np.float32)),
                    "label": np.asarray(y, dtype=np.int64),
                    "weight": np.ones(len(y)) if weight is None else np.asarray(weight, dtype=float),
                    "is_val": is_val,
                }
            )

        rows = table(X, y, sample_weight, False)
        if X_val is not None and y_val is not None and len(X_val) > 0:  # early-stops on is_val rows
            rows = pd.concat([rows, table(X_val, y_val, None, True)], ignore_index=True)
        spark = session(p.master, "candle-ml train")
        frame = spark.createDataFrame(rows).withColumn("features", array_to_vector(sf.col("features")))
        clf = SparkXGBClassifier(
            features_col="features",
            label_col="label",
            weight_col="weight",
            validation_indicator_col="is_val" if has_val else None,
            num_workers=p.num_workers,
            device=self.device,
            **booster_params(p),
            early_stopping_rounds=p.early_stopping_rounds
            if has_val and p.early_stopping_rounds > 0
            else None,
            random_state=self.seed,
            verbosity=0,
        )
        started = time.perf_counter()
        fitted = clf.fit(frame)
        log.info(
            "xgboost_spark: fitted on %s with %d worker(s) in %.1f s",
            p.master,
            p.num_workers,
            time.perf_counter() - started,
        )
        booster = fitted.get_booster()
        # The same estimator as the in-process type: what save, predict and MLflow logging use.
        self.clf = xgb.XGBClassifier()
        self.clf.load_model(bytearray(booster.save_raw("ubj")))
        info: dict[str, Any] = {"n_estimators_used": int(booster.num_boosted_rounds())}
        if has_val and p.early_stopping_rounds > 0:
            info["best_iteration"] = int(self.clf.best_iteration)
        return info

    def training_curve(self) -> list[float]:
        return []  # SparkXGBClassifier keeps no evaluation history on the driver
