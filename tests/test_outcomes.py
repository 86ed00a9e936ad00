"""The outcome report: forward returns after patterns vs matched random entries (candle_ml/outcomes.py).

Known answers on simulated candles: a random walk, where no pattern can have an edge (the null
check), and a random walk with a move planted after a label, which must be found."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from candle_ml.autolabel import autolabel
from candle_ml.chart.patterns import CHART_PATTERNS, ChartRules
from candle_ml.config import AutolabelParams, OutcomesParams, load_section
from candle_ml.outcome_report import label_summary, rule_ends, verdict_text
from candle_ml.outcomes import OutcomeSeries, SpanEnd, adjust, direction, occurrences, outcome_grid

from .conftest import ROOT, make_candles, write_outcome_report

FAST = OutcomesParams(bootstrap=200)


def random_walk(n: int, seed: int) -> pl.DataFrame:
    """Daily candles of a driftless random walk with small opening gaps and wicks."""
    rng = np.random.default_rng(seed)
    gaps, moves = rng.normal(0, 0.002, n), rng.normal(0, 0.012, n)
    opens, closes, price = np.empty(n), np.empty(n), 100.0
    for i in range(n):
        opens[i] = price * np.exp(gaps[i])
        closes[i] = price = opens[i] * np.exp(moves[i])
    highs = np.maximum(opens, closes) * (1 + rng.exponential(0.004, n))
    lows = np.minimum(opens, closes) * (1 - rng.exponential(0.004, n))
    return make_candles(list(zip(opens, highs, lows, closes, strict=True)))


def test_on_random_walks_no_label_shows_an_edge_more_often_than_alpha_allows():
    """The null check: TA-Lib's patterns and the chart rules on driftless random walks (five
    series a run, the same dates), twelve runs. Under the null every cell is a false discovery,
    and Benjamini-Hochberg at alpha = 0.05 allows one in a run with probability at most 0.05.
    Entering chart patterns at their last turn instead of their confirmation fails this (every
    top "falls"); so does counting five series' same-day moves as independent."""
    patterns = load_section("autolabel", AutolabelParams, ROOT / "params.yaml").patterns
    runs, cells, edges, runs_with_an_edge = 12, 0, 0, 0
    for run in range(runs):
        series, spans = [], []
        for k in range(5):
            candles = random_walk(3000, seed=1000 * run + k)
            series.append(OutcomeSeries.from_frame(f"RW{k}", "1d", candles))
            spans += autolabel(candles, patterns, f"RW{k}", "1d")
        grid = outcome_grid(series, rule_ends(spans, series, list(CHART_PATTERNS), ChartRules()), FAST)
        tested = [c for c in grid["cells"] if c["verdict"] != "insufficient data"]
        found = sum(c["verdict"] == "edge" for c in tested)
        cells, edges, runs_with_an_edge = cells + len(tested), edges + found, runs_with_an_edge + bool(found)
        assert {c["label"] for c in tested} & set(CHART_PATTERNS), "the chart rules found too few patterns"
    assert cells > 12 * 60
    assert edges / cells <= FAST.alpha
    # P(3 or more of 12 runs | 0.05 each) = 0.02: more would mean the test is not calibrated.
    assert runs_with_an_edge <= 2, f"{runs_with_an_edge} of {runs} random-walk runs show an edge"


def planted(n: int, seed: int, at: np.ndarray, move: float, hold: int = 5) -> pl.DataFrame:
    """A random walk where each of ``at`` is followed by a rise of ``move`` over ``hold`` candles."""
    candles = random_walk(n, seed)
    drift = np.zeros(n)
    for i in at:
        drift[i + 1 : i + 1 + hold] += np.log1p(move) / hold
    factor = np.exp(np.cumsum(drift))
    opens = candles["open"].to_numpy() * np.concatenate([[1.0], factor[:-1]])
    scale = {k: candles[k].to_numpy() * factor for k in ("close", "high", "low")}
    return candles.with_columns(
        open=pl.Series(opens),
        close=pl.Series(scale["close"]),
        high=pl.Series(np.maximum(scale["high"], opens)),
        low=pl.Series(np.minimum(scale["low"], opens)),
    )


def test_a_move_planted_after_a_label_is_found_with_its_size_and_direction():
    rng = np.random.default_rng(7)
    series, ends = [], []
    for k in range(3):
        at = np.sort(rng.choice(np.arange(50, 2950), size=60, replace=False))
        candles = planted(3000, seed=k, at=at, move=0.03)
        series.append(OutcomeSeries.from_frame(f"S{k}", "1d", candles))
        times = candles["time"].to_numpy()
        ends += [SpanEnd(f"S{k}", "1d", int(times[i]), "bullish_planted") for i in at]
        ends += [SpanEnd(f"S{k}", "1d", int(times[i]), "bearish_planted") for i in at]
        ends += [SpanEnd(f"S{k}", "1d", int(times[i]), "bullish_rare") for i in at[:3]]
    grid = outcome_grid(
        series, ends, FAST, test_from={(f"S{k}", "1d"): int(series[k].time[2400]) for k in range(3)}
    )
    cell = {(c["label"], c["h"]): c for c in grid["cells"]}
    bull, bear = cell[("bullish_planted", 5)], cell[("bearish_planted", 5)]
    assert bull["verdict"] == "edge" and bull["direction"] == "long"
    assert bull["ci"][0] < 0.03 < bull["ci"][1] and bull["hit_rate"] > bull["base_up_rate"]
    assert bull["mfe"] > 0.02 and bull["n"] == 180 and bull["series"] == 3
    # The same move after a bearish label is a short that loses: an edge against its direction.
    assert bear["verdict"] == "edge" and bear["excess_return"] == pytest.approx(
        -bull["excess_return"], abs=0.01
    )
    assert verdict_text(bear) == "edge, against the pattern's direction"
    # 9 occurrences: no verdict either way.
    assert cell[("bullish_rare", 5)]["verdict"] == "insufficient data"
    # Subperiods and the test split sit next to the full history.
    assert bull["first_half"]["verdict"] == bull["second_half"]["verdict"] == "edge"
    assert 0 < bull["test"]["n"] < bull["n"]
    summary = label_summary(grid, 5)["bullish_planted"]
    assert summary["verdict"] == "edge" and summary["h"] == 5 and len(summary["ci"]) == 2


def test_a_pattern_is_traded_from_the_candle_it_is_known_on():
    candles = random_walk(100, seed=1)
    ser = OutcomeSeries.from_frame("X", "1d", candles)
    t = int(ser.time[40])
    found = occurrences(
        [ser], [SpanEnd("X", "1d", t, "double_top", known_after=6), SpanEnd("Y", "1d", t, "doji")]
    )
    assert found == {"double_top": [(0, 46)]}  # unknown series dropped


def test_the_same_day_across_series_is_one_cluster():
    """Five copies of one series: five times the occurrences but the same clusters, and an interval
    about as wide (counted as independent, it would be sqrt(5) = 2.2 times narrower)."""
    candles = random_walk(1500, seed=3)
    times = candles["time"].to_numpy()
    ends_one = [SpanEnd("C0", "1d", int(times[i]), "doji") for i in range(30, 1450, 13)]
    one = outcome_grid([OutcomeSeries.from_frame("C0", "1d", candles)], ends_one, FAST)
    copies = [OutcomeSeries.from_frame(f"C{k}", "1d", candles) for k in range(5)]
    ends = [SpanEnd(f"C{k}", "1d", e.end_time, "doji") for k in range(5) for e in ends_one]
    five = outcome_grid(copies, ends, FAST)
    a, b = one["cells"][1], five["cells"][1]
    assert b["n"] == 5 * a["n"] and b["clusters"] == a["clusters"] and b["dates"] == a["dates"]
    width = [c["ci"][1] - c["ci"][0] for c in (a, b)]
    assert width[1] > 0.75 * width[0]


def test_multiple_testing_corrections():
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.005])
    assert adjust(p, "holm")[[0, 1, 2, 4]] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert adjust(p, "bh")[[0, 1, 2, 4]] == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert np.isnan(adjust(p, "bh")[3])


def test_direction_of_a_label():
    assert [
        direction(x) for x in ("bullish_hammer", "bearish_harami", "doji", "double_top", "triangle_bottom")
    ] == [
        1,
        -1,
        1,
        -1,
        1,
    ]


@pytest.mark.parametrize(
    "bad",
    [
        {"horizons": []},
        {"horizons": [5], "summary_horizon": 10},
        {"alpha": 1.5},
        {"cost": -0.1},
        {"min_occurrences": 1},
    ],
)
def test_bad_outcome_params_name_the_rule(bad):
    import msgspec

    with pytest.raises(msgspec.ValidationError, match="outcomes"):
        msgspec.convert(bad, OutcomesParams)


def test_the_server_shows_each_labels_outcome_only_for_the_model_it_was_made_with(served_model, tmp_path):
    """The outcomes stage's summary next to each label (GET /model/labels, /model/info, the review
    page), made here the way the stage makes it, on the served model's own candles."""
    import json
    import shutil

    from litestar.testing import TestClient

    from serve.app import create_app
    from serve.settings import ServeSettings

    bundle_dir, candles_dir = served_model
    models = tmp_path / "models"
    shutil.copytree(bundle_dir, models)
    report = write_outcome_report(models, candles_dir)

    def labels() -> dict[str, dict]:
        settings = ServeSettings(model=str(models), candles_dir=str(candles_dir))
        with TestClient(app=create_app(settings), base_url="http://127.0.0.1") as client:
            served = client.get("/model/labels").json()
            assert served == client.get("/model/info").json()["labels"]
        return {x["name"]: x["outcome"] for x in served}

    shown = labels()
    doji = shown["doji"]
    assert doji == {**report["summary"]["doji"], "direction": "long"} and doji["h"] == 5
    assert doji["verdict"] in ("edge", "no detectable edge", "insufficient data") and doji["n"] > 30
    assert shown["O"] is None
    report["model_version"] = "another model"  # retrained since: its outcomes are not this model's
    (tmp_path / "reports/outcomes.json").write_text(json.dumps(report))
    assert all(v is None for v in labels().values())
