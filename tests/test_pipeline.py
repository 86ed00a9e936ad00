"""Integration: the real DVC pipeline on the bundled data, in a temporary copy of the repo."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("ingest", "featurize", "autolabel", "dataset", "train", "evaluate")
DOWNSTREAM = ["train", "evaluate"]

pytestmark = pytest.mark.integration


def run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)  # the copy's own SQLite store
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def ran(output: str) -> list[str]:
    return [s for s in STAGES if f"Running stage '{s}'" in output]


def copy_repo(dest: Path) -> Path:
    """The working tree as git sees it (tracked + untracked, not ignored), without any pipeline outputs,
    committed in a fresh git repo, with small models so the workflow tests stay quick."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    set_param(dest, r"^(    n_estimators:) 400", r"\1 40")
    set_param(dest, r"^(    n_estimators:) 300", r"\1 40")
    run(["git", "init", "-q"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-qam", "base"], dest)
    return dest


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return copy_repo(tmp_path_factory.mktemp("repo"))


def set_param(repo: Path, pattern: str, replacement: str) -> None:
    params = repo / "params.yaml"
    text, n = re.subn(pattern, replacement, params.read_text(), count=1, flags=re.M)
    assert n == 1, pattern
    params.write_text(text)


def test_pipeline_builds_then_reruns_only_what_changed(repo: Path):
    out = run(["dvc", "repro"], repo)
    assert ran(out) == list(STAGES)

    index = json.loads((repo / "data/candles/index.json").read_text())["series"]
    real = {(s["pair"], s["rows"]) for s in index if not s["augmented_from"]}
    assert real == {("AAPL", 3270), ("GOOG", 2148), ("IBM", 3270), ("MSFT", 3270), ("FB", 196)}
    assert {s["pair"] for s in index if s["augmented_from"]} == {f"{p}-MIRROR" for p, _ in real}
    features = pl.read_parquet(repo / "data/features/AAPL_1d.parquet")
    assert {"rsi_14", "atr_14", "stoch_14_3_3_slowk", "body_rel"} <= set(features.columns)
    spans = json.loads((repo / "data/autolabel/spans.json").read_text())["annotations"]
    assert len(spans) > 5000 and {s["source"] for s in spans} == {"programmatic"}

    dataset = pl.read_parquet(repo / "data/dataset/dataset.parquet")
    schema = json.loads((repo / "data/dataset/schema.json").read_text())
    assert set(schema["input_columns"]) <= set(dataset.columns)
    assert set(dataset["split"].unique()) == {"train", "val", "test"}
    metrics = json.loads((repo / "metrics/dataset.json").read_text())
    assert metrics["rows"] == dataset.height
    assert metrics["label_counts"]["O"] > 0 and metrics["label_counts"]["bullish_engulfing"] > 100
    assert abs(sum(metrics["class_distribution"].values()) - 100) < 0.1
    assert metrics["warmup_rows_dropped"] > 0 and metrics["avg_span_length"] > 1

    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo))
    assert "metrics/dataset.json" in json.dumps(shown)

    assert ran(run(["dvc", "repro"], repo)) == []  # nothing changed, nothing runs

    set_param(repo, r"^(  window_size:) 5", r"\1 7")
    assert ran(run(["dvc", "repro"], repo)) == ["dataset", *DOWNSTREAM]
    assert json.loads((repo / "data/dataset/schema.json").read_text())["window"]["window_size"] == 7

    set_param(repo, r"^    - \{name: ADX, params: \{timeperiod: 14\}\}\n", "")
    assert ran(run(["dvc", "repro"], repo)) == ["featurize", "dataset", *DOWNSTREAM]

    # A trader's export lands: only the dataset is rebuilt, and it is compared with the rules.
    engulfing = [s for s in spans if s["label"] == "bullish_engulfing" and s["pair"] == "AAPL"][50]
    doji = [s for s in spans if s["label"] == "doji" and s["pair"] == "IBM"][50]
    human = [
        {**engulfing, "id": "h1", "source": "human", "confidence": 1.0},
        {**doji, "id": "h2", "label": "O", "source": "human_correction", "model_prediction": "doji"},
        {**engulfing, "id": "h3", "source": "human", "start_time": 0, "end_time": 10},  # outside the data
    ]
    (repo / "data/annotations/human/trader.json").write_text(json.dumps({"annotations": human}))
    out = run(["dvc", "repro"], repo)
    assert ran(out) == ["dataset", *DOWNSTREAM]
    metrics = json.loads((repo / "metrics/dataset.json").read_text())
    assert metrics["agreement_rate"] == 0.5 and metrics["human_annotations"] == 3
    assert metrics["skipped_annotations"]["no_matching_candle"] == 1
    assert "trader.json entry 2" in out  # the skipped one is shown, not silently lost


def test_experiments_are_compared_and_tracked_in_mlflow(tmp_path_factory):
    repo = copy_repo(tmp_path_factory.mktemp("exp_repo"))
    out = run(["dvc", "repro"], repo)
    assert ran(out) == list(STAGES)
    evaluation = json.loads((repo / "metrics/evaluate.json").read_text())
    for key in ("accuracy", "f1_macro", "f1_weighted", "span_f1_macro", "per_class", "per_class_span", "baselines"):
        assert key in evaluation
    assert evaluation["baselines"]["talib_rule"]["span_f1_macro"] == 1.0
    assert evaluation["span_f1_macro"] > evaluation["baselines"]["majority"]["span_f1_macro"]
    for name in ("confusion_matrix.png", "feature_importance.png", "classification_report.txt", "predictions.csv"):
        assert (repo / "plots" / name).stat().st_size > 0

    # Only train and evaluate rerun for a train.* change.
    out = run(["dvc", "exp", "run", "-n", "rf", "--set-param", "train.model_type=random_forest"], repo)
    assert ran(out) == DOWNSTREAM
    # A grid from the committed baseline: queued, then run together (each in its own temp copy).
    run(["git", "checkout", "--", "params.yaml"], repo)
    run(["dvc", "exp", "run", "--queue", "-n", "shallow", "--set-param", "train.xgboost.max_depth=4"], repo)
    run(["dvc", "exp", "run", "--queue", "-n", "slow", "--set-param", "train.xgboost.learning_rate=0.05"], repo)
    run(["dvc", "exp", "run", "--run-all", "--jobs", "1"], repo)
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo))
    exps = {}
    for baseline in shown:
        for exp in baseline.get("experiments") or []:
            for rev in exp.get("revs", []):
                metrics = rev["data"]["metrics"]["metrics/evaluate.json"]["data"]
                exps[rev["name"]] = (rev["data"]["params"]["params.yaml"]["data"]["train"], metrics)
    assert {"rf", "shallow", "slow"} <= set(exps)
    assert exps["rf"][0]["model_type"] == "random_forest"
    assert exps["shallow"][0]["model_type"] == "xgboost" and exps["shallow"][0]["xgboost"]["max_depth"] == 4
    assert all(0 < m["f1_macro"] <= 1 for _, m in exps.values())

    # Every run is in the repo's MLflow store, with params, metrics, artifacts and the registered model.
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["candle-ml"], output_format="list")
    assert len(runs) == 4  # the baseline and three experiments; queued ones ran in temp copies
    assert {r.data.tags.get("dvc_exp_name") for r in runs} == {None, "rf", "shallow", "slow"}
    rf = next(r for r in runs if r.data.params["train.model_type"] == "random_forest")
    assert rf.data.tags["dvc_exp_name"] == "rf" and rf.data.tags["model_type"] == "random_forest"
    assert "f1_macro" in rf.data.metrics and "span_f1_macro" in rf.data.metrics
    assert rf.data.params["data.dataset_version"] not in ("", "None")
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(rf.info.run_id)}
    assert {"confusion_matrix.png", "feature_importance.png", "classification_report.txt", "params.yaml"} <= artifacts
    version = mlflow.MlflowClient().get_model_version_by_alias("candle-patterns", "candidate")
    assert int(version.version) == 4  # every run registered a version; the latest holds the alias

    # The registered pyfunc takes raw candles and runs the pipeline's own preprocessing.
    model = mlflow.pyfunc.load_model("models:/candle-patterns@candidate")
    candles = pl.read_parquet(repo / "data/candles/IBM_1d.parquet").tail(400).to_pandas()  # min_history ~300
    out = model.predict(candles)
    assert len(out) == 400 and out["label"].iloc[-50:].notna().all()
    # Candles without enough history come back as None (JSON null), never NaN.
    assert out["label"].iloc[0] is None and out["confidence"].iloc[0] is None

    # The server loads the same registered version, with the test metrics evaluate logged to its run.
    from serve.model_store import load_model_from

    served = load_model_from("models:/candle-patterns@candidate", f"sqlite:///{repo / 'mlflow.db'}")
    assert served.version == "4" and served.bundle.meta.training.run_id == version.run_id
    assert served.metrics is not None and 0 < served.metrics["span_f1_macro"] <= 1
    assert served.metrics_source == f"runs:/{version.run_id}/evaluate.json"
