"""MLflow pyfunc that takes raw candles, for `mlflow models serve` and `mlflow.pyfunc.load_model`.

Logged as "models from code": MLflow runs this file to build the model, so no
pickled Python object is stored. The model's one artifact is the bundle.

Input: the candles (time, open, high, low, close, volume) of **one whole series**, oldest
first; optional ``pair``/``timeframe`` columns must then hold one value each. Output: one row
per candle: time, label, confidence, has_history. A candle's label depends on the
``min_history`` candles before it, so a call that holds two series, or a piece of a series
(what ``mlflow.pyfunc.spark_udf`` sends: Arrow batches cut series anywhere), is refused or
comes back with ``has_history`` false where the history was cut. For Spark, score one group
per series: ``df.groupBy("pair", "timeframe").applyInPandas(predict, schema)`` (docs/pipeline.md).
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
        from candle_ml.errors import CandleError, CandleMLError, require_history

        frame = pd.DataFrame(model_input).rename(columns=str.lower)
        keys = [c for c in ("pair", "timeframe") if c in frame.columns]
        if keys:
            series = frame[keys].drop_duplicates()
            if len(series) > 1:
                names = ", ".join(" ".join(map(str, row)) for row in series.head(5).itertuples(index=False))
                raise CandleMLError(
                    f"model input holds {len(series)} series ({names}...); one call takes one whole "
                    "series, oldest first: group by pair and timeframe (Spark: groupBy(...).applyInPandas)",
                    field="pair",
                    rule="one series per call",
                )
            frame = frame.drop(columns=keys)
        try:
            candles, _ = validate_candles(frame, "model input", on_invalid="error")
        except CandleError as exc:
            if exc.rule in ("time_duplicate", "time_not_increasing"):
                raise CandleError(
                    f"{exc} (two series in one call? send one series per call, oldest first)",
                    row=exc.row,
                    field=exc.field,
                    rule=exc.rule,
                ) from None
            raise
        require_history(candles.height, self.bundle.meta.min_history, "model input")
        pred = self.bundle.predict(candles)
        has_history = pd.Series(pred.label != None, dtype=bool)  # noqa: E711
        # Object columns keep None (null in JSON and Arrow) where there is no label: pandas would
        # turn it into NaN, which the scoring server writes as the invalid JSON token NaN.
        return pd.DataFrame(
            {
                "time": pred.time,
                "label": pd.Series(pred.label, dtype=object),
                "confidence": pd.Series(pred.confidence, dtype=object).where(has_history, None),
                "has_history": has_history,
            }
        )


set_model(CandlePatternModel())
