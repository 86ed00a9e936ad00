"""Integration: the learning curve as its own DVC stage, one param away (off by default).

Apart from tests/test_pipeline.py so that the other worker can run it (pytest-xdist sends each
file to one worker), on this file's own fork of the built pipeline.
"""

from __future__ import annotations

import json

import polars as pl
import pytest

from .conftest import ran, run, set_param

pytestmark = pytest.mark.integration


def test_the_learning_curve_is_one_param_away(pipeline):
    """Off by default (an empty curve); a budget list draws it as its own stage, and nothing else reruns."""
    repo, _ = pipeline
    assert json.loads((repo / "metrics/curve.json").read_text()) == {}
    set_param(repo, r"^(  spans_per_class:) \[\]", r"\1 [10, 25]")
    set_param(repo, r"^(  headline:) 100", r"\1 25")
    # and a trader's own 3-candle setup, marked with both ends up to 2 candles off
    set_param(repo, r"^(  own_patterns:) \[\]", r"\1 [tests/invented_patterns.py:inside_breakout]")
    set_param(repo, r"^(  traders:) \[.*\]", r"\1 [ends_2]")
    assert ran(run(["dvc", "repro"], repo)) == ["learning_curve"]
    own = pl.read_csv(repo / "reports/own_patterns.csv").row(0, named=True)
    assert (own["pattern"], own["length"], own["trader"]) == ("inside_breakout", 3, "ends_2")
    assert own["marked"] == own["occurrences"] > 200 and own["ends_moved"] > 0.5 * own["marked"]
    assert own["span_f1"] > 0.6 and own["end_distance"] < 0.5 and own["min_history"] <= 30
    curve = pl.read_csv(repo / "reports/learning_curve.csv")
    assert curve["spans_per_class"].to_list() == [10, 25]
    assert curve["spans_marked"][0] < curve["spans_marked"][1] and curve["reviewed_candles"].is_sorted()
    assert all(0 <= f1 <= 1 for f1 in curve["span_f1_macro"]) and curve["span_f1_any_overlap"].min() > 0
    headline = json.loads((repo / "metrics/curve.json").read_text())  # evaluate's column names
    chart = pl.read_csv(repo / "reports/chart_curve.csv")  # the chart-pattern model's curve
    assert headline == {
        "span_f1_macro": curve["span_f1_macro"][1],
        "chart_f1": chart["span_f1_macro"][1],
        "own_span_f1_worst": own["span_f1"],
    }
    report = json.loads((repo / "reports/learning_curve.json").read_text())["curve"]
    assert set(report[1]["marked_per_label"]) == set(report[1]["per_class_span"]) - {"O"}
    assert chart["spans_per_class"].to_list() == [10, 25] and chart["span_f1_macro"].max() > 0.2
    assert "metrics/curve.json" in run(["dvc", "metrics", "show"], repo)  # a row; no new columns
