"""The chart-pattern labeller (Lo, Mamaysky & Wang 2000) on price paths whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from candle_ml.chart.patterns import CHART_PATTERNS, ChartRules, find_chart_patterns


def path(points: list[tuple[int, float]]) -> np.ndarray:
    """Closes along straight lines through (row, price) points."""
    rows, prices = zip(*points, strict=True)
    return np.interp(np.arange(rows[-1] + 1), rows, prices)


# Each: a monotone run-in (no turns), five or three turns, a monotone run-out.
PATHS = {
    "head_and_shoulders": [(0, 90), (40, 110), (46, 100), (52, 118), (58, 100.5), (64, 110.5), (80, 92)],
    "inverse_head_and_shoulders": [
        (0, 130),
        (40, 110),
        (46, 120),
        (52, 102),
        (58, 119.5),
        (64, 109.5),
        (80, 128),
    ],
    "broadening_top": [(0, 90), (40, 110), (46, 104), (52, 113), (58, 101), (64, 116), (80, 95)],
    "triangle_bottom": [(0, 130), (40, 100), (46, 115), (52, 103), (58, 112), (64, 106), (80, 125)],
    "rectangle_top": [(0, 90), (40, 110.5), (46, 104.4), (52, 110.3), (58, 104), (64, 110), (80, 95)],
    "double_bottom": [(0, 130), (40, 90), (53, 100), (66, 90.5), (82, 105)],
    "double_top": [(0, 80), (40, 110), (53, 100), (66, 109.6), (82, 96)],
}
EXPECTED_SPAN = {name: (40, 64) for name in PATHS} | {"double_bottom": (40, 66), "double_top": (40, 66)}


@pytest.mark.parametrize("name", list(PATHS))
def test_each_pattern_is_found_on_its_path_with_the_span_of_its_extrema(name):
    found = find_chart_patterns(path(PATHS[name]), list(CHART_PATTERNS))
    assert [(s.label, s.start, s.end) for s in found] == [(name, *EXPECTED_SPAN[name])]
    assert found[0].found_at == EXPECTED_SPAN[name][1] + ChartRules().confirm


def test_a_shape_outside_the_tolerances_is_no_pattern():
    lopsided = [(0, 90), (40, 110), (46, 100), (52, 118), (58, 100.5), (64, 114), (80, 92)]  # E5 3.6 % off E1
    assert [s.label for s in find_chart_patterns(path(lopsided), list(CHART_PATTERNS))] != [
        "head_and_shoulders"
    ]
    close_tops = [(0, 80), (40, 110), (48, 100), (58, 109.6), (74, 96)]  # 18 candles apart: not a double top
    assert "double_top" not in {s.label for s in find_chart_patterns(path(close_tops), list(CHART_PATTERNS))}


def test_only_the_labels_asked_for_are_reported():
    assert find_chart_patterns(path(PATHS["head_and_shoulders"]), ["double_top"]) == []


def test_a_span_needs_only_the_confirm_candles_after_it_and_later_candles_never_change_it():
    close = path(PATHS["head_and_shoulders"])
    end = EXPECTED_SPAN["head_and_shoulders"][1]
    confirm = ChartRules().confirm
    assert find_chart_patterns(close[: end + confirm], list(CHART_PATTERNS)) == []
    assert [s.label for s in find_chart_patterns(close[: end + confirm + 1], list(CHART_PATTERNS))] == [
        "head_and_shoulders"
    ]
    walk = 100 * np.exp(np.cumsum(np.random.default_rng(3).normal(0, 0.012, 3000)))
    full = find_chart_patterns(walk, list(CHART_PATTERNS))
    early = find_chart_patterns(walk[:1500], list(CHART_PATTERNS))
    assert full[: len(early)] == early and all(s.found_at < 1500 for s in early)
    assert len(full) > len(early) > 5, "a random walk draws chart patterns now and then"


def test_short_series_have_no_patterns():
    assert find_chart_patterns(np.linspace(1, 2, 20), list(CHART_PATTERNS)) == []


def test_a_long_series_smoothed_in_blocks_finds_what_one_pass_finds(monkeypatch):
    import candle_ml.chart.patterns as cp
    from candle_ml.chart.model import propose

    walk = 100 * np.exp(np.cumsum(np.random.default_rng(11).normal(0, 0.012, 3000)))
    whole = find_chart_patterns(walk, list(CHART_PATTERNS))
    one = propose(walk, ChartRules())
    monkeypatch.setattr(cp, "WINDOW_BLOCK", 97)  # many blocks, boundaries everywhere
    assert find_chart_patterns(walk, list(CHART_PATTERNS)) == whole
    blocks = propose(walk, ChartRules())
    assert len(one) > 500
    for field in ("start", "end", "found_at", "features"):
        assert getattr(blocks, field).tobytes() == getattr(one, field).tobytes(), field
