"""Evaluation: score a model bundle on the test split, per candle and per span.

Predictions are made exactly as the server makes them: ``Bundle.predict`` on the
raw candles of each series (featurize, a window ending at every candle, each predicted
pattern painted back over its candles). The
test candles' predictions are compared with the reference labels from the
dataset stage; both are grouped into spans (consecutive equal non-``O`` labels)
and matched by overlap and label. Two baselines are scored the same way: the
majority class, and the TA-Lib rules themselves (the ceiling for programmatic labels).
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.metrics import accuracy_score, classification_report, precision_recall_fscore_support

from candle_ml.bundle import Bundle
from candle_ml.calibration import expected_calibration_error, reliability_table
from candle_ml.spans import add_span_counts, boundary_distances, group_spans, match_spans, span_table
from candle_ml.stage_outputs import read_candles_index
from candle_ml.tracking import flatten

log = logging.getLogger("candle_ml.evaluate")

PLOT_ARTIFACTS = ("confusion_matrix.png", "feature_importance.png", "classification_report.txt")


def predict_series(bundle: Bundle, candles_dir: Path, reference: pl.DataFrame) -> pl.DataFrame:
    """Sliding-window predictions for every candle of every series in ``reference``."""
    wanted = set(reference.select("pair", "timeframe").unique().iter_rows())
    parts = []
    for e in read_candles_index(candles_dir).series:
        if (e.pair, e.timeframe) not in wanted:
            continue
        pred = bundle.predict(pl.read_parquet(candles_dir / e.file))
        parts.append(
            pl.DataFrame(
                {
                    "pair": [e.pair] * len(pred.time),
                    "timeframe": [e.timeframe] * len(pred.time),
                    "time": pred.time,
                    "predicted": pl.Series(list(pred.label), dtype=pl.String),
                    "confidence": pred.confidence,
                    "raw_confidence": pred.raw_confidence,
                }
            )
        )
    return pl.concat(parts)


def candle_scores(y_true: list[str], y_pred: list[str]) -> dict[str, Any]:
    labels = sorted(set(y_true) | set(y_pred))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    per_class = {
        lab: {
            "precision": round(float(p[i]), 4),
            "recall": round(float(r[i]), 4),
            "f1": round(float(f[i]), 4),
            "support": int(s[i]),
        }
        for i, lab in enumerate(labels)
    }
    return {
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
        "f1_macro": round(float(np.mean(f)), 4),
        "f1_weighted": round(float(np.average(f, weights=s)) if s.sum() else 0.0, 4),
        "per_class": per_class,
    }


def span_scores(frame: pl.DataFrame, truth: str, pred: str, min_overlap: float) -> dict[str, Any]:
    """Span precision/recall/F1 per label, summed over series; ``span_f1_macro`` over labels seen."""
    totals: dict[str, Counter] = {}
    distances: dict[str, list[float]] = {}
    for _, part in frame.sort("pair", "timeframe", "time").group_by("pair", "timeframe", maintain_order=True):
        predicted, reference = group_spans(part[pred].to_list()), group_spans(part[truth].to_list())
        add_span_counts(totals, match_spans(predicted, reference, min_overlap))
        for label, d in boundary_distances(predicted, reference, min_overlap).items():
            distances.setdefault(label, []).extend(d)
    per_class = span_table(totals)
    for label, row in per_class.items():
        # How many candles a matched span's ends lie from the reference's (0: exactly on them).
        near = distances.get(label)
        row["boundary_distance"] = round(float(np.mean(near)), 3) if near else None
    macro = float(np.mean([v["f1"] for v in per_class.values()])) if per_class else 0.0
    return {"span_f1_macro": round(macro, 4), "per_class_span": per_class}


def score_predictions(scored: pl.DataFrame, min_overlap: float) -> dict[str, Any]:
    """The model's scores on candles that all have a prediction: per candle, per span, the worst
    pattern among those the reference has, and calibration (evaluate and holdout share it)."""
    model = {
        **candle_scores(scored["label"].to_list(), scored["predicted"].to_list()),
        **span_scores(scored, "label", "predicted", min_overlap),
    }
    f1 = {label: v["f1"] for label, v in model["per_class_span"].items() if v["support"] > 0}
    worst = min(f1, key=lambda label: (f1[label], label)) if f1 else None
    return {
        **model,
        "worst_span_f1": f1[worst] if worst else 0.0,
        "worst_span_label": worst,
        "calibration": calibration_scores(scored),
    }


def evaluate(test: pl.DataFrame, min_overlap: float, majority: str) -> dict[str, Any]:
    """Pure core: ``test`` has reference ``label``, ``label_rule`` and the model's ``predicted`` per candle.

    Candles the model gives no prediction (too little history in their series, e.g. a
    short series whose test split falls in its first ``min_history`` candles) are left
    out of every score, the baselines' included, and counted: the scores say how good the
    predictions are, ``test_candles_without_history`` how many candles the model cannot serve.
    """
    without = int(test["predicted"].is_null().sum())
    test = test.filter(pl.col("predicted").is_not_null()).with_columns(baseline=pl.lit(majority))
    baselines = {}
    for name, column in (("majority", "baseline"), ("talib_rule", "label_rule")):
        c = candle_scores(test["label"].to_list(), test[column].to_list())
        s = span_scores(test, "label", column, min_overlap)
        baselines[name] = {
            "accuracy": c["accuracy"],
            "f1_macro": c["f1_macro"],
            "span_f1_macro": s["span_f1_macro"],
        }
    return {
        **score_predictions(test, min_overlap),
        "baselines": baselines,
        "test_candles": test.height,
        "test_candles_without_history": without,
    }


def calibration_scores(test: pl.DataFrame) -> dict[str, float]:
    """ECE of the served (calibrated) confidences and of the model's own, over the test candles."""
    if "confidence" not in test.columns or test.height == 0:
        return {}
    correct = (test["predicted"] == test["label"]).to_numpy()
    return {
        "ece": expected_calibration_error(test["confidence"].to_numpy(), correct),
        "ece_uncalibrated": expected_calibration_error(test["raw_confidence"].to_numpy(), correct),
    }


def score_bundle(
    bundle: Bundle, candles_dir: Path, reference: pl.DataFrame, min_overlap: float
) -> tuple[dict[str, Any], pl.DataFrame]:
    """Predict every series as serving does and score its test split; returns (metrics, test candles)."""
    predictions = predict_series(bundle, candles_dir, reference)
    test = reference.filter(pl.col("split") == "test").join(
        predictions, on=["pair", "timeframe", "time"], how="left"
    )
    majority = reference.filter(pl.col("split") == "train")["label"].mode().sort()[0]
    metrics = {
        **evaluate(test, min_overlap, majority),
        "model_type": bundle.meta.model_type,
        "min_overlap": min_overlap,
    }
    metrics["calibration"] = {"temperature": bundle.meta.temperature, **metrics["calibration"]}
    metrics["own_labels"] = own_label_scores(metrics["per_class_span"], bundle.meta.label_priority)
    return metrics, test


def own_label_scores(per_class_span: dict[str, Any], rule_labels: list[str]) -> dict[str, Any]:
    """The labels only traders mark (none of the rules'): span F1 and the mean distance of the
    ends beside it, per label and over all of them (the matched spans' mean)."""
    own = {k: v for k, v in per_class_span.items() if k not in set(rule_labels) and v["support"] > 0}
    if not own:
        return {}
    weighted = [(v["boundary_distance"], v["support"] * v["recall"]) for v in own.values()]
    weight = sum(w for d, w in weighted if d is not None)
    return {
        "labels": {
            k: {"span_f1": v["f1"], "boundary_distance": v["boundary_distance"]} for k, v in own.items()
        },
        "span_f1_macro": round(float(np.mean([v["f1"] for v in own.values()])), 4),
        "boundary_distance": round(sum(d * w for d, w in weighted if d is not None) / weight, 3)
        if weight
        else None,
    }


def evaluation_headline(report: dict[str, Any]) -> dict[str, Any]:
    """The few numbers ``dvc metrics show`` and ``dvc exp show`` compare; the rest stays in the report."""
    return {
        "accuracy": report["accuracy"],
        "f1_macro": report["f1_macro"],
        "span_f1_macro": report["span_f1_macro"],
        "worst_span_f1": report["worst_span_f1"],
        "ece": report.get("calibration", {}).get("ece"),
        # The chart-pattern model's test span F1 macro (null without one).
        "chart_f1": report["chart_patterns"]["span_f1_macro"] if report.get("chart_patterns") else None,
    } | (
        # Traders' own labels (only when the model has some): their span F1 and how far the ends land.
        {
            "own_span_f1": report["own_labels"]["span_f1_macro"],
            "own_boundary_distance": report["own_labels"]["boundary_distance"],
        }
        if report.get("own_labels")
        else {}
    )


def reliability(test: pl.DataFrame) -> pl.DataFrame:
    """The reliability diagram of the served confidences on the test candles (``dvc plots``)."""
    scored = test.filter(pl.col("predicted").is_not_null())
    correct = (scored["predicted"] == scored["label"]).to_numpy()
    return reliability_table(scored["confidence"].to_numpy(), correct)


def per_class_table(report: dict[str, Any]) -> pl.DataFrame:
    """label, span F1, candle F1 and support per label: the per-class bar chart of ``dvc plots``."""
    labels = sorted(report["per_class_span"])
    return pl.DataFrame(
        {
            "label": labels,
            "span_f1": [report["per_class_span"][lab]["f1"] for lab in labels],
            "f1": [report["per_class"].get(lab, {}).get("f1", 0.0) for lab in labels],
            "spans": [report["per_class_span"][lab]["support"] for lab in labels],
        }
    )


def feature_importance(bundle: Bundle) -> pl.DataFrame:
    """Importance per base feature, summed over window positions (``body_rel@-2`` -> ``body_rel``)."""
    scores = bundle.model.feature_importance()
    names = [c.split("@")[0] for c in bundle.meta.input_columns]  # pad@k -> "pad"
    return (
        pl.DataFrame({"feature": names, "importance": scores})
        .group_by("feature")
        .agg(pl.col("importance").sum())
        .sort("importance", descending=True)
    )


def write_plots(
    plots_dir: Path,
    test: pl.DataFrame,
    importance: pl.DataFrame,
    metrics: dict[str, Any],
    labels: list[str],
    top: int,
) -> None:
    """``test``: the scored candles, each with a prediction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    plots_dir.mkdir(parents=True, exist_ok=True)
    test.select(actual=pl.col("label"), predicted=pl.col("predicted")).write_csv(
        plots_dir / "predictions.csv"
    )
    importance.write_csv(plots_dir / "feature_importance.csv")
    y_true, y_pred = test["label"].to_list(), test["predicted"].to_list()
    shown = [lab for lab in labels if lab in set(y_true) | set(y_pred)]
    fig, ax = plt.subplots(figsize=(11, 10))
    ConfusionMatrixDisplay.from_predictions(
        y_true, y_pred, labels=shown, ax=ax, xticks_rotation=70, colorbar=False
    )
    ax.set_title("Test candles: reference vs predicted")
    fig.tight_layout()
    fig.savefig(plots_dir / "confusion_matrix.png", dpi=90)
    plt.close(fig)
    head = importance.head(top)
    fig, ax = plt.subplots(figsize=(8, 0.3 * head.height + 1.5))
    ax.barh(head["feature"].to_list()[::-1], head["importance"].to_list()[::-1])
    ax.set_xlabel("importance (summed over window positions)")
    fig.tight_layout()
    fig.savefig(plots_dir / "feature_importance.png", dpi=90)
    plt.close(fig)
    span_lines = [f"{'label':32} {'precision':>9} {'recall':>9} {'f1':>9} {'spans':>7}"]
    span_lines += [
        f"{lab:32} {v['precision']:9.3f} {v['recall']:9.3f} {v['f1']:9.3f} {v['support']:7d}"
        for lab, v in metrics["per_class_span"].items()
    ]
    (plots_dir / "classification_report.txt").write_text(
        "Candle level (every test candle)\n\n"
        + classification_report(y_true, y_pred, labels=shown, digits=3, zero_division=0)
        + f"\nSpan level (match: same label, overlap > {metrics['min_overlap']})\n\n"
        + "\n".join(span_lines)
        + f"\n\nspan_f1_macro {metrics['span_f1_macro']:.3f}   baselines: {metrics['baselines']}\n"
    )


def log_evaluation(run_id: str, metrics: dict[str, Any], report_file: Path, plots_dir: Path) -> None:
    import mlflow

    with mlflow.start_run(run_id=run_id):
        numeric = {
            k: float(v)
            for k, v in flatten(metrics).items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        mlflow.log_metrics({k.replace("@", "_"): v for k, v in numeric.items()})
        for name in PLOT_ARTIFACTS:
            mlflow.log_artifact(str(plots_dir / name))
        mlflow.log_artifact(str(report_file))  # the server reads a registered model's scores here
        if metrics.get("worst_span_label"):
            mlflow.set_tag("worst_span_label", metrics["worst_span_label"])
