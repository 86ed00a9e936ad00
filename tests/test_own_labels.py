"""A trader's own label is learned from marks as people make them: ends a candle or two off, and
only some occurrences marked (candle_ml/own_labels.py)."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from candle_ml.annotations import ReviewedRange, Span
from candle_ml.labels import Placed
from candle_ml.own_labels import own_labels, reviewed_masks

DAY = 86_400
N = 3_000
KEY = "AAA_1d"


def pattern_series(seed: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Five noise features and a 3-candle pattern (feature 0 high, then 1, then 2) ending every
    16-24 candles: ~150 occurrences."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(N, 5))
    ends = [int(e) for e in np.arange(20, N - 20, 20) + rng.integers(-4, 5, size=len(range(20, N - 20, 20)))]
    for e in ends:
        values[e - 2, 0] += 4.0
        values[e - 1, 1] += 4.0
        values[e, 2] += 4.0
    return values, np.arange(N, dtype=np.int64) * DAY, ends


def marks_of(ends: list[int], jitter: int, rng: np.random.Generator) -> list[Placed]:
    out = []
    for i, e in enumerate(ends):
        s, t = e - 2, e
        if jitter:
            s, t = sorted(
                (s + int(rng.integers(-jitter, jitter + 1)), t + int(rng.integers(-jitter, jitter + 1)))
            )
        out.append(Placed(Span("AAA", "1d", s * DAY, t * DAY, "own", id=f"m{i}"), f"test #{i}", KEY, s, t))
    return out


def learn(marks: list[Placed], values: np.ndarray, times: np.ndarray, tolerance: int = 2):
    return own_labels(marks, {"doji"}, {KEY: values}, {KEY: times}, [], 3, tolerance, 10, 0)


@pytest.fixture(scope="module")
def jittered():
    """Marks with both ends up to 2 candles off; the first is a correction (placed on purpose),
    and a rule label's span rides along."""
    values, times, ends = pattern_series(0)
    marks = marks_of(ends, 2, np.random.default_rng(1))
    first = marks[0]
    correction = msgspec.structs.replace(first.span, source="human_correction", model_prediction="doji")
    marks[0] = Placed(correction, first.origin, KEY, first.start, first.end)
    rule = Placed(Span("AAA", "1d", 5 * DAY, 5 * DAY, "doji"), "test", KEY, 5, 5)
    return ends, marks, rule, learn([*marks, rule], values, times)


def test_ends_two_candles_off_are_learned_back_onto_the_pattern(jittered):
    ends, marks, _, result = jittered
    learned = [p.end for p in result.spans[1 : len(marks)]]
    right = sum(1 for a, e in zip(learned, ends[1:], strict=True) if a == e)
    off = sum(1 for m, e in zip(marks, ends, strict=True) if m.end != e)
    assert off > 0.6 * len(ends), "the marks are mostly off"
    assert right >= 0.95 * (len(ends) - 1), f"{right} of {len(ends) - 1} ends learned"
    moved = [p for p, m in zip(result.spans, marks, strict=False) if p.end != m.end]
    assert moved and all(p.length == 3 for p in moved), "a moved span takes the label's usual length"
    report = result.report["own"]
    assert report["ends_moved"] == len(result.moved) == len(moved)
    assert sum(report["shift_counts"].values()) == len(marks)
    # The stored marks are not rewritten: each result keeps the trader's span as it came.
    assert all(p.span is m.span for p, m in zip(result.spans, marks, strict=False))


def test_corrections_keep_their_ends_and_rule_labels_are_not_touched(jittered):
    _, marks, rule, result = jittered
    assert (result.spans[0].start, result.spans[0].end) == (marks[0].start, marks[0].end)
    assert result.spans[-1] is rule and set(result.report) == {"own"}


def test_exact_marks_stay_where_they_are():
    values, times, ends = pattern_series(2)
    result = learn(marks_of(ends, 0, np.random.default_rng(0)), values, times)
    assert result.report["own"]["ends_moved"] <= 0.02 * len(ends)


def test_tolerance_zero_and_a_handful_of_marks_keep_every_mark_as_marked():
    values, times, ends = pattern_series(3)
    marks = marks_of(ends, 2, np.random.default_rng(1))
    result = learn(marks, values, times, tolerance=0)
    assert [(p.start, p.end) for p in result.spans] == [(m.start, m.end) for m in marks]
    few = learn(marks[:5], values, times)
    assert [(p.start, p.end) for p in few.spans] == [(m.start, m.end) for m in marks[:5]]
    assert not few.doubtful[KEY].any() and few.report["own"]["learned"].startswith("no: fewer than")


def test_unmarked_occurrences_nobody_reviewed_are_kept_out_of_the_negatives():
    values, times, ends = pattern_series(5)
    marked, unmarked = ends[::2], ends[1::2]  # half marked, the rest never looked at
    result = learn(marks_of(marked, 0, np.random.default_rng(0)), values, times)
    doubtful = result.doubtful[KEY]
    caught = sum(1 for e in unmarked if doubtful[e])
    assert caught >= 0.9 * len(unmarked), f"{caught} of {len(unmarked)} unmarked occurrences left out"
    assert doubtful.mean() < 0.05, "most unreviewed candles stay negatives"
    assert not any(doubtful[max(e - 12, 0) : e + 13].any() for e in marked), "reviewed: around the marks"


@pytest.mark.parametrize("labels", [None, ["own"]])
def test_a_reviewed_range_replaces_the_default_region_around_the_marks(labels):
    times = np.arange(400, dtype=np.int64) * DAY
    mark = Placed(Span("AAA", "1d", 100 * DAY, 102 * DAY, "own"), "t", KEY, 100, 102)
    masks, how = reviewed_masks("own", [mark], [], {KEY: times}, 10)
    assert how == {KEY: "around_marks"} and np.flatnonzero(masks[KEY]).tolist() == list(range(90, 113))
    ranges = [
        ReviewedRange("AAA", "1d", 50 * DAY, 250 * DAY, labels),
        ReviewedRange("AAA", "1d", 0, 9 * DAY, ["x"]),
    ]
    masks, how = reviewed_masks("own", [mark], ranges, {KEY: times}, 10)
    assert how == {KEY: "ranges"} and np.flatnonzero(masks[KEY]).tolist() == list(range(50, 251))
