"""The span annotation format: both file shapes, clear errors, the feedback log."""

from __future__ import annotations

import json
import logging

import pytest

from candle_ml.annotations import ReviewedRange, read_annotation_file, read_feedback_log, read_reviewed
from candle_ml.errors import AnnotationError
from candle_ml.feedback import append_lines

SPAN = {
    "id": "a1",
    "pair": "EURUSD",
    "timeframe": "1h",
    "start_time": 1492592400,
    "end_time": 1492596000,
    "label": "bullish_engulfing",
    "confidence": 1.0,
    "source": "human",
    "model_prediction": None,
}


def test_object_and_bare_list_files(tmp_path):
    a = tmp_path / "a.json"
    a.write_text(json.dumps({"annotations": [SPAN]}))
    b = tmp_path / "b.json"
    b.write_text(
        json.dumps(
            [
                SPAN,
                {
                    **SPAN,
                    "id": "a2",
                    "label": "O",
                    "source": "human_correction",
                    "model_prediction": "bullish_engulfing",
                },
            ]
        )
    )
    assert read_annotation_file(a)[0].label == "bullish_engulfing"
    spans = read_annotation_file(b)
    assert len(spans) == 2 and spans[1].model_prediction == "bullish_engulfing"


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"start_time": "2017-04-19"}, r"entry 1, field start_time: Expected `int`, got `str`"),
        ({"start_time": 1492592400.5}, r"entry 1, field start_time: Expected `int`, got `float`"),
        ({"end_time": 1}, r"entry 1: end_time 1 is before start_time"),
        (
            {"source": "robot"},
            r"entry 1, field source: Invalid enum value 'robot' \(allowed: human, human_correction",
        ),
        ({"confidence": 1.5}, r"entry 1: confidence 1.5 must be within \[0, 1\]"),
    ],
)
def test_malformed_entry_names_file_entry_and_field(tmp_path, change, expected):
    p = tmp_path / "export.json"
    p.write_text(json.dumps({"annotations": [SPAN, {**SPAN, **change}]}))
    with pytest.raises(AnnotationError, match=rf"export.json: {expected}"):
        read_annotation_file(p)


def test_missing_field(tmp_path):
    p = tmp_path / "export.json"
    p.write_text(json.dumps([{k: v for k, v in SPAN.items() if k != "label"}]))
    with pytest.raises(AnnotationError, match="entry 0: Object missing required field `label`"):
        read_annotation_file(p)


def test_feedback_log_skips_a_torn_last_line(tmp_path, caplog):
    p = tmp_path / "feedback.jsonl"
    p.write_text(json.dumps(SPAN) + "\n" + json.dumps({**SPAN, "id": "a2"}) + "\n" + '{"id": "a3", "pa')
    with caplog.at_level(logging.WARNING):
        spans, torn = read_feedback_log(p)
    assert [s.id for s in spans] == ["a1", "a2"] and torn == 1
    assert "torn write" in caplog.text


def test_feedback_log_bad_line_before_the_end_is_an_error(tmp_path):
    p = tmp_path / "feedback.jsonl"
    p.write_text(json.dumps(SPAN) + "\n{oops\n" + json.dumps(SPAN) + "\n")
    with pytest.raises(AnnotationError, match="feedback.jsonl line 2: not valid JSON"):
        read_feedback_log(p)


def test_absent_feedback_log_is_empty(tmp_path):
    assert read_feedback_log(tmp_path / "feedback.jsonl") == ([], 0)


def test_the_example_export_is_valid_and_on_real_candles():
    from pathlib import Path

    from candle_ml.ingest import bundled_frame

    example = Path(__file__).resolve().parent.parent / "data/annotations/examples/AAPL_2005Q1.json"
    spans = read_annotation_file(example)
    times = set(bundled_frame("AAPL")["time"].astype(int))
    assert {s.source for s in spans} == {"model_confirmed", "human_correction", "human"}
    assert all(s.start_time in times and s.end_time in times for s in spans)


def test_reviewed_ranges_from_exports_and_the_page_log(tmp_path):
    human = tmp_path / "human"
    human.mkdir()
    span = {"pair": "AAPL", "timeframe": "1d", "start_time": 10, "end_time": 20, "label": "my_setup"}
    ranges = [{"pair": "AAPL", "timeframe": "1d", "start_time": 0, "end_time": 100, "labels": ["my_setup"]}]
    (human / "a.json").write_text(json.dumps({"annotations": [span], "reviewed": ranges}))
    (human / "b.json").write_text(json.dumps([span]))  # a bare list says nothing of what was reviewed
    log = tmp_path / "reviewed.jsonl"
    append_lines(log, [ReviewedRange("IBM", "1d", 5, 50)])
    with open(log, "ab") as f:
        f.write(b'{"pair": "IB')  # torn by a crash: skipped
    got = read_reviewed(human, log)
    assert got == [ReviewedRange("AAPL", "1d", 0, 100, ["my_setup"]), ReviewedRange("IBM", "1d", 5, 50)]
    assert got[0].covers("my_setup") and not got[0].covers("doji") and got[1].covers("doji")
    (human / "a.json").write_text(
        json.dumps({"annotations": [span], "reviewed": [{**ranges[0], "end_time": -1}]})
    )
    with pytest.raises(
        AnnotationError, match=r"a.json: reviewed range 0: end_time -1 is before start_time 0"
    ):
        read_reviewed(human, log)
