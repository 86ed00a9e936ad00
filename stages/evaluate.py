"""Stage ``evaluate``: score the bundle on the test split, per candle and per span.

Predictions are made exactly as the server makes them: ``Bundle.predict`` on the
raw candles of each series (featurize, then a window around every candle). The
test candles' predictions are compared with the reference labels from the
dataset stage; both are grouped into spans (consecutive equal non-``O`` labels)
and matched by overlap and label. Two baselines are scored the same way: the
majority class, and the TA-Lib rules themselves (the ceiling for programmatic labels).
"""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
import typer
from sklearn.metrics import accuracy_score, classification_report, precision_recall_fscore_support

from candle_ml.bundle import Bundle, load_bundle
from candle_ml.config import EvaluateParams, MlflowParams, parse_section, read_params
from candle_ml.spans import group_spans, match_spans
from candle_ml.stageio import read_json, run_stage, write_json
from candle_ml.tracking import connect, flatten, guarded

log = logging.getLogger("candle_ml.evaluate")

MODEL_DIR = Path("models")
CANDLES_DIR = Path("data/candles")
REFERENCE_FILE = Path("data/dataset/reference.parquet")
SCHEMA_FILE = Path("data/dataset/schema.json")
METRICS = Path("metrics/evaluate.json")
PLOTS_DIR = Path("plots")


def predict_series(bundle: Bundle, candles_dir: Path, reference: pl.DataFrame) -> pl.DataFrame:
    """Sliding-window predictions for every candle of every series in ``reference``."""
    index = read_json(candles_dir / "index.json")["series"]
    wanted = set(reference.select("pair", "timeframe").unique().iter_rows())
    parts = []
    for e in index:
        if (e["pair"], e["timeframe"]) not in wanted:
            continue
        pred = bundle.predict(pl.read_parquet(candles_dir / e["file"]))
        parts.append(pl.DataFrame({
            "pair": [e["pair"]] * len(pred.time), "timeframe": [e["timeframe"]] * len(pred.time), "time": pred.time,
            "predicted": pl.Series(list(pred.label), dtype=pl.String), "confidence": pred.confidence,
        }))
    return pl.concat(parts)


def candle_scores(y_true: list[str], y_pred: list[str]) -> dict:
    labels = sorted(set(y_true) | set(y_pred))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    per_class = {lab: {"precision": round(float(p[i]), 4), "recall": round(float(r[i]), 4), "f1": round(float(f[i]), 4),
                       "support": int(s[i])} for i, lab in enumerate(labels)}
    return {
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
        "f1_macro": round(float(np.mean(f)), 4),
        "f1_weighted": round(float(np.average(f, weights=s)) if s.sum() else 0.0, 4),
        "per_class": per_class,
    }


def span_scores(frame: pl.DataFrame, truth: str, pred: str, min_overlap: float) -> dict:
    """Span precision/recall/F1 per label, summed over series; ``span_f1_macro`` over labels seen."""
    totals: dict[str, Counter] = {}
    for _, part in frame.sort("pair", "timeframe", "time").group_by("pair", "timeframe", maintain_order=True):
        scores = match_spans(group_spans(part[pred].to_list()), group_spans(part[truth].to_list()), min_overlap)
        for label, sc in scores.items():
            totals.setdefault(label, Counter()).update(
                {"matched": sc.matched, "predicted": sc.predicted, "support": sc.support})
    per_class = {}
    for label, c in sorted(totals.items()):
        precision = c["matched"] / c["predicted"] if c["predicted"] else 0.0
        recall = c["matched"] / c["support"] if c["support"] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
                            "support": c["support"]}
    macro = float(np.mean([v["f1"] for v in per_class.values()])) if per_class else 0.0
    return {"span_f1_macro": round(macro, 4), "per_class_span": per_class}


def evaluate(test: pl.DataFrame, min_overlap: float, majority: str) -> dict:
    """Pure core: ``test`` has reference ``label``, ``label_rule`` and the model's ``predicted`` per candle.

    Candles the model gives no prediction (too little history in their series, e.g. a
    short series whose test split falls in its first ``min_history`` candles) are left
    out of every score, the baselines' included, and counted: the scores say how good the
    predictions are, ``test_candles_without_history`` how many candles the model cannot serve.
    """
    without = int(test["predicted"].is_null().sum())
    test = test.filter(pl.col("predicted").is_not_null()).with_columns(baseline=pl.lit(majority))
    model = {**candle_scores(test["label"].to_list(), test["predicted"].to_list()),
             **span_scores(test, "label", "predicted", min_overlap)}
    baselines = {}
    for name, column in (("majority", "baseline"), ("talib_rule", "label_rule")):
        c = candle_scores(test["label"].to_list(), test[column].to_list())
        s = span_scores(test, "label", column, min_overlap)
        baselines[name] = {"accuracy": c["accuracy"], "f1_macro": c["f1_macro"], "span_f1_macro": s["span_f1_macro"]}
    return {**model, "baselines": baselines, "test_candles": test.height, "test_candles_without_history": without}


def feature_importance(bundle: Bundle) -> pl.DataFrame:
    """Importance per base feature, summed over window positions (``body_rel@-2`` -> ``body_rel``)."""
    scores = bundle.model.feature_importance()
    names = [c.split("@")[0] for c in bundle.meta.input_columns]  # pad@k -> "pad"
    return (pl.DataFrame({"feature": names, "importance": scores}).group_by("feature").agg(pl.col("importance").sum())
            .sort("importance", descending=True))


def write_plots(test: pl.DataFrame, importance: pl.DataFrame, metrics: dict, labels: list[str], top: int) -> None:
    """``test``: the scored candles, each with a prediction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    PLOTS_DIR.mkdir(parents=True, exist_ok=True)
    test.select(actual=pl.col("label"), predicted=pl.col("predicted")).write_csv(PLOTS_DIR / "predictions.csv")
    importance.write_csv(PLOTS_DIR / "feature_importance.csv")
    y_true, y_pred = test["label"].to_list(), test["predicted"].to_list()
    shown = [lab for lab in labels if lab in set(y_true) | set(y_pred)]
    fig, ax = plt.subplots(figsize=(11, 10))
    ConfusionMatrixDisplay.from_predictions(y_true, y_pred, labels=shown, ax=ax, xticks_rotation=70, colorbar=False)
    ax.set_title("Test candles: reference vs predicted")
    fig.tight_layout()
    fig.savefig(PLOTS_DIR / "confusion_matrix.png", dpi=90)
    plt.close(fig)
    head = importance.head(top)
    fig, ax = plt.subplots(figsize=(8, 0.3 * head.height + 1.5))
    ax.barh(head["feature"].to_list()[::-1], head["importance"].to_list()[::-1])
    ax.set_xlabel("importance (summed over window positions)")
    fig.tight_layout()
    fig.savefig(PLOTS_DIR / "feature_importance.png", dpi=90)
    plt.close(fig)
    span_lines = [f"{'label':32} {'precision':>9} {'recall':>9} {'f1':>9} {'spans':>7}"]
    span_lines += [f"{lab:32} {v['precision']:9.3f} {v['recall']:9.3f} {v['f1']:9.3f} {v['support']:7d}"
                   for lab, v in metrics["per_class_span"].items()]
    (PLOTS_DIR / "classification_report.txt").write_text(
        "Candle level (every test candle)\n\n"
        + classification_report(y_true, y_pred, labels=shown, digits=3, zero_division=0)
        + f"\nSpan level (match: same label, overlap > {metrics['min_overlap']})\n\n" + "\n".join(span_lines)
        + f"\n\nspan_f1_macro {metrics['span_f1_macro']:.3f}   baselines: {metrics['baselines']}\n"
    )


def main(params_file: Path = typer.Option(Path("params.yaml"), "--params", help="params.yaml to read")) -> None:
    def run() -> None:
        all_params = read_params(params_file)
        params = parse_section(all_params, "evaluate", EvaluateParams, params_file)
        cfg = parse_section(all_params, "mlflow", MlflowParams, params_file)
        bundle = load_bundle(MODEL_DIR)
        reference = pl.read_parquet(REFERENCE_FILE)
        if read_json(SCHEMA_FILE)["split"]["method"] == "random":
            log.warning("dataset.split.method=random: test candles are scattered, so span metrics are only indicative")
        predictions = predict_series(bundle, CANDLES_DIR, reference)
        test = reference.filter(pl.col("split") == "test").join(predictions, on=["pair", "timeframe", "time"], how="left")
        majority = reference.filter(pl.col("split") == "train")["label"].mode().sort()[0]
        metrics = {**evaluate(test, params.min_overlap, majority), "model_type": bundle.meta.model_type,
                   "min_overlap": params.min_overlap}
        shutil.rmtree(PLOTS_DIR, ignore_errors=True)
        write_json(METRICS, metrics)
        write_plots(test.filter(pl.col("predicted").is_not_null()), feature_importance(bundle), metrics, bundle.meta.label_names, params.top_features)
        log.info("test: accuracy %.3f, f1_macro %.3f, span_f1_macro %.3f (majority %.3f, TA-Lib rule %.3f)",
                 metrics["accuracy"], metrics["f1_macro"], metrics["span_f1_macro"],
                 metrics["baselines"]["majority"]["span_f1_macro"], metrics["baselines"]["talib_rule"]["span_f1_macro"])
        run_id = bundle.meta.training.run_id
        if run_id and connect(cfg):
            guarded(cfg, "logging evaluation", log_evaluation, run_id, metrics)
        elif not run_id:
            log.warning("the bundle has no MLflow run (tracking was unavailable at train time); metrics not logged")

    run_stage(run)


def log_evaluation(run_id: str, metrics: dict) -> None:
    import mlflow

    with mlflow.start_run(run_id=run_id):
        numeric = {k: float(v) for k, v in flatten(metrics).items() if isinstance(v, int | float) and not isinstance(v, bool)}
        mlflow.log_metrics({k.replace("@", "_"): v for k, v in numeric.items()})
        for name in ("confusion_matrix.png", "feature_importance.png", "classification_report.txt"):
            mlflow.log_artifact(str(PLOTS_DIR / name))
        mlflow.log_artifact(str(METRICS))


if __name__ == "__main__":
    typer.run(main)
