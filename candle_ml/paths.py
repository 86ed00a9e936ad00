"""Every path the pipeline, the server and the CLI use, relative to the repository root.

``dvc.yaml`` declares the same paths as stage deps and outs; change them together.
"""

from __future__ import annotations

from pathlib import Path

PARAMS = Path("params.yaml")
DVC_LOCK = Path("dvc.lock")

RAW_DIR = Path("data/raw")  # user candle files, any layout candle_ml.candle_formats reads
CANDLES_DIR = Path("data/candles")  # ingest: one Parquet file per series + index.json
FEATURES_DIR = Path("data/features")  # featurize
AUTOLABEL_DIR = Path("data/autolabel")  # autolabel
AUTOLABEL_SPANS = AUTOLABEL_DIR / "spans.json"
ANNOTATIONS_DIR = Path("data/annotations")
HUMAN_DIR = ANNOTATIONS_DIR / "human"  # trader exports, *.json
FEEDBACK_LOG = ANNOTATIONS_DIR / "feedback.jsonl"  # answers the server appends
REVIEWED_LOG = ANNOTATIONS_DIR / "reviewed.jsonl"  # the chart ranges traders answered on
CHARTS_DIR = Path("data/charts")  # charts opened in the review page (git-ignored; answered ones go to raw)
HISTORY_DB = Path("data/history/predictions.sqlite")  # every prediction the server answered (git-ignored)
DATASET_DIR = Path("data/dataset")
DATASET = DATASET_DIR / "dataset.parquet"
REFERENCE = DATASET_DIR / "reference.parquet"
SCHEMA = DATASET_DIR / "schema.json"
CHART_DATASET = DATASET_DIR / "chart.parquet"  # one row per chart-pattern proposal
CHART_REFERENCE = DATASET_DIR / "chart_reference.parquet"  # marked chart spans of the real series
DATASET_REPORT = DATASET_DIR / "report.json"
MODEL_DIR = Path("models")
PLOTS_DIR = Path("plots")
METRICS_DIR = Path("metrics")  # headline numbers only (DVC metrics: `dvc metrics show`, `dvc exp show`)
EVALUATE_METRICS = METRICS_DIR / "evaluate.json"
REPORTS_DIR = Path("reports")  # every stage's detail: per class, per series, per rule
EVALUATE_REPORT = REPORTS_DIR / "evaluate.json"
HOLDOUT_METRICS = METRICS_DIR / "holdout.json"
HOLDOUT_REPORT = REPORTS_DIR / "holdout.json"
HOLDOUT_CHART_METRICS = METRICS_DIR / "holdout_chart.json"  # the chart model's span F1 per series
OUTCOMES_METRICS = METRICS_DIR / "outcomes.json"  # cells with an edge
OUTCOMES_REPORT = REPORTS_DIR / "outcomes.json"  # every label x horizon cell, both sources
OUTCOMES_PLOT = REPORTS_DIR / "outcomes.csv"  # excess return per label at the summary horizon
LEARNING_CURVE_METRICS = METRICS_DIR / "curve.json"  # the headline budget: candle and chart model
LEARNING_CURVE_REPORT = REPORTS_DIR / "learning_curve.json"
LEARNING_CURVE_PLOT = REPORTS_DIR / "learning_curve.csv"  # score per budget of marked spans
OWN_CURVE_TABLE = REPORTS_DIR / "own_patterns.csv"  # each own pattern x simulated trader, vs the truth
CHART_CURVE_PLOT = REPORTS_DIR / "chart_curve.csv"
PER_CLASS_PLOT = REPORTS_DIR / "per_class.csv"  # per-label scores, a DVC bar chart
RELIABILITY_PLOT = REPORTS_DIR / "reliability.csv"  # confidence vs accuracy on the test split

INDEX = "index.json"  # the series listing inside CANDLES_DIR and FEATURES_DIR


def metrics_file(stage: str) -> Path:
    return METRICS_DIR / f"{stage}.json"


def report_file(stage: str) -> Path:
    return REPORTS_DIR / f"{stage}.json"
