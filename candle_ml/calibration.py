"""Confidences that mean what they say: temperature scaling, fitted on the validation split.

One temperature ``T`` rescales the model's log-probabilities (``softmax(log p / T)``), chosen
to minimise the negative log-likelihood of the validation windows. It never changes which
label wins, only how sure the model says it is; ``T > 1`` softens an over-confident model.
Expected calibration error (ECE) says how far "0.8" is from "right 80 % of the time".
"""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy.optimize import minimize_scalar

ECE_BINS = 15


def temper(proba: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities rescaled by ``temperature`` (rows still sum to 1; the argmax is unchanged)."""
    if temperature == 1.0:
        return proba
    logits = np.log(np.clip(proba, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=1, keepdims=True)


def fit_temperature(proba: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of classes ``y`` under ``proba``."""
    if len(y) == 0:
        return 1.0
    rows = np.arange(len(y))

    def nll(log_t: float) -> float:
        return float(-np.log(np.clip(temper(proba, float(np.exp(log_t)))[rows, y], 1e-12, 1.0)).mean())

    best = minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded")
    return round(float(np.exp(best.x)), 4)


def _bins(confidence: np.ndarray, bins: int) -> np.ndarray:
    return np.clip(np.digitize(confidence, np.linspace(0, 1, bins + 1)[1:-1]), 0, bins - 1)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by their candles."""
    if confidence.size == 0:
        return 0.0
    idx = _bins(confidence, bins)
    gaps = [
        abs(correct[idx == k].mean() - confidence[idx == k].mean()) * (idx == k).sum()
        for k in range(bins)
        if (idx == k).any()
    ]
    return round(float(sum(gaps) / confidence.size), 4)


def reliability_table(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> pl.DataFrame:
    """Per confidence bin: mean confidence, accuracy and candles (the reliability diagram)."""
    idx = _bins(confidence, bins)
    rows = [
        {
            "confidence": round(float(confidence[idx == k].mean()), 4),
            "accuracy": round(float(correct[idx == k].mean()), 4),
            "perfect": round(float(confidence[idx == k].mean()), 4),
            "candles": int((idx == k).sum()),
        }
        for k in range(bins)
        if (idx == k).any()
    ]
    schema = {"confidence": pl.Float64, "accuracy": pl.Float64, "perfect": pl.Float64, "candles": pl.Int64}
    return pl.DataFrame(rows, schema=schema)
