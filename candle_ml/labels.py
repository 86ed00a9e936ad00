"""Labels on candles: human and programmatic spans placed onto candle rows, merged and painted.

``place_spans`` maps span times onto the rows of a series and counts, by reason, every
span it cannot place; ``merge_spans`` applies ``dataset.merge``; ``paint`` gives each
candle its primary label (the highest-priority span wins); ``bio_layers`` writes the
B-/I-/O tag columns. The dataset stage builds training rows from these; the server
uses the same placement to compare predictions with what traders marked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import polars as pl

from candle_ml.annotations import Annotation, Span
from candle_ml.candles import series_key
from candle_ml.patterns import NO_PATTERN

EXAMPLES_PER_REASON = 5


class Timeline(Protocol):
    """The candle times of one series that spans are placed on."""

    @property
    def times(self) -> np.ndarray: ...

    @property
    def candles_first_time(self) -> int: ...  # first raw candle: spans before ``times[0]`` are warm-up


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
            ex.append(
                f"{ann.origin}: {sp.pair} {sp.timeframe} {sp.start_time}-{sp.end_time} '{sp.label}': {detail}"
            )


def place_spans(
    anns: list[Annotation], series: Mapping[str, Timeline], min_confidence: float, skipped: Skipped
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


def snap_to_rules(human: list[Placed], rules: list[Placed], max_shift: int) -> tuple[list[Placed], int]:
    """Move each human span onto the rule span of its label whose start and end both lie within
    ``max_shift`` candles of its own (the most overlapping one): a trader marks a 1-3 candle
    pattern a candle or two wide of where the rule puts it, and the model should learn the
    pattern, not the slip. Only fresh marks (source ``human``) snap: a correction
    (``human_correction``) or a confirmation places its boundaries on purpose. Spans with no such
    rule span (a label the rules do not know, a pattern they do not see) stay as marked.
    Returns (spans, how many moved)."""
    if max_shift <= 0 or not rules:
        return human, 0
    index: dict[tuple[str, str], list[Placed]] = {}
    for r in rules:
        index.setdefault((r.series, r.span.label), []).append(r)
    out, moved = [], 0
    for h in human:
        if h.span.source != "human":
            out.append(h)
            continue
        near = [
            r
            for r in index.get((h.series, h.span.label), [])
            if abs(r.start - h.start) <= max_shift and abs(r.end - h.end) <= max_shift
        ]
        if not near:
            out.append(h)
            continue
        best = max(near, key=lambda r: (min(r.end, h.end) - max(r.start, h.start), -abs(r.start - h.start)))
        if (best.start, best.end) != (h.start, h.end):
            moved += 1
        out.append(Placed(h.span, h.origin, h.series, best.start, best.end))
    return out, moved


def latest_by_id(anns: list[Annotation], skipped: Skipped) -> list[Annotation]:
    """A later annotation with the same id (a trader's correction) replaces the earlier one."""
    last = {a.span.id: i for i, a in enumerate(anns) if a.span.id is not None}
    kept = []
    for i, a in enumerate(anns):
        if a.span.id is not None and last[a.span.id] != i:
            skipped.add(
                "superseded", a, f"replaced by {anns[last[a.span.id]].origin} (same id '{a.span.id}')"
            )
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


def agreement_rate(
    human: list[Placed], programmatic: list[Placed], n_by_series: dict[str, int]
) -> float | None:
    """Share of human spans overlapping a programmatic span that share its label (None if none overlap)."""
    by_label: dict[str, list[Placed]] = {}
    for p in programmatic:
        by_label.setdefault(p.span.label, []).append(p)
    any_cover = coverage_counts(programmatic, n_by_series)
    label_cover = {lab: coverage_counts(ps, n_by_series) for lab, ps in by_label.items()}
    overlapping = [h for h in human if overlaps(h, any_cover)]
    if not overlapping:
        return None
    agreed = sum(
        1 for h in overlapping if h.span.label in label_cover and overlaps(h, label_cover[h.span.label])
    )
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


def bio_layers(n: int, spans: list[Placed]) -> list[np.ndarray]:
    """BIO tag columns: highest-priority spans take the first layer, overlapping ones the next."""
    layers: list[np.ndarray] = []
    occupied: list[np.ndarray] = []
    for p in reversed(spans):  # highest priority first
        for tags, occ in zip(layers, occupied, strict=True):  # noqa: B007  (the layer found is used below)
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


def or_o(labels: np.ndarray) -> np.ndarray:
    """Candles no span covers (None) as ``O``."""
    return np.where(labels == None, NO_PATTERN, labels)  # noqa: E711  (None: no span covers the candle)


def covering_labels(n: int, spans: list[Placed], anchors: np.ndarray) -> list[list[str]]:
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
    return (
        frame.select(pl.concat_list([pl.when(pl.col(c)).then(pl.lit(c)) for c in names]).list.drop_nulls())
        .to_series()
        .to_list()
    )
