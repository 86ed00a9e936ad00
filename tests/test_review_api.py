"""The review loop's routes: series, candles, feedback, disagreements, review and the review queue."""

from __future__ import annotations

import json

import polars as pl
import pytest
from litestar.testing import TestClient

from candle_ml.annotations import read_feedback_log
from serve.app import create_app
from serve.settings import ServeSettings

# A valid answer on stored AAPL candles (2005-01-14 .. 2005-01-18): the tests vary one field.
DOJI_SPAN = {
    "pair": "AAPL",
    "timeframe": "1d",
    "start_time": 1105660800,
    "end_time": 1106006400,
    "label": "doji",
}


@pytest.fixture
def app_dirs(served_model, tmp_path):
    bundle_dir, candles_dir = served_model
    human_dir = tmp_path / "human"
    human_dir.mkdir()
    settings = ServeSettings(
        model=str(bundle_dir),
        candles_dir=str(candles_dir),
        feedback_log=str(tmp_path / "feedback.jsonl"),
        human_dir=str(human_dir),
    )
    with TestClient(base_url="http://127.0.0.1", app=create_app(settings)) as client:
        yield client, tmp_path / "feedback.jsonl", human_dir, candles_dir


def first_spans(client, n=3, **query):
    review = client.get("/review", params={"pair": "AAPL", "timeframe": "1d", **query}).json()
    return [s for s in review["spans"] if s["label"] != "O"][:n]


def test_series_and_candles(app_dirs):
    client, _, _, candles_dir = app_dirs
    series = client.get("/series").json()
    assert {(s["pair"], s["timeframe"], s["candles"]) for s in series} == {
        ("AAPL", "1d", 3270),
        ("IBM", "1d", 3270),
    }
    r = client.get("/candles", params={"pair": "AAPL", "timeframe": "1d", "start": 1356998400})
    stored = pl.read_parquet(candles_dir / "AAPL_1d.parquet").filter(pl.col("time") >= 1356998400)
    assert r.json()["candles"] == stored.to_dicts()
    assert client.get("/candles", params={"pair": "EURUSD", "timeframe": "1h"}).status_code == 404
    bad = client.get("/candles", params={"pair": "../etc", "timeframe": "1d"})
    assert bad.status_code == 400 and bad.json()["field"] == "pair"


def test_feedback_is_stored_exactly_as_sent_and_read_back_latest_per_id(app_dirs):
    client, log, _, _ = app_dirs
    s = first_spans(client, 1)[0]
    dismiss = {
        "id": "d1",
        "pair": "AAPL",
        "timeframe": "1d",
        "start_time": s["start_time"],
        "end_time": s["end_time"],
        "label": "O",
        "confidence": 1.0,
        "source": "human_correction",
        "model_prediction": s["label"],
    }
    new = {
        "pair": "AAPL",
        "timeframe": "1d",
        "start_time": s["start_time"],
        "end_time": s["start_time"],
        "label": "bullish_engulfing",
        "source": "human",
    }
    r = client.post("/feedback", json={"annotations": [dismiss, new]})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["stored"] == 2 and body["ids"][0] == "d1" and body["ids"][1].startswith("fb-")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines[0] == dismiss  # every field as sent
    assert lines[1] == {**new, "id": body["ids"][1], "confidence": 1.0, "model_prediction": None}
    # Resending the same id is idempotent: the latest answer per id is what counts.
    again = client.post(
        "/feedback", json={"annotations": [{**dismiss, "label": "doji", "source": "model_confirmed"}]}
    )
    assert again.status_code == 201
    got = client.get("/feedback", params={"pair": "AAPL", "timeframe": "1d"}).json()
    assert sorted((g["id"], g["label"]) for g in got) == sorted(
        [("d1", "doji"), (body["ids"][1], "bullish_engulfing")]
    )
    assert (
        client.get("/feedback", params={"pair": "AAPL", "timeframe": "1d", "end": s["start_time"] - 1}).json()
        == []
    )
    assert len(read_feedback_log(log)[0]) == 3


def test_an_answer_can_be_undone_and_training_reads_the_log_without_it(app_dirs):
    """Undo takes back the latest answer with an id (a tombstone in the log, durable before the 200);
    an earlier answer with that id stands again; the dataset's reader honours it; a second undo
    takes back the earlier one, a third is a 404."""
    client, log, human_dir, _ = app_dirs
    first = {**DOJI_SPAN, "id": "u1", "source": "human"}
    corrected = {
        **first,
        "label": "bullish_engulfing",
        "source": "human_correction",
        "model_prediction": "doji",
    }
    assert client.post("/feedback", json={"annotations": [first]}).status_code == 201
    assert client.post("/feedback", json={"annotations": [corrected]}).status_code == 201
    undone = client.delete("/feedback/u1")
    assert undone.status_code == 200, undone.text
    body = undone.json()
    assert body["undone"]["label"] == "bullish_engulfing" and body["restored"]["label"] == "doji"
    assert json.loads(log.read_text().splitlines()[-1]) == {"undo": "u1", "pair": "AAPL", "timeframe": "1d"}
    shown = client.get("/feedback", params={"pair": "AAPL", "timeframe": "1d"}).json()
    assert [(g["id"], g["label"]) for g in shown] == [("u1", "doji")]
    from candle_ml.annotations import read_human_annotations

    answers, _ = read_human_annotations(human_dir, log)  # what the dataset stage reads
    assert [(a.span.id, a.span.label) for a in answers] == [("u1", "doji")]
    second = client.delete("/feedback/u1").json()
    assert second["undone"]["label"] == "doji" and second["restored"] is None
    assert client.get("/feedback", params={"pair": "AAPL", "timeframe": "1d"}).json() == []
    gone = client.delete("/feedback/u1")
    assert gone.status_code == 404 and gone.json()["field"] == "id", gone.text
    assert client.delete("/feedback/never-sent").status_code == 404
    assert len(log.read_text().splitlines()) == 4  # two answers, two tombstones: the 404s wrote nothing


@pytest.mark.parametrize(
    ("change", "status", "field", "rule"),
    [
        ({"start_time": 1}, 422, "annotations[0].start_time", "matches a stored candle"),
        ({"pair": "EURUSD"}, 404, "annotations[0].pair", "stored series"),  # no such series
        ({"end_time": 951868800}, 422, "annotations[0].end_time", "end_time >= start_time"),
        (
            {"source": "human_correction"},
            422,
            "annotations[0].model_prediction",
            "human_correction needs model_prediction",
        ),
        (
            {"source": "model_confirmed", "label": "O"},
            422,
            "annotations[0].label",
            "model_confirmed needs a pattern label",
        ),
        ({"source": "programmatic"}, 400, "annotations[0].source", None),
        ({"start_time": "1105660800"}, 400, "annotations[0].start_time", "Expected `int`, got `str`"),
        ({"labl": "doji"}, 400, "annotations[0].labl", None),
        ({"id": "../x"}, 400, "annotations[0].id", None),
        ({"confidence": 2}, 400, "annotations[0].confidence", "Expected `float` <= 1.0"),
    ],
)
def test_bad_feedback_is_a_4xx_naming_field_and_rule_and_nothing_is_written(
    app_dirs, change, status, field, rule
):
    client, log, _, _ = app_dirs
    good = dict(DOJI_SPAN)
    r = client.post("/feedback", json={"annotations": [good, {**good, **change}][1:]})
    assert r.status_code == status, r.text
    assert r.json()["field"] == field and (rule is None or r.json()["rule"] == rule)
    assert not log.exists()


def test_answers_carry_the_range_the_trader_reviewed(app_dirs):
    client, log, _, _ = app_dirs
    seen = {"pair": "aapl", "timeframe": "1d", "start_time": 1104710400, "end_time": 1107302400}
    r = client.post("/feedback", json={"annotations": [DOJI_SPAN], "reviewed": [seen]})
    assert r.status_code == 201, r.text
    reviewed = log.with_name("reviewed.jsonl")
    assert [json.loads(line) for line in reviewed.read_text().splitlines()] == [{**seen, "pair": "AAPL"}]
    for change, status, rule in (
        ({"end_time": 1104710399}, 422, "end_time >= start_time"),
        ({"pair": "EURUSD"}, 404, "stored series"),
        ({"start_time": 1, "end_time": 2}, 422, "covers a stored candle"),
    ):
        bad = client.post("/feedback", json={"annotations": [DOJI_SPAN], "reviewed": [{**seen, **change}]})
        assert (
            bad.status_code == status
            and bad.json()["rule"] == rule
            and bad.json()["field"].startswith("reviewed[0].")
        )
    assert len(reviewed.read_text().splitlines()) == 1 and len(log.read_text().splitlines()) == 1, (
        "nothing written"
    )


def test_feedback_size_limits(app_dirs):
    client, log, _, _ = app_dirs
    good = dict(DOJI_SPAN)
    assert client.post("/feedback", json={"annotations": []}).status_code == 400
    assert client.post("/feedback", json={"annotations": [good] * 1001}).status_code == 400
    assert client.post("/feedback", json={"annotations": [good] * 1000}).status_code == 201
    assert len(log.read_text().splitlines()) == 1000


def test_review_shows_a_dismissed_prediction_as_a_mismatch(app_dirs):
    client, _, _, _ = app_dirs
    query = {"pair": "AAPL", "timeframe": "1d", "start": 1262304000, "end": 1293753600}  # 2010
    before = client.get("/review", params=query)
    assert before.status_code == 200 and "review;dur=" in before.headers["server-timing"]
    body = before.json()
    assert all(query["start"] <= p["time"] <= query["end"] for p in body["predictions"])
    assert body["summary"]["human"] == 0 and body["summary"]["by_kind"]["missed_by_human"] == len(
        body["spans"]
    )
    s = body["spans"][0]
    client.post(
        "/feedback",
        json={
            "annotations": [
                {
                    "pair": "AAPL",
                    "timeframe": "1d",
                    "start_time": s["start_time"],
                    "end_time": s["end_time"],
                    "label": "O",
                    "source": "human_correction",
                    "model_prediction": s["label"],
                }
            ]
        },
    )
    after = client.get("/review", params=query).json()
    mismatch = [d for d in after["disagreements"] if d["kind"] == "label_mismatch"]
    assert (
        len(mismatch) == 1
        and mismatch[0]["human"]["label"] == "O"
        and mismatch[0]["predicted"]["label"] == s["label"]
    )
    assert (
        after["summary"]["human"] == 1
        and after["summary"]["disagreements"] == before.json()["summary"]["disagreements"]
    )


def test_review_queue_is_least_sure_first_and_drops_answered_spans(app_dirs):
    client, _, _, _ = app_dirs
    r = client.get("/review/queue", params={"pair": "AAPL", "timeframe": "1d", "limit": 50})
    assert r.status_code == 200, r.text
    queue = r.json()
    scores = [q["score"] for q in queue["queue"]]
    assert len(scores) == 50 and scores == sorted(scores) and queue["unanswered"] > 50
    top = queue["queue"][0]
    client.post(
        "/feedback",
        json={
            "annotations": [
                {k: top[k] for k in ("pair", "timeframe", "start_time", "end_time", "label")}
                | {"source": "model_confirmed"}
            ]
        },
    )
    after = client.get("/review/queue", params={"pair": "AAPL", "timeframe": "1d", "limit": 50}).json()
    assert after["unanswered"] == queue["unanswered"] - 1
    assert (top["start_time"], top["label"]) not in {(q["start_time"], q["label"]) for q in after["queue"]}
    every = client.get("/review/queue").json()  # every stored series
    assert {q["pair"] for q in every["queue"]} <= {"AAPL", "IBM"} and every["unanswered"] > queue[
        "unanswered"
    ]
    assert client.get("/review/queue", params={"pair": "EURUSD"}).status_code == 404
    assert client.get("/review/queue", params={"limit": 0}).status_code == 400


def test_disagreements_route(app_dirs):
    client, _, _, _ = app_dirs
    human = {**DOJI_SPAN, "label": "bullish_engulfing"}
    predicted = [
        {"start_time": 1105660800, "end_time": 1106006400, "label": "bullish_harami"},
        {"start_time": 1104796800, "end_time": 1104796800, "label": "doji", "avg_confidence": 0.9},
    ]
    r = client.post("/disagreements", json={"human": [human], "predicted": predicted})
    assert r.status_code == 200, r.text
    out = r.json()
    assert [d["kind"] for d in out["disagreements"]] == ["missed_by_human", "label_mismatch"]
    assert out["summary"] == {
        "predicted": 2,
        "human": 1,
        "agreements": 0,
        "disagreements": 2,
        "by_kind": {"missed_by_model": 0, "missed_by_human": 1, "label_mismatch": 1},
    }
    off_grid = client.post(
        "/disagreements", json={"human": [], "predicted": predicted, "timeframe": "weekly"}
    )
    # a timeframe outside the one grammar (<n>s|m|h|d|w) is refused by the schema itself
    assert off_grid.status_code == 400 and "timeframe" in off_grid.json()["detail"]
    assert client.post("/disagreements", json={"human": [human]}).status_code == 400


def test_the_page_and_its_scripts_are_served(app_dirs):
    client, _, _, _ = app_dirs
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "/static/vendor/lightweight-charts.standalone.production.js" in page.text
    lib = client.get("/static/vendor/lightweight-charts.standalone.production.js")
    assert lib.status_code == 200 and "Lightweight Charts" in lib.text[:300]
    assert client.get("/static/review.js").status_code == 200


def test_the_server_keeps_its_series_through_a_failed_rebuild(served_model, tmp_path):
    """`dvc repro` removes data/candles before ingest reruns; if ingest then fails, the server
    keeps serving the series it read, says so in /health, and takes a good set on reload."""
    import shutil

    bundle_dir, candles_dir = served_model
    live = tmp_path / "candles"
    shutil.copytree(candles_dir, live)
    settings = ServeSettings(
        model=str(bundle_dir), candles_dir=str(live), feedback_log=str(tmp_path / "f.jsonl")
    )
    batch = {"pair": "IBM", "timeframe": "1d", "start": 1356998400}
    with TestClient(base_url="http://127.0.0.1", app=create_app(settings)) as client:
        before = client.post("/predict/batch", json=batch).json()
        shutil.rmtree(live)  # what DVC does first; then ingest fails
        assert client.post("/predict/batch", json=batch).json() == before
        reload = client.post("/model/reload", json={}).json()
        assert reload["reloaded"] and reload["series"] == 2 and "dvc checkout" in reload["series_error"]
        health = client.get("/health").json()
        assert health["status"] == "degraded" and health["series"] == 2 and health["series_error"]
        assert len(client.get("/series").json()) == 2
        live.mkdir()  # a half-written rebuild: the index names a file that is not there
        (live / "index.json").write_text(
            json.dumps({"series": [json.loads((candles_dir / "index.json").read_text())["series"][1]]})
        )
        assert "cannot read the stored series" in client.post("/model/reload", json={}).json()["series_error"]
        assert client.post("/predict/batch", json=batch).json() == before
        shutil.rmtree(live)
        shutil.copytree(candles_dir, live)  # `dvc checkout`, or a rebuild that succeeded
        reload = client.post("/model/reload", json={}).json()
        assert reload["series_error"] is None and client.get("/health").json()["status"] == "ok"
