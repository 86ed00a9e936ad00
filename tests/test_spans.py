"""Grouping per-candle labels into spans and matching spans by overlap."""

from __future__ import annotations

from candle_ml.spans import LabelSpan, group_spans, match_spans, overlap_ratio


def test_group_spans_skips_o_and_missing_predictions():
    labels = [None, "O", "doji", "bullish_engulfing", "bullish_engulfing", "O", "doji", "doji", None, "doji"]
    assert group_spans(labels) == [
        LabelSpan(2, 2, "doji"),
        LabelSpan(3, 4, "bullish_engulfing"),
        LabelSpan(6, 7, "doji"),
        LabelSpan(9, 9, "doji"),
    ]
    assert group_spans([]) == [] and group_spans(["O", None]) == []


def test_overlap_of_exactly_half_does_not_match_but_51_percent_does():
    reference = [LabelSpan(0, 99, "x")]
    half = [LabelSpan(0, 49, "x")]  # 50 of 100 candles: overlap 0.50
    more = [LabelSpan(0, 50, "x")]  # 51 of 100 candles: overlap 0.51
    assert overlap_ratio(half[0], reference[0]) == 0.5
    assert match_spans(half, reference)["x"].matched == 0
    assert match_spans(more, reference)["x"].matched == 1


def test_labels_must_agree_and_matching_is_one_to_one():
    reference = [
        LabelSpan(10, 11, "bullish_engulfing"),
        LabelSpan(20, 20, "doji"),
        LabelSpan(30, 32, "bullish_morning_star"),
    ]
    predicted = [
        LabelSpan(10, 11, "bearish_engulfing"),
        LabelSpan(20, 20, "doji"),
        LabelSpan(30, 32, "bullish_morning_star"),
        LabelSpan(40, 40, "doji"),
    ]
    scores = match_spans(predicted, reference)
    assert scores["bullish_engulfing"].recall == 0.0 and scores["bearish_engulfing"].precision == 0.0
    assert (scores["doji"].precision, scores["doji"].recall) == (0.5, 1.0)
    assert scores["bullish_morning_star"].f1 == 1.0


def test_span_means_equal_each_spans_own_mean():
    import numpy as np

    from candle_ml.prediction import span_means

    rng = np.random.default_rng(0)
    for _ in range(300):
        values = rng.random(int(rng.integers(1, 60)))
        cuts = np.sort(
            rng.choice(values.size + 1, size=2 * int(rng.integers(0, values.size // 2 + 1)), replace=False)
        )
        starts, ends = cuts[0::2], cuts[1::2] - 1  # disjoint spans, some adjacent, some at either end
        np.testing.assert_allclose(
            span_means(values, starts, ends),
            [values[s : e + 1].mean() for s, e in zip(starts, ends, strict=True)],
            rtol=1e-15,
        )
    assert span_means(np.arange(5.0), np.array([0, 4]), np.array([1, 4])).tolist() == [0.5, 4.0]
