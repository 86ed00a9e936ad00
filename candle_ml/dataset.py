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

import numpy as np
import polars as pl

from candle_ml.annotations import HUMAN_SOURCES, Annotation, ReviewedRange
from candle_ml.candles import series_key
from candle_ml.config import DatasetParams
from candle_ml.dataset_report import dataset_metrics
from candle_ml.errors import DatasetError
from candle_ml.labels import (
    Placed,
    Skipped,
    agreement_rate,
    covering_labels,
    latest_by_id,
    merge_spans,
    or_o,
    paint,
    place_spans,
    priority_order,
    snap_to_rules,
)
from candle_ml.own_labels import OwnLabelResult, own_label_names, own_labels
from candle_ml.patterns import NO_PATTERN
from candle_ml.rows import (
    SPLITS,
    as_column,
    assign_splits,
    encode_bio,
    encode_windows,
    end_rows,
    label_lengths,
    labels_by_source,
    sample_anchors,
    warn_too_long,
    window_for,
    without_unknown,
)
from candle_ml.stage_outputs import DatasetSchema, FeatureSeriesEntry, WindowLayout
from candle_ml.windows import WindowSpec, straddles, window_columns

log = logging.getLogger("candle_ml.dataset")


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


@dataclass
class _Matched:
    """The spans placed on their candles, human ones snapped onto the rules'."""

    human: list[Annotation]  # the latest answer per id, before placing
    human_placed: list[Placed]
    prog_placed: list[Placed]
    skipped: Skipped
    snapped: int


def _match(
    by_key: dict[str, SeriesFrame],
    human: list[Annotation],
    programmatic: list[Annotation],
    params: DatasetParams,
    snap_targets: list[Annotation] | None,
) -> _Matched:
    skipped = Skipped()
    human = latest_by_id(human, skipped)
    human_placed = place_spans(human, by_key, params.min_confidence, skipped)
    prog_placed = place_spans(programmatic, by_key, params.min_confidence, skipped)
    targets = prog_placed if snap_targets is None else place_spans(snap_targets, by_key, 0.0, Skipped())
    human_placed, snapped = snap_to_rules(human_placed, targets, params.snap_to_rules)
    return _Matched(human, human_placed, prog_placed, skipped, snapped)


@dataclass
class _Placement:
    """Every span merged and ordered, with what merging counted."""

    human_placed: list[Placed]  # own labels' ends learned
    ordered: list[Placed]  # human and rule spans after merging, lowest priority first
    rules_only: list[Placed]  # the rules' spans alone, same order
    own: OwnLabelResult
    agreement: float | None
    overridden: int


def _merge(
    by_key: dict[str, SeriesFrame],
    matched: _Matched,
    label_priority: list[str],
    params: DatasetParams,
    reviewed: list[ReviewedRange],
    values_by_key: dict[str, np.ndarray],
) -> _Placement:
    """A trader's own labels' ends learned from imprecise marks (negatives only where it looked),
    then human and rule spans merged per ``dataset.merge``."""
    n_by_series = {k: s.frame.height for k, s in by_key.items()}
    own = own_labels(
        matched.human_placed,
        set(label_priority),
        values_by_key,
        {k: s.times for k, s in by_key.items()},
        reviewed,
        params.window_size,
        params.end_tolerance,
        params.reviewed_around_marks,
        params.seed,
    )
    prog_placed = matched.prog_placed
    agreement = agreement_rate(own.spans, prog_placed, n_by_series)
    human_kept, prog_kept, overridden = merge_spans(own.spans, prog_placed, params.merge, n_by_series)
    return _Placement(
        own.spans,
        priority_order(human_kept, prog_kept, params.merge, label_priority),
        priority_order([], prog_placed, params.merge, label_priority),
        own,
        agreement,
        overridden,
    )


@dataclass
class _SeriesRows:
    rows: pl.DataFrame | None
    reference: pl.DataFrame | None  # every candle's label (real series only)
    purged: int  # anchors dropped because their window straddles a split boundary


def _series_rows(
    s: SeriesFrame,
    placed: _Placement,
    values: np.ndarray,
    feature_cols: list[str],
    spec: WindowSpec,
    params: DatasetParams,
    rng: np.random.Generator,
) -> _SeriesRows:
    """One series' training rows in the configured encoding, and its reference labels."""
    n = s.frame.height
    if n == 0:
        return _SeriesRows(None, None, 0)
    mine = [p for p in placed.ordered if p.series == s.key]
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
    rule_labels, _ = paint(n, [p for p in placed.rules_only if p.series == s.key])
    reference = None
    if not s.augmented:  # evaluation is on real candles only
        reference = pl.DataFrame({k: as_column(v) for k, v in base.items()}).with_columns(
            label=pl.Series(list(or_o(labels)), dtype=pl.String),
            label_rule=pl.Series(list(or_o(rule_labels)), dtype=pl.String),
        )
    if params.merge == "both":
        base |= labels_by_source(n, mine, params.encoding)
    if params.encoding == "bio":
        bio = encode_bio(base, labels, sources, mine, values, feature_cols)
        return _SeriesRows(bio.filter(pl.col("split") == "train") if s.augmented else bio, reference, 0)
    doubtful = placed.own.doubtful.get(s.key)
    anchors = sample_anchors(labels, codes, params.negative_ratio, rng, doubtful)
    if s.augmented:
        anchors = anchors[codes[anchors] == 0]
    purged = 0
    if params.split.method == "temporal":
        cross = straddles(anchors, spec, lo[anchors], hi[anchors], n)
        purged = int(cross.sum())
        anchors = anchors[~cross]
    if params.encoding == "end":
        labels, sources, multi = end_rows(labels, sources, mine, anchors)
    else:
        multi = covering_labels(n, mine, anchors)
    anchors, multi = without_unknown(anchors, multi, sources, doubtful)
    rows = encode_windows(base, labels, sources, multi, values, feature_cols, anchors, spec)
    return _SeriesRows(rows, reference, purged)


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
    matched = _match(by_key, human, programmatic, params, snap_targets)
    available = [c for c in series[0].frame.columns if c != "time"]
    has_own = bool(own_label_names(matched.human_placed, set(label_priority)))
    feature_cols, own_feature_cols = model_features(available, params, has_own)
    values_by_key = {s.key: s.frame.select(feature_cols).to_numpy() for s in series}
    placed = _merge(by_key, matched, label_priority, params, reviewed or [], values_by_key)
    used = [p for p in placed.ordered if p.span.label != NO_PATTERN]
    lengths = label_lengths(used)
    spec = WindowSpec(
        window_for(params, lengths, set(label_priority)),
        params.context,
        "end" if params.encoding == "end" else "centre",
    )
    rng = np.random.default_rng(params.seed)
    encoded = [_series_rows(s, placed, values_by_key[s.key], feature_cols, spec, params, rng) for s in series]
    parts = [e.rows for e in encoded if e.rows is not None]
    if not parts:
        raise DatasetError("dataset: no rows (every series is empty after warm-up)")
    frame = pl.concat(parts, how="vertical")
    if params.encoding == "end":
        warn_too_long(used, spec.before + 1)
    purged = sum(e.purged for e in encoded)
    details, metrics = dataset_metrics(
        frame, used, placed.agreement, matched.skipped, placed.overridden, purged
    )
    augmented_keys = [series_key(s.pair, s.timeframe) for s in series if s.augmented]
    metrics["augmented_rows"] = frame.filter(
        pl.concat_str("pair", pl.lit("_"), "timeframe").is_in(augmented_keys)
    ).height
    metrics["human_spans_snapped"] = matched.snapped
    metrics["own_labels"] = placed.own.report  # what was learned of each trader's own label's ends
    # Traders' answers: what the feedback log holds, and the dismissals that became negatives.
    metrics["feedback_spans"] = {
        source: sum(1 for a in matched.human if a.from_feedback and a.span.source == source)
        for source in sorted(HUMAN_SOURCES)
    }
    metrics["negatives_from_dismissals"] = sum(1 for p in placed.human_placed if p.span.label == NO_PATTERN)
    schema = _schema(frame, params, label_priority, feature_cols, own_feature_cols, spec, lengths)
    # Too detailed for `dvc metrics show`; kept beside the dataset.
    report = {
        "skipped_annotations": dict(matched.skipped.counts),
        "examples": matched.skipped.examples,
        **details,
    }
    references = pl.concat([e.reference for e in encoded if e.reference is not None], how="vertical")
    return DatasetResult(frame, schema, metrics, report, references, placed.own.moved)


def _schema(
    frame: pl.DataFrame,
    params: DatasetParams,
    label_priority: list[str],
    feature_cols: list[str],
    own_feature_cols: list[str],
    spec: WindowSpec,
    lengths: dict[str, int],
) -> DatasetSchema:
    """What a model needs to rebuild its inputs: the columns, the window, the labels present."""
    labels_present = [NO_PATTERN] + [lab for lab in label_priority if lab in set(frame["label"])]
    labels_present += sorted(set(frame["label"]) - set(labels_present))
    return DatasetSchema(
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
