"""Which candles become training rows and what each row holds: the time splits, the sampled
anchors (every annotated candle, some unannotated ones, never a candle that may be a trader's
unmarked own label) and the three encodings (``end``, ``window``, ``bio``) that ``build_dataset``
(candle_ml/dataset.py) writes,
and the window each row reads (widened to a trader's own label's usual length)."""

from __future__ import annotations

import logging

import numpy as np
import polars as pl

from candle_ml.annotations import HUMAN_SOURCES
from candle_ml.config import DatasetParams, SplitParams
from candle_ml.labels import Placed, bio_layers, or_o, paint
from candle_ml.patterns import NO_PATTERN
from candle_ml.windows import WindowSpec, build_windows, window_columns

log = logging.getLogger("candle_ml.dataset")

SPLITS = ("train", "val", "test")


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


def as_column(values: np.ndarray) -> list | np.ndarray:
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
    frame = pl.DataFrame({k: as_column(v) for k, v in cols.items()})
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
    frame = pl.DataFrame({k: as_column(v[anchors]) for k, v in base.items()}).with_columns(
        label=pl.Series(list(or_o(labels[anchors])), dtype=pl.String),
        source=pl.Series(list(sources[anchors]), dtype=pl.String),
        labels=pl.Series(multi, dtype=pl.List(pl.String)),
    )
    windows = build_windows(values, anchors, spec)
    return frame.hstack(pl.DataFrame(windows, schema=window_columns(feature_cols, spec), orient="row"))


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
