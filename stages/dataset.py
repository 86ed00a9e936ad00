"""Stage ``dataset``: features + human and programmatic spans -> a labeled, split dataset.

Inputs: ``data/features/`` (featurize), ``data/autolabel/spans.json`` (autolabel),
human exports ``data/annotations/human/*.json`` and the feedback log
``data/annotations/feedback.jsonl``. Spans are matched to candles, merged per
``dataset.merge``, painted onto candles (one primary label per candle, the
highest-priority span winning) and encoded per ``dataset.encoding``:

* ``window``: one row per labeled candle, and per sampled unlabeled candle, with
  the flattened window of features around it (candle_ml/windows.py). Every candle
  of a span is a row, so a model that slides the same window over every candle
  can recover whole spans.
* ``bio``: one row per candle with ``B-<label>``/``I-<label>``/``O`` tags in
  ``tag``; spans overlapping it go to ``tag_2``, ``tag_3``, ...

Outputs: ``data/dataset/dataset.parquet``, ``data/dataset/schema.json`` (what a
model needs to rebuild its inputs), ``data/dataset/reference.parquet`` (every
candle's reference label, for span-level evaluation), ``data/dataset/report.json``
(skipped annotations with examples) and ``metrics/dataset.json``.
"""

from __future__ import annotations

import fnmatch
import logging
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import numpy as np
import polars as pl
import typer

from candle_ml.annotations import AnnotationError, Span, read_annotation_file, read_feedback_log
from candle_ml.candles import series_key
from candle_ml.config import DatasetParams, SplitParams, load_section
from candle_ml.patterns import NO_PATTERN
from candle_ml.stageio import read_json, run_stage, write_json
from candle_ml.windows import WindowSpec, build_windows, straddles, window_columns

log = logging.getLogger("candle_ml.dataset")

FEATURES_DIR = Path("data/features")
AUTOLABEL_FILE = Path("data/autolabel/spans.json")
HUMAN_DIR = Path("data/annotations/human")
FEEDBACK_FILE = Path("data/annotations/feedback.jsonl")
OUT_DIR = Path("data/dataset")
METRICS = Path("metrics/dataset.json")

SPLITS = ("train", "val", "test")
EXAMPLES_PER_REASON = 5


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


@dataclass
class Annotation:
    span: Span
    origin: str  # "human/x.json entry 3", "feedback.jsonl line 7", "autolabel"


@dataclass
class Placed:
    """A span matched to candle rows [start, end] of its series."""

    span: Span
    origin: str
    series: str
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


@dataclass
class Skipped:
    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, ann: Annotation, detail: str) -> None:
        self.counts[reason] += 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < EXAMPLES_PER_REASON:
            sp = ann.span
            ex.append(f"{ann.origin}: {sp.pair} {sp.timeframe} {sp.start_time}-{sp.end_time} '{sp.label}': {detail}")


# ---------------------------------------------------------------- reading inputs


def read_human_annotations(human_dir: Path, feedback_file: Path) -> tuple[list[Annotation], int]:
    """Human exports (sorted by file name) then the feedback log, in order: later answers win."""
    out: list[Annotation] = []
    files = sorted(human_dir.glob("*.json")) if human_dir.is_dir() else []
    for path in files:
        out += [Annotation(sp, f"{path.name} entry {i}") for i, sp in enumerate(read_annotation_file(path))]
    feedback, torn = read_feedback_log(feedback_file)
    out += [Annotation(sp, f"{feedback_file.name} #{i}") for i, sp in enumerate(feedback)]
    bad = [a for a in out if a.span.source == "programmatic"]
    if bad:
        raise AnnotationError(f"{bad[0].origin}: field source: 'programmatic' is reserved for the autolabel stage")
    return out, torn


class AutolabelOutput(msgspec.Struct):
    annotations: list[Span]
    label_priority: list[str]
    coverage: dict[str, dict[str, int | None]]


def read_autolabel(path: Path) -> AutolabelOutput:
    return msgspec.json.decode(path.read_bytes(), type=AutolabelOutput)


# ---------------------------------------------------------------- matching and merging


def place_spans(
    anns: list[Annotation], series: dict[str, SeriesFrame], min_confidence: float, skipped: Skipped
) -> list[Placed]:
    """Map spans onto candle rows; everything that cannot be placed is counted by reason."""
    placed: list[Placed] = []
    for ann in anns:
        sp = ann.span
        key = series_key(sp.pair.upper(), sp.timeframe)
        if sp.confidence < min_confidence:
            skipped.add("below_min_confidence", ann, f"confidence {sp.confidence:g} < {min_confidence:g}")
            continue
        s = series.get(key)
        if s is None:
            skipped.add("unknown_series", ann, f"no series {key} (known: {', '.join(sorted(series))})")
            continue
        times = s.times
        if times.size and sp.start_time < times[0] and sp.end_time >= s.candles_first_time:
            # A span cut short by the warm-up would teach a wrong length: skip it whole.
            skipped.add("in_warmup", ann, f"starts before the first candle with features ({int(times[0])})")
            continue
        start = int(np.searchsorted(times, sp.start_time, side="left"))
        end = int(np.searchsorted(times, sp.end_time, side="right")) - 1
        if start > end:
            skipped.add("no_matching_candle", ann, "no candle of the series falls within the span")
            continue
        placed.append(Placed(sp, ann.origin, key, start, end))
    return placed


def latest_by_id(anns: list[Annotation], skipped: Skipped) -> list[Annotation]:
    """A later annotation with the same id (a trader's correction) replaces the earlier one."""
    last = {a.span.id: i for i, a in enumerate(anns) if a.span.id is not None}
    kept = []
    for i, a in enumerate(anns):
        if a.span.id is not None and last[a.span.id] != i:
            skipped.add("superseded", a, f"replaced by {anns[last[a.span.id]].origin} (same id '{a.span.id}')")
        else:
            kept.append(a)
    return kept


def coverage_counts(spans: list[Placed], n_by_series: dict[str, int]) -> dict[str, np.ndarray]:
    """Per series, prefix sums of how many spans cover each candle (for O(1) overlap queries)."""
    diff = {k: np.zeros(n + 1, dtype=np.int64) for k, n in n_by_series.items()}
    for p in spans:
        diff[p.series][p.start] += 1
        diff[p.series][p.end + 1] -= 1
    return {k: np.concatenate([[0], np.cumsum(np.cumsum(d)[:-1])]) for k, d in diff.items()}


def overlaps(p: Placed, prefix: dict[str, np.ndarray]) -> bool:
    c = prefix[p.series]
    return bool(c[p.end + 1] - c[p.start] > 0)


def merge_spans(
    human: list[Placed], programmatic: list[Placed], strategy: str, n_by_series: dict[str, int]
) -> tuple[list[Placed], list[Placed], int]:
    """Apply ``dataset.merge``; returns (human kept, programmatic kept, spans overridden)."""
    if strategy == "human_priority":
        cover = coverage_counts(human, n_by_series)
        kept = [p for p in programmatic if not overlaps(p, cover)]
        return human, kept, len(programmatic) - len(kept)
    if strategy == "programmatic_priority":
        cover = coverage_counts(programmatic, n_by_series)
        kept = [h for h in human if not overlaps(h, cover)]
        return kept, programmatic, len(human) - len(kept)
    return human, programmatic, 0  # "both": each source keeps its own label column


def agreement_rate(human: list[Placed], programmatic: list[Placed], n_by_series: dict[str, int]) -> float | None:
    """Share of human spans overlapping a programmatic span that share its label (None if none overlap)."""
    by_label: dict[str, list[Placed]] = {}
    for p in programmatic:
        by_label.setdefault(p.span.label, []).append(p)
    any_cover = coverage_counts(programmatic, n_by_series)
    label_cover = {lab: coverage_counts(ps, n_by_series) for lab, ps in by_label.items()}
    overlapping = [h for h in human if overlaps(h, any_cover)]
    if not overlapping:
        return None
    agreed = sum(1 for h in overlapping if h.span.label in label_cover and overlaps(h, label_cover[h.span.label]))
    return agreed / len(overlapping)


def paint(n: int, spans: list[Placed]) -> tuple[np.ndarray, np.ndarray]:
    """Primary label and source per candle; ``spans`` go lowest priority first, so the last write wins."""
    labels = np.full(n, None, dtype=object)
    sources = np.full(n, None, dtype=object)
    for p in spans:
        labels[p.start : p.end + 1] = p.span.label
        sources[p.start : p.end + 1] = p.span.source
    return labels, sources


def priority_order(
    human: list[Placed], programmatic: list[Placed], strategy: str, label_priority: list[str]
) -> list[Placed]:
    """All kept spans, lowest priority first."""
    rank = {label: i for i, label in enumerate(label_priority)}
    # Programmatic: earlier patterns in autolabel.patterns win -> they go last.
    prog = sorted(programmatic, key=lambda p: -rank.get(p.span.label, len(rank)))
    # Human: file order, feedback last, so the latest answer wins.
    return prog + human if strategy != "programmatic_priority" else human + prog


# ---------------------------------------------------------------- splits and encodings


def split_bounds(n: int, split: SplitParams) -> tuple[int, int]:
    """Row indices where val and test begin in a temporal split of n rows."""
    n_train = int(round(n * split.train))
    n_val = int(round(n * split.val))
    return n_train, min(n, n_train + n_val)


def assign_splits(n: int, split: SplitParams, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
                raise ValueError(msg)
            log.warning(msg)
        chosen += hits
    if not chosen:
        raise ValueError(f"dataset.features: no pattern matches any feature column (have: {', '.join(columns)})")
    return chosen


def bio_layers(n: int, spans: list[Placed]) -> list[np.ndarray]:
    """BIO tag columns: highest-priority spans take the first layer, overlapping ones the next."""
    layers: list[np.ndarray] = []
    occupied: list[np.ndarray] = []
    for p in reversed(spans):  # highest priority first
        for tags, occ in zip(layers, occupied, strict=True):
            if not occ[p.start : p.end + 1].any():
                break
        else:
            tags, occ = np.full(n, NO_PATTERN, dtype=object), np.zeros(n, dtype=bool)
            layers.append(tags)
            occupied.append(occ)
        occ[p.start : p.end + 1] = True
        if p.span.label != NO_PATTERN:
            tags[p.start] = f"B-{p.span.label}"
            tags[p.start + 1 : p.end + 1] = f"I-{p.span.label}"
    return layers or [np.full(n, NO_PATTERN, dtype=object)]


@dataclass
class DatasetResult:
    frame: pl.DataFrame
    schema: dict
    metrics: dict
    report: dict
    reference: pl.DataFrame  # every candle: pair, timeframe, time, split, label, label_rule


def build_dataset(
    series: list[SeriesFrame],
    human: list[Annotation],
    programmatic: list[Annotation],
    label_priority: list[str],
    params: DatasetParams,
) -> DatasetResult:
    """Pure core: match, merge, paint, split and encode. Deterministic for a given seed."""
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
    agreement = agreement_rate(human_placed, prog_placed, n_by_series)
    human_kept, prog_kept, overridden = merge_spans(human_placed, prog_placed, params.merge, n_by_series)
    ordered = priority_order(human_kept, prog_kept, params.merge, label_priority)

    feature_cols = select_features([c for c in series[0].frame.columns if c != "time"], params.features)
    spec = WindowSpec(params.window_size, params.context)
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
            references.append(pl.DataFrame({k: _column(v) for k, v in base.items()}).with_columns(
                label=pl.Series(list(_or_o(labels)), dtype=pl.String),
                label_rule=pl.Series(list(_or_o(rule_labels)), dtype=pl.String),
            ))
        if params.merge == "both":
            h_labels, _ = paint(n, [p for p in mine if p.span.source != "programmatic"])
            p_labels, _ = paint(n, [p for p in mine if p.span.source == "programmatic"])
            base["label_human"] = _or_o(h_labels)
            base["label_programmatic"] = _or_o(p_labels)
        values = s.frame.select(feature_cols).to_numpy()
        if params.encoding == "bio":
            bio = encode_bio(base, labels, sources, mine, values, feature_cols)
            parts.append(bio.filter(pl.col("split") == "train") if s.augmented else bio)
            continue
        anchors = sample_anchors(labels, codes, params.negative_ratio, rng)
        if s.augmented:
            anchors = anchors[codes[anchors] == 0]
        if params.split.method == "temporal":
            cross = straddles(anchors, spec, lo[anchors], hi[anchors], n)
            purged += int(cross.sum())
            anchors = anchors[~cross]
        parts.append(encode_windows(base, labels, sources, mine, values, feature_cols, anchors, spec))

    if not parts:
        raise ValueError("dataset: no rows (every series is empty after warm-up)")
    frame = pl.concat(parts, how="vertical")
    augmented_keys = [series_key(s.pair, s.timeframe) for s in series if s.augmented]
    augmented_rows = frame.filter(pl.concat_str("pair", pl.lit("_"), "timeframe").is_in(augmented_keys)).height
    labels_present = [NO_PATTERN] + [lab for lab in label_priority if lab in set(frame["label"])]
    labels_present += sorted(set(frame["label"]) - set(labels_present))
    used = [p for p in ordered if p.span.label != NO_PATTERN]
    details, metrics = dataset_metrics(frame, used, agreement, skipped, overridden, purged)
    metrics["augmented_rows"] = augmented_rows
    schema = {
        "encoding": params.encoding,
        "feature_columns": feature_cols,
        "input_columns": window_columns(feature_cols, spec) if params.encoding == "window" else feature_cols,
        "window": {"window_size": spec.window_size, "context": spec.context, "before": spec.before, "after": spec.after},
        "labels": labels_present,
        "label_priority": label_priority,
        "merge": params.merge,
        "split": msgspec.to_builtins(params.split),
        "target_columns": ["label_human", "label_programmatic"] if params.merge == "both" else ["label"],
    }
    # Too detailed for `dvc metrics show`; kept beside the dataset.
    report = {"skipped_annotations": dict(skipped.counts), "examples": skipped.examples, **details}
    return DatasetResult(frame, schema, metrics, report, pl.concat(references, how="vertical"))


def _column(values: np.ndarray) -> list | np.ndarray:
    return list(values) if values.dtype == object else values


def _or_o(labels: np.ndarray) -> np.ndarray:
    return np.where(labels == None, NO_PATTERN, labels)  # noqa: E711  (None: no span covers the candle)


def encode_bio(
    base: dict[str, np.ndarray], labels: np.ndarray, sources: np.ndarray, spans: list[Placed],
    values: np.ndarray, feature_cols: list[str],
) -> pl.DataFrame:
    """One row per candle: BIO tag columns, the primary label, the candle's own features."""
    tags = {("tag" if i == 0 else f"tag_{i + 1}"): t for i, t in enumerate(bio_layers(len(labels), spans))}
    cols = {**base, **tags, "label": _or_o(labels), "source": sources}
    frame = pl.DataFrame({k: _column(v) for k, v in cols.items()})
    return frame.hstack(pl.DataFrame(values.astype(np.float32), schema=feature_cols, orient="row"))


def sample_anchors(labels: np.ndarray, codes: np.ndarray, negative_ratio: float, rng: np.random.Generator) -> np.ndarray:
    """Every annotated candle (dismissals included) plus sampled unannotated ones, per split."""
    annotated = labels != None  # noqa: E711
    positive = annotated & (labels != NO_PATTERN)
    unlabeled = np.flatnonzero(~annotated)
    chosen = [np.flatnonzero(annotated)]
    for code in range(len(SPLITS)):
        pool = unlabeled[codes[unlabeled] == code]
        want = int(round(negative_ratio * int((positive & (codes == code)).sum())))
        k = pool.size if negative_ratio <= 0 else min(pool.size, want)
        chosen.append(np.sort(rng.choice(pool, size=k, replace=False)) if k else pool[:0])
    return np.unique(np.concatenate(chosen))


def encode_windows(
    base: dict[str, np.ndarray], labels: np.ndarray, sources: np.ndarray, spans: list[Placed],
    values: np.ndarray, feature_cols: list[str], anchors: np.ndarray, spec: WindowSpec,
) -> pl.DataFrame:
    """One row per anchor candle: its labels and the flattened window of features around it."""
    frame = pl.DataFrame({k: _column(v[anchors]) for k, v in base.items()}).with_columns(
        label=pl.Series(list(_or_o(labels[anchors])), dtype=pl.String),
        source=pl.Series(list(sources[anchors]), dtype=pl.String),
        labels=pl.Series(_covering_labels(len(labels), spans, anchors), dtype=pl.List(pl.String)),
    )
    windows = build_windows(values, anchors, spec)
    return frame.hstack(pl.DataFrame(windows, schema=window_columns(feature_cols, spec), orient="row"))


def _covering_labels(n: int, spans: list[Placed], anchors: np.ndarray) -> list[list[str]]:
    """Every non-O label covering each anchor, highest priority first (for multi-label models)."""
    names = list(dict.fromkeys(p.span.label for p in reversed(spans) if p.span.label != NO_PATTERN))
    if not names:
        return [[] for _ in anchors]
    col = {name: j for j, name in enumerate(names)}
    member = np.zeros((n, len(names)), dtype=bool)
    for p in spans:
        if p.span.label != NO_PATTERN:
            member[p.start : p.end + 1, col[p.span.label]] = True
    frame = pl.DataFrame(member[anchors], schema=names, orient="row")
    return frame.select(
        pl.concat_list([pl.when(pl.col(c)).then(pl.lit(c)) for c in names]).list.drop_nulls()
    ).to_series().to_list()


def dataset_metrics(
    frame: pl.DataFrame, used: list[Placed], agreement: float | None, skipped: Skipped, overridden: int, purged: int
) -> tuple[dict, dict]:
    """(details for report.json, the metrics of metrics/dataset.json)."""
    counts = frame["label"].value_counts(sort=True)
    total = frame.height
    label_counts = {r["label"]: int(r["count"]) for r in counts.iter_rows(named=True)}
    per_label_len: dict[str, list[int]] = {}
    for p in used:
        per_label_len.setdefault(p.span.label, []).append(p.length)
    split_counts = {
        sp: {r["label"]: int(r["count"]) for r in frame.filter(pl.col("split") == sp)["label"].value_counts().iter_rows(named=True)}
        for sp in SPLITS
    }
    details = {
        "split_label_counts": split_counts,
        "avg_span_length_by_label": {k: round(float(np.mean(v)), 4) for k, v in sorted(per_label_len.items())},
    }
    return details, {
        "rows": total,
        "label_counts": label_counts,
        "class_distribution": {k: round(100.0 * v / total, 3) for k, v in label_counts.items()},
        "split_rows": {sp: sum(c.values()) for sp, c in split_counts.items()},
        "spans": len(used),
        "avg_span_length": round(float(np.mean([p.length for p in used])), 4) if used else 0.0,
        "agreement_rate": None if agreement is None else round(agreement, 4),
        "skipped_annotations": {r: skipped.counts.get(r, 0) for r in
                                ("below_min_confidence", "unknown_series", "no_matching_candle", "in_warmup", "superseded")},
        "overridden_by_merge": overridden,
        "purged_at_split_boundary": purged,
    }


# ---------------------------------------------------------------- stage entry point


def load_series(index: list[dict], coverage: dict[str, dict[str, int | None]]) -> tuple[list[SeriesFrame], int]:
    """Feature frames per series, trimmed to where programmatic labels are defined; returns rows trimmed."""
    out, trimmed = [], 0
    for e in index:
        frame = pl.read_parquet(FEATURES_DIR / e["file"])
        key = series_key(e["pair"], e["timeframe"])
        labeled_from = coverage.get(key, {}).get("labeled_from")
        if labeled_from is not None and frame.height:
            keep = frame.filter(pl.col("time") >= labeled_from)
            trimmed += frame.height - keep.height
            frame = keep
        out.append(SeriesFrame(e["pair"], e["timeframe"], frame, e["candles_first_time"], bool(e.get("augmented_from"))))
    return out, trimmed


def main(params_file: Path = typer.Option(Path("params.yaml"), "--params", help="params.yaml to read")) -> None:
    def run() -> None:
        params = load_section("dataset", DatasetParams, params_file)
        auto = read_autolabel(AUTOLABEL_FILE)
        features_index = read_json(FEATURES_DIR / "index.json")
        index = features_index["series"]
        series, trimmed = load_series(index, auto.coverage)
        human, torn = read_human_annotations(HUMAN_DIR, FEEDBACK_FILE)
        programmatic = [Annotation(sp, "autolabel") for sp in auto.annotations]
        result = build_dataset(series, human, programmatic, auto.label_priority, params)
        warmup = sum(e["warmup_rows_dropped"] for e in index)
        metrics = {**result.metrics, "warmup_rows_dropped": warmup + trimmed, "feedback_torn_lines": torn,
                   "human_annotations": len(human)}
        shutil.rmtree(OUT_DIR, ignore_errors=True)
        OUT_DIR.mkdir(parents=True)
        result.frame.write_parquet(OUT_DIR / "dataset.parquet")
        result.reference.write_parquet(OUT_DIR / "reference.parquet")
        # What a model needs to rebuild its inputs from raw candles: featurize config, warm-up,
        # and the history after which features match the whole series.
        warmup_rows = max((e["warmup_rows_dropped"] for e in index), default=0)
        schema = {**result.schema, "featurize": features_index["config"], "warmup": warmup_rows,
                  "history": features_index.get("history_candles", warmup_rows)}
        write_json(OUT_DIR / "schema.json", schema)
        write_json(OUT_DIR / "report.json", result.report)
        write_json(METRICS, metrics)
        for reason, examples in result.report["examples"].items():
            # Programmatic spans in the warm-up are expected; anything touching human work is a warning.
            level = logging.INFO if all(e.startswith("autolabel:") for e in examples) else logging.WARNING
            log.log(level, "skipped %d annotation(s) (%s), e.g.:\n  %s", result.report["skipped_annotations"][reason],
                    reason, "\n  ".join(examples))
        log.info("dataset: %d rows (%s), labels: %s", result.frame.height,
                 ", ".join(f"{k}={v}" for k, v in metrics["split_rows"].items()), metrics["label_counts"])

    run_stage(run)


if __name__ == "__main__":
    typer.run(main)
