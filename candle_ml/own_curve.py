"""Simulated traders marking a pattern no rule knows, scored against its complete truth.

The learning curve's rule-label trader (``candle_ml.learning_curve``) can lean on the rules
(``dataset.snap_to_rules``); a trader's own pattern cannot. Here a pattern is given as a
definition outside the library (``learning_curve.own_patterns``: ``path/to/file.py:function``,
the function returning True on each occurrence's last candle, its ``length`` attribute the
candles it covers). Its complete truth is drawn on the real series; each simulated trader
(``TRADERS``) marks it before the test split the way people do: ends off by a candle or two,
only some occurrences, now and then the wrong label; with or without saying which ranges it
reviewed. The model is trained on those marks beside the rule labels, through the pipeline's own
dataset and train code (``dataset.snap_to_rules`` off: there is nothing to snap to), and its
spans of the pattern are scored on each series' test split (its newest candles) against the
truth: span F1 at the pipeline's IoU, precision, recall and the mean distance of the ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import polars as pl

from candle_ml.annotations import Annotation, ReviewedRange, Span
from candle_ml.bundle import Bundle
from candle_ml.config import DatasetParams, LearningCurveParams, TrainParams
from candle_ml.dataset import SeriesFrame, build_dataset
from candle_ml.errors import ConfigError
from candle_ml.features import load_custom
from candle_ml.patterns import NO_PATTERN
from candle_ml.rows import split_bounds
from candle_ml.spans import boundary_distances, group_spans, match_spans
from candle_ml.stage_outputs import FeaturesIndex, model_schema, real_series
from candle_ml.training import bundle_meta, train

log = logging.getLogger("candle_ml.learning_curve")


# reports/own_patterns.csv: one row per own pattern and trader.
OWN_CURVE_COLUMNS = {
    "pattern": pl.String,
    "length": pl.Int64,
    "trader": pl.String,
    "marked": pl.Int64,
    "occurrences": pl.Int64,
    "span_f1": pl.Float64,
    "precision": pl.Float64,
    "recall": pl.Float64,
    "end_distance": pl.Float64,
    "ends_moved": pl.Int64,
    "min_history": pl.Int64,
}


@dataclass(frozen=True)
class Trader:
    """How one simulated trader marks a pattern of its own."""

    name: str
    jitter: int = 0  # each end moves by up to this many candles either way (uniform)
    share: float = 1.0  # share of the occurrences it marks
    ranges: bool = False  # reviews whole stretches, marks all it sees there, and says which
    mislabel: float = 0.0  # share of its marks given another label
    budget: int = 0  # stops after this many marks, stretch by stretch (0: no limit)


# The table, in its order: each row one trader, each scored on every own pattern.
TRADERS = {
    t.name: t
    for t in (
        Trader("exact"),
        Trader("ends_1", jitter=1),
        Trader("ends_2", jitter=2),
        Trader("skims_60", share=0.6),
        Trader("reviews_60", share=0.6, ranges=True),
        Trader("marks_100_ends_1", jitter=1, budget=100),
        Trader("mislabels_5", mislabel=0.05),
    )
}


@dataclass
class OwnPattern:
    label: str
    find: Callable[[pl.DataFrame], np.ndarray]
    length: int


def load_own_pattern(entry: str) -> OwnPattern:
    """``path/to/file.py:function`` -> the pattern, labelled by the function's name."""
    fn = load_custom(entry, "learning_curve.own_patterns")
    length = getattr(fn, "length", None)
    if not isinstance(length, int) or length < 1:
        raise ConfigError(
            f"learning_curve.own_patterns '{entry}': the function needs an integer 'length' attribute "
            "(the candles an occurrence covers, ending on the candle it returns True for)"
        )
    return OwnPattern(entry.rpartition(":")[2], fn, length)


def occurrences(candles: pl.DataFrame, pattern: OwnPattern) -> list[tuple[int, int]]:
    """(first, last) candle rows of each occurrence; one overlapping an earlier kept one is dropped,
    as a trader marks a run of look-alikes once."""
    ends = np.flatnonzero(np.asarray(pattern.find(candles), dtype=bool))
    out: list[tuple[int, int]] = []
    for end in ends.tolist():
        start = end - pattern.length + 1
        if start >= 0 and (not out or start > out[-1][1]):
            out.append((start, end))
    return out


@dataclass
class Marks:
    spans: list[Span]
    reviewed: list[ReviewedRange]
    marked: int
    occurrences: int


def mark(
    truth: dict[str, list[tuple[int, int]]],
    times: dict[str, np.ndarray],
    reviewable: dict[str, int],
    pattern: OwnPattern,
    trader: Trader,
    other_labels: list[str],
    review_range: int,
    rng: np.random.Generator,
) -> Marks:
    """One trader's marks of ``pattern`` before each series' test split (``reviewable`` rows)."""
    seen = [(key, s, e) for key in sorted(truth) for s, e in truth[key] if e < reviewable[key]]
    chosen = np.zeros(len(seen), dtype=bool)
    reviewed: list[ReviewedRange] = []
    if trader.ranges or trader.budget:
        stretches = [(k, lo) for k in sorted(reviewable) for lo in range(0, reviewable[k], review_range)]
        want = trader.budget or int(np.ceil(trader.share * len(seen)))
        for i in rng.permutation(len(stretches)):
            if chosen.sum() >= want:
                break
            key, lo = stretches[i]
            hi = min(lo + review_range, reviewable[key]) - 1
            inside = np.array([k == key and lo <= e <= hi for k, _, e in seen], dtype=bool)
            chosen |= inside
            if trader.ranges:
                pair, timeframe = key.rsplit("_", 1)
                t = times[key]
                reviewed.append(
                    ReviewedRange(pair, timeframe, int(t[lo]), int(t[hi]), labels=[pattern.label])
                )
        if trader.budget:  # the budget's last stretch may overshoot: keep the first marks found
            chosen[np.flatnonzero(chosen)[trader.budget :]] = False
    else:
        chosen = rng.random(len(seen)) < trader.share
    spans = []
    for i in np.flatnonzero(chosen).tolist():
        key, start, end = seen[i]
        t = times[key]
        if trader.jitter:
            lo, hi = (x + int(rng.integers(-trader.jitter, trader.jitter + 1)) for x in (start, end))
            start, end = max(min(lo, hi), 0), min(max(lo, hi), t.size - 1)
        label = pattern.label
        if trader.mislabel and other_labels and rng.random() < trader.mislabel:
            label = str(rng.choice(other_labels))
        pair, timeframe = key.rsplit("_", 1)
        spans.append(
            Span(pair, timeframe, int(t[start]), int(t[end]), label, id=f"own-{key}-{i}", source="human")
        )
    return Marks(spans, reviewed, int(chosen.sum()), len(seen))


def score_pattern(
    predicted: dict[str, np.ndarray],
    truth: dict[str, list[tuple[int, int]]],
    test_from: dict[str, int],
    label: str,
    min_overlap: float,
) -> dict[str, Any]:
    """Span precision, recall and F1 of ``label`` on each series' rows from ``test_from``, against
    the complete truth; and how far the matched predicted ends lie from the true ones."""
    matched = n_pred = n_true = 0
    distances: list[float] = []
    for key, labels in predicted.items():
        lo = test_from[key]
        ref = np.full(labels.size, NO_PATTERN, dtype=object)
        for s, e in truth.get(key, []):
            ref[s : e + 1] = label
        pred = np.where(labels == label, label, NO_PATTERN)
        pred[:lo] = NO_PATTERN
        ref[:lo] = NO_PATTERN
        p_spans, r_spans = group_spans(pred), group_spans(ref)
        sc = match_spans(p_spans, r_spans, min_overlap).get(label)
        if sc is not None:
            matched, n_pred, n_true = matched + sc.matched, n_pred + sc.predicted, n_true + sc.support
        distances += boundary_distances(p_spans, r_spans, min_overlap).get(label, [])
    precision = matched / n_pred if n_pred else 0.0
    recall = matched / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "span_f1": round(f1, 4),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "test_occurrences": n_true,
        "end_distance": round(float(np.mean(distances)), 3) if distances else None,
    }


@dataclass
class _Setting:
    """What every pattern x trader cell shares: the real series on their feature rows."""

    series: list[SeriesFrame]  # real ones first, then the augmented copies
    real: list[SeriesFrame]
    candles: dict[str, pl.DataFrame]
    offset: dict[str, int]  # feature rows begin this many candles in (the warm-up)
    bounds: dict[str, tuple[int, int]]  # where val and test begin, per series
    rules: list[Annotation]
    label_priority: list[str]
    features_index: FeaturesIndex
    candles_dir: Path
    dataset_params: DatasetParams  # with snap_to_rules 0: the marks are scored as made
    train_params: TrainParams
    params: LearningCurveParams
    min_overlap: float


def own_curve(
    series: list[SeriesFrame],
    rule_spans: list[Span],
    label_priority: list[str],
    features_index: FeaturesIndex,
    candles_dir: Path,
    dataset_params: DatasetParams,
    train_params: TrainParams,
    params: LearningCurveParams,
    min_overlap: float,
) -> list[dict[str, Any]]:
    """One row per own pattern and trader: what it marked and the model's scores on the truth."""
    unknown = [t for t in params.traders if t not in TRADERS]
    if unknown:
        raise ConfigError(
            f"learning_curve.traders: unknown trader(s) {', '.join(unknown)} (known: {', '.join(TRADERS)})"
        )
    real = [s for s in series if not s.augmented]
    candles = {e.key: frame for e, frame in real_series(candles_dir)}
    # Feature rows begin after the warm-up: the truth and the marks live on those rows.
    offset = {
        s.key: int(np.searchsorted(candles[s.key]["time"].to_numpy(), s.times[0]))
        for s in real
        if s.frame.height
    }
    real = [s for s in real if s.key in offset]
    setting = _Setting(
        real + [s for s in series if s.augmented],
        real,
        candles,
        offset,
        {s.key: split_bounds(s.frame.height, dataset_params.split) for s in real},
        [Annotation(sp, "autolabel") for sp in rule_spans],
        label_priority,
        features_index,
        candles_dir,
        msgspec.structs.replace(dataset_params, snap_to_rules=0),
        train_params,
        params,
        min_overlap,
    )
    rows = []
    for entry in params.own_patterns:
        pattern = load_own_pattern(entry)
        truth = {}
        for s in real:
            shift = offset[s.key]
            truth[s.key] = [
                (a - shift, b - shift) for a, b in occurrences(candles[s.key], pattern) if a >= shift
            ]
        rows += [_trader_cell(setting, pattern, truth, name) for name in params.traders]
    return rows


def _trader_cell(
    setting: _Setting, pattern: OwnPattern, truth: dict[str, list[tuple[int, int]]], name: str
) -> dict[str, Any]:
    """One simulated trader marks ``pattern``; a model trained on those marks is scored on the truth."""
    params, real = setting.params, setting.real
    trader = TRADERS[name]
    rng = np.random.default_rng(params.seed)
    times = {s.key: s.times for s in real}
    reviewable = {k: b[1] for k, b in setting.bounds.items()}
    marks = mark(truth, times, reviewable, pattern, trader, setting.label_priority, params.review_range, rng)
    human = [Annotation(sp, "simulated trader") for sp in marks.spans]
    dataset = build_dataset(
        setting.series,
        human,
        setting.rules,
        setting.label_priority,
        setting.dataset_params,
        reviewed=marks.reviewed,
    )
    schema = model_schema(dataset.schema, setting.features_index)
    result = train(dataset.frame, schema, setting.train_params)
    bundle = Bundle(bundle_meta(result, schema, setting.train_params), result.model, setting.candles_dir)
    predicted = {}
    for s in real:
        pred = bundle.predict(setting.candles[s.key]).label[setting.offset[s.key] :]
        predicted[s.key] = np.asarray(pred, dtype=object)
    test_from = {k: b[1] for k, b in setting.bounds.items()}
    scores = score_pattern(predicted, truth, test_from, pattern.label, setting.min_overlap)
    learned = dataset.metrics["own_labels"].get(pattern.label, {})
    row = {
        "pattern": pattern.label,
        "length": pattern.length,
        "trader": name,
        "occurrences": marks.occurrences,
        "marked": marks.marked,
        "reviewed_ranges": len(marks.reviewed),
        **scores,
        "min_history": bundle.meta.min_history,
        "ends_moved": learned.get("ends_moved", 0),
        "learned_ends": learned,
    }
    log.info(
        "own pattern %s (%d candles), trader %s: span F1 %.3f (P %.3f R %.3f), end distance %s, "
        "min_history %d",
        pattern.label,
        pattern.length,
        name,
        row["span_f1"],
        row["precision"],
        row["recall"],
        row["end_distance"],
        row["min_history"],
    )
    return row
