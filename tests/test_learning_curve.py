"""The simulated trader of the learning curve marks what a person would, with a person's errors."""

from __future__ import annotations

import numpy as np
import polars as pl

from candle_ml.annotations import Span
from candle_ml.config import SplitParams
from candle_ml.dataset import SeriesFrame
from candle_ml.learning_curve import Annotator, mark, place_truth, review_order
from candle_ml.patterns import NO_PATTERN

DAY = 86_400


def series(n: int = 200) -> SeriesFrame:
    return SeriesFrame("AAA", "1d", pl.DataFrame({"time": np.arange(n) * DAY}), 0)


def span(start: int, end: int, label: str, i: int) -> Span:
    return Span("AAA", "1d", start * DAY, end * DAY, label, id=f"r{i}", source="programmatic")


def rows(sp: Span) -> tuple[int, int]:
    return sp.start_time // DAY, sp.end_time // DAY


# Ten spans of each label inside the first 140 candles (train + val), three in the test split.
RULES = [span(7 * i, 7 * i + 1, "bull" if i % 2 else "bear", i) for i in range(20)]
RULES += [span(180 + 3 * i, 180 + 3 * i, "bull", 100 + i) for i in range(3)]
SPLIT = SplitParams(train=0.5, val=0.2, test=0.3)


def simulate(per_class: int, annotator: Annotator, review_range: int = 20):
    rng = np.random.default_rng(0)
    s = series()
    truth, reviewable = place_truth(RULES, [s], SPLIT, annotator, rng)
    order = review_order(reviewable, review_range, rng)
    return truth, mark(truth, order, review_range, reviewable, per_class, {s.key: s.times})


def test_a_careful_trader_marks_the_rule_spans_and_calls_the_rest_of_what_it_reviewed_negative():
    truth, marking = simulate(10, Annotator(jitter=0, miss=0.0, mislabel=0.0))
    assert len(truth) == 20, "spans in the test split are never shown to the trader"
    marked = [sp for sp in marking.spans if sp.label != NO_PATTERN]
    assert sorted(rows(sp) for sp in marked) == sorted(rows(sp) for sp in RULES[:20])
    assert marking.per_label == {"bear": 10, "bull": 10} and marking.reviewed_candles == 140
    negative = np.zeros(200, dtype=bool)
    for sp in marking.spans:
        if sp.label == NO_PATTERN:
            lo, hi = rows(sp)
            negative[lo : hi + 1] = True
    covered = np.zeros(200, dtype=bool)
    for sp in marked:
        covered[slice(rows(sp)[0], rows(sp)[1] + 1)] = True
    assert not (negative & covered).any() and (negative | covered)[:140].all() and not negative[140:].any()


def test_a_budget_stops_marking_and_leaves_the_rest_of_a_full_label_out_of_the_negatives():
    truth, small = simulate(3, Annotator(jitter=0, miss=0.0, mislabel=0.0))
    assert small.per_label == {"bear": 3, "bull": 3}
    marked = {rows(sp) for sp in small.spans if sp.label != NO_PATTERN}
    reviewed_rules = [
        t for t in truth if any(sp.start_time <= t.span.start_time <= sp.end_time for sp in small.spans)
    ]
    unmarked_rules = [t for t in reviewed_rules if (t.start, t.end) not in marked]
    for t in unmarked_rules:  # a pattern seen after its label was full is neither marked nor O
        assert not any(
            sp.label == NO_PATTERN and sp.start_time <= t.span.start_time <= sp.end_time for sp in small.spans
        )
    _, larger = simulate(6, Annotator(jitter=0, miss=0.0, mislabel=0.0))
    assert marked <= {rows(sp) for sp in larger.spans if sp.label != NO_PATTERN}, "budgets are nested"


def test_errors_are_a_persons_jittered_boundaries_misses_and_wrong_labels():
    truth, marking = simulate(10, Annotator(jitter=2, miss=0.3, mislabel=0.3))
    missed = [t for t in truth if t.missed]
    assert 0 < len(missed) < len(truth)
    marked = [sp for sp in marking.spans if sp.label != NO_PATTERN]
    assert len(marked) == len(truth) - len(missed)
    for t in truth:
        assert abs(t.start_marked - t.start) <= 2 + 1 and abs(t.end_marked - t.end) <= 2 + 1
    assert any((t.start_marked, t.end_marked) != (t.start, t.end) for t in truth)
    assert any(t.label != t.span.label for t in truth) and all(t.label in {"bull", "bear"} for t in truth)
    for t in missed:  # a missed pattern's candles are O: the noise a trader's misses cause
        assert any(
            sp.label == NO_PATTERN and sp.start_time <= t.span.start_time <= sp.end_time
            for sp in marking.spans
        )
