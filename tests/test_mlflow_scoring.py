"""Integration: candle-ml's POST /invocations answers as `mlflow models serve` of the pyfunc the
pipeline logged for the same bundle does: the same requests (the four JSON formats, CSV, params,
and the errors) sent to both, the answers compared byte for byte.

Reads this file's fork of the built pipeline (conftest `pipeline`); writes nothing there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import polars as pl
import pytest
from litestar.testing import TestClient

from serve.app import create_app
from serve.settings import ServeSettings

from .conftest import free_loopback_port, wait_listening

pytestmark = [pytest.mark.integration, pytest.mark.servers]


@pytest.fixture(scope="module")
def mlflow_server(pipeline):
    """`mlflow models serve` of runs:/<the bundle's run>/candles_pyfunc on a loopback port."""
    repo, _ = pipeline
    from candle_ml.bundle import load_bundle

    run_id = load_bundle(repo / "models").meta.training.run_id  # models.run.json beside the bundle
    port = free_loopback_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}"}
    exe = Path(sys.executable).with_name("mlflow")
    cmd = [str(exe), "models", "serve", "-m", f"runs:/{run_id}/candles_pyfunc", "--env-manager", "local"]
    proc = subprocess.Popen(
        [*cmd, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=repo,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_listening(port, "mlflow models serve", proc, timeout=120)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def post(url: str, body: bytes, content_type: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def invoke(client: TestClient, body: bytes, content_type: str) -> dict:
    return json.loads(
        client.post("/invocations", content=body, headers={"Content-Type": content_type}).content
    )


def requests_for(candles: pl.DataFrame) -> list[tuple[str, bytes, str]]:
    frame = candles.to_pandas()
    split = json.loads(frame.to_json(orient="split", index=False))
    records = frame.to_dict(orient="records")
    columns = {c: frame[c].tolist() for c in frame.columns}
    as_json = "application/json"
    return [
        ("dataframe_split", json.dumps({"dataframe_split": split}).encode(), as_json),
        ("dataframe_records", json.dumps({"dataframe_records": records}).encode(), as_json),
        ("instances", json.dumps({"instances": records}).encode(), as_json),
        ("inputs", json.dumps({"inputs": columns}).encode(), as_json),
        ("csv", frame.to_csv(index=False).encode(), "text/csv"),
        ("csv utf-8", frame.to_csv(index=False).encode(), "text/csv; charset=utf-8"),
        ("spans", json.dumps({"dataframe_split": split, "params": {"output": "spans"}}).encode(), as_json),
        ("sure", json.dumps({"dataframe_split": split, "params": {"min_confidence": 0.9}}).encode(), as_json),
    ]


def test_invocations_answer_as_mlflow_models_serve(pipeline, mlflow_server):
    repo, _ = pipeline
    candles = pl.read_parquet(repo / "data/candles/IBM_1d.parquet").tail(120)
    settings = ServeSettings(model=str(repo / "models"), candles_dir=str(repo / "data/candles"))
    with TestClient(base_url="http://127.0.0.1", app=create_app(settings)) as ours:
        for name, body, content_type in requests_for(candles):
            status, theirs = post(f"{mlflow_server}/invocations", body, content_type)
            got = ours.post("/invocations", content=body, headers={"Content-Type": content_type})
            assert (got.status_code, got.content) == (status, theirs), name
            assert status == 200, (name, theirs[:300])
        answers = {name: invoke(ours, body, kind) for name, body, kind in requests_for(candles)}
        rows = answers["dataframe_split"]["predictions"]
        assert len(rows) == 120 and set(rows[0]) == {"time", "label", "confidence", "has_history"}
        assert all(answers[n] == answers["dataframe_split"] for n in ("dataframe_records", "inputs", "csv"))
        spans = answers["spans"]["predictions"]
        assert spans and set(spans[0]) == {"start_time", "end_time", "label", "confidence", "candles", "kind"}
        # the same spans /predict answers
        predicted = ours.post("/predict", json={"candles": candles.to_dicts()}).json()["spans"]
        assert [(s["start_time"], s["label"]) for s in spans] == [
            (s["start_time"], s["label"]) for s in predicted
        ]

        # Errors: the same status and error shape (MLflow's 415s are plain text, byte for byte).
        for body, content_type in [
            (b"time,open\n1,2\n", "application/xml"),
            (b"{}", "application/json; charset=latin-1"),
        ]:
            status, theirs = post(f"{mlflow_server}/invocations", body, content_type)
            got = ours.post("/invocations", content=body, headers={"Content-Type": content_type})
            assert (got.status_code, got.content) == (status, theirs) and status == 415
        for body in [
            b"{not json",
            json.dumps({"dataframe_split": {"columns": ["time"], "data": [[1]]}}).encode(),
            b'{"rows": []}',
        ]:
            status, theirs = post(f"{mlflow_server}/invocations", body, "application/json")
            got = ours.post("/invocations", content=body, headers={"Content-Type": "application/json"})
            mine = got.json()
            assert got.status_code == status and 400 <= status < 500, (body, theirs)
            assert mine["error_code"] == json.loads(theirs)["error_code"] and mine["message"]
        # Too few candles: MLflow hides the reason in a traceback; candle-ml says it.
        short = json.dumps(
            {"dataframe_split": json.loads(candles.tail(5).to_pandas().to_json(orient="split", index=False))}
        ).encode()
        status, theirs = post(f"{mlflow_server}/invocations", short, "application/json")
        got = ours.post("/invocations", content=short, headers={"Content-Type": "application/json"})
        assert got.status_code == status == 400 and json.loads(theirs)["error_code"] == "BAD_REQUEST"
        assert "the model needs at least" in got.json()["message"] and "stack_trace" not in got.json()
        assert ours.get("/ping").status_code == 200
        with urllib.request.urlopen(f"{mlflow_server}/version") as resp:
            assert ours.get("/version").content == resp.read()
