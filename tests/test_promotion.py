"""The champion alias only moves forward: the comparison on one test split."""

from __future__ import annotations

from candle_ml.promotion import compare


def report(macro: float, **f1: float) -> dict:
    return {"span_f1_macro": macro, "per_class_span": {k: {"f1": v, "support": 10} for k, v in f1.items()}}


def test_a_better_version_wins():
    better, lines = compare(report(0.95, doji=0.97, hammer=0.93), report(0.93, doji=0.96, hammer=0.90), 0.05)
    assert better and lines[-1] == "better"
    assert any(line.startswith("hammer") and "+0.0300" in line for line in lines)


def test_a_worse_macro_or_one_collapsed_pattern_loses():
    assert not compare(report(0.92, doji=0.92), report(0.93, doji=0.93), 0.05)[0]
    better, lines = compare(report(0.96, doji=0.99, hammer=0.85), report(0.93, doji=0.93, hammer=0.93), 0.05)
    assert not better and "hammer dropped more than 0.05" in lines[-1]
    assert compare(report(0.96, doji=0.99, hammer=0.85), report(0.93, doji=0.93, hammer=0.93), 0.10)[0]


def test_equal_is_not_better():
    assert not compare(report(0.93, doji=0.93), report(0.93, doji=0.93), 0.05)[0]
