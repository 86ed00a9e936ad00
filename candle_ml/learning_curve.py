"""How many marked spans until the model is useful: a learning curve from simulated traders.

A simulated trader works the way people annotate: it opens a stretch of chart (``review_range``
candles of a real series, before the test split), marks the patterns it sees there and moves on to
another stretch, until it has marked ``n`` spans of every label (rare labels may run out first).
It errs like people do: it misses 10 % of the patterns, gives 5 % a wrong label and places every
boundary up to 2 candles off. What it reviewed but did not mark is ``O`` (a reviewed candle with
no span is a negative, as on the review page); candles it never looked at are not training data.
Once a label has its ``n`` spans, the trader leaves further ones unmarked *and* out of ``O``.

The truth is the rule labeller's spans (TA-Lib's candlesticks, or the chart-pattern rules). For
each ``n`` the model is trained on the simulated spans alone through the pipeline's dataset and
train code, then scored like ``evaluate`` on the test split against the clean rule labels. Every
span's errors are drawn once and the stretches are reviewed in one fixed order, so a larger
budget extends a smaller one and the curve shows what more marking buys.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import polars as pl

from candle_ml.annotations import Annotation, Span
from candle_ml.bundle import Bundle
from candle_ml.candles import series_key
from candle_ml.chart.dataset import MATCH_OVERLAP, build_chart_dataset
from candle_ml.chart.evaluation import score_chart, summarize
from candle_ml.chart.model import train_chart_model
from candle_ml.chart.patterns import ChartRules
from candle_ml.config import DatasetParams, LearningCurveParams, TrainParams
from candle_ml.dataset import SeriesFrame, build_dataset
from candle_ml.evaluation import score_bundle, span_scores
from candle_ml.patterns import NO_PATTERN
from candle_ml.rows import split_bounds
from candle_ml.spans import iou
from candle_ml.stage_outputs import FeaturesIndex, model_schema
from candle_ml.training import bundle_meta, train

SIMULATED = "simulated trader"
# The plot's columns (reports/learning_curve.csv).
CURVE_COLUMNS = {
    "spans_per_class": pl.Int64,
    "fewest_marked": pl.Int64,
    "spans_marked": pl.Int64,
    "reviewed_candles": pl.Int64,
    "span_f1_macro": pl.Float64,
    "span_f1_any_overlap": pl.Float64,
    "f1_macro": pl.Float64,
}
CHART_CURVE_COLUMNS = {k: v for k, v in CURVE_COLUMNS.items() if k not in ("span_f1_any_overlap", "f1_macro")}


@dataclass(frozen=True)
class Annotator:
    """How a simulated trader errs."""

    jitter: int = 2  # each boundary moves by up to this many candles, either way
    miss: float = 0.10  # share of the patterns seen that are never marked
    mislabel: float = 0.05  # share of the marked spans given another label


@dataclass
class Truth:
    """One rule span on the candle rows of a real series, with the errors the trader will make."""

    span: Span
    series: str
    start: int
    end: int
    missed: bool = False
    label: str = ""  # the label the trader gives it
    start_marked: int = 0
    end_marked: int = 0


@dataclass
class Marking:
    """What the trader produced for one budget."""

    spans: list[Span]  # reviewed-but-unmarked runs as O first, then the marked spans (they win)
    per_label: dict[str, int]  # marked spans per label
    reviewed_candles: int
    reviewed: dict[str, np.ndarray]  # per series: rows the trader looked at
    skipped: list[Truth]  # patterns seen after their label was full: neither marked nor O


def place_truth(
    spans: list[Span], series: list[SeriesFrame], split: Any, annotator: Annotator, rng: np.random.Generator
) -> tuple[list[Truth], dict[str, int]]:
    """Rule spans that end before the test split, on candle rows, each with its errors drawn."""
    rows = {s.key: s.times for s in series}
    reviewable = {s.key: split_bounds(s.frame.height, split)[1] for s in series}
    labels = sorted({sp.label for sp in spans if sp.label != NO_PATTERN})
    out = []
    for sp in spans:
        key = f"{sp.pair}_{sp.timeframe}"
        if key not in rows or sp.label == NO_PATTERN:
            continue
        t = rows[key]
        start, end = int(np.searchsorted(t, sp.start_time)), int(np.searchsorted(t, sp.end_time))
        if end >= reviewable[key] or start >= t.size or t[start] != sp.start_time:
            continue  # in the test split, or in the features' warm-up
        out.append(Truth(sp, key, start, end))
    for tr in out:  # drawn in a fixed order, once: every budget sees the same errors
        tr.missed = bool(rng.random() < annotator.miss)
        tr.label = tr.span.label
        if rng.random() < annotator.mislabel and len(labels) > 1:
            tr.label = str(rng.choice([x for x in labels if x != tr.span.label]))
        lo, hi = sorted(
            (
                tr.start + int(rng.integers(-annotator.jitter, annotator.jitter + 1)),
                tr.end + int(rng.integers(-annotator.jitter, annotator.jitter + 1)),
            )
        )
        n = rows[tr.series].size
        tr.start_marked, tr.end_marked = max(lo, 0), min(hi, n - 1)
    return out, reviewable


def review_order(
    reviewable: dict[str, int], review_range: int, rng: np.random.Generator
) -> list[tuple[str, int]]:
    """Every stretch (series, first row) before the test split, in the order the trader opens them."""
    stretches = [(key, lo) for key, n in sorted(reviewable.items()) for lo in range(0, n, review_range)]
    return [stretches[i] for i in rng.permutation(len(stretches))]


def mark(
    truth: list[Truth],
    stretches: list[tuple[str, int]],
    review_range: int,
    reviewable: dict[str, int],
    per_class: int,
    times: dict[str, np.ndarray],
) -> Marking:
    """The trader's spans after reviewing stretches until every label has ``per_class`` marks."""
    by_stretch: dict[tuple[str, int], list[Truth]] = {}
    for tr in truth:  # a span across a stretch boundary belongs to both stretches
        for lo in range(tr.start - tr.start % review_range, tr.end + 1, review_range):
            by_stretch.setdefault((tr.series, lo), []).append(tr)
    labels = sorted({tr.span.label for tr in truth})
    count = dict.fromkeys(labels, 0)
    decided: dict[int, str] = {}  # id(truth) -> "marked" | "skipped" | "missed", at first sight
    negatives: list[Span] = []
    marked: list[Span] = []
    reviewed = 0
    looked = {key: np.zeros(t.size, dtype=bool) for key, t in times.items()}
    for key, lo in stretches:
        if all(count[label] >= per_class for label in labels):
            break
        hi = min(lo + review_range, reviewable[key])
        t = times[key]
        pair, timeframe = key.rsplit("_", 1)
        unmarked = np.ones(hi - lo, dtype=bool)  # reviewed candles that end up O
        for tr in sorted(by_stretch.get((key, lo), []), key=lambda x: x.start):
            if id(tr) not in decided:
                if count[tr.span.label] >= per_class:
                    decided[id(tr)] = "skipped"  # enough of this label: neither marked nor O
                elif tr.missed:
                    decided[id(tr)] = "missed"  # the trader did not see it: its candles stay O
                else:
                    decided[id(tr)] = "marked"
                    count[tr.span.label] += 1
                    marked.append(
                        Span(
                            pair=pair,
                            timeframe=timeframe,
                            start_time=int(t[tr.start_marked]),
                            end_time=int(t[tr.end_marked]),
                            label=tr.label,
                            id=f"sim-{tr.span.id}",
                            source="human",
                        )
                    )
            if decided[id(tr)] == "skipped":
                unmarked[max(tr.start - lo, 0) : max(tr.end - lo + 1, 0)] = False
            elif decided[id(tr)] == "marked":
                unmarked[max(tr.start_marked - lo, 0) : max(tr.end_marked - lo + 1, 0)] = False
        reviewed += hi - lo
        looked[key][lo:hi] = True
        for run_lo, run_hi in _runs(unmarked):
            negatives.append(
                Span(
                    pair, timeframe, int(t[lo + run_lo]), int(t[lo + run_hi - 1]), NO_PATTERN, source="human"
                )
            )
    skipped = [tr for tr in truth if decided.get(id(tr)) == "skipped"]
    return Marking(negatives + marked, count, reviewed, looked, skipped)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of every run of True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


@dataclass
class Simulation:
    """The real series a trader reviews, the rule spans on them with its errors, and its order."""

    real: list[SeriesFrame]
    truth: list[Truth]
    reviewable: dict[str, int]
    stretches: list[tuple[str, int]]
    times: dict[str, np.ndarray]

    def mark(self, per_class: int, review_range: int) -> Marking:
        return mark(self.truth, self.stretches, review_range, self.reviewable, per_class, self.times)


def simulate(
    series: list[SeriesFrame], rule_spans: list[Span], split: Any, params: LearningCurveParams
) -> Simulation:
    """The simulated trader of both curves: the same errors and review order for every budget."""
    real = [s for s in series if not s.augmented]  # a trader marks real charts only
    rng = np.random.default_rng(params.seed)
    annotator = Annotator(params.jitter, params.miss, params.mislabel)
    truth, reviewable = place_truth(rule_spans, real, split, annotator, rng)
    stretches = review_order(reviewable, params.review_range, rng)
    return Simulation(real, truth, reviewable, stretches, {s.key: s.times for s in real})


def candle_curve(
    series: list[SeriesFrame],
    rule_spans: list[Span],
    label_priority: list[str],
    features_index: FeaturesIndex,
    candles_dir: Path,
    reference: pl.DataFrame,
    dataset_params: DatasetParams,
    train_params: TrainParams,
    params: LearningCurveParams,
    min_overlap: float,
) -> list[dict[str, Any]]:
    """The candlestick model, one row per budget: what the trader marked and the model's
    clean-label test scores."""
    sim = simulate(series, rule_spans, dataset_params.split, params)
    # Unreviewed candles are unknown, not negatives: the dataset takes O only from reviewed ones.
    reviewed_only = msgspec.structs.replace(dataset_params, negative_ratio=1e-12)
    clean = reference.with_columns(label=pl.col("label_rule"))  # the rule labels alone
    rule_annotations = [Annotation(sp, "autolabel") for sp in rule_spans]
    rows = []
    # Where marks overlap (a doji inside a harami), the label the rules rank first takes the
    # candle, as for the rule spans themselves: lowest priority first, the last one wins.
    rank = {label: i for i, label in enumerate(label_priority)}
    for n in sorted(params.spans_per_class):
        marking = sim.mark(n, params.review_range)
        ordered = sorted(
            marking.spans, key=lambda sp: (sp.label != NO_PATTERN, -rank.get(sp.label, len(rank)))
        )
        human = [Annotation(sp, SIMULATED) for sp in ordered]
        # The rule spans are never training rows; with dataset.snap_to_rules a mark snaps onto one.
        dataset = build_dataset(
            sim.real, human, [], label_priority, reviewed_only, snap_targets=rule_annotations
        )
        schema = model_schema(dataset.schema, features_index)
        result = train(dataset.frame, schema, train_params)
        bundle = Bundle(bundle_meta(result, schema, train_params), result.model, candles_dir)
        metrics, test = score_bundle(bundle, candles_dir, clean, min_overlap)
        # Found in about the right place: a predicted span touching a reference span of its label.
        touching = span_scores(test.filter(pl.col("predicted").is_not_null()), "label", "predicted", 0.0)
        rows.append(
            {
                "spans_per_class": n,
                "spans_marked": sum(marking.per_label.values()),
                "fewest_marked": min(marking.per_label.values(), default=0),
                "reviewed_candles": marking.reviewed_candles,
                "snapped": dataset.metrics["human_spans_snapped"],
                "train_rows": int(dataset.frame.filter(pl.col("split") == "train").height),
                "span_f1_macro": metrics["span_f1_macro"],
                "span_f1_any_overlap": touching["span_f1_macro"],
                "f1_macro": metrics["f1_macro"],
                "accuracy": metrics["accuracy"],
                "marked_per_label": marking.per_label,
                "per_class_span": {k: v["f1"] for k, v in metrics["per_class_span"].items()},
            }
        )
    return rows


def chart_curve(
    series: list[SeriesFrame],
    rule_spans: list[Span],
    rules: ChartRules,
    candles_dir: Path,
    test_from: dict[tuple[str, str], int],
    dataset_params: DatasetParams,
    train_params: TrainParams,
    params: LearningCurveParams,
    min_overlap: float,
) -> list[dict[str, Any]]:
    """The chart-pattern model, one row per budget, from the same simulated trader: proposals the
    trader looked at in full are its training rows (a pattern it left unmarked because its label
    was full is left out), scored on the test split against the clean chart-rule spans."""
    sim = simulate(series, rule_spans, dataset_params.split, params)
    clean = pl.DataFrame(  # the rule spans: the truth the curve scores against
        [(sp.pair, sp.timeframe, sp.start_time, sp.end_time, sp.label) for sp in rule_spans],
        schema=["pair", "timeframe", "start_time", "end_time", "label"],
        orient="row",
    )
    rules_dict = {"window": rules.window, "confirm": rules.confirm, "bandwidth": rules.bandwidth}
    rows = []
    for n in sorted(params.spans_per_class):
        marking = sim.mark(n, params.review_range)
        marked = [Annotation(sp, SIMULATED) for sp in marking.spans if sp.label != NO_PATTERN]
        table, _ = build_chart_dataset(sim.real, marked, dataset_params.split, rules)
        table = table.filter(seen_in_full(table, marking, sim.times))
        model, _ = train_chart_model(table, rules_dict, train_params.chart, train_params.seed)
        scores = summarize({}, min_overlap)
        if model is not None:
            scores = score_chart(model, candles_dir, clean, test_from, min_overlap)
        rows.append(
            {
                "spans_per_class": n,
                "spans_marked": sum(marking.per_label.values()),
                "fewest_marked": min(marking.per_label.values(), default=0),
                "reviewed_candles": marking.reviewed_candles,
                "train_rows": int(table.filter(pl.col("split") == "train").height),
                "span_f1_macro": scores["span_f1_macro"],
                "marked_per_label": marking.per_label,
                "per_class_span": {k: v["f1"] for k, v in scores["per_class_span"].items()},
            }
        )
    return rows


def seen_in_full(table: pl.DataFrame, marking: Marking, times: dict[str, np.ndarray]) -> pl.Series:
    """Proposals whose every candle the trader reviewed, none of them a pattern it chose to skip."""
    keep = []
    skipped: dict[str, list[tuple[int, int]]] = {}
    for tr in marking.skipped:
        skipped.setdefault(tr.series, []).append((tr.start, tr.end))
    for pair, timeframe, a, b in table.select("pair", "timeframe", "start_time", "end_time").iter_rows():
        key = series_key(pair, timeframe)
        t = times[key]
        lo, hi = int(np.searchsorted(t, a)), int(np.searchsorted(t, b))
        keep.append(
            bool(marking.reviewed[key][lo : hi + 1].all())
            and not any(iou((lo, hi), sk) > MATCH_OVERLAP for sk in skipped.get(key, []))
        )
    return pl.Series(keep, dtype=pl.Boolean)
