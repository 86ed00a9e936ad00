"""Dataset: features + placed spans -> a labeled, split, encoded training table.

``build_dataset`` is the pure core of the ``dataset`` stage. It merges and paints the
spans (``candle_ml.labels``), splits each series by time, and encodes per ``dataset.encoding``:

* ``end`` (the default): one row per annotated candle, and per sampled unannotated candle,
  labelled with the pattern that *ends* on it (``O`` elsewhere, the inside of a span included),
  with the flattened window of the candles up to it (``candle_ml.windows``, ``anchor="end"``).
  TA-Lib signals a pattern on its last candle the same way: every engulfing looks alike seen
  from its last candle, so few examples teach it, and the model never looks ahead. The bundle
  turns each predicted end back into a span of the label's length (``label_lengths``).
* ``window``: one row per labeled candle, and per sampled unlabeled candle, with the
  flattened window of features centred on it. Every candle of a span is a row, so a model
  that slides the same window over every candle recovers whole spans.
* ``bio``: one row per candle with ``B-<label>``/``I-<label>``/``O`` tags in ``tag``;
  spans overlapping it go to ``tag_2``, ``tag_3``, ...

It also returns every candle's reference label (for span-level evaluation), the schema a
model needs to rebuild its inputs, the metrics and a report of skipped annotations.
"""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from candle_ml.annotations import HUMAN_SOURCES, Annotation, ReviewedRange
from candle_ml.candles import series_key
from candle_ml.config import DatasetParams, SplitParams
from candle_ml.errors import DatasetError
from candle_ml.labels import (
    Placed,
    Skipped,
    agreement_rate,
    bio_layers,
    covering_labels,
    latest_by_id,
    merge_spans,
    or_o,
    paint,
    place_spans,
    priority_order,
    snap_to_rules,
)
from candle_ml.own_labels import own_label_names, own_labels
from candle_ml.patterns import NO_PATTERN
from candle_ml.stage_outputs import DatasetSchema, FeatureSeriesEntry, WindowLayout
from candle_ml.windows import WindowSpec, build_windows, straddles, window_columns

log = logging.getLogger("candle_ml.dataset")

SPLITS = ("train", "val", "test")
SKIP_REASONS = ("below_min_confidence", "unknown_series", "no_matching_candle", "in_warmup", "superseded")


@dataclass
class SeriesFrame:
    """One series' feature rows (after warm-up) and when its raw candles began."""

    pair: str
    timeframe: str
    frame: pl.DataFrame
    candles_first_time: int  # first raw candle: spans before the feature rows are warm-up, not unknown
    augmented: bool = False  # made by ingest.augment: contributes train rows only

    @property
    def key(self) -> str:
        return series_key(self.pair, self.timeframe)

    @property
    def times(self) -> np.ndarray:
        return self.frame["time"].to_numpy()


def split_bounds(n: int, split: SplitParams) -> tuple[int, int]:
    """Row indices where val and test begin in a temporal split of n rows."""
    n_train = int(round(n * split.train))
    n_val = int(round(n * split.val))
    return n_train, min(n, n_train + n_val)


def assign_splits(
    n: int, split: SplitParams, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split code per row (0 train, 1 val, 2 test) and each row's allowed window range [lo, hi)."""
    if split.method == "random":
        codes = rng.choice(3, size=n, p=[split.train, split.val, split.test])
        return codes, np.zeros(n, dtype=np.int64), np.full(n, n, dtype=np.int64)
    val_at, test_at = split_bounds(n, split)
    edges = np.array([0, val_at, test_at, n])
    codes = np.searchsorted(edges[1:], np.arange(n), side="right")
    return codes, edges[codes], edges[codes + 1]


def select_features(columns: list[str], patterns: list[str]) -> list[str]:
    """Columns matching ``dataset.features``, in pattern order. An exact name that is
    missing is an error; a glob that matches nothing (its indicator was removed) only warns."""
    chosen: list[str] = []
    for pat in patterns:
        hits = [c for c in columns if fnmatch.fnmatchcase(c, pat) and c not in chosen]
        if not hits:
            msg = f"dataset.features: '{pat}' matches no feature column (have: {', '.join(columns)})"
            if not any(ch in pat for ch in "*?["):
                raise DatasetError(msg)
            log.warning(msg)
        chosen += hits
    if not chosen:
        raise DatasetError(
            f"dataset.features: no pattern matches any feature column (have: {', '.join(columns)})"
        )
    return chosen


def model_features(available: list[str], params: DatasetParams, has_own: bool) -> tuple[list[str], list[str]]:
    """The feature columns the model reads (``dataset.features``, then, when the data has a
    trader's own label, ``dataset.own_label_features``), and which of them only own labels read."""
    chosen = select_features(available, params.features)
    if not has_own or not params.own_label_features:
        return chosen, []
    # (none may match: custom features without setup_* columns)
    extra = [
        c
        for c in available
        if c not in chosen and any(fnmatch.fnmatchcase(c, pat) for pat in params.own_label_features)
    ]
    return chosen + extra, extra


@dataclass
class DatasetResult:
    frame: pl.DataFrame
    schema: DatasetSchema
    metrics: dict
    report: dict
    reference: pl.DataFrame  # every candle: pair, timeframe, time, split, label, label_rule
    learned_ends: list[dict] = field(default_factory=list)  # marks whose end the dataset learned elsewhere


def build_dataset(
    series: list[SeriesFrame],
    human: list[Annotation],
    programmatic: list[Annotation],
    label_priority: list[str],
    params: DatasetParams,
    snap_targets: list[Annotation] | None = None,
    reviewed: list[ReviewedRange] | None = None,
) -> DatasetResult:
    """Pure core: match, snap, merge, paint, split and encode. Deterministic for a given seed.

    Human spans snap onto the programmatic spans (or ``snap_targets``: rule spans that are not
    training data themselves) per ``dataset.snap_to_rules``."""
    if params.split.method == "random":
        log.warning(
            "dataset.split.method=random: neighbouring candles land in different splits, so windows leak "
            "future information into training (look-ahead); use 'temporal' for honest metrics"
        )
    by_key = {s.key: s for s in series}
    n_by_series = {k: s.frame.height for k, s in by_key.items()}
    skipped = Skipped()
    human = latest_by_id(human, skipped)
    human_placed = place_spans(human, by_key, params.min_confidence, skipped)
    prog_placed = place_spans(programmatic, by_key, params.min_confidence, skipped)
    targets = prog_placed if snap_targets is None else place_spans(snap_targets, by_key, 0.0, Skipped())
    human_placed, snapped = snap_to_rules(human_placed, targets, params.snap_to_rules)
    available = [c for c in series[0].frame.columns if c != "time"]
    has_own = bool(own_label_names(human_placed, set(label_priority)))
    feature_cols, own_feature_cols = model_features(available, params, has_own)
    values_by_key = {s.key: s.frame.select(feature_cols).to_numpy() for s in series}
    # A trader's own labels: ends learned from imprecise marks, negatives only where it looked.
    own = own_labels(
        human_placed,
        set(label_priority),
        values_by_key,
        {k: s.times for k, s in by_key.items()},
        reviewed or [],
        params.window_size,
        params.end_tolerance,
        params.reviewed_around_marks,
        params.seed,
    )
    human_placed = own.spans
    agreement = agreement_rate(human_placed, prog_placed, n_by_series)
    human_kept, prog_kept, overridden = merge_spans(human_placed, prog_placed, params.merge, n_by_series)
    ordered = priority_order(human_kept, prog_kept, params.merge, label_priority)

    used = [p for p in ordered if p.span.label != NO_PATTERN]
    lengths = label_lengths(used)
    spec = WindowSpec(
        window_for(params, lengths, set(label_priority)),
        params.context,
        "end" if params.encoding == "end" else "centre",
    )
    rng = np.random.default_rng(params.seed)
    rules_only = priority_order([], prog_placed, params.merge, label_priority)
    parts: list[pl.DataFrame] = []
    references: list[pl.DataFrame] = []
    purged = 0
    for s in series:
        n = s.frame.height
        if n == 0:
            continue
        mine = [p for p in ordered if p.series == s.key]
        labels, sources = paint(n, mine)
        codes, lo, hi = assign_splits(n, params.split, rng)
        base = {
            "pair": np.full(n, s.pair, dtype=object),
            "timeframe": np.full(n, s.timeframe, dtype=object),
            "time": s.times,
            "split": np.asarray(SPLITS, dtype=object)[codes],
        }
        # Every candle's reference label, and what the TA-Lib rules alone say (the
        # evaluate stage scores sliding-window predictions against these).
        rule_labels, _ = paint(n, [p for p in rules_only if p.series == s.key])
        if not s.augmented:  # evaluation is on real candles only
            references.append(
                pl.DataFrame({k: _column(v) for k, v in base.items()}).with_columns(
                    label=pl.Series(list(or_o(labels)), dtype=pl.String),
                    label_rule=pl.Series(list(or_o(rule_labels)), dtype=pl.String),
                )
            )
        if params.merge == "both":
            base |= labels_by_source(n, mine, params.encoding)
        values = values_by_key[s.key]
        if params.encoding == "bio":
            bio = encode_bio(base, labels, sources, mine, values, feature_cols)
            parts.append(bio.filter(pl.col("split") == "train") if s.augmented else bio)
            continue
        anchors = sample_anchors(labels, codes, params.negative_ratio, rng, own.doubtful.get(s.key))
        if s.augmented:
            anchors = anchors[codes[anchors] == 0]
        if params.split.method == "temporal":
            cross = straddles(anchors, spec, lo[anchors], hi[anchors], n)
            purged += int(cross.sum())
            anchors = anchors[~cross]
        if params.encoding == "end":
            labels, sources, multi = end_rows(labels, sources, mine, anchors)
        else:
            multi = covering_labels(n, mine, anchors)
        anchors, multi = without_unknown(anchors, multi, sources, own.doubtful.get(s.key))
        parts.append(encode_windows(base, labels, sources, multi, values, feature_cols, anchors, spec))

    if not parts:
        raise DatasetError("dataset: no rows (every series is empty after warm-up)")
    frame = pl.concat(parts, how="vertical")
    augmented_keys = [series_key(s.pair, s.timeframe) for s in series if s.augmented]
    augmented_rows = frame.filter(
        pl.concat_str("pair", pl.lit("_"), "timeframe").is_in(augmented_keys)
    ).height
    labels_present = [NO_PATTERN] + [lab for lab in label_priority if lab in set(frame["label"])]
    labels_present += sorted(set(frame["label"]) - set(labels_present))
    if params.encoding == "end":
        warn_too_long(used, spec.before + 1)
    details, metrics = dataset_metrics(frame, used, agreement, skipped, overridden, purged)
    metrics["augmented_rows"] = augmented_rows
    metrics["human_spans_snapped"] = snapped
    metrics["own_labels"] = own.report  # what was learned of each trader's own label's ends
    # Traders' answers: what the feedback log holds, and the dismissals that became negatives.
    metrics["feedback_spans"] = {
        source: sum(1 for a in human if a.from_feedback and a.span.source == source)
        for source in sorted(HUMAN_SOURCES)
    }
    metrics["negatives_from_dismissals"] = sum(1 for p in human_placed if p.span.label == NO_PATTERN)
    schema = DatasetSchema(
        encoding=params.encoding,
        feature_columns=feature_cols,
        own_label_features=own_feature_cols,
        input_columns=window_columns(feature_cols, spec) if params.encoding != "bio" else feature_cols,
        window=WindowLayout(spec.window_size, spec.context, spec.anchor, spec.before, spec.after),
        label_lengths=lengths,
        labels=labels_present,
        label_priority=label_priority,
        merge=params.merge,
        split=params.split,
        target_columns=["label_human", "label_programmatic"] if params.merge == "both" else ["label"],
    )
    # Too detailed for `dvc metrics show`; kept beside the dataset.
    report = {"skipped_annotations": dict(skipped.counts), "examples": skipped.examples, **details}
    return DatasetResult(frame, schema, metrics, report, pl.concat(references, how="vertical"), own.moved)


def without_unknown(
    anchors: np.ndarray, multi: list[list[str]], sources: np.ndarray, doubtful: np.ndarray | None
) -> tuple[np.ndarray, list[list[str]]]:
    """The anchors less the candles nobody reviewed that look like a trader's own label: such a
    candle may be one, and its row would teach "not that label" (an augmented copy's above all:
    nobody marks those). A trader's own rows stay."""
    if doubtful is None:
        return anchors, multi
    marked = np.isin(sources[anchors], sorted(HUMAN_SOURCES))
    keep = ~(doubtful[anchors] & ~marked)
    return anchors[keep], [m for m, k in zip(multi, keep, strict=True) if k]


def warn_too_long(spans: list[Placed], seen: int) -> None:
    """Warn about labels with spans longer than the ``seen`` candles the model reads."""
    longest: dict[str, int] = {}
    for p in spans:
        longest[p.span.label] = max(longest.get(p.span.label, 0), p.length)
    too_long = {k: v for k, v in longest.items() if v > seen}
    if too_long:
        log.warning(
            "dataset: label(s) %s have spans longer than the model sees (%d candles, widened to each "
            "own label's usual length): it learns them from their last %d candles; raise "
            "dataset.window_size if the whole pattern matters",
            ", ".join(f"{k} (up to {v})" for k, v in sorted(too_long.items())),
            seen,
            seen,
        )


def window_for(params: DatasetParams, lengths: dict[str, int], rule_labels: set[str]) -> int:
    """``dataset.window_size``, widened for the ``end`` encoding to a trader's own label's usual
    length (the median of its spans), so the model sees a 5- or 8-candle pattern whole. Only
    labels with spans that long widen it: the default model, on the rules' 1-3 candle patterns,
    keeps its 3 candles and its speed. Chart patterns (``chart_min_candles`` and longer) are the
    chart model's."""
    if params.encoding != "end":
        return params.window_size
    own = [n for label, n in lengths.items() if label not in rule_labels and n < params.chart_min_candles]
    return max([params.window_size, *own])


def label_lengths(spans: list[Placed]) -> dict[str, int]:
    """Each label's span length: the median of its marked spans (TA-Lib's are all one length)."""
    lengths: dict[str, list[int]] = {}
    for p in spans:
        lengths.setdefault(p.span.label, []).append(p.length)
    return {label: max(1, int(round(float(np.median(v))))) for label, v in sorted(lengths.items())}


def _column(values: np.ndarray) -> list | np.ndarray:
    return list(values) if values.dtype == object else values


def encode_bio(
    base: dict[str, np.ndarray],
    labels: np.ndarray,
    sources: np.ndarray,
    spans: list[Placed],
    values: np.ndarray,
    feature_cols: list[str],
) -> pl.DataFrame:
    """One row per candle: BIO tag columns, the primary label, the candle's own features."""
    tags = {("tag" if i == 0 else f"tag_{i + 1}"): t for i, t in enumerate(bio_layers(len(labels), spans))}
    cols = {**base, **tags, "label": or_o(labels), "source": sources}
    frame = pl.DataFrame({k: _column(v) for k, v in cols.items()})
    return frame.hstack(pl.DataFrame(values.astype(np.float32), schema=feature_cols, orient="row"))


def sample_anchors(
    labels: np.ndarray,
    codes: np.ndarray,
    negative_ratio: float,
    rng: np.random.Generator,
    unknown: np.ndarray | None = None,
) -> np.ndarray:
    """Every annotated candle (dismissals included) plus sampled unannotated ones, per split
    (never one of the ``unknown`` candles: not a negative of some trader's own label)."""
    annotated = labels != None  # noqa: E711
    positive = annotated & (labels != NO_PATTERN)
    unlabeled = np.flatnonzero(~annotated & (True if unknown is None else ~unknown))
    chosen = [np.flatnonzero(annotated)]
    for code in range(len(SPLITS)):
        pool = unlabeled[codes[unlabeled] == code]
        want = int(round(negative_ratio * int((positive & (codes == code)).sum())))
        k = pool.size if negative_ratio <= 0 else min(pool.size, want)
        chosen.append(np.sort(rng.choice(pool, size=k, replace=False)) if k else pool[:0])
    return np.unique(np.concatenate(chosen))


def labels_by_source(n: int, spans: list[Placed], encoding: str) -> dict[str, np.ndarray]:
    """``merge: both``: the human and the programmatic label of each candle, in separate columns,
    meaning what ``label`` means in this encoding (for ``end``, what ends on the candle)."""
    out = {}
    for column, part in (
        ("label_human", [p for p in spans if p.span.source != "programmatic"]),
        ("label_programmatic", [p for p in spans if p.span.source == "programmatic"]),
    ):
        painted, sources = paint(n, part)
        if encoding == "end":
            painted = end_rows(painted, sources, part, np.empty(0, dtype=np.int64))[0]
        out[column] = or_o(painted)
    return out


def end_rows(
    labels: np.ndarray, sources: np.ndarray, spans: list[Placed], anchors: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    """The ``end`` encoding's label and source per candle: the highest-priority span ending on it,
    ``O`` inside a span (no pattern ends there), unannotated elsewhere; and every pattern ending
    on each anchor (highest priority first)."""
    n = len(labels)
    ends = np.full(n, None, dtype=object)
    end_sources = np.full(n, None, dtype=object)
    every: dict[int, list[str]] = {}
    for p in spans:  # lowest priority first: the last write wins
        ends[p.end] = p.span.label
        end_sources[p.end] = p.span.source
        if p.span.label != NO_PATTERN:
            every.setdefault(p.end, []).insert(0, p.span.label)
    inside = labels.copy()
    inside[labels != None] = NO_PATTERN  # noqa: E711
    row_labels = np.where(ends == None, inside, ends)  # noqa: E711
    row_sources = np.where(ends == None, sources, end_sources)  # noqa: E711
    return row_labels, row_sources, [list(dict.fromkeys(every.get(int(a), []))) for a in anchors]


def encode_windows(
    base: dict[str, np.ndarray],
    labels: np.ndarray,
    sources: np.ndarray,
    multi: list[list[str]],
    values: np.ndarray,
    feature_cols: list[str],
    anchors: np.ndarray,
    spec: WindowSpec,
) -> pl.DataFrame:
    """One row per anchor candle: its label, source, every label it has (``multi``, for
    multi-label models) and the flattened window of features (``spec``) around it."""
    frame = pl.DataFrame({k: _column(v[anchors]) for k, v in base.items()}).with_columns(
        label=pl.Series(list(or_o(labels[anchors])), dtype=pl.String),
        source=pl.Series(list(sources[anchors]), dtype=pl.String),
        labels=pl.Series(multi, dtype=pl.List(pl.String)),
    )
    windows = build_windows(values, anchors, spec)
    return frame.hstack(pl.DataFrame(windows, schema=window_columns(feature_cols, spec), orient="row"))


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


def load_series(
    features_dir: Path, index: list[FeatureSeriesEntry], coverage: dict[str, dict[str, int | None]]
) -> tuple[list[SeriesFrame], int]:
    """Feature frames per series, trimmed to where programmatic labels are defined; returns rows trimmed."""
    out, trimmed = [], 0
    for e in index:
        frame = pl.read_parquet(features_dir / e.file)
        labeled_from = coverage.get(e.key, {}).get("labeled_from")
        if labeled_from is not None and frame.height:
            keep = frame.filter(pl.col("time") >= labeled_from)
            trimmed += frame.height - keep.height
            frame = keep
        out.append(SeriesFrame(e.pair, e.timeframe, frame, e.candles_first_time, not e.is_real))
    return out, trimmed


def dataset_headline(report: dict[str, Any]) -> dict[str, Any]:
    """The few numbers ``dvc metrics show`` and ``dvc exp show`` compare; the rest stays in the report."""
    return {
        "spans": report["spans"],
        "agreement_rate": report["agreement_rate"],
        "answers": sum(report["feedback_spans"].values()),  # traders' answers in the feedback log
        "negatives": report["negatives_from_dismissals"],
    }
