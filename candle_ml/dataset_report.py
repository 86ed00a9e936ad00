"""What the dataset stage reports: the numbers of reports/dataset.json, the few that
``dvc metrics show`` compares (metrics/dataset.json) and the details kept beside the dataset."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from candle_ml.labels import Placed, Skipped
from candle_ml.rows import SPLITS

SKIP_REASONS = ("below_min_confidence", "unknown_series", "no_matching_candle", "in_warmup", "superseded")


def dataset_metrics(
    frame: pl.DataFrame,
    used: list[Placed],
    agreement: float | None,
    skipped: Skipped,
    overridden: int,
    purged: int,
) -> tuple[dict, dict]:
    """(details for data/dataset/report.json, the numbers of reports/dataset.json)."""
    counts = frame["label"].value_counts(sort=True)
    total = frame.height
    label_counts = {r["label"]: int(r["count"]) for r in counts.iter_rows(named=True)}
    per_label_len: dict[str, list[int]] = {}
    for p in used:
        per_label_len.setdefault(p.span.label, []).append(p.length)
    split_counts = {
        sp: {
            r["label"]: int(r["count"])
            for r in frame.filter(pl.col("split") == sp)["label"].value_counts().iter_rows(named=True)
        }
        for sp in SPLITS
    }
    details = {
        "split_label_counts": split_counts,
        "avg_span_length_by_label": {
            k: round(float(np.mean(v)), 4) for k, v in sorted(per_label_len.items())
        },
    }
    return details, {
        "rows": total,
        "label_counts": label_counts,
        "class_distribution": {k: round(100.0 * v / total, 3) for k, v in label_counts.items()},
        "split_rows": {sp: sum(c.values()) for sp, c in split_counts.items()},
        "spans": len(used),
        "avg_span_length": round(float(np.mean([p.length for p in used])), 4) if used else 0.0,
        "agreement_rate": None if agreement is None else round(agreement, 4),
        "skipped_annotations": {r: skipped.counts.get(r, 0) for r in SKIP_REASONS},
        "overridden_by_merge": overridden,
        "purged_at_split_boundary": purged,
    }


def dataset_headline(report: dict[str, Any]) -> dict[str, Any]:
    """The few numbers ``dvc metrics show`` and ``dvc exp show`` compare; the rest stays in the report."""
    return {
        "spans": report["spans"],
        "agreement_rate": report["agreement_rate"],
        "answers": sum(report["feedback_spans"].values()),  # traders' answers in the feedback log
        "negatives": report["negatives_from_dismissals"],
    }
