"""Calibration: temperature scaling, ECE, the reliability table, and decision thresholds."""

from __future__ import annotations

import msgspec
import numpy as np
import polars as pl
import pytest

from candle_ml.calibration import expected_calibration_error, fit_temperature, reliability_table, temper


def overconfident(n: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three classes drawn from known probabilities, reported sharpened by a temperature of 0.5."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, size=(n, 3))
    true = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(3, p=row) for row in true])
    return temper(true, 0.5), y


def test_temper_keeps_the_winner_and_sums_to_one():
    proba, _ = overconfident(1_000)
    soft = temper(proba, 2.0)
    assert np.allclose(soft.sum(axis=1), 1) and (soft.argmax(axis=1) == proba.argmax(axis=1)).all()
    assert soft.max(axis=1).mean() < proba.max(axis=1).mean()  # softer
    assert temper(proba, 1.0) is proba


def test_fit_temperature_recovers_the_sharpening_and_fixes_the_ece():
    proba, y = overconfident()
    t = fit_temperature(proba, y)
    assert t == pytest.approx(2.0, rel=0.1)
    correct = proba.argmax(axis=1) == y
    before = expected_calibration_error(proba.max(axis=1), correct)
    after = expected_calibration_error(temper(proba, t).max(axis=1), correct)
    assert before > 0.1 and after < 0.02, (before, after)
    assert fit_temperature(np.empty((0, 3)), np.empty(0, dtype=int)) == 1.0


def test_ece_and_the_reliability_table_on_known_numbers():
    confidence = np.array([0.9] * 10 + [0.6] * 10)
    correct = np.array([True] * 9 + [False] + [True] * 3 + [False] * 7)
    # 0.9 right 9/10 (gap 0), 0.6 right 3/10 (gap 0.3): ECE = 0.3 * 10/20.
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.15)
    table = reliability_table(confidence, correct)
    assert table.to_dicts() == [
        {"confidence": 0.6, "accuracy": 0.3, "perfect": 0.6, "candles": 10},
        {"confidence": 0.9, "accuracy": 0.9, "perfect": 0.9, "candles": 10},
    ]


def test_thresholds_turn_unsure_patterns_into_o_the_same_everywhere(served_model):
    from candle_ml.bundle import load_bundle

    bundle = load_bundle(served_model[0])
    candles = pl.read_parquet(served_model[1] / "AAPL_1d.parquet")
    plain = bundle.predict(candles)
    patterns = (plain.label != None) & (plain.label != "O")  # noqa: E711
    assert patterns.any()
    strict = msgspec.structs.replace(bundle.meta, thresholds={n: 0.999 for n in bundle.meta.label_names})
    bundle.meta = strict
    demoted = bundle.predict(candles)
    unsure = patterns & (plain.confidence < 0.999)
    shown = (demoted.label != None) & (demoted.label != "O")  # noqa: E711
    assert unsure.any() and (demoted.confidence[shown] >= 0.999).all()
    # An unsure pattern is gone: its candles are O, or show a sure pattern the unsure one had
    # painted over (a doji inside an unsure engulfing).
    gone = demoted.label[unsure]
    assert ((gone == "O") | (demoted.confidence[unsure] >= 0.999)).all() and (gone == "O").any()
    assert not (gone == plain.label[unsure]).any()
    sure = patterns & ~unsure
    assert (demoted.label[sure] == plain.label[sure]).all()
    assert np.allclose(demoted.confidence[sure], plain.confidence[sure])  # labels change, not confidence


def test_a_threshold_for_a_label_the_model_lacks_is_refused_by_name(served_model):
    from candle_ml.bundle import load_bundle
    from candle_ml.config import TrainParams
    from candle_ml.errors import ConfigError
    from candle_ml.training import calibrated

    bundle = load_bundle(served_model[0])
    params = TrainParams(calibration="none", threshold=0.3, thresholds={"doji": 0.6})
    meta = calibrated(bundle.meta, bundle.model, params, served_model[1], pl.DataFrame())
    assert meta.thresholds["doji"] == 0.6 and meta.thresholds["bullish_engulfing"] == 0.3
    assert "O" not in meta.thresholds and meta.temperature == 1.0
    with pytest.raises(ConfigError, match="no label dojii in this model"):
        calibrated(
            bundle.meta, bundle.model, TrainParams(thresholds={"dojii": 0.5}), served_model[1], pl.DataFrame()
        )
    with pytest.raises(ValueError, match="within"):
        TrainParams(threshold=1.5)
