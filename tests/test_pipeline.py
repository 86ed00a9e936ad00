"""Integration: the real DVC pipeline on the bundled data, built once per session (conftest `pipeline`).

The tests run in file order on this file's copy of the repository: the build, a no-op rerun,
what a parameter change would rerun, a trader's export and the review loop (answers over HTTP,
one real rerun, a reload). Queued experiments and the champion rule run on a copy of their own
(tests/test_experiments.py), beside these; a retrain that must give the same model is the team
MLflow test's forced `train` (tests/test_team_mlflow.py), which retrains the build's data.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
from litestar.testing import TestClient

from serve.app import create_app
from serve.settings import ServeSettings

from . import invented_patterns
from .conftest import ARTIFACTS, STAGES, copy_repo, ran, run, set_param
from .test_candle_formats import hourly, mt5

pytestmark = pytest.mark.integration


def test_the_pipeline_builds_every_stage_on_the_bundled_data(pipeline):
    repo, out = pipeline
    # check_raw's report is committed and data/raw/ holds no file: up to date, it does not run
    assert ran(out) == [s for s in STAGES if s != "check_raw"]

    index = json.loads((repo / "data/candles/index.json").read_text())["series"]
    real = {(s["pair"], s["rows"]) for s in index if not s["augmented_from"]}
    assert real == {("AAPL", 3270), ("GOOG", 2148), ("IBM", 3270), ("MSFT", 3270), ("FB", 196)}
    made = {s["pair"] for s in index if s["augmented_from"]}
    assert made == {f"{p}-{kind}" for p, _ in real for kind in ("MIRROR", "GAPLESS")}
    features = pl.read_parquet(repo / "data/features/AAPL_1d.parquet")
    assert {"rsi_14", "atr_14", "stoch_14_3_3_slowk", "body_rel"} <= set(features.columns)
    spans = json.loads((repo / "data/autolabel/spans.json").read_text())["annotations"]
    assert len(spans) > 5000 and {s["source"] for s in spans} == {"programmatic"}

    dataset = pl.read_parquet(repo / "data/dataset/dataset.parquet")
    schema = json.loads((repo / "data/dataset/schema.json").read_text())
    assert set(schema["input_columns"]) <= set(dataset.columns)
    assert set(dataset["split"].unique()) == {"train", "val", "test"}
    metrics = json.loads((repo / "reports/dataset.json").read_text())
    assert metrics["rows"] == dataset.height
    # Series the model never trained on, scored against TA-Lib's signals on them.
    holdout = json.loads((repo / "metrics/holdout.json").read_text())  # span F1 macro per series
    assert set(holdout) == {"SP500_1d", "NASDAQ_1d", "FX24H_1h"} and all(
        0.5 < f1 <= 1 for f1 in holdout.values()
    )
    # Chart patterns: a model of their own in the same bundle, scored on the test split and the holdouts.
    chart = json.loads((repo / "reports/evaluate.json").read_text())["chart_patterns"]
    assert 0.5 < chart["span_f1_macro"] <= 1 and chart["spans_marked"] > 20
    assert (repo / "models/chart_model.ubj").is_file()
    holdout_chart = json.loads((repo / "metrics/holdout_chart.json").read_text())
    assert set(holdout_chart) == {"SP500_1d", "NASDAQ_1d", "FX24H_1h"} and all(
        0.5 < f1 <= 1 for f1 in holdout_chart.values()
    )
    assert metrics["label_counts"]["O"] > 0 and metrics["label_counts"]["bullish_engulfing"] > 100
    assert abs(sum(metrics["class_distribution"].values()) - 100) < 0.1
    assert metrics["warmup_rows_dropped"] > 0 and metrics["avg_span_length"] > 1

    evaluation = json.loads((repo / "reports/evaluate.json").read_text())
    for key in ("accuracy", "f1_macro", "f1_weighted", "span_f1_macro", "per_class", "per_class_span"):
        assert key in evaluation
    worst = min((v["f1"], k) for k, v in evaluation["per_class_span"].items() if v["support"])
    assert (evaluation["worst_span_f1"], evaluation["worst_span_label"]) == worst
    headline = json.loads((repo / "metrics/evaluate.json").read_text())
    assert headline == {
        **{k: evaluation[k] for k in ("accuracy", "f1_macro", "span_f1_macro", "worst_span_f1")},
        "ece": evaluation["calibration"]["ece"],
        "chart_f1": evaluation["chart_patterns"]["span_f1_macro"],
    }
    # Confidences calibrated on the val split: a temperature in the bundle, the ECE reported both ways.
    calibration = evaluation["calibration"]
    bundle = json.loads((repo / "models/bundle.json").read_text())
    assert calibration["temperature"] == bundle["temperature"] and 0.2 < bundle["temperature"] < 5
    assert 0 <= calibration["ece"] <= 0.05 and 0 <= calibration["ece_uncalibrated"] <= 1
    reliability = pl.read_csv(repo / "reports/reliability.csv")
    assert (
        reliability["candles"].sum() == evaluation["test_candles"]
        and reliability["accuracy"].is_between(0, 1).all()
    )
    assert set(json.loads((repo / "metrics/dataset.json").read_text())) == {
        "spans",
        "agreement_rate",
        "answers",
        "negatives",
    }
    per_class = pl.read_csv(repo / "reports/per_class.csv")
    assert per_class.columns == ["label", "span_f1", "f1", "spans"] and per_class.height >= 10
    assert evaluation["baselines"]["talib_rule"]["span_f1_macro"] == 1.0
    assert evaluation["span_f1_macro"] > evaluation["baselines"]["majority"]["span_f1_macro"]
    for name in (
        "confusion_matrix.png",
        "feature_importance.png",
        "classification_report.txt",
        "predictions.csv",
    ):
        assert (repo / "plots" / name).stat().st_size > 0
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo))
    assert "metrics/dataset.json" in json.dumps(shown) and "metrics/evaluate.json" in json.dumps(shown)
    # one row per metrics file, a column per metric: it still fits a wide terminal (the
    # outcomes stage added `edges`, the 24-hour holdout `FX24H_1h`: 181); the detail lives in
    # reports/, not in new columns
    table = run(["dvc", "metrics", "show"], repo, COLUMNS="185")
    assert "span_f1_macro" in table and max(map(len, table.splitlines())) <= 185, table


@pytest.mark.browser
def test_dvc_plots_show_works_offline(pipeline):
    """The page `dvc plots show` writes loads no remote script and draws its charts with no network."""
    repo, _ = pipeline
    run(["dvc", "plots", "show"], repo)
    html = (repo / "dvc_plots/index.html").read_text()
    assert "<script src=" not in html and "cdn.jsdelivr" not in html
    chromium = shutil.which("chromium")
    if chromium is None and not os.environ.get("CANDLE_ML_REQUIRE_BROWSER"):
        pytest.skip("no chromium here to open the page")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_context(offline=True, viewport={"width": 1300, "height": 1000}).new_page()
        remote: list[str] = []
        page.on("request", lambda r: remote.append(r.url) if r.url.startswith("http") else None)
        page.goto((repo / "dvc_plots/index.html").as_uri())
        page.wait_for_function("document.querySelectorAll('.marks').length >= 3", timeout=20_000)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dvc-plots-offline.png"))
        browser.close()
    assert remote == []


def test_nothing_changed_nothing_runs(pipeline):
    repo, _ = pipeline
    assert ran(run(["dvc", "repro"], repo)) == []


@pytest.mark.parametrize(
    ("pattern", "replacement", "first"),
    [
        (r"^(  window_size:) 3", r"\1 4", ["dataset", "learning_curve"]),
        (r"^    - \{name: ADX, params: \{timeperiod: 14\}\}\n", "", ["featurize"]),
        (r"^(  model_type:) xgboost", r"\1 random_forest", ["train", "learning_curve"]),
    ],
    ids=["dataset", "featurize", "train"],
)
def test_a_param_change_reruns_its_stage_never_the_ones_before(pipeline, pattern, replacement, first):
    # `--dry` lists the stages whose own deps changed (learning_curve reads the dataset and train
    # params too); stages after them rerun when their outputs change.
    repo, _ = pipeline
    set_param(repo, pattern, replacement)
    try:
        assert ran(run(["dvc", "repro", "--dry"], repo)) == first
    finally:
        run(["git", "checkout", "--", "params.yaml"], repo)


def write_traders_export(repo: Path) -> None:
    """A trader's export file in data/annotations/human/: two spans that land, one outside the data."""
    spans = json.loads((repo / "data/autolabel/spans.json").read_text())["annotations"]
    engulfing = [s for s in spans if s["label"] == "bullish_engulfing" and s["pair"] == "AAPL"][50]
    doji = [s for s in spans if s["label"] == "doji" and s["pair"] == "IBM"][50]
    human = [
        {**engulfing, "id": "h1", "source": "human", "confidence": 1.0},
        {**doji, "id": "h2", "label": "O", "source": "human_correction", "model_prediction": "doji"},
        {**engulfing, "id": "h3", "source": "human", "start_time": 0, "end_time": 10},  # outside the data
    ]
    (repo / "data/annotations/human/trader.json").write_text(json.dumps({"annotations": human}))


def test_an_export_and_the_review_loops_answers_reach_the_next_model(pipeline):
    """A trader's export lands in data/annotations/human/; on the page's API a trader dismisses one
    predicted span, confirms another and marks an own setup; one `dvc repro` reruns dataset and every
    stage after it (what the export could not place is shown, not lost); after a reload the
    dismissed span is O (or less sure) and the confirmed one is still predicted. (One rebuild for
    both sources of answers: each rebuild costs the suite a minute.)"""
    repo, _ = pipeline
    write_traders_export(repo)
    log = repo / "data/annotations/feedback.jsonl"
    settings = ServeSettings(
        model=str(repo / "models"),
        candles_dir=str(repo / "data/candles"),
        feedback_log=str(log),
        human_dir=str(repo / "data/annotations/human"),
        tracking_uri=f"sqlite:///{repo / 'mlflow.db'}",
        charts_dir=str(repo / "data/charts"),
        raw_dir=str(repo / "data/raw"),
    )
    times = pl.read_parquet(repo / "data/candles/AAPL_1d.parquet")["time"]
    train_part = {"pair": "AAPL", "timeframe": "1d", "start": times[400], "end": times[2000]}  # train split
    with TestClient(base_url="http://127.0.0.1", app=create_app(settings)) as client:
        before = client.get("/review", params=train_part).json()
        sure = [s for s in before["spans"] if s["avg_confidence"] > 0.9]
        dismissed = next(s for s in sure if s["label"] == "doji")
        confirmed = next(s for s in sure if s["label"] == "bullish_engulfing")
        answers = [
            {**series_of(dismissed), "label": "O", "source": "human_correction", "model_prediction": "doji"},
            {
                **series_of(confirmed),
                "label": "bullish_engulfing",
                "source": "model_confirmed",
                "model_prediction": "bullish_engulfing",
            },
        ]
        # A trader's own setup, marked where it went through the chart (the review page sends the
        # range on screen with each answer): the first 12 inside-bar breakouts of that range.
        window = pl.read_parquet(repo / "data/candles/AAPL_1d.parquet").slice(400, 1601)
        ends = np.flatnonzero(invented_patterns.inside_breakout(window))[:12]
        own = [
            {
                **series_of({"start_time": window["time"][e - 2], "end_time": window["time"][e]}),
                "label": "inside_breakout",
            }
            for e in ends.tolist()
        ]
        seen = {**series_of({"start_time": train_part["start"], "end_time": train_part["end"]})}
        body = {"annotations": answers + own, "reviewed": [seen]}
        assert client.post("/feedback", json=body).status_code == 201
        # A chart the trader opened from a MetaTrader 5 export, answered on: its candles go to data/raw/.
        hourly_msft = hourly(pl.read_parquet(repo / "data/candles/MSFT_1d.parquet").slice(1000, 400))
        content = base64.b64encode(mt5(hourly_msft).encode("utf-16")).decode()
        opened = client.post("/charts", json={"name": "ACME_H1.csv", "content": content})
        assert opened.status_code == 201, opened.text
        t = hourly_msft["time"].to_list()
        on_chart = {
            "pair": "ACME",
            "timeframe": "1h",
            "start_time": t[300],
            "end_time": t[300],
            "label": "doji",
        }
        assert client.post("/feedback", json={"annotations": [on_chart]}).status_code == 201
        assert (repo / "data/raw/ACME_1h.parquet").is_file()
        old_version = client.get("/model/info").json()["version"]

        status = run(["dvc", "status", "dataset"], repo)
        assert "dataset" in status and "data/annotations" in status  # DVC sees the new answers
        out = run(["dvc", "repro"], repo)
        assert ran(out) == list(STAGES)  # a new raw file: from check_raw on
        index = json.loads((repo / "data/candles/index.json").read_text())["series"]
        assert ("ACME", "1h", 400) in {(s["pair"], s["timeframe"], s["rows"]) for s in index}
        metrics = json.loads((repo / "reports/dataset.json").read_text())
        assert metrics["human_annotations"] == 3 + 14 + 1  # the export's, the page's, the opened chart's
        assert metrics["skipped_annotations"]["no_matching_candle"] == 1
        assert "trader.json entry 2" in out  # the skipped one is shown, not silently lost
        assert metrics["feedback_spans"] == {"human": 13, "human_correction": 1, "model_confirmed": 1}
        assert metrics["negatives_from_dismissals"] == 2  # this one and the trader export's
        headline = json.loads((repo / "metrics/dataset.json").read_text())
        assert (headline["answers"], headline["negatives"]) == (15, 2)
        # The own label's negatives came from the range the trader reviewed, not around the marks.
        learned = metrics["own_labels"]["inside_breakout"]
        assert learned["marks"] == 12 and learned["reviewed"] == {"AAPL_1d": "ranges"}
        assert sum(learned["shift_counts"].values()) == 12 and learned["window"] == 3

        reload = client.post("/model/reload", json={}).json()
        assert reload["reloaded"] and reload["model"]["version"] != old_version
        after = client.get("/review", params=train_part).json()
        labels = {x["name"] for x in client.get("/model/labels").json()}
    assert "inside_breakout" in labels, "the next model learned the trader's own label"
    was, now = conf_at(before, dismissed), conf_at(after, dismissed)
    kept = conf_at(after, confirmed)
    report = {
        "dismissed": {**dismissed, "before": was, "after": now},
        "confirmed": {**confirmed, "before": conf_at(before, confirmed), "after": kept},
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "review-loop.json").write_text(json.dumps(report, indent=1))
    print("review loop:", report)
    assert now[0] == "O" or (now[0] == "doji" and now[1] < was[1])
    assert kept[0] == "bullish_engulfing"


def series_of(span: dict) -> dict:
    return {"pair": "AAPL", "timeframe": "1d", "start_time": span["start_time"], "end_time": span["end_time"]}


def conf_at(review: dict, span: dict) -> tuple[str, float]:
    """The label and confidence of the first candle of ``span`` in a /review answer."""
    p = next(p for p in review["predictions"] if p["time"] == span["start_time"])
    return p["label"], round(p["confidence"], 4)


def test_a_pandas_default_csv_in_data_raw_is_ingested(tmp_path):
    """`df.to_csv()` of a date-indexed frame dropped into data/raw goes through `dvc repro ingest` as is."""
    import pandas as pd

    from candle_ml.ingest import bundled_frame

    repo = copy_repo(tmp_path)
    msft = bundled_frame("MSFT").tail(300)
    first_time = int(msft["time"].iloc[0])
    frame = (
        msft.set_index(pd.to_datetime(msft.pop("time"), unit="s")).rename_axis(None).rename(columns=str.title)
    )
    frame.to_csv(repo / "data/raw/MSFTCSV_1d.csv")
    assert (repo / "data/raw/MSFTCSV_1d.csv").read_text().startswith(",Open,High,Low,Close,Volume")
    assert ran(run(["dvc", "repro", "ingest"], repo)) == ["check_raw", "ingest"]
    index = json.loads((repo / "data/candles/index.json").read_text())["series"]
    stored = next(s for s in index if s["pair"] == "MSFTCSV")
    assert (stored["rows"], stored["first_time"]) == (300, first_time)


def test_a_bad_raw_file_stops_dvc_repro_before_ingest_and_the_stored_series_stay(tmp_path):
    """A MetaTrader 4 export named as downloaded is ingested; a broken one stops `dvc repro` at
    check_raw, naming the file, row and rule, and data/candles/ is what it was."""
    from candle_ml.ingest import bundled_frame

    repo = copy_repo(tmp_path)
    ibm = bundled_frame("IBM").tail(200)
    when = pd.to_datetime(ibm["time"], unit="s")
    good = ibm.assign(date=when.dt.strftime("%Y.%m.%d"), clock="00:00")
    columns = ["date", "clock", "open", "high", "low", "close", "volume"]
    good[columns].to_csv(repo / "data/raw/XOM1440.csv", header=False, index=False)  # symbol + minutes
    assert ran(run(["dvc", "repro", "ingest"], repo)) == ["check_raw", "ingest"]
    index = json.loads((repo / "data/candles/index.json").read_text())["series"]
    assert {(s["pair"], s["timeframe"], s["rows"]) for s in index if s["pair"] == "XOM"} == {
        ("XOM", "1d", 200)
    }
    stored = sorted(p.name for p in (repo / "data/candles").iterdir())
    before = (repo / "data/candles/index.json").read_bytes()

    bad = good.copy()
    bad.iloc[5, bad.columns.get_loc("high")] = bad["low"].iloc[5] - 1  # high below low
    bad[columns].to_csv(repo / "data/raw/CVX1440.csv", header=False, index=False)
    failed = subprocess.run(["dvc", "repro"], cwd=repo, capture_output=True, text=True)
    assert failed.returncode != 0
    assert "CVX1440.csv row 6: high" in failed.stdout + failed.stderr, failed.stdout + failed.stderr
    assert "Running stage 'ingest'" not in failed.stdout
    assert sorted(p.name for p in (repo / "data/candles").iterdir()) == stored
    assert (repo / "data/candles/index.json").read_bytes() == before
