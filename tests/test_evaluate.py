"""Candle- and span-level scoring, with the baselines, on a hand-made test split."""

from __future__ import annotations

import polars as pl

from candle_ml.evaluation import evaluate, evaluation_headline, per_class_table


def frame(reference, predicted, rule=None, pair="AAA", confidence=None):
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
            "confidence": confidence or [0.9] * n,
            "raw_confidence": [0.99] * n,  # the model's own, before calibration: over-confident here
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
        "boundary_distance": 0.0,
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


def test_the_worst_pattern_and_the_headline_numbers():
    ref = ["O", "doji", "O", "bullish_engulfing", "bullish_engulfing", "O", "doji", "O"]
    pred = ["O", "doji", "O", "bullish_harami", "bullish_harami", "O", "doji", "O"]
    m = evaluate(frame(ref, pred), 0.5, "O")
    # harami is predicted but not in the test split: the worst is the engulfing it missed.
    assert (m["worst_span_label"], m["worst_span_f1"]) == ("bullish_engulfing", 0.0)
    assert evaluation_headline(m) == {
        "accuracy": m["accuracy"],
        "f1_macro": m["f1_macro"],
        "span_f1_macro": m["span_f1_macro"],
        "worst_span_f1": 0.0,
        "ece": m["calibration"]["ece"],
        "chart_f1": None,  # no chart-pattern model scored
    }
    assert evaluation_headline(m | {"chart_patterns": {"span_f1_macro": 0.9}})["chart_f1"] == 0.9
    # Right 6 of 8 at 0.9 confidence: |0.75 - 0.9|; the uncalibrated 0.99: |0.75 - 0.99|.
    assert m["calibration"] == {"ece": 0.15, "ece_uncalibrated": 0.24}
    table = per_class_table(m)
    assert table.filter(pl.col("label") == "doji")["span_f1"].item() == 1.0


def test_boundary_distance_is_how_far_matched_ends_land_and_own_labels_report_it():
    from candle_ml.evaluation import own_label_scores

    ref = ["O", "setup", "setup", "setup", "O", "O", "O", "doji", "O", "O"]
    pred = ["O", "O", "setup", "setup", "setup", "O", "O", "doji", "O", "doji"]  # a candle late
    m = evaluate(frame(ref, pred), 0.3, "O")
    assert m["per_class_span"]["setup"]["boundary_distance"] == 1.0  # both ends 1 off
    assert m["per_class_span"]["doji"]["boundary_distance"] == 0.0
    own = own_label_scores(m["per_class_span"], ["doji"])
    assert own == {
        "labels": {"setup": {"span_f1": 1.0, "boundary_distance": 1.0}},
        "span_f1_macro": 1.0,
        "boundary_distance": 1.0,
    }
    assert own_label_scores(m["per_class_span"], ["doji", "setup"]) == {}
