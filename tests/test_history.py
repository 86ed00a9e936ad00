"""The prediction history: every answered prediction is kept, a broken store never costs a
prediction, and traders' answers to what they were shown give the model's live precision."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from litestar.testing import TestClient

from candle_ml.history import (
    HistoryWriter,
    PredictionRecord,
    ShownSpan,
    connect,
    prune,
    read,
    shown_spans,
    store_bytes,
    write,
)
from serve.app import create_app
from serve.settings import ServeSettings

YEAR_2010 = {"pair": "AAPL", "timeframe": "1d", "start": 1262304000, "end": 1293753600}


def client_for(served_model, tmp_path: Path, history: str | None = None) -> TestClient:
    bundle_dir, candles_dir = served_model
    settings = ServeSettings(
        model=str(bundle_dir),
        candles_dir=str(candles_dir),
        feedback_log=str(tmp_path / "feedback.jsonl"),
        human_dir=str(tmp_path),
        history=str(tmp_path / "history" / "predictions.sqlite") if history is None else history,
    )
    return TestClient(base_url="http://127.0.0.1", app=create_app(settings))


def request_candles(served_model, n: int = 400, pair: str = "IBM") -> list[dict]:
    return pl.read_parquet(served_model[1] / f"{pair}_1d.parquet").tail(n).to_dicts()


def wait_written(client: TestClient, n: int) -> dict:
    for _ in range(100):
        stats = client.get("/health").json()["history"]
        if stats["written"] >= n:
            return stats
        time.sleep(0.05)
    raise AssertionError(f"history: {stats}")


def test_every_answered_prediction_is_in_the_history(served_model, tmp_path):
    with client_for(served_model, tmp_path) as client:
        one = client.post(
            "/predict", json={"candles": request_candles(served_model), "pair": "IBM", "timeframe": "1d"}
        )
        two = client.post(
            "/predict/batch", json={"pair": "AAPL", "timeframe": "1d", "start": YEAR_2010["start"]}
        )
        review = client.get("/review", params=YEAR_2010)
        assert one.status_code == two.status_code == review.status_code == 200
        assert wait_written(client, 3) == {"written": 3, "missed": 0, "error": None}
        found = client.get("/history").json()
        ids = [r.headers["x-request-id"] for r in (review, two, one)]
        assert [p["request_id"] for p in found["predictions"]] == ids  # newest first
        newest = found["predictions"][0]
        body = review.json()
        assert newest["route"] == "/review" and newest["model_version"] == body["model_info"]["version"]
        assert (newest["pair"], newest["timeframe"], newest["candles"]) == (
            "AAPL",
            "1d",
            len(body["predictions"]),
        )
        assert newest["start_time"] == body["predictions"][0]["time"]
        keys = ("label", "kind", "start_time", "end_time")
        assert newest["spans"] == [
            {k: s[k] for k in keys} | {"confidence": s["avg_confidence"]} for s in body["spans"]
        ]
        ibm = client.get("/history", params={"pair": "IBM", "timeframe": "1d"}).json()["predictions"]
        assert [p["request_id"] for p in ibm] == [ids[2]] and ibm[0]["route"] == "/predict"
        assert client.get("/history", params={"limit": 1}).json()["predictions"][0]["request_id"] == ids[0]
        assert client.get("/history", params={"model_version": "sha256:another"}).json()["predictions"] == []
        # a 2010 range: the IBM request's last 400 candles (2012-2013) do not overlap it
        assert (
            len(
                client.get("/history", params={k: YEAR_2010[k] for k in ("start", "end")}).json()[
                    "predictions"
                ]
            )
            == 2
        )
        assert client.get("/history", params={"limit": 0}).status_code == 400


def test_a_broken_store_never_costs_a_prediction(served_model, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the history's folder should be")
    with client_for(served_model, tmp_path, history=str(blocker / "predictions.sqlite")) as client:
        for _ in range(3):
            assert client.post("/predict", json={"candles": request_candles(served_model)}).status_code == 200
        for _ in range(100):
            stats = client.get("/health").json()["history"]
            if stats["missed"] == 3:
                break
            time.sleep(0.05)
        assert stats["written"] == 0 and stats["missed"] == 3 and "not-a-directory" in stats["error"]


def test_a_full_queue_drops_and_counts_instead_of_waiting():
    writer = HistoryWriter(Path("/nonexistent/never-started.sqlite"), queue_size=2)  # no thread drains it
    rec = PredictionRecord("r", 0, "/predict", "v", None, None, None, None, 0, [])
    started = time.perf_counter()
    for _ in range(5):
        writer.record(rec)
    assert writer.missed == 3 and time.perf_counter() - started < 0.1


def test_the_history_is_written_before_the_server_stops(served_model, tmp_path):
    with client_for(served_model, tmp_path) as client:
        for _ in range(5):
            client.post("/predict", json={"candles": request_candles(served_model, 350)})
    # the lifespan's end drained the queue: all five are on disk
    assert len(read(tmp_path / "history" / "predictions.sqlite", limit=100)) == 5


def test_retention_deletes_by_age_then_by_size(tmp_path):
    path = tmp_path / "h.sqlite"
    con = connect(path)
    now = int(time.time() * 1000)
    spans = [ShownSpan("doji", "candlestick", t, t, 0.9) for t in range(50)]
    old = [
        PredictionRecord(f"old{i}", now - 100 * 86_400_000, "/predict", "v1", "X", "1d", 0, 1, 2, spans)
        for i in range(3)
    ]
    new = [PredictionRecord(f"new{i}", now, "/predict", "v1", "X", "1d", 0, 1, 2, spans) for i in range(2000)]
    write(con, old + new)
    assert prune(con, path, retention_days=90, max_mb=1000) == 3
    size = store_bytes(path)
    deleted = prune(con, path, retention_days=90, max_mb=size / 3e6)  # a third of its size
    assert 0 < deleted < 2000 and store_bytes(path) <= size / 3
    kept = [r.request_id for r in read(path, limit=5000)]
    assert kept[0] == "new1999" and "new0" not in kept  # the oldest went first
    # the same 50 spans shown 2000 times: stored once each for live precision, still there
    assert con.execute("SELECT count(*) FROM shown").fetchone()[0] == 50
    assert prune(con, path, retention_days=0, max_mb=1000) == len(kept)  # all of it, by age
    assert con.execute("SELECT count(*) FROM shown").fetchone()[0] == 0


def test_live_precision_from_a_scripted_review(served_model, tmp_path):
    """A trader reviews 2010 on the page: confirms two spans, dismisses one, relabels one. The
    model's live precision counts exactly those answers, per label, for the version shown."""
    with client_for(served_model, tmp_path) as client:
        every = client.get("/review", params=YEAR_2010).json()["spans"]  # candlestick and chart spans
        shown = [s for s in every if s["kind"] == "candlestick"]
        wait_written(client, 1)
        by_label: dict[str, list[dict]] = {}
        for s in shown:
            by_label.setdefault(s["label"], []).append(s)
        doji, other = by_label["doji"], next(v for k, v in by_label.items() if k != "doji")
        answers = [
            (doji[0], doji[0]["label"], "model_confirmed"),
            (doji[1], doji[1]["label"], "model_confirmed"),
            (doji[2], "O", "human_correction"),
            (other[0], "doji" if other[0]["label"] != "doji" else "bullish_hammer", "human_correction"),
        ]
        for span, label, source in answers:
            body = {k: span[k] for k in ("start_time", "end_time")} | {
                "pair": "AAPL",
                "timeframe": "1d",
                "label": label,
                "source": source,
                "model_prediction": span["label"],
            }
            assert client.post("/feedback", json={"annotations": [body]}).status_code == 201
        info = client.get("/model/info").json()
    live = {p["label"]: p for p in info["live_precision"]}
    assert live["doji"] | {"shown": 0} == {
        "model_version": info["version"],
        "label": "doji",
        "shown": 0,
        "answered": 3,
        "confirmed": 2,
        "corrected": 0,
        "dismissed": 1,
        "precision": round(2 / 3, 4),
    }
    assert live["doji"]["shown"] == len(doji)
    assert live[other[0]["label"]]["corrected"] == 1 and live[other[0]["label"]]["precision"] == 0.0
    assert sum(p["shown"] for p in live.values()) == len(every)
    # The same numbers from the command line, as a user types it.
    script = Path(sys.executable).parent / "candle-ml"
    report = subprocess.run(
        [str(script), "report", "--db", "history/predictions.sqlite", "--feedback-log", "feedback.jsonl"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert report.returncode == 0, report.stderr
    line = next(x for x in report.stdout.splitlines() if " doji " in x)
    assert line.split()[-5:] == ["3", "2", "0", "1", "0.67"]
    listed = subprocess.run(
        [str(script), "history", "--db", "history/predictions.sqlite", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert listed.returncode == 0 and json.loads(listed.stdout.splitlines()[0])["route"] == "/review"


def test_without_a_history_the_route_says_so(served_model, tmp_path):
    with client_for(served_model, tmp_path, history="") as client:
        r = client.get("/history")
        assert r.status_code == 404 and "--history ''" in r.json()["detail"]
        assert client.get("/health").json()["history"] is None
        assert client.post("/predict", json={"candles": request_candles(served_model)}).status_code == 200


FIRST_SCHEMA = """
CREATE TABLE predictions (id INTEGER PRIMARY KEY, request_id TEXT NOT NULL, served_at INTEGER NOT NULL,
    route TEXT NOT NULL, model_version TEXT NOT NULL, pair TEXT, timeframe TEXT, start_time INTEGER,
    end_time INTEGER, candles INTEGER NOT NULL);
CREATE TABLE spans (prediction_id INTEGER NOT NULL REFERENCES predictions(id) ON DELETE CASCADE,
    label TEXT NOT NULL, kind TEXT NOT NULL, start_time INTEGER NOT NULL, end_time INTEGER NOT NULL,
    confidence REAL NOT NULL);
INSERT INTO predictions VALUES (1, 'a', 1000, '/predict', 'v1', 'AAPL', '1d', 0, 9, 10);
INSERT INTO predictions VALUES (2, 'b', 2000, '/predict/batch', 'v1', NULL, NULL, 0, 9, 10);
INSERT INTO spans VALUES (1, 'doji', 'candlestick', 3, 3, 0.9), (1, 'hammer', 'candlestick', 5, 6, 0.7);
INSERT INTO spans VALUES (2, 'doji', 'candlestick', 4, 4, 0.8);
"""


def test_a_store_from_the_first_release_keeps_every_record(tmp_path):
    """The first release kept a row per span; opening its store moves them, losing nothing."""
    path = tmp_path / "h.sqlite"
    sqlite3.connect(path).executescript(FIRST_SCHEMA)
    con = connect(path)
    by_id = {r.request_id: r for r in read(path)}
    assert by_id["a"].spans == [
        ShownSpan("doji", "candlestick", 3, 3, 0.9),
        ShownSpan("hammer", "candlestick", 5, 6, 0.7),
    ]
    assert by_id["b"].spans == [ShownSpan("doji", "candlestick", 4, 4, 0.8)] and by_id["b"].pair is None
    assert sorted(shown_spans(path)) == [
        ("v1", "AAPL", "1d", "doji", 3, 3),
        ("v1", "AAPL", "1d", "hammer", 5, 6),
    ]
    write(con, [PredictionRecord("c", 3000, "/predict", "v2", "AAPL", "1d", 0, 9, 10, [])])
    assert [r.request_id for r in read(path)] == ["c", "b", "a"]
    assert connect(path).execute("SELECT count(*) FROM predictions").fetchone()[0] == 3  # opens again


@pytest.mark.parametrize("path", ["history.sqlite"])
def test_the_store_is_sqlite_in_wal_mode(tmp_path, path):
    con = connect(tmp_path / path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {r[0] for r in sqlite3.connect(tmp_path / path).execute("SELECT name FROM sqlite_master")} >= {
        "predictions",
        "shown",
    }
