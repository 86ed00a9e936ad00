"""The Label Studio ML backend (/label-studio) in process, with payloads laid out as Label Studio
1.23 sends them (its ml/api_connector.py and webhooks): the label config read, predictions on
the right candles in Label Studio's time units, annotations created / updated / deleted landing
in the feedback log exactly once, the task's candles kept for training, and bad payloads a 4xx.
The same flow against a real Label Studio: tests/test_label_studio_server.py."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import polars as pl
import pytest
from litestar.testing import TestClient

from candle_ml.annotations import read_feedback_log, read_reviewed_log
from candle_ml.bundle import load_bundle
from candle_ml.errors import CandleError
from candle_ml.label_studio import LabelMap, parse_label_config, parse_times, task_series
from candle_ml.label_studio_files import label_config_xml, read_studio_export, studio_tasks, task_data
from serve.app import create_app
from serve.settings import ServeSettings

MINIMAL = """<View>
  <TimeSeriesLabels name="lab" toName="ts">
    <Label value="Bullish Engulfing"/><Label value="My Flag"/>
  </TimeSeriesLabels>
  <TimeSeries name="ts" value="$series" valueType="json" timeColumn="Date">
    <Channel column="O" legend="Open"/><Channel column="High"/>
    <Channel column="low"/><Channel column="Close"/>
  </TimeSeries>
</View>"""


@pytest.fixture(scope="module")
def served(served_model):
    bundle_dir, candles_dir = served_model
    return bundle_dir, candles_dir, load_bundle(bundle_dir).meta.label_names


def client(tmp_path: Path, served, **extra) -> TestClient:
    bundle_dir, candles_dir, _ = served
    settings = ServeSettings(
        model=str(bundle_dir),
        candles_dir=str(candles_dir),
        feedback_log=str(tmp_path / "feedback.jsonl"),
        raw_dir=str(tmp_path / "raw"),
        **extra,
    )
    return TestClient(base_url="http://127.0.0.1", app=create_app(settings))


def stretch(served, pair: str = "AAPL", start: int = 600, n: int = 80) -> pl.DataFrame:
    return pl.read_parquet(served[1] / f"{pair}_1d.parquet").slice(start, n)


def region(task: dict, first: int, last: int, label: str, rid: str = "r1") -> dict:
    """A region on candles ``first..last`` of a candle-ml task, as Label Studio's UI writes one
    (bounds as strings in the config's timeFormat, origin "manual")."""
    times = task["data"]["candles"]["time"]
    value = {"start": times[first], "end": times[last], "instant": first == last, "timeserieslabels": [label]}
    return {
        "id": rid,
        "from_name": "pattern",
        "to_name": "candles",
        "type": "timeserieslabels",
        "origin": "manual",
        "value": value,
    }


def test_the_label_config_maps_channels_and_labels():
    cfg = parse_label_config(MINIMAL)
    assert (cfg.from_name, cfg.to_name, cfg.value_key, cfg.time_column) == ("lab", "ts", "series", "Date")
    assert cfg.columns == {"open": "O", "high": "High", "low": "low", "close": "Close", "volume": "volume"}
    labels = LabelMap(cfg, ["O", "bullish_engulfing", "doji"])
    assert labels.to_studio == {"bullish_engulfing": "Bullish Engulfing"}
    assert labels.left_out == ["doji"] and labels.new == ["My Flag"]
    ours = parse_label_config(label_config_xml(["O", "doji", "bullish_hammer"]))
    assert ours.labels == ["doji", "bullish_hammer"] and ours.time_format == "%Y-%m-%d %H:%M:%S"
    # a column no channel plots is read by its own name
    assert parse_label_config(MINIMAL.replace('<Channel column="Close"/>', "")).columns["close"] == "close"


def test_times_in_label_studio_units():
    cfg = parse_label_config(label_config_xml(["doji"]))
    assert parse_times(["2005-01-03 00:00:00", 1104796800000], cfg, "t").tolist() == [1104710400, 1104796800]
    with pytest.raises(CandleError, match=r"t\[0\]: '03/01/2005' does not match timeFormat"):
        parse_times(["03/01/2005"], cfg, "t")
    numeric = parse_label_config(MINIMAL)
    assert parse_times([1104710400, 1104796800], numeric, "t").tolist() == [1104710400, 1104796800]
    assert parse_times([1104710400000], numeric, "t").tolist() == [1104710400]  # epoch ms


def test_a_task_of_any_layout_reads_as_candles(served):
    candles = stretch(served, n=30)
    rows = [
        {"Date": t * 1000, "O": o, "High": h, "low": lo, "Close": c}
        for t, o, h, lo, c in candles.select("time", "open", "high", "low", "close").iter_rows()
    ]
    series = task_series({"id": 5, "data": {"series": rows}}, parse_label_config(MINIMAL))
    assert (series.pair, series.timeframe, series.unit_ms) == ("LS-5", "1d", True)  # named from the task
    assert series.candles["close"].to_list() == candles["close"].to_list()
    rows[3]["High"] = rows[3]["low"] - 1
    with pytest.raises(CandleError, match="task candle 3: .*high"):
        task_series({"id": 5, "data": {"series": rows}}, parse_label_config(MINIMAL))


def test_predictions_land_on_the_tasks_candles(tmp_path, served):
    labels = served[2]
    config = label_config_xml(labels)
    inside = {"id": 1, "data": task_data("AAPL", "1d", stretch(served))}
    alone = {"id": 2, "data": task_data("NEWCO", "1d", stretch(served, start=1200))}
    with client(tmp_path, served) as c:
        assert c.get("/label-studio/health").json()["status"] == "UP"
        setup = c.post(
            "/label-studio/setup", json={"project": "3.1700000000", "schema": config, "hostname": "http://ls"}
        )
        assert setup.status_code == 200 and setup.json()["labels_left_out"] == []
        got = c.post(
            "/label-studio/predict", json={"tasks": [inside, alone], "label_config": config, "project": "3.1"}
        )
        assert got.status_code == 200, got.text
        results = got.json()["results"]
        direct = c.post("/predict", json={"candles": stretch(served).to_dicts()}).json()
    assert len(results) == 2 and all(r["model_version"] == setup.json()["model_version"] for r in results)
    ms = {t * 1000 for t in stretch(served)["time"].to_list()}
    for r in results[0]["result"]:
        assert {r["from_name"], r["to_name"], r["type"]} == {"pattern", "candles", "timeserieslabels"}
        assert r["value"]["start"] in ms and r["value"]["end"] in ms and 0 <= r["score"] <= 1
    # A stretch of a stored series is predicted in its context: its first candles have history.
    lone = [s for s in direct["spans"] if s["label"] != "O"]
    assert len(results[0]["result"]) >= len(lone) > 0
    assert min(r["value"]["start"] for r in results[0]["result"]) < 1000 * lone[0]["start_time"]


def test_annotations_created_updated_deleted_reach_the_log_once(tmp_path, served):
    config = label_config_xml(served[2])
    task = {"id": 11, "project": 3, "data": task_data("NEWCO", "1d", stretch(served, start=1500))}
    project = {"id": 3, "label_config": config, "title": "candles"}
    annotation = {
        "id": 70,
        "task": 11,
        "result": [region(task, 5, 7, "bullish_engulfing"), region(task, 20, 20, "My Flag", "r2")],
    }
    log = tmp_path / "feedback.jsonl"
    with client(tmp_path, served) as c:
        made = c.post(
            "/label-studio/webhook",
            json={"action": "ANNOTATION_CREATED", "annotation": annotation, "task": task, "project": project},
        )
        assert made.status_code == 200 and made.json()["spans"] == 2
        spans, _ = read_feedback_log(log)
        times = stretch(served, start=1500)["time"].to_list()
        assert {s.source for s in spans} == {"human"}
        assert {(s.id, s.label, s.start_time, s.end_time) for s in spans} == {
            ("ls-p3-a70-r1", "bullish_engulfing", times[5], times[7]),
            ("ls-p3-a70-r2", "my_flag", times[20], times[20]),  # a trader's own label, named as ours
        }
        # the task's candles are kept for the next dvc repro (NEWCO was never ingested)
        assert pl.read_parquet(tmp_path / "raw/NEWCO_1d.parquet")["time"].to_list() == times
        # and the task was gone through: its unmarked candles are negatives of the project's labels
        [reviewed] = read_reviewed_log(tmp_path / "reviewed.jsonl")
        assert (reviewed.pair, reviewed.timeframe, reviewed.start_time, reviewed.end_time) == (
            "NEWCO",
            "1d",
            times[0],
            times[-1],
        )
        assert "bullish_engulfing" in reviewed.labels and "O" not in reviewed.labels
        # moved a candle; r2 removed; a prediction kept as it was (Label Studio: origin "prediction")
        kept = region(task, 30, 31, "bearish_harami", "candle-ml-4") | {"origin": "prediction"}
        annotation["result"] = [region(task, 6, 8, "bullish_engulfing"), kept]
        updated = c.post(
            "/label-studio/webhook",
            json={"action": "ANNOTATION_UPDATED", "annotation": annotation, "task": task, "project": project},
        )
        assert updated.status_code == 200
        spans, _ = read_feedback_log(log)
        assert [(s.id, s.start_time, s.source) for s in spans] == [
            ("ls-p3-a70-r1", times[6], "human"),
            ("ls-p3-a70-candle-ml-4", times[30], "model_confirmed"),
        ]
        gone = c.post(
            "/label-studio/webhook",
            json={"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 70}], "project": project},
        )
        assert gone.json()["spans_taken_back"] == 2 and read_feedback_log(log)[0] == []
        assert c.post(
            "/label-studio/webhook", json={"action": "PROJECT_UPDATED", "project": project}
        ).json() == {"status": "Unknown event"}
        training = c.post(
            "/label-studio/webhook", json={"action": "START_TRAINING", "project": project}
        ).json()
        assert "dvc repro" in training["message"]
        assert c.get("/label-studio/metrics").json()["annotations_stored"] == 2


def test_bad_payloads_are_4xx_and_write_nothing(tmp_path, served):
    config = label_config_xml(served[2])
    task = {"id": 1, "data": task_data("AAPL", "1d", stretch(served))}
    moved = json.loads(json.dumps(task))
    c = moved["data"]["candles"]
    c["close"][3] = (c["high"][3] + c["low"][3]) / 2 + 1e-3  # a valid candle, not the stored AAPL
    annotation = {"id": 9, "task": 1, "result": [region(task, 2, 3, "doji")]}
    project = {"id": 1, "label_config": config}
    with client(tmp_path, served) as c:
        cases = [
            (
                "/label-studio/predict",
                {"tasks": [{"id": 1, "data": {}}], "label_config": config},
                422,
                "no 'candles' field",
            ),
            ("/label-studio/predict", {"tasks": [task], "label_config": "<View/>"}, 422, "TimeSeriesLabels"),
            ("/label-studio/predict", {"tasks": "x", "label_config": config}, 400, "tasks"),
            ("/label-studio/setup", {"schema": "<View"}, 422, "not valid XML"),
            ("/label-studio/webhook", {"annotation": annotation}, 400, "action"),
            (
                "/label-studio/webhook",
                {"action": "ANNOTATION_CREATED", "annotation": annotation, "task": moved, "project": project},
                409,
                "AAPL_1d as stored",
            ),
            (
                "/label-studio/webhook",
                {
                    "action": "ANNOTATION_CREATED",
                    "annotation": {
                        **annotation,
                        "result": [
                            region(task, 2, 3, "doji")
                            | {
                                "value": {
                                    "start": "1990-01-01 00:00:00",
                                    "end": "1990-01-02 00:00:00",
                                    "timeserieslabels": ["doji"],
                                }
                            }
                        ],
                    },
                    "task": task,
                    "project": project,
                },
                422,
                "holds no candle",
            ),
        ]
        for path, body, status, words in cases:
            got = c.post(path, json=body)
            assert got.status_code == status and words in got.json()["detail"], (path, got.text)
    assert not (tmp_path / "feedback.jsonl").exists() and not (tmp_path / "raw").exists()


def test_basic_auth_when_configured(tmp_path, served):
    with client(tmp_path, served, label_studio_auth="studio:s3cret") as c:
        assert c.get("/label-studio/health").status_code == 401
        good = base64.b64encode(b"studio:s3cret").decode()
        assert c.get("/label-studio/health", headers={"Authorization": f"Basic {good}"}).status_code == 200
        wrong = base64.b64encode(b"studio:nope").decode()
        assert c.get("/label-studio/health", headers={"Authorization": f"Basic {wrong}"}).status_code == 401
        assert c.get("/health/live").status_code == 200  # the rest of the API is not behind it


def test_tasks_out_and_exports_back(tmp_path, served):
    """candle-ml's tasks (pre-annotated) go to Label Studio; its JSON and JSON_MIN exports (laid out as
    label-studio-sdk's converter writes them) come back as the same spans."""
    candles = stretch(served, start=300, n=120)
    cfg = parse_label_config(label_config_xml(served[2]))
    labels = LabelMap(cfg, served[2])
    times = candles["time"].to_list()

    class Predicted:  # a SpanPrediction's fields
        def __init__(self, i, j, label):
            self.start_time, self.end_time, self.label, self.avg_confidence = times[i], times[j], label, 0.8

    tasks = studio_tasks(
        "AAPL", "1d", candles, 50, labels, [Predicted(3, 4, "doji"), Predicted(48, 52, "doji")], "m@1"
    )
    assert [len(t["data"]["candles"]["time"]) for t in tasks] == [50, 50, 20]
    assert [len(t["predictions"][0]["result"]) for t in tasks] == [
        1,
        0,
        0,
    ]  # a span across two tasks: neither
    assert task_series(tasks[1], cfg).candles.equals(candles.slice(50, 50))

    task = {"id": 4, "project": 9, "data": tasks[0]["data"]}
    value = {"start": task["data"]["candles"]["time"][10], "end": task["data"]["candles"]["time"][11]}
    value |= {"instant": False, "timeserieslabels": ["bullish_harami"]}
    result = [
        {"id": "x1", "from_name": "pattern", "to_name": "candles", "type": "timeserieslabels", "value": value}
    ]
    full = [
        {**task, "annotations": [{"id": 12, "result": result, "was_cancelled": False}], "predictions": []}
    ]
    minimal = [
        {"id": 4, **task["data"], "pattern": [value], "annotator": 1, "annotation_id": 12, "lead_time": 3.2}
    ]
    for name, export in (("json", full), ("json_min", minimal)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(export))
        (imported,) = read_studio_export(path)
        assert imported.series.pair == "AAPL" and imported.series.candles.equals(candles.slice(0, 50))
        assert [(s.label, s.start_time, s.end_time) for s in imported.spans] == [
            ("bullish_harami", times[10], times[11])
        ]
        assert (imported.reviewed.start_time, imported.reviewed.end_time) == (times[0], times[49])
    with pytest.raises(Exception, match="no field holds candles"):
        (tmp_path / "bad.json").write_text(json.dumps([{"id": 1, "text": "x", "annotations": []}]))
        read_studio_export(tmp_path / "bad.json")
