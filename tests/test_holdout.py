"""Holdout series: real OHLCV from installed packages, validated, labeled by the rules, scored."""

from __future__ import annotations

import numpy as np
import pytest

from candle_ml.errors import ConfigError
from candle_ml.holdout import load_holdout, reference_labels, score_holdout


def test_the_packaged_index_series_load_as_validated_daily_candles():
    sp500 = load_holdout("sp500")
    assert (sp500.pair, sp500.timeframe, sp500.key) == ("SP500", "1d", "SP500_1d")
    assert sp500.candles.height > 4_900 and sp500.source == "arch/data/sp500/sp500.csv.gz"
    times = sp500.times
    assert np.all(np.diff(times) > 0) and times[0] == 915_408_000  # 1999-01-04, UTC midnight
    assert load_holdout("NASDAQ").candles.height > 4_900


def test_unknown_series_name_the_known_ones():
    with pytest.raises(ConfigError, match="known: EURUSD, FX24H, NASDAQ, SP500"):
        load_holdout("GBPUSD")


def test_a_source_whose_package_is_missing_says_how_to_get_it_and_its_licence(monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"pip install backtesting; licence AGPL-3.0"):
        load_holdout("EURUSD")


def test_the_simulated_24_hour_market_has_no_gaps_a_daily_cycle_and_small_bodies():
    fx = load_holdout("FX24H")
    c = fx.candles
    assert (fx.key, c.height) == ("FX24H_1h", 8_760) and np.all(np.diff(fx.times) == 3_600)
    assert (c["open"][1:].to_numpy() == c["close"][:-1].to_numpy()).all(), "every open at the previous close"
    rng = (c["high"] - c["low"]).to_numpy()
    hour = (fx.times // 3_600) % 24
    assert rng[hour == 14].mean() > 3 * rng[hour == 2].mean(), "busy afternoons, quiet nights"
    assert np.median((c["close"] - c["open"]).abs().to_numpy() / rng) < 0.3, "bodies small against the range"
    assert load_holdout("fx24h").candles.equals(c), "the same candles every run"


def test_reference_labels_are_talib_signals_painted_like_the_dataset():
    series = load_holdout("SP500")
    labels = reference_labels(series, ["CDLENGULFING", "CDLDOJI"])
    assert labels.shape == (series.candles.height,) and set(labels) == {
        "O",
        "bullish_engulfing",
        "bearish_engulfing",
        "doji",
    }
    # Engulfing is listed first, so it wins wherever it is; doji keeps the rest of its candles.
    engulfing = reference_labels(series, ["CDLENGULFING"])
    doji = reference_labels(series, ["CDLDOJI"]) == "doji"
    covered = engulfing != "O"
    assert covered.any() and (labels[covered] == engulfing[covered]).all()
    assert (doji & covered).any() and (labels == "doji").sum() == (doji & ~covered).sum()


def test_score_holdout_scores_the_served_prediction(served_model):
    from candle_ml.bundle import load_bundle

    bundle = load_bundle(served_model[0])
    report = score_holdout(bundle, load_holdout("NASDAQ"), ["CDLENGULFING", "CDLHAMMER", "CDLDOJI"], 0.5)
    assert report["candles"] == load_holdout("NASDAQ").candles.height - bundle.meta.min_history
    assert 0 < report["span_f1_macro"] <= 1 and report["worst_span_label"] in report["per_class_span"]
    assert {"bullish_engulfing", "doji"} <= set(report["per_class_span"])
