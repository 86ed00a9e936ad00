"""Programmatic labels: TA-Lib signals become spans of the right length and label."""

from __future__ import annotations

import numpy as np
import pytest
import talib

from candle_ml.autolabel import autolabel, check_patterns, span_starts
from candle_ml.errors import PatternError
from candle_ml.ingest import bundled_frame
from candle_ml.patterns import PATTERNS, label_for, labels_for, pattern_info

from .conftest import DAY, T0, make_candles, quiet_history


def engulfing_series():
    history = quiet_history(15)
    p = history[-1][3]
    bearish = (p + 0.5, p + 0.7, p - 0.3, p)  # small black body
    bullish = (p - 0.2, p + 1.4, p - 0.3, p + 1.2)  # white body engulfing it
    return make_candles(history + [bearish, bullish])


def test_bullish_engulfing_pair_is_a_two_candle_span():
    candles = engulfing_series()
    spans = autolabel(candles, ["CDLENGULFING"], "TEST", "1d")
    last = spans[-1]
    assert last.label == "bullish_engulfing"
    assert (last.start_time, last.end_time) == (
        T0 + 15 * DAY,
        T0 + 16 * DAY,
    )  # both candles, ends on the signal
    assert last.source == "programmatic" and last.confidence == 1.0
    assert last.id == f"ta-TEST-1d-CDLENGULFING-{T0 + 16 * DAY}"


def test_every_talib_pattern_is_in_the_table():
    assert set(talib.get_function_groups()["Pattern Recognition"]) == set(PATTERNS)


def test_table_directions_match_talib_on_bundled_data():
    """Every label TA-Lib actually produces on real data is one the table declares."""
    frames = [bundled_frame(s) for s in ("AAPL", "IBM", "MSFT")]
    for name in PATTERNS:
        seen = set()
        for f in frames:
            out = getattr(talib, name)(*(f[c].to_numpy() for c in ("open", "high", "low", "close")))
            seen |= {label_for(name, int(v)) for v in np.unique(out[out != 0])}
        assert seen <= set(labels_for(name)), name


def test_labels_by_sign_and_bare_names_for_directionless_patterns():
    assert labels_for("CDLENGULFING") == ["bullish_engulfing", "bearish_engulfing"]
    assert labels_for("CDLHAMMER") == ["bullish_hammer"]
    assert labels_for("CDLDOJI") == ["doji"]
    assert label_for("CDLENGULFING", -80) == "bearish_engulfing"
    assert label_for("CDLDOJI", 100) == "doji"
    assert pattern_info("CDLMORNINGSTAR").length == 3


def test_unknown_pattern_suggests_close_names():
    with pytest.raises(PatternError, match="did you mean CDLENGULFING"):
        check_patterns(["CDLENGULFNG"])


def test_hikkake_confirmation_span_reaches_back_to_its_pattern():
    signals = np.zeros(20, dtype=np.int32)
    signals[10] = 100
    signals[12] = 200  # confirmation two candles later
    signals[17] = -200  # no -100 before it: covers its own 3 candles only
    idx = np.flatnonzero(signals)
    starts = span_starts("CDLHIKKAKE", signals, idx)
    assert starts.tolist() == [8, 8, 15]


def test_eighty_signals_have_lower_confidence():
    f = bundled_frame("AAPL")
    spans = autolabel(
        make_candles(list(zip(f["open"], f["high"], f["low"], f["close"], strict=True))),
        ["CDLENGULFING"],
        "AAPL",
        "1d",
    )
    assert {s.confidence for s in spans} == {0.8, 1.0}


def test_mirrored_series_flips_direction_and_keeps_shapes():
    from candle_ml.ingest import mirror

    candles = engulfing_series()
    flipped = mirror(candles)
    assert (flipped["high"] - flipped["low"]).to_list() == pytest.approx(
        (candles["high"] - candles["low"]).to_list()
    )
    assert ((flipped["close"] - flipped["open"]) == -(candles["close"] - candles["open"])).all()
    assert (flipped["low"] > 0).all() and (
        flipped["high"] >= flipped[["open", "close"]].max_horizontal()
    ).all()
    last = autolabel(flipped, ["CDLENGULFING"], "TEST-MIRROR", "1d")[-1]
    assert last.label == "bearish_engulfing" and last.end_time == T0 + 16 * DAY


def test_gapless_series_opens_at_the_previous_close_and_stays_valid():
    from candle_ml.candles import validate_candles
    from candle_ml.ingest import gapless

    candles = make_candles(
        [(100, 103, 99, 102), (104, 106, 103, 105), (101, 102, 98, 99), (99.5, 101, 99, 100)]
    )
    flat = gapless(candles)
    assert flat["open"].to_list() == [100, 102, 105, 99]  # the first keeps its own open
    assert flat["close"].to_list() == candles["close"].to_list()
    assert flat["high"].to_list() == [103, 106, 105, 101] and flat["low"].to_list() == [99, 102, 98, 99]
    validated, report = validate_candles(flat, "gapless", "error")
    assert validated.height == 4
