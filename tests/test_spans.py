"""Grouping per-candle labels into spans and matching spans by overlap."""

from __future__ import annotations

import numpy as np
import pytest

from candle_ml.spans import LabelSpan, group_spans, match_ranges, match_spans, overlap_ratio, span_means


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


def every_pair_matched(human: list[LabelSpan], predicted: list[LabelSpan], min_overlap: float) -> list:
    """One-to-one matching the slow way: every pair's overlap, best first, ties by index."""
    candidates = [
        (overlap_ratio(h, p), i, j)
        for i, h in enumerate(human)
        for j, p in enumerate(predicted)
        if overlap_ratio(h, p) > min_overlap
    ]
    pairs, used_h, used_p = [], set(), set()
    for _, i, j in sorted(candidates, key=lambda c: (-c[0], c[1], c[2])):
        if i not in used_h and j not in used_p:
            pairs.append((i, j))
            used_h.add(i)
            used_p.add(j)
    return pairs


def matched(human: list[LabelSpan], predicted: list[LabelSpan], min_overlap: float) -> list:
    """``match_ranges`` on the spans' first and last candles."""

    def column(spans: list[LabelSpan], k: int) -> np.ndarray:
        return np.array([s[k] for s in spans], dtype=np.int64)

    return match_ranges(
        column(human, 0), column(human, 1), column(predicted, 0), column(predicted, 1), min_overlap
    )


@pytest.mark.parametrize("seed", range(20))
def test_one_to_one_matching_compares_only_nearby_spans_and_finds_every_pair(seed):
    """The review's matching looks only at predicted spans near each human one: the same pairs, in
    the same order, as comparing every pair (long and one-candle spans, ties, duplicates, and the
    empty ranges a span between two stored candles maps to)."""
    rng = np.random.default_rng(seed)

    def spans(n: int) -> list[LabelSpan]:
        start = rng.integers(0, 100, n)
        length = rng.choice([0, 1, 1, 2, 3, 5, 40], n)  # 0: last < first, an empty range
        return [LabelSpan(int(a), int(a + b - 1), "x") for a, b in zip(start, length, strict=True)]

    most = 8 if seed % 2 else 150  # sparse: a pair's only partner may be a one-candle overlap
    human, predicted = spans(int(rng.integers(0, most))), spans(int(rng.integers(0, most)))
    for bar in (0.0, 0.3, 0.5):
        assert matched(human, predicted, bar) == every_pair_matched(human, predicted, bar)
    # the edge of the window: a longest span that touches a human one by its last candle
    touching = [LabelSpan(1, 40, "x"), LabelSpan(45, 46, "x")]
    assert matched([LabelSpan(40, 42, "x")], touching, 0.0) == [(0, 0)]
