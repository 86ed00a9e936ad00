"""Candle- and span-level scoring, with the baselines, on a hand-made test split."""

from __future__ import annotations

import polars as pl

from candle_ml.evaluation import evaluate


def frame(reference, predicted, rule=None, pair="AAA"):
    n = len(reference)
    return pl.DataFrame(
        {
            "pair": [pair] * n,
            "timeframe": ["1d"] * n,
            "time": list(range(n)),
            "split": ["test"] * n,
            "label": reference,
            "label_rule": rule or reference,
            "predicted": predicted,
        }
    )


def test_perfect_predictions_and_the_baselines():
    ref = ["O", "bullish_engulfing", "bullish_engulfing", "O", "doji", "O"]
    m = evaluate(frame(ref, ref), 0.5, "O")
    assert (m["accuracy"], m["f1_macro"], m["span_f1_macro"]) == (1.0, 1.0, 1.0)
    assert m["per_class_span"]["bullish_engulfing"] == {
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
        "support": 1,
    }
    assert m["baselines"]["majority"]["span_f1_macro"] == 0.0
    assert m["baselines"]["talib_rule"]["span_f1_macro"] == 1.0


def test_a_half_predicted_span_counts_per_candle_but_not_as_a_span():
    ref = ["O", "bullish_engulfing", "bullish_engulfing", "O", "doji", "O"]
    pred = ["O", "bullish_engulfing", "O", "O", "doji", "O"]
    m = evaluate(frame(ref, pred), 0.5, "O")
    assert m["per_class"]["bullish_engulfing"]["recall"] == 0.5
    assert m["per_class_span"]["bullish_engulfing"]["f1"] == 0.0
    assert m["per_class_span"]["doji"]["f1"] == 1.0
    assert m["span_f1_macro"] == 0.5


def test_spans_are_grouped_per_series():
    a = frame(["O", "doji"], ["O", "doji"], pair="AAA")
    b = frame(
        ["doji", "O"], ["doji", "O"], pair="BBB"
    )  # would join AAA's doji into one span if grouped across
    m = evaluate(pl.concat([a, b]), 0.5, "O")
    assert m["per_class_span"]["doji"]["support"] == 2 and m["span_f1_macro"] == 1.0


def test_candles_without_a_prediction_are_counted_not_scored():
    ref = ["doji", "doji", "O", "bullish_engulfing", "bullish_engulfing", "O"]
    pred = [None, None, "O", "bullish_engulfing", "bullish_engulfing", "O"]  # the first two lack history
    m = evaluate(frame(ref, pred), 0.5, "O")
    assert m["test_candles"] == 4 and m["test_candles_without_history"] == 2
    assert m["accuracy"] == 1.0 and m["span_f1_macro"] == 1.0 and "doji" not in m["per_class_span"]
