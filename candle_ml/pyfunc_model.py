"""The raw-candle MLflow pyfunc: the model class, its signature and its params, shared by the
model ``train`` logs (``mlflow_pyfunc.py``, "models from code") and the server's ``POST
/invocations``, which answers as ``mlflow models serve`` of that model does.

Input: the candles (time, open, high, low, close, volume) of **one whole series**, oldest
first; optional ``pair``/``timeframe`` columns must then hold one value each. A candle's label
depends on the ``min_history`` candles before it, so a call that holds two series, or a piece of
a series (what ``mlflow.pyfunc.spark_udf`` sends: Arrow batches cut series anywhere), is refused
or comes back with ``has_history`` false where the history was cut. For Spark, score one group
per series: ``df.groupBy("pair", "timeframe").applyInPandas(predict, schema)`` (docs/pipeline.md).

Params (``params`` in a scoring request): ``output`` = ``candles`` (default: one row per candle:
time, label, confidence, has_history) or ``spans`` (one row per span, as ``POST /predict``'s
``spans``: the runs of candle labels and the chart patterns, with start_time, end_time, label,
confidence, candles, kind); ``min_confidence`` as ``POST /predict`` takes it (labels less sure
become ``O``).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

from candle_ml.candles import CANDLE_COLUMNS

OUTPUTS = ("candles", "spans")
SPAN_COLUMNS = ["start_time", "end_time", "label", "confidence", "candles", "kind"]


def signature() -> ModelSignature:
    """What the pyfunc takes, gives and accepts as params (logged with it; /invocations enforces it)."""
    inputs: list[Any] = [ColSpec("long", "time")] + [ColSpec("double", c) for c in CANDLE_COLUMNS[1:]]
    # Optional: when present, the pyfunc checks they name one series.
    inputs += [ColSpec("string", "pair", required=False), ColSpec("string", "timeframe", required=False)]
    outputs: list[Any] = [
        ColSpec("long", "time"),
        ColSpec("string", "label", required=False),
        ColSpec("double", "confidence", required=False),
        ColSpec("boolean", "has_history"),
    ]
    params = ParamSchema(
        [ParamSpec("output", "string", "candles"), ParamSpec("min_confidence", "double", 0.0)]
    )
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs), params=params)


class CandlePatternModel(PythonModel):
    def __init__(self, bundle: Any = None) -> None:
        self.bundle = bundle  # set by load_context, or given by the server (its loaded bundle)

    def load_context(self, context: Any) -> None:
        from candle_ml.bundle import load_bundle

        self.bundle = load_bundle(context.artifacts["bundle"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        from candle_ml.errors import CandleMLError, require_history

        params = params or {}
        output = params.get("output", "candles")
        if output not in OUTPUTS:
            raise CandleMLError(
                f"params.output: '{output}'; one of {', '.join(OUTPUTS)}", field="output", rule="output"
            )
        min_confidence = float(params.get("min_confidence") or 0.0)
        candles = one_series(model_input)
        require_history(candles.height, self.bundle.meta.min_history, "model input")
        if output == "spans":
            return self._spans(candles, min_confidence)
        return self._candles(candles, min_confidence)

    def _candles(self, candles: Any, min_confidence: float) -> pd.DataFrame:
        import numpy as np

        from candle_ml.prediction import above_min_confidence

        pred = self.bundle.predict(candles)
        has_history = pd.Series(pred.label != None, dtype=bool)  # noqa: E711
        labels = pred.label
        if min_confidence > 0:  # confidence is NaN exactly where label is None: those stay None
            labels = above_min_confidence(pred.label, pred.confidence.astype(np.float64), min_confidence)
        # Object columns keep None (null in JSON and Arrow) where there is no label: pandas would
        # turn it into NaN, which the scoring server writes as the invalid JSON token NaN.
        return pd.DataFrame(
            {
                "time": pred.time,
                "label": pd.Series(labels, dtype=object),
                "confidence": pd.Series(pred.confidence, dtype=object).where(has_history, None),
                "has_history": has_history,
            }
        )

    def _spans(self, candles: Any, min_confidence: float) -> pd.DataFrame:
        from candle_ml.loading import LoadedModel
        from candle_ml.prediction import predict_frame

        model = LoadedModel(self.bundle, "pyfunc", "", "", None, None)
        spans = predict_frame(model, candles, min_confidence).spans
        return pd.DataFrame(
            {
                "start_time": [s.start_time for s in spans],
                "end_time": [s.end_time for s in spans],
                "label": [s.label for s in spans],
                "confidence": [s.avg_confidence for s in spans],
                "candles": [s.candles for s in spans],
                "kind": [s.kind for s in spans],
            },
            columns=SPAN_COLUMNS,
        )


def one_series(model_input: pd.DataFrame) -> Any:
    """The model input as validated candles of one series (errors say how to split a call)."""
    from candle_ml.candles import validate_candles
    from candle_ml.errors import CandleError, CandleMLError

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
    return candles
