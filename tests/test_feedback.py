"""The feedback log (durable appends, torn tails) and the disagreement rules, on hand-made spans."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from candle_ml.annotations import Span, read_feedback_log
from candle_ml.errors import TimeframeError
from candle_ml.feedback import append_spans, encode_line, human_spans
from candle_ml.review import disagreements, margins, timeframe_seconds, unanswered

from .conftest import DAY, T0


def span(start: int, end: int, label: str = "doji", **kw) -> Span:
    return Span(
        pair="AAPL", timeframe="1d", start_time=T0 + start * DAY, end_time=T0 + end * DAY, label=label, **kw
    )


def test_each_span_is_one_line_exactly_as_encoded(tmp_path):
    log = tmp_path / "annotations" / "feedback.jsonl"  # the folder is made on the first write
    first = [span(0, 1, id="a"), span(3, 3, "O", id="b", source="human_correction", model_prediction="doji")]
    append_spans(log, first)
    append_spans(log, [span(5, 6, id="c", source="model_confirmed")])
    lines = log.read_bytes().splitlines(keepends=True)
    assert lines == [encode_line(s) for s in [*first, span(5, 6, id="c", source="model_confirmed")]]
    spans, torn = read_feedback_log(log)
    assert [s.id for s in spans] == ["a", "b", "c"] and torn == 0


def test_a_torn_last_line_is_cut_before_the_next_append(tmp_path):
    log = tmp_path / "feedback.jsonl"
    append_spans(log, [span(0, 1, id="a")])
    with open(log, "ab") as f:
        f.write(b'{"pair": "AAPL", "timeframe": "1d", "start_ti')  # a crash mid-write
    assert read_feedback_log(log)[1] == 1  # readers skip it meanwhile
    append_spans(log, [span(2, 2, id="b")])
    spans, torn = read_feedback_log(log)
    assert [s.id for s in spans] == ["a", "b"] and torn == 0


def test_a_log_that_is_all_torn_is_cut_to_nothing(tmp_path):
    log = tmp_path / "feedback.jsonl"
    log.write_bytes(b'{"pair": "AAP')
    append_spans(log, [span(2, 2, id="b")])
    assert log.read_bytes() == encode_line(span(2, 2, id="b"))


def _writer(path: str, k: int) -> None:
    for i in range(50):
        append_spans(Path(path), [span(i % 20, i % 20 + 1, id=f"w{k}-{i}"), span(0, 0, id=f"w{k}-{i}b")])


def test_concurrent_writer_processes_never_interleave(tmp_path):
    log = tmp_path / "feedback.jsonl"
    procs = [multiprocessing.Process(target=_writer, args=(str(log), k)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert all(p.exitcode == 0 for p in procs)
    spans, torn = read_feedback_log(log)
    assert torn == 0 and len(spans) == 4 * 50 * 2
    assert {s.id for s in spans} == {f"w{k}-{i}{b}" for k in range(4) for i in range(50) for b in ("", "b")}
    # One request's spans stay together: each 'b' line follows its pair.
    ids = [s.id for s in spans]
    assert all(ids[j + 1] == ids[j] + "b" for j in range(0, len(ids), 2))


def test_human_spans_are_the_latest_per_id_in_the_range(tmp_path):
    human_dir = tmp_path / "human"
    human_dir.mkdir()
    (human_dir / "export.json").write_text(
        json.dumps(
            {
                "annotations": [
                    {
                        "id": "x",
                        "pair": "AAPL",
                        "timeframe": "1d",
                        "start_time": T0,
                        "end_time": T0 + DAY,
                        "label": "doji",
                    },
                    {
                        "id": "y",
                        "pair": "IBM",
                        "timeframe": "1d",
                        "start_time": T0,
                        "end_time": T0,
                        "label": "doji",
                    },
                ]
            }
        )
    )
    log = tmp_path / "feedback.jsonl"
    append_spans(
        log,
        [
            span(0, 1, "bullish_engulfing", id="x", source="human_correction", model_prediction="doji"),
            span(30, 31, id="z"),
        ],
    )
    got = human_spans(human_dir, log, "AAPL", "1d", start=T0, end=T0 + 10 * DAY)
    assert [(s.id, s.label) for s in got] == [
        ("x", "bullish_engulfing")
    ]  # the correction replaced the export


def test_human_spans_parse_once_per_state_of_the_files(tmp_path, monkeypatch):
    """Every review request asks for the human spans: the files are parsed again only after a
    write, an undo-style append, a new export or an export replaced by another of the same size."""
    import candle_ml.feedback as feedback

    parsed = []
    real = feedback.read_human_annotations
    monkeypatch.setattr(feedback, "read_human_annotations", lambda *a: parsed.append(1) or real(*a))
    human_dir, log = tmp_path / "human", tmp_path / "feedback.jsonl"

    def ids() -> list[str | None]:
        return [s.id for s in human_spans(human_dir, log)]

    assert ids() == [] and ids() == [] and len(parsed) == 1  # no files yet: parsed once
    append_spans(log, [span(0, 0, id="a")])
    assert ids() == ["a"] and ids() == ["a"] and len(parsed) == 2
    append_spans(log, [span(0, 0, "O", id="a", source="human_correction", model_prediction="doji")])
    assert [s.label for s in human_spans(human_dir, log)] == ["O"] and len(parsed) == 3
    human_dir.mkdir()
    export = {
        "annotations": [
            {
                "id": "e1",
                "pair": "AAPL",
                "timeframe": "1d",
                "start_time": T0 + 5 * DAY,
                "end_time": T0 + 5 * DAY,
                "label": "doji",
            }
        ]
    }
    (human_dir / "trader.json").write_text(json.dumps(export))
    assert ids() == ["a", "e1"] and len(parsed) == 4
    export["annotations"][0]["id"] = "e2"  # same size, written to a new file that replaces it
    (human_dir / "new.tmp").write_text(json.dumps(export))
    (human_dir / "new.tmp").replace(human_dir / "trader.json")
    assert ids() == ["a", "e2"] and ids() == ["a", "e2"] and len(parsed) == 5


# ------------------------------------------------------------ disagreements: "correspond" means IoU > 0.5


def kinds(human, predicted, **kw):
    found, summary = disagreements(human, predicted, **kw)
    return [k for k, _, _ in found], summary


def test_the_same_candles_and_label_agree():
    found, summary = kinds([span(3, 4, "bullish_engulfing")], [span(3, 4, "bullish_engulfing")])
    assert found == [] and summary.agreements == 1 and summary.disagreements == 0


def test_half_the_candles_is_not_enough_more_than_half_is():
    # 2-candle human span vs 1 of its candles: IoU 1/2, not > 1/2: two disagreements.
    found, _ = kinds([span(3, 4)], [span(4, 4)])
    assert found == ["missed_by_model", "missed_by_human"]
    # 3-candle span vs 2 of its candles: IoU 2/3 corresponds.
    found, summary = kinds([span(3, 5)], [span(4, 5)])
    assert found == [] and summary.agreements == 1
    # Neighbouring candles never correspond.
    assert kinds([span(3, 3)], [span(4, 4)])[0] == ["missed_by_model", "missed_by_human"]


def test_a_different_label_on_the_same_candles_is_a_mismatch():
    found, summary = kinds([span(3, 4, "bullish_harami")], [span(3, 4, "bullish_engulfing")])
    assert found == ["label_mismatch"] and summary.by_kind["label_mismatch"] == 1


def test_a_dismissal_agrees_with_silence_and_disagrees_with_a_prediction():
    dismissal = span(3, 3, "O", source="human_correction", model_prediction="doji")
    found, summary = kinds([dismissal], [])
    assert found == [] and summary.agreements == 1
    assert kinds([dismissal], [span(3, 3)])[0] == ["label_mismatch"]


def test_matching_is_one_to_one_best_overlap_first():
    found, summary = kinds([span(3, 5)], [span(3, 4), span(3, 5)])
    assert found == ["missed_by_human"] and summary.agreements == 1
    assert summary.predicted == 2 and summary.human == 1


def test_candles_are_counted_on_stored_times_across_gaps():
    # Fri and Mon are consecutive candles: a Fri-Mon span and a Mon span share 1 of 2 candles.
    fri, mon = T0, T0 + 3 * DAY
    times = np.array([fri - DAY, fri, mon, mon + DAY])
    human = [Span(pair="AAPL", timeframe="1d", start_time=fri, end_time=mon + DAY, label="doji")]
    predicted = [Span(pair="AAPL", timeframe="1d", start_time=mon, end_time=mon + DAY, label="doji")]
    assert kinds(human, predicted, times=times)[0] == []  # 2 of 3 candles
    # On a plain daily grid the weekend counts: 2 of 5 days.
    assert kinds(human, predicted, step=DAY)[0] == ["missed_by_model", "missed_by_human"]


def test_timeframes_on_a_grid():
    assert (
        timeframe_seconds("1d") == 86400
        and timeframe_seconds("4h") == 14400
        and timeframe_seconds("15m") == 900
    )
    with pytest.raises(TimeframeError, match="timeframe 'weekly'"):
        timeframe_seconds("weekly")


def test_unanswered_predictions_and_margins():
    predicted = [span(1, 1), span(5, 6, "bullish_engulfing"), span(9, 9)]
    answered = [span(5, 6, "O", source="human_correction", model_prediction="bullish_engulfing")]
    assert unanswered(predicted, answered) == [0, 2]
    proba = np.array([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25], [np.nan, np.nan, np.nan]])
    np.testing.assert_allclose(margins(proba)[:2], [0.5, 0.05])
    assert np.isnan(margins(proba)[2])
