"""Open any chart: a MetaTrader 5 export (UTF-16, as MetaTrader writes it) posted to /charts is
served like an ingested series, survives a restart, and answers on it keep its candles in
data/raw/ for the next `dvc repro`; a bad file or a name taken by other candles is a 4xx and
nothing is written."""

from __future__ import annotations

import base64

import polars as pl
import pytest
from litestar.testing import TestClient

from candle_ml.candle_files import read_candle_file
from serve.app import create_app
from serve.settings import ServeSettings

from .test_candle_formats import hourly, mt4, mt5


@pytest.fixture
def make_client(served_model, tmp_path):
    bundle_dir, candles_dir = served_model

    def make() -> TestClient:
        settings = ServeSettings(
            model=str(bundle_dir),
            candles_dir=str(candles_dir),
            feedback_log=str(tmp_path / "feedback.jsonl"),
            human_dir=str(tmp_path / "human"),
            charts_dir=str(tmp_path / "charts"),
            raw_dir=str(tmp_path / "raw"),
        )
        return TestClient(base_url="http://127.0.0.1", app=create_app(settings))

    return make


@pytest.fixture
def export(served_model) -> tuple[pl.DataFrame, str]:
    """300 real AAPL candles as MetaTrader 5 hourly bars (enough history for the model)."""
    _, candles_dir = served_model
    candles = hourly(pl.read_parquet(candles_dir / "AAPL_1d.parquet").slice(2000, 300))
    return candles, mt5(candles)


def upload(client: TestClient, name: str, text: str, encoding: str = "utf-16"):
    content = base64.b64encode(text.encode(encoding)).decode()
    return client.post("/charts", json={"name": name, "content": content})


def test_an_opened_export_is_served_answered_kept_and_listed_after_a_restart(make_client, export, tmp_path):
    candles, text = export
    with make_client() as client:
        r = upload(client, "ACME_H1.csv", text)
        assert r.status_code == 201, r.text
        body = r.json()
        assert (body["pair"], body["timeframe"], body["candles"], body["format"]) == (
            "ACME",
            "1h",
            300,
            "metatrader5",
        )
        assert body["opened"] and "columns ignored: <VOL>, <SPREAD>" in body["detected"]
        assert ("ACME", "1h", 300) in {
            (s["pair"], s["timeframe"], s["candles"]) for s in client.get("/series").json()
        }
        review = client.get("/review", params={"pair": "ACME", "timeframe": "1h"}).json()
        assert len(review["predictions"]) == 300
        assert upload(client, "ACME_H1.csv", text).json()["opened"] is False  # the same chart again
        t = candles["time"].to_list()
        answer = {
            "pair": "ACME",
            "timeframe": "1h",
            "start_time": t[200],
            "end_time": t[201],
            "label": "my_setup",
        }
        assert not (tmp_path / "raw").exists()
        assert client.post("/feedback", json={"annotations": [answer]}).status_code == 201
        served = client.get("/candles", params={"pair": "ACME", "timeframe": "1h"}).json()["candles"]
        kept, _ = read_candle_file(tmp_path / "raw/ACME_1h.parquet")  # what ingest will read
        assert kept.to_dicts() == served and kept["time"].to_list() == t
        assert client.post("/feedback", json={"annotations": [answer]}).status_code == 201  # kept already
        kept.head(10).write_parquet(tmp_path / "raw/ACME_1h.parquet")  # someone replaced it meanwhile
        clash = client.post("/feedback", json={"annotations": [answer]})
        assert clash.status_code == 409, clash.text
        pl.DataFrame(served).write_parquet(tmp_path / "raw/ACME_1h.parquet")
    with make_client() as client:  # a restart: the chart is still there
        listed = {(s["pair"], s["timeframe"]) for s in client.get("/series").json()}
        assert ("ACME", "1h") in listed
        assert (
            client.get("/candles", params={"pair": "ACME", "timeframe": "1h"}).json()["candles"][0]["time"]
            == t[0]
        )


def test_a_bad_file_is_a_422_naming_the_row_and_nothing_is_kept(make_client, export, tmp_path):
    candles, _ = export
    broken = candles.with_columns(
        pl.when(pl.int_range(pl.len()) == 5).then(0.5).otherwise(pl.col("high")).alias("high")
    )
    with make_client() as client:
        r = upload(client, "ACME60.csv", mt4(broken), "utf-8")
        assert r.status_code == 422, r.text
        assert "ACME60.csv row 6: high" in r.json()["detail"]
        garbage = upload(client, "x.csv", "1,2,3\n4,5,6\n", "utf-8")
        assert garbage.status_code == 422 and "add a header" in garbage.json()["detail"]
        assert client.post("/charts", json={"name": "x.csv"}).status_code == 400  # no content
    assert not (tmp_path / "charts").exists() or not list((tmp_path / "charts").iterdir())


def test_a_name_taken_by_other_candles_is_a_409(make_client, export, tmp_path):
    candles, text = export
    with make_client() as client:
        taken = upload(client, "AAPL_H1.csv", text)  # a new series: AAPL 1h is not ingested
        assert taken.status_code == 201
        other = candles.with_columns(pl.col("close") * 1.0)  # same candles: fine
        assert upload(client, "AAPL_H1.csv", mt5(other)).json()["opened"] is False
        moved = candles.with_columns(pl.col("time") + 86400)
        r = upload(client, "AAPL_H1.csv", mt5(moved))
        assert r.status_code == 409 and "rename the file" in r.json()["detail"], r.text
        (tmp_path / "raw").mkdir()
        (tmp_path / "raw/AAPL_1h.csv").write_text("time,open,high,low,close\n1,1,1,1,1\n")
        t = candles["time"].to_list()
        answer = {
            "pair": "AAPL",
            "timeframe": "1h",
            "start_time": t[200],
            "end_time": t[200],
            "label": "doji",
        }
        clash = client.post("/feedback", json={"annotations": [answer]})
        assert clash.status_code == 409 and "not stored over it" in clash.json()["detail"], clash.text
        # a .txt of that name is the same series to ingest (Stooq's bulk files are .txt)
        (tmp_path / "raw/AAPL_1h.csv").rename(tmp_path / "raw/AAPL_1h.txt")
        clash = client.post("/feedback", json={"annotations": [answer]})
        assert clash.status_code == 409 and "AAPL_1h.txt: a different" in clash.json()["detail"], clash.text
    assert not (tmp_path / "feedback.jsonl").exists()  # nothing of a refused answer is written
