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
STAGES = ("ingest", "featurize", "autolabel", "dataset")

pytestmark = pytest.mark.integration


def run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def ran(output: str) -> list[str]:
    return [s for s in STAGES if f"Running stage '{s}'" in output]


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """The working tree as git sees it (tracked + untracked, not ignored), without any pipeline outputs."""
    dest = tmp_path_factory.mktemp("repo")
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    run(["git", "init", "-q"], dest)
    return dest


def set_param(repo: Path, pattern: str, replacement: str) -> None:
    params = repo / "params.yaml"
    text, n = re.subn(pattern, replacement, params.read_text(), count=1, flags=re.M)
    assert n == 1, pattern
    params.write_text(text)


def test_pipeline_builds_then_reruns_only_what_changed(repo: Path):
    out = run(["dvc", "repro"], repo)
    assert ran(out) == list(STAGES)

    index = json.loads((repo / "data/candles/index.json").read_text())["series"]
    assert {(s["pair"], s["rows"]) for s in index} == {("AAPL", 3270), ("GOOG", 2148), ("IBM", 3270),
                                                        ("MSFT", 3270), ("FB", 196)}
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
    assert ran(run(["dvc", "repro"], repo)) == ["dataset"]
    assert json.loads((repo / "data/dataset/schema.json").read_text())["window"]["window_size"] == 7

    set_param(repo, r"^    - \{name: ADX, params: \{timeperiod: 14\}\}\n", "")
    assert ran(run(["dvc", "repro"], repo)) == ["featurize", "dataset"]

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
    assert ran(out) == ["dataset"]
    metrics = json.loads((repo / "metrics/dataset.json").read_text())
    assert metrics["agreement_rate"] == 0.5 and metrics["human_annotations"] == 3
    assert metrics["skipped_annotations"]["no_matching_candle"] == 1
    assert "trader.json entry 2" in out  # the skipped one is shown, not silently lost
