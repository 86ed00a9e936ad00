"""The chart-pattern model: proposals that hold the rule spans, labels that survive a trader's
boundary errors, and a pattern name only traders use learned with no code change."""

from __future__ import annotations

import msgspec
import numpy as np
import polars as pl

from candle_ml.annotations import Annotation
from candle_ml.autolabel import chart_spans
from candle_ml.chart.model import proposal_labels, propose
from candle_ml.chart.patterns import CHART_PATTERNS, ChartRules, find_chart_patterns
from candle_ml.config import IngestParams
from candle_ml.ingest import ingest

from .conftest import train_chart_on
from .test_chart_patterns import EXPECTED_SPAN, PATHS, path


def test_every_rule_span_is_one_of_the_proposals():
    for name, points in PATHS.items():
        spans = set(propose(path(points), ChartRules()).spans())
        assert EXPECTED_SPAN[name] in spans, name
    walk = 100 * np.exp(np.cumsum(np.random.default_rng(5).normal(0, 0.012, 4000)))
    proposals = set(propose(walk, ChartRules()).spans())
    found = find_chart_patterns(walk, list(CHART_PATTERNS))
    assert found and all((s.start, s.end) in proposals for s in found)


def test_a_span_marked_up_to_two_candles_off_mostly_labels_its_own_proposal():
    walk = 100 * np.exp(np.cumsum(np.random.default_rng(5).normal(0, 0.012, 4000)))
    proposals = propose(walk, ChartRules())
    truth = find_chart_patterns(walk, list(CHART_PATTERNS))
    exact = proposal_labels(proposals, [(s.start, s.end, s.label) for s in truth], 0.5)
    marked = [i for i, label in enumerate(exact) if label != "O"]
    # The rule spans label exactly their own proposals (ties: a five-turn and a two-turn one).
    spans = proposals.spans()
    assert {spans[i] for i in marked} == {(s.start, s.end) for s in truth}
    rng = np.random.default_rng(0)
    off = [(s.start + int(rng.integers(-2, 3)), s.end + int(rng.integers(-2, 3)), s.label) for s in truth]
    jittered = proposal_labels(proposals, off, 0.5)
    kept = sum(jittered[i] == exact[i] for i in marked) / len(marked)
    moved = sum(1 for i, label in enumerate(jittered) if label != "O" and exact[i] == "O") / len(marked)
    print(f"boundaries +-2: {kept:.0%} of the labels stay on their proposal, {moved:.0%} move to a neighbour")
    assert kept >= 0.8 and moved <= 0.15


def test_a_long_pattern_only_traders_name_trains_and_predicts_with_no_code_change():
    series = ingest(IngestParams(bundled=["AAPL", "IBM", "MSFT"], augment=[]))
    rules = ChartRules()

    def exports(s) -> list[Annotation]:
        # The trader's own name for what the rules call a double bottom, only in their exports.
        return [
            Annotation(msgspec.structs.replace(sp, label="w_bottom", source="human"), "export.json")
            for sp in chart_spans(s.candles, ["double_bottom"], rules, s.pair, s.timeframe)
        ]

    model, reference = train_chart_on(series, exports, labels=[])
    assert model is not None and model.settings.labels == ["O", "w_bottom"]
    assert set(reference["label"]) == {"w_bottom"}
    hits = marked_total = predicted_total = 0
    for s in series:
        t = s.candles["time"].to_numpy()
        test_from = int(t.size * 0.85)
        truth = {
            (int(np.searchsorted(t, a.span.start_time)), int(np.searchsorted(t, a.span.end_time)))
            for a in exports(s)
        }
        truth = {x for x in truth if x[0] >= test_from}
        pred = {
            (c.start, c.end) for c in model.predict(s.candles["close"].to_numpy()) if c.start >= test_from
        }
        assert all(c.label == "w_bottom" for c in model.predict(s.candles["close"].to_numpy()))
        hits += len(truth & pred)
        marked_total += len(truth)
        predicted_total += len(pred)
    recall, precision = hits / marked_total, hits / predicted_total
    print(
        f"w_bottom on the test split: recall {recall:.2f}, precision {precision:.2f} ({marked_total} marked)"
    )
    assert marked_total >= 5 and recall >= 0.7 and precision >= 0.7


def test_the_training_table_keeps_each_proposal_inside_one_split(tmp_path):
    series = ingest(IngestParams(bundled=["IBM"], augment=[]))
    _, reference = train_chart_on(series)
    assert set(reference["split"].drop_nulls()) == {"train", "val", "test"}
    assert isinstance(reference, pl.DataFrame) and reference.height > 20


def test_a_dismissed_chart_pattern_removes_the_rule_span_and_stays_out_of_the_candle_rows():
    from candle_ml.chart.dataset import build_chart_dataset, for_chart_model
    from candle_ml.config import SplitParams
    from candle_ml.dataset import SeriesFrame

    series = ingest(IngestParams(bundled=["IBM"], augment=[]))[0]
    frame = SeriesFrame(series.pair, series.timeframe, series.candles, int(series.candles["time"][0]))
    rules = ChartRules()
    rule = [
        Annotation(sp, "autolabel")
        for sp in chart_spans(series.candles, list(CHART_PATTERNS), rules, "IBM", "1d")
    ]
    target = rule[3].span
    dismissal = Annotation(
        msgspec.structs.replace(target, label="O", source="human_correction", id="d1"), "feedback.jsonl #1"
    )
    short = Annotation(
        msgspec.structs.replace(target, end_time=target.start_time, label="O", source="human"), "x"
    )
    flags = for_chart_model([dismissal, short, rule[0]], set(CHART_PATTERNS), [frame], 10)
    assert flags == [True, False, True]  # a 1-candle O is a candle negative, not a chart one
    before, _ = build_chart_dataset([frame], rule, SplitParams(), rules)
    after, reference = build_chart_dataset([frame], [*rule, dismissal], SplitParams(), rules)
    at = (pl.col("start_time") == target.start_time) & (pl.col("end_time") == target.end_time)
    assert set(before.filter(at)["label"]) == {target.label}
    assert set(after.filter(at)["label"]) == {"O"}
    assert reference.filter(at).height == 0


def test_overlapping_predictions_keep_the_surest_as_a_pairwise_check_would():
    from candle_ml.chart.model import ChartSpanPrediction, surest
    from candle_ml.spans import iou

    rng = np.random.default_rng(2)
    chosen = []
    for _ in range(600):
        start = int(rng.integers(0, 2000))
        chosen.append(
            ChartSpanPrediction(
                start, start + int(rng.integers(5, 36)), str(rng.choice(["a", "b"])), float(rng.random()), 0.1
            )
        )
    naive: list[ChartSpanPrediction] = []  # every kept span against every other: quadratic
    for c in sorted(chosen, key=lambda c: (-c.confidence, c.start, c.end)):
        if not any(k.label == c.label and iou((k.start, k.end), (c.start, c.end)) >= 0.5 for k in naive):
            naive.append(c)
    assert surest(chosen, 0.5) == sorted(naive, key=lambda c: (c.start, c.end, c.label))
