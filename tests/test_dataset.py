"""Annotation ingestion, merging, encodings and splits on small hand-made series."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from candle_ml.annotations import Annotation, Span
from candle_ml.config import DatasetParams, SplitParams
from candle_ml.dataset import SeriesFrame, build_dataset
from candle_ml.errors import DatasetError
from candle_ml.rows import assign_splits
from candle_ml.stage_outputs import WindowLayout
from candle_ml.windows import WindowSpec, build_windows, window_columns

from .conftest import DAY, T0

N = 40
PRIORITY = ["bullish_engulfing", "bearish_engulfing", "bearish_harami", "doji"]


def series(pair="TEST", n=N, first_candle=T0):
    t = T0 + DAY * np.arange(n)
    frame = pl.DataFrame({"time": t, "x_rel": np.arange(n, dtype=float) + 1.0, "y": np.zeros(n)})
    return SeriesFrame(pair, "1d", frame, first_candle)


def t(i):
    return int(T0 + DAY * i)


def span(start, end, label, source="human", pair="TEST", confidence=1.0, **kw):
    return Annotation(
        Span(
            pair=pair,
            timeframe="1d",
            start_time=t(start),
            end_time=t(end),
            label=label,
            source=source,
            confidence=confidence,
            **kw,
        ),
        f"test {label}@{start}",
    )


def prog(start, end, label, **kw):
    return span(start, end, label, source="programmatic", **kw)


def params(**kw):
    # The centred window labels every candle of a span, so its rows show how spans were merged.
    base = dict(
        encoding="window",
        features=["x_rel"],
        window_size=3,
        context=1,
        negative_ratio=0.0,
        split=SplitParams(method="temporal", train=0.6, val=0.2, test=0.2),
    )
    return DatasetParams(**{**base, **kw})


def rows(result, **where):
    f = result.frame
    for k, v in where.items():
        f = f.filter(pl.col(k) == v)
    return f


def label_at(result, i, column="label"):
    r = rows(result, time=t(i))
    return r[column][0] if r.height else None


def test_annotations_outside_the_data_are_counted_not_kept():
    human = [
        span(-5, -3, "doji"),  # before the series
        span(N + 2, N + 3, "doji"),  # after it
        span(3, 3, "doji", pair="NOPE"),
        span(4, 4, "doji", confidence=0.2),
        span(5, 5, "doji"),
    ]
    res = build_dataset([series()], human, [], PRIORITY, params())
    skipped = res.metrics["skipped_annotations"]
    assert skipped == {
        "below_min_confidence": 1,
        "unknown_series": 1,
        "no_matching_candle": 2,
        "in_warmup": 0,
        "superseded": 0,
    }
    assert res.metrics["label_counts"]["doji"] == 1
    examples = res.report["examples"]["no_matching_candle"]
    assert len(examples) == 2 and "test doji@-5" in examples[0]


def test_span_in_the_warmup_is_counted_as_such():
    s = series(first_candle=T0 - 30 * DAY)  # raw candles began 30 days before the feature rows
    res = build_dataset([s], [span(-3, 1, "doji"), span(-10, -9, "doji")], [], PRIORITY, params())
    assert res.metrics["skipped_annotations"]["in_warmup"] == 2


@pytest.mark.parametrize(
    "merge, expected",
    [
        ("human_priority", {5: "bullish_engulfing", 6: "bullish_engulfing", 7: "O"}),
        ("programmatic_priority", {5: "O", 6: "bearish_harami", 7: "bearish_harami"}),
        ("both", {5: "bullish_engulfing", 6: "bullish_engulfing", 7: "bearish_harami"}),
    ],
)
def test_overlapping_human_and_programmatic_spans_under_each_merge(merge, expected):
    human = [span(5, 6, "bullish_engulfing")]
    programmatic = [prog(6, 7, "bearish_harami"), prog(20, 20, "doji")]
    res = build_dataset([series()], human, programmatic, PRIORITY, params(merge=merge))
    assert {i: label_at(res, i) for i in expected} == expected
    assert label_at(res, 20) == "doji"  # spans that overlap nothing are kept under every strategy
    if merge == "both":
        assert [label_at(res, i, "label_human") for i in (5, 6, 7)] == [
            "bullish_engulfing",
            "bullish_engulfing",
            "O",
        ]
        assert [label_at(res, i, "label_programmatic") for i in (5, 6, 7)] == [
            "O",
            "bearish_harami",
            "bearish_harami",
        ]
    else:
        assert res.metrics["overridden_by_merge"] == 1


def test_dismissal_is_an_explicit_negative_that_overrides_the_rule():
    dismissal = span(10, 10, "O", source="human_correction", model_prediction="doji")
    res = build_dataset(
        [series()],
        [dismissal],
        [prog(10, 10, "doji"), prog(3, 3, "doji")],
        PRIORITY,
        params(negative_ratio=0.01),
    )
    r = rows(res, time=t(10))
    assert (r["label"][0], r["source"][0]) == ("O", "human_correction")
    assert res.metrics["agreement_rate"] == 0.0
    ref = res.reference.filter(pl.col("time") == t(10)).row(0, named=True)
    assert (ref["label"], ref["label_rule"]) == (
        "O",
        "doji",
    )  # reference follows the trader, rule column the rule
    assert res.reference.height == N


def test_a_later_annotation_with_the_same_id_replaces_the_earlier():
    first = span(5, 7, "bullish_engulfing", id="a1")
    correction = span(6, 7, "bullish_engulfing", id="a1")  # the trader narrowed the span in the feedback log
    res = build_dataset([series()], [first, correction], [], PRIORITY, params())
    assert [label_at(res, i) for i in (5, 6, 7)] == ["O", "bullish_engulfing", "bullish_engulfing"]
    assert res.metrics["skipped_annotations"]["superseded"] == 1


def test_agreement_rate_counts_human_spans_overlapping_rules():
    human = [
        span(5, 6, "bullish_engulfing"),
        span(12, 12, "doji"),
        span(30, 30, "doji"),
    ]  # 30 overlaps nothing
    programmatic = [prog(5, 6, "bullish_engulfing"), prog(12, 13, "bearish_harami")]
    res = build_dataset([series()], human, programmatic, PRIORITY, params())
    assert res.metrics["agreement_rate"] == 0.5


def test_window_padding_at_both_edges():
    # window_size 3 + context 1: offsets -2..+2
    res = build_dataset([series()], [span(0, 0, "doji"), span(N - 1, N - 1, "doji")], [], PRIORITY, params())
    first = rows(res, time=t(0)).row(0, named=True)
    last = rows(res, time=t(N - 1)).row(0, named=True)
    assert [first[f"pad@{o:+d}"] for o in range(-2, 3)] == [1, 1, 0, 0, 0]
    assert [first[f"x_rel@{o:+d}"] for o in range(-2, 3)] == [0, 0, 1, 2, 3]
    assert [last[f"pad@{o:+d}"] for o in range(-2, 3)] == [0, 0, 0, 1, 1]
    assert [last[f"x_rel@{o:+d}"] for o in range(-2, 3)] == [N - 2, N - 1, N, 0, 0]


def test_window_function_matches_around_every_candle():
    spec = WindowSpec(window_size=4, context=0)  # even size: one more candle after than before
    values = np.arange(10, dtype=float).reshape(5, 2)
    out = build_windows(values, np.arange(5), spec)
    assert window_columns(["a", "b"], spec)[:2] == ["a@-1", "b@-1"]
    assert out.shape == (5, 4 * 2 + 4)
    assert out[2].tolist() == [2, 3, 4, 5, 6, 7, 8, 9, 0, 0, 0, 0]
    assert out[4, -4:].tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize("spec", [WindowSpec(3, 0, "end"), WindowSpec(4, 1), WindowSpec(5, 2, "end")])
def test_windows_of_some_columns_are_those_columns_of_the_whole_window(spec):
    """What a model trained on ``top_inputs`` columns reads: the same numbers, padding included."""
    rng = np.random.default_rng(0)
    values = rng.normal(size=(200, 4))
    anchors = np.arange(200)
    lo, hi = rng.integers(0, 5, 200), np.full(200, 190)
    whole = build_windows(values, anchors, spec, lo, hi)
    for columns in ([whole.shape[1] - 1, 0, 5], rng.choice(whole.shape[1], 9, replace=False), []):
        columns = np.asarray(columns, dtype=np.int64)
        some = build_windows(values, anchors, spec, lo, hi, columns=columns)
        assert some.shape == (200, columns.size) and (some == whole[:, columns]).all()


def test_every_candle_of_a_span_is_a_row_with_all_covering_labels():
    res = build_dataset(
        [series()], [], [prog(8, 10, "bullish_engulfing"), prog(10, 10, "doji")], PRIORITY, params()
    )
    assert [label_at(res, i) for i in (8, 9, 10)] == ["bullish_engulfing"] * 3
    assert rows(res, time=t(10))["labels"][0].to_list() == ["bullish_engulfing", "doji"]


def test_end_encoding_labels_the_candle_each_pattern_ends_on_and_looks_only_back():
    programmatic = [prog(8, 10, "bullish_engulfing"), prog(10, 10, "doji"), prog(12, 12, "doji")]
    res = build_dataset([series()], [], programmatic, PRIORITY, params(encoding="end", context=0))
    # Inside a pattern nothing ends yet: O. Where two end together the higher priority is the label.
    assert [label_at(res, i) for i in (8, 9, 10, 11, 12)] == ["O", "O", "bullish_engulfing", "O", "doji"]
    assert rows(res, time=t(10))["labels"][0].to_list() == ["bullish_engulfing", "doji"]
    assert rows(res, time=t(9))["labels"][0].to_list() == []
    assert res.schema.label_lengths == {"bullish_engulfing": 3, "doji": 1}
    assert res.schema.window == WindowLayout(window_size=3, context=0, anchor="end", before=2, after=0)
    row = rows(res, time=t(10)).row(0, named=True)
    assert [row[f"x_rel@{o:+d}"] for o in (-2, -1, 0)] == [9, 10, 11] and "x_rel@+1" not in row
    both = build_dataset(
        [series()],
        [span(8, 9, "bearish_harami")],
        programmatic,
        PRIORITY,
        params(encoding="end", merge="both"),
    )
    assert [label_at(both, i, "label_human") for i in (8, 9, 10)] == ["O", "bearish_harami", "O"]
    assert [label_at(both, i, "label_programmatic") for i in (8, 9, 10)] == ["O", "O", "bullish_engulfing"]
    first = build_dataset([series()], [span(0, 0, "doji")], [], PRIORITY, params(encoding="end", context=0))
    assert [rows(first, time=t(0))[f"pad@{o:+d}"][0] for o in (-2, -1, 0)] == [1, 1, 0]


def test_end_window_widens_to_an_own_labels_length_and_warns_about_longer_spans(caplog):
    human = [span(5, 9, "five_candle_thing"), span(20, 24, "five_candle_thing")]
    res = build_dataset([series()], human, [], PRIORITY, params(encoding="end", context=0))
    assert res.schema.label_lengths == {"five_candle_thing": 5}
    assert res.schema.window.window_size == 5 and "longer than the model sees" not in caplog.text
    human.append(span(30, 37, "five_candle_thing"))  # one 8-candle mark: the usual length stays 5
    res = build_dataset([series()], human, [], PRIORITY, params(encoding="end", context=0))
    assert res.schema.window.window_size == 5
    assert "five_candle_thing (up to 8)" in caplog.text and "raise dataset.window_size" in caplog.text
    # The rules' labels never widen it: the default model keeps its 3 candles.
    res = build_dataset([series()], [], [prog(5, 9, "doji")], PRIORITY, params(encoding="end", context=0))
    assert res.schema.window.window_size == 3 and "doji (up to 5)" in caplog.text


def test_bio_tags_for_overlapping_spans():
    programmatic = [prog(5, 7, "bullish_engulfing"), prog(7, 8, "bearish_harami"), prog(20, 20, "doji")]
    res = build_dataset([series()], [], programmatic, PRIORITY, params(encoding="bio"))
    f = res.frame
    assert f.height == N and "x_rel" in f.columns
    tags = f["tag"].to_list()
    # The overlapping harami goes whole to tag_2, so each column stays a well-formed BIO sequence.
    assert tags[4:10] == ["O", "B-bullish_engulfing", "I-bullish_engulfing", "I-bullish_engulfing", "O", "O"]
    assert tags[20] == "B-doji"
    assert f["tag_2"].to_list()[6:10] == ["O", "B-bearish_harami", "I-bearish_harami", "O"]
    assert f["label"].to_list()[7:9] == ["bullish_engulfing", "bearish_harami"]


def test_temporal_split_is_ordered_and_windows_never_straddle_it():
    s1, s2 = series("AAA"), series("BBB", n=30)
    programmatic = [prog(i, i, "doji", pair=p) for p, n in (("AAA", N), ("BBB", 30)) for i in range(0, n, 2)]
    p = params(window_size=5, context=0)
    res = build_dataset([s1, s2], [], programmatic, PRIORITY, p)
    spec = WindowSpec(5, 0)
    for s in (s1, s2):
        f = rows(res, pair=s.pair)
        by = {sp: f.filter(pl.col("split") == sp)["time"] for sp in ("train", "val", "test")}
        assert by["train"].max() < by["val"].min() and by["val"].max() < by["test"].min()
        codes, _, _ = assign_splits(s.frame.height, p.split, np.random.default_rng(0))
        split_of_time = dict(zip(s.times.tolist(), codes.tolist(), strict=True))
        for time, sp in zip(f["time"].to_list(), f["split"].to_list(), strict=True):
            i = (time - T0) // DAY
            neighbours = [
                split_of_time[t(j)]
                for j in range(i - spec.before, i + spec.after + 1)
                if 0 <= j < s.frame.height
            ]
            assert set(neighbours) == {("train", "val", "test").index(sp)}
    assert res.metrics["purged_at_split_boundary"] > 0


def test_negative_sampling_ratio_and_seed():
    programmatic = [prog(i, i, "doji") for i in range(0, N, 5)]
    a = build_dataset([series()], [], programmatic, PRIORITY, params(negative_ratio=1.0, seed=1))
    b = build_dataset([series()], [], programmatic, PRIORITY, params(negative_ratio=1.0, seed=1))
    assert a.frame.equals(b.frame)
    counts = a.frame.group_by("split", "label").len()
    for sp in ("train", "val", "test"):
        c = dict(counts.filter(pl.col("split") == sp).select("label", "len").iter_rows())
        assert c.get("O", 0) <= c.get("doji", 0) + 1  # ~1 negative per positive (minus purged rows)


def test_feature_selection_errors_name_the_pattern():
    with pytest.raises(DatasetError, match="dataset.features: 'nope' matches no feature column"):
        build_dataset([series()], [], [], PRIORITY, params(features=["x_rel", "nope"]))
    with pytest.raises(DatasetError, match="dataset.features: no pattern matches any feature column"):
        build_dataset([series()], [], [], PRIORITY, params(features=["nope_*"]))
    res = build_dataset([series()], [], [], PRIORITY, params(features=["x_rel", "gone_*"]))
    assert res.schema.feature_columns == ["x_rel"]


def test_augmented_series_only_add_training_rows():
    real, synthetic = series("AAA"), series("AAA-MIRROR")
    synthetic.augmented = True
    programmatic = [prog(i, i, "doji", pair=p) for p in ("AAA", "AAA-MIRROR") for i in range(0, N, 3)]
    res = build_dataset([real, synthetic], [], programmatic, PRIORITY, params())
    assert set(rows(res, pair="AAA-MIRROR")["split"]) == {"train"}
    assert set(rows(res, pair="AAA")["split"]) == {"train", "val", "test"}
    assert set(res.reference["pair"]) == {"AAA"}  # evaluation stays on real candles
    assert res.metrics["augmented_rows"] == rows(res, pair="AAA-MIRROR").height > 0


def test_a_trader_span_a_candle_or_two_off_snaps_onto_the_rule_span_of_its_label():
    from candle_ml.annotations import Span
    from candle_ml.labels import Placed, snap_to_rules

    def placed(start: int, end: int, label: str, source: str = "human") -> Placed:
        return Placed(Span("AAA", "1d", start, end, label, source=source), "x", "AAA_1d", start, end)

    rules = [placed(10, 10, "doji", "programmatic"), placed(20, 21, "bullish_engulfing", "programmatic")]
    human = [
        placed(9, 11, "doji"),  # the doji marked a candle wide on each side
        placed(19, 23, "bullish_engulfing"),  # start 1 off, end 2 off
        placed(30, 31, "doji"),  # no doji near: stays
        placed(18, 24, "bullish_engulfing"),  # 3 candles off at the end: stays
        placed(9, 11, "my_own_label"),  # a label the rules do not know: stays
        placed(9, 11, "O"),  # a dismissal: stays
        placed(9, 11, "doji", "human_correction"),  # a trader's deliberate correction: stays
    ]
    out, moved = snap_to_rules(human, rules, max_shift=2)
    assert [(p.start, p.end) for p in out] == [
        (10, 10),
        (20, 21),
        (30, 31),
        (18, 24),
        (9, 11),
        (9, 11),
        (9, 11),
    ]
    assert moved == 2
    assert snap_to_rules(human, rules, max_shift=0) == (human, 0)
