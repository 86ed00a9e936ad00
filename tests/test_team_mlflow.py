"""Integration: the team MLflow of docs/deploy.md without containers: a tracking server whose
backend store is PostgreSQL (Debian's, on loopback) and whose artifacts go to an S3-compatible
store (moto's server), proxied by the tracking server so clients need no S3 credentials.

`dvc repro` logs to it (`-s -f train evaluate` on this file's fork of the built pipeline: the fork's
models.run.json then names a run on this server) and `candle-ml serve --model models:/…@candidate`
loads the registered model from it and answers exactly as the DVC bundle does.

The forced `train` retrains the build's data and params, so it also shows that retraining
reproduces the model byte for byte: `models/` holds only what the data and params determine (a
clone that reruns `train` gets the hash in dvc.lock, and `dvc pull` of any commit finds it); the
run's time, MLflow run and commit go in models.run.json beside it, which the server reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import yaml
from litestar.testing import TestClient

from candle_ml.bundle import load_bundle
from serve.app import create_app
from serve.process import ServerProcess
from serve.settings import ServeSettings

from .conftest import ARTIFACTS, S3_KEY, S3_SECRET, free_loopback_port, run, s3_client, wait_listening

pytestmark = [pytest.mark.integration, pytest.mark.servers]

boto3 = pytest.importorskip("boto3", reason="the s3 extra (pip install -e '.[s3]') is not installed")
pytest.importorskip("psycopg2", reason="the postgres extra (pip install -e '.[postgres]') is not installed")
BUCKET = "mlflow"


@pytest.fixture(scope="module")
def mlflow_server(postgres_server, s3_server, tmp_path_factory):
    """`mlflow server` as docs/deploy.md starts it: (its URL, the S3 client, the store's URI)."""
    s3 = s3_client(s3_server)
    s3.create_bucket(Bucket=BUCKET)
    port = free_loopback_port()
    log = tmp_path_factory.mktemp("mlflow-server") / "server.log"
    env = os.environ | {
        # only the server talks to S3: clients upload and download through it (--serve-artifacts)
        "MLFLOW_S3_ENDPOINT_URL": s3_server,
        "AWS_ACCESS_KEY_ID": S3_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # as docs/deploy.md starts it
    }
    started = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "mlflow"),
                "server",
                "--backend-store-uri",
                postgres_server,
                "--artifacts-destination",
                f"s3://{BUCKET}/artifacts",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        wait_listening(port, f"mlflow server (log: {log})", proc, timeout=120)
        yield f"http://127.0.0.1:{port}", s3, postgres_server, time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def postgres_rows(uri: str, table: str) -> int:
    import sqlalchemy

    engine = sqlalchemy.create_engine(uri)
    try:
        with engine.connect() as con:
            return int(con.execute(sqlalchemy.text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


def test_repro_logs_to_the_team_server_and_serve_loads_from_it(pipeline, mlflow_server, tmp_path):
    from mlflow import MlflowClient

    repo, _ = pipeline
    url, s3, store, server_start_s = mlflow_server
    local_artifacts = sorted((repo / "mlartifacts").rglob("*"))  # the copy's own SQLite store's

    def models_hash() -> str:
        lock = yaml.safe_load((repo / "dvc.lock").read_text())
        return next(o["md5"] for o in lock["stages"]["train"]["outs"] if o["path"] == "models")

    built, built_run = models_hash(), json.loads((repo / "models.run.json").read_text())
    started = time.perf_counter()
    out = run(["dvc", "repro", "-s", "-f", "train", "evaluate"], repo, MLFLOW_TRACKING_URI=url)
    repro_s = time.perf_counter() - started
    assert "Running stage 'train'" in out and "Running stage 'evaluate'" in out
    assert "Running stage 'dataset'" not in out  # -s: only the stages named
    assert "cannot be reached" not in out and "MLflow: " not in out, out  # no tracking warning
    # Retrained byte for byte; only models.run.json says it is another run.
    run_record = json.loads((repo / "models.run.json").read_text())
    assert models_hash() == built and "trained_at" not in (repo / "models/bundle.json").read_text()
    assert run_record["run_id"] and run_record["run_id"] != built_run["run_id"] and run_record["trained_at"]
    assert "models" not in run(["dvc", "status"], repo)
    # The DVC bundle's server reports this run's record.
    settings = ServeSettings(
        model=str(repo / "models"), candles_dir=str(repo / "data/candles"), tracking_uri=url
    )
    with TestClient(app=create_app(settings), base_url="http://127.0.0.1") as c:
        local = c.get("/model/info").json()
    assert (local["run_id"], local["trained_at"]) == (run_record["run_id"], run_record["trained_at"])

    client = MlflowClient(tracking_uri=url)
    [experiment] = [e for e in client.search_experiments() if e.name == "candle-ml"]
    [run_] = client.search_runs([experiment.experiment_id])
    assert run_.info.run_id == run_record["run_id"] and run_.info.status == "FINISHED"
    params, metrics = run_.data.params, run_.data.metrics
    assert params["train.model_type"] == "xgboost" and "span_f1_macro" in metrics
    evaluate = json.loads((repo / "metrics/evaluate.json").read_text())
    assert metrics["span_f1_macro"] == pytest.approx(evaluate["span_f1_macro"])
    artifacts = [a.path for a in client.list_artifacts(run_.info.run_id)]
    assert {"params.yaml", "evaluate.json", "confusion_matrix.png"} <= set(artifacts), artifacts

    # The registry: a version of this run, with the aliases evaluate and train moved to it.
    [version] = client.search_model_versions("name='candle-patterns'")
    assert version.run_id == run_.info.run_id
    aliases = client.get_registered_model("candle-patterns").aliases
    assert aliases.get("candidate") == version.version and aliases.get("champion") == version.version

    # Where it landed: run rows in PostgreSQL, artifact files in the S3 bucket (none on disk).
    objects = s3.list_objects_v2(Bucket=BUCKET, Prefix="artifacts/").get("Contents", [])
    assert any(o["Key"].endswith("bundle.json") for o in objects), [o["Key"] for o in objects][:20]
    assert sorted((repo / "mlartifacts").rglob("*")) == local_artifacts and not (repo / "mlruns").exists()
    landed = {
        table: postgres_rows(store, table)
        for table in ("runs", "params", "latest_metrics", "registered_models", "model_versions")
    }
    assert landed["runs"] == 1 and landed["params"] == len(params) and landed["model_versions"] == 1

    # Serving the registered model, with no bundle on disk: the same labels as the DVC bundle.
    started = time.perf_counter()
    srv = ServerProcess(
        "--model",
        "models:/candle-patterns@candidate",
        "--tracking-uri",
        url,
        "--candles-dir",
        str(repo / "data/candles"),
        "--feedback-log",
        str(tmp_path / "feedback.jsonl"),
        "--history",
        "",
        "--log-level",
        "warning",
        log=tmp_path / "serve.log",
    ).start(timeout=120)
    load_s = time.perf_counter() - started
    try:
        import httpx

        info = httpx.get(f"{srv.url}/model/info", timeout=30).json()
        assert (info["name"], info["version"], info["run_id"]) == (
            "candle-patterns",
            version.version,
            run_.info.run_id,
        )
        candles = pl.read_parquet(repo / "data/candles/AAPL_1d.parquet").tail(400)
        served = httpx.post(f"{srv.url}/predict", json={"candles": candles.to_dicts()}, timeout=60).json()
    finally:
        srv.stop()
    expected = load_bundle(repo / "models").predict(candles).label.tolist()
    assert [p["label"] for p in served["predictions"]] == expected

    report = {
        "mlflow_server_start_s": round(server_start_s, 1),
        "repro_train_evaluate_s": round(repro_s, 1),
        "params": len(params),
        "metrics": len(metrics),
        "artifacts_top_level": sorted(artifacts),
        "s3_objects": len(objects),
        "s3_bytes": sum(o["Size"] for o in objects),
        "postgres_rows": landed,
        "registered": {"version": version.version, "aliases": dict(aliases)},
        "serve_from_registry_ready_s": round(load_s, 1),
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "team-mlflow.json").write_text(json.dumps(report, indent=2) + "\n")
