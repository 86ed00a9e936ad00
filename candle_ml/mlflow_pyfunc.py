"""MLflow pyfunc that takes raw candles, for `mlflow models serve` and `mlflow.pyfunc.load_model`.

Logged as "models from code": MLflow runs this file to build the model, so no
pickled Python object is stored. The model's one artifact is the bundle; input is
a frame of candles (time, open, high, low, close, volume) of one series, output
one row per candle: time, label (None without enough history), confidence.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel


class CandlePatternModel(PythonModel):
    def load_context(self, context: Any) -> None:
        from candle_ml.bundle import load_bundle

        self.bundle = load_bundle(context.artifacts["bundle"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        from candle_ml.candles import validate_candles

        frame = pd.DataFrame(model_input).rename(columns=str.lower)
        candles, _ = validate_candles(frame, "model input", on_invalid="error")
        pred = self.bundle.predict(candles)
        # Object columns keep None for candles without enough history: pandas would turn it
        # into NaN, which the scoring server writes as the invalid JSON token NaN.
        return pd.DataFrame(
            {
                "time": pred.time,
                "label": pd.Series(pred.label, dtype=object),
                "confidence": pd.Series(pred.confidence, dtype=object).where(pred.label != None, None),  # noqa: E711
            }
        )


set_model(CandlePatternModel())
