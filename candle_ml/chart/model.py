"""Learning chart patterns (10-40 candle spans) from marked spans: propose, then classify.

A per-candle window model cannot see a head-and-shoulders: the pattern is five turns over weeks.
So chart patterns get a span-proposal model. The proposals are the labeller's own candidates
(``candle_ml.chart.patterns``): every run of five consecutive turns of the kernel-smoothed close,
and every pair of same-kind turns (a first top and the last later top), once the last turn is
confirmed. Each proposal is described by the shape of its turns, scale-free (prices relative to
their mean, signed so a bottom reads like a top, the gaps between turns), and a classifier learns
which shapes carry which label from the marked spans: a marked span teaches the proposal that
overlaps it most (IoU > 0.5), so boundaries a trader places a few candles off still teach the
right proposal, and a label only traders use (any long span) trains like the rule labels do.

Training, evaluation and serving all go through ``propose`` and ``ChartModel.predict``: the same
proposals, the same features, the same decoding.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import polars as pl

from candle_ml.chart import patterns as chart_patterns
from candle_ml.chart.patterns import ChartRules, turns
from candle_ml.config import ChartModelParams
from candle_ml.patterns import NO_PATTERN
from candle_ml.spans import iou

PROPOSAL_BLOCK = 50_000  # proposals classified at once
MIN_PAIR_GAP = 5  # candles between the two turns of a pair proposal (a double top needs > 22)
FEATURES = [
    "is_top",  # +1: the first turn is a top; -1: a bottom (every other feature reads as a top)
    "turns",  # 5 or 2
    "candles",  # the span's length
    *[f"p{i}_rel" for i in range(1, 6)],  # each turn's price / the turns' mean - 1
    *[f"gap{i}" for i in range(1, 5)],  # candles between consecutive turns (five-turn proposals)
    "ends_spread",  # |p1 - p5| / their mean (head-and-shoulders: the shoulders)
    "inner_spread",  # |p2 - p4| / their mean (the troughs)
    "head_over_ends",  # p3 above the higher of p1, p5
    "tops_rise",  # p3 - p1 and p5 - p3: both > 0 a broadening top, both < 0 a triangle top
    "tops_rise_late",
    "bottoms_rise",  # p4 - p2
    "tops_spread",  # max - min of p1, p3, p5 over their mean (rectangles)
    "tops_over_bottoms",  # lowest top - highest bottom
    "pair_spread",  # pair proposals: |pa - pb| / their mean
    "pair_gap",  # candles between the two turns
    "pair_depth",  # how far the deepest opposite turn between them lies below them
    "pair_beaten",  # how far the highest same-kind turn between them lies above the second
    "pair_between",  # turns between them
]


@dataclass(frozen=True)
class Proposals:
    """Candidate spans, one row each, in the order the windows confirm them."""

    start: np.ndarray  # row of the first turn
    end: np.ndarray  # row of the last turn
    found_at: np.ndarray  # the row whose window confirmed it
    features: np.ndarray  # (n, len(FEATURES)) float32

    def __len__(self) -> int:
        return int(self.start.size)

    def spans(self) -> list[tuple[int, int]]:
        """(first turn's row, last turn's row) of each proposal."""
        return list(zip(self.start.tolist(), self.end.tolist(), strict=True))


def _empty() -> Proposals:
    none = np.empty(0, dtype=np.int64)
    return Proposals(none, none, none, np.empty((0, len(FEATURES)), dtype=np.float32))


_COLUMN = {name: i for i, name in enumerate(FEATURES)}


def _table(n: int, is_top: np.ndarray, turns: int, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    out = np.full((n, len(FEATURES)), np.nan)
    out[:, _COLUMN["is_top"]] = np.where(is_top, 1.0, -1.0)
    out[:, _COLUMN["turns"]] = turns
    out[:, _COLUMN["candles"]] = end - start + 1
    return out


def _five(close: np.ndarray, rows: np.ndarray, is_top: np.ndarray) -> np.ndarray:
    """Features of five-turn proposals; ``rows`` (n, 5) are their turns' rows."""
    p = close[rows]
    s = np.where(is_top, 1.0, -1.0)[:, None]
    q = s * (p / p.mean(axis=1, keepdims=True) - 1.0)
    out = _table(len(rows), is_top, 5, rows[:, 0], rows[:, 4])
    col = _COLUMN
    for i in range(5):
        out[:, col[f"p{i + 1}_rel"]] = q[:, i]
    for i in range(4):
        out[:, col[f"gap{i + 1}"]] = rows[:, i + 1] - rows[:, i]
    out[:, col["ends_spread"]] = np.abs(p[:, 0] - p[:, 4]) / ((p[:, 0] + p[:, 4]) / 2)
    out[:, col["inner_spread"]] = np.abs(p[:, 1] - p[:, 3]) / ((p[:, 1] + p[:, 3]) / 2)
    out[:, col["head_over_ends"]] = q[:, 2] - np.maximum(q[:, 0], q[:, 4])
    out[:, col["tops_rise"]] = q[:, 2] - q[:, 0]
    out[:, col["tops_rise_late"]] = q[:, 4] - q[:, 2]
    out[:, col["bottoms_rise"]] = q[:, 3] - q[:, 1]
    tops = p[:, [0, 2, 4]]
    out[:, col["tops_spread"]] = (tops.max(axis=1) - tops.min(axis=1)) / tops.mean(axis=1)
    out[:, col["tops_over_bottoms"]] = q[:, [0, 2, 4]].min(axis=1) - q[:, [1, 3]].max(axis=1)
    return out.astype(np.float32)


def _pair(
    close: np.ndarray, rows: np.ndarray, is_max: np.ndarray, a: np.ndarray, z: np.ndarray
) -> np.ndarray:
    """Features of pair proposals: turns ``a`` and ``z`` (indices into ``rows``) of one kind, and
    the turns between them (the deepest opposite one, the highest one of the same kind)."""
    n = a.size
    first, second = close[rows[a]], close[rows[z]]
    s = np.where(is_max[a], 1.0, -1.0)
    mean = (first + second) / 2
    out = _table(n, is_max[a], 2, rows[a], rows[z])
    col = _COLUMN
    out[:, col["pair_spread"]] = np.abs(first - second) / mean
    out[:, col["pair_gap"]] = rows[z] - rows[a]
    out[:, col["pair_between"]] = z - a - 1
    # The turns between, flattened: segment k holds turns a[k]+1 .. z[k]-1, prices signed so a
    # bottom pair reads like a top pair.
    length = z - a - 1
    seg = np.repeat(np.arange(n), length)
    j = a[seg] + 1 + np.arange(seg.size) - np.repeat(np.cumsum(length) - length, length)
    signed = s[seg] * close[rows[j]]
    same = is_max[j] == is_max[a][seg]
    highest_same = np.full(n, -np.inf)
    np.maximum.at(highest_same, seg[same], signed[same])
    lowest_opposite = np.full(n, np.inf)
    np.minimum.at(lowest_opposite, seg[~same], signed[~same])
    with np.errstate(invalid="ignore"):
        out[:, col["pair_depth"]] = np.where(
            np.isfinite(lowest_opposite), (s * mean - lowest_opposite) / mean, np.nan
        )
        out[:, col["pair_beaten"]] = np.where(
            np.isfinite(highest_same), (highest_same - s * second) / mean, np.nan
        )
    return out.astype(np.float32)


def _first_new(keys: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of each key not in ``seen``, in their original order."""
    _, first = np.unique(keys, return_index=True)
    first = np.sort(first)
    return first[~np.isin(keys[first], seen)]


def propose(close: np.ndarray, rules: ChartRules) -> Proposals:
    """Every candidate span, once, in the order the windows confirm them (a window's five-turn
    run before its pair): the last five turns of every confirmed window, and its first turn with
    the last later turn of the same kind. Vectorized over each block of windows."""
    close = np.asarray(close, dtype=np.float64)
    if close.size < rules.window:
        return _empty()
    n_windows = close.size - rules.window + 1
    parts: list[tuple[np.ndarray, ...]] = []
    seen = {5: np.empty(0, dtype=np.int64), 2: np.empty(0, dtype=np.int64)}
    key_base = np.int64(close.size + 1)
    block = chart_patterns.WINDOW_BLOCK  # > window: a span's windows lie in at most two blocks
    for w0 in range(0, n_windows, block):
        w1 = min(w0 + block, n_windows)
        bounds, rows, is_max = turns(close[w0 : w1 + rules.window - 1], rules)
        rows = rows + w0
        a, b = bounds[:-1], bounds[1:]
        last_row = w0 + np.arange(a.size) + rules.window - 1
        has = b > a
        confirmed = has & (last_row - rows[np.maximum(b - 1, 0)] >= rules.confirm) if rows.size else has
        found: dict[int, tuple[np.ndarray, ...]] = {}
        # Five-turn runs: the window's last five turns.
        w5 = np.flatnonzero(confirmed & (b - a >= 5))
        idx5 = (b[w5] - 5)[:, None] + np.arange(5)
        keys5 = rows[idx5[:, 0]] * key_base + rows[idx5[:, 4]]
        keep = _first_new(keys5, seen[5])
        seen[5] = keys5[keep]
        five_rows = rows[idx5[keep]]
        found[0] = (
            five_rows[:, 0],
            five_rows[:, 4],
            last_row[w5[keep]],
            _five(close, five_rows, is_max[idx5[keep, 0]]),
        )
        # Pairs: the window's first turn and its last later turn of the same kind.
        order = np.arange(rows.size)
        last_max = np.maximum.accumulate(np.where(is_max, order, -1)) if rows.size else order
        last_min = np.maximum.accumulate(np.where(~is_max, order, -1)) if rows.size else order
        wp = np.flatnonzero(confirmed)
        ap, bp = a[wp], b[wp]
        z = np.where(is_max[ap], last_max[bp - 1], last_min[bp - 1]) if wp.size else ap
        start, end = rows[ap], rows[z]
        ok = (z > ap) & (end - start >= MIN_PAIR_GAP) & (last_row[wp] - end >= rules.confirm)
        wp, ap, z = wp[ok], ap[ok], z[ok]
        keys2 = rows[ap] * key_base + rows[z]
        keep = _first_new(keys2, seen[2])
        seen[2] = keys2[keep]
        ap, z, wp = ap[keep], z[keep], wp[keep]
        found[1] = (rows[ap], rows[z], last_row[wp], _pair(close, rows, is_max, ap, z))
        # A window's five-turn run, then its pair: the order the windows confirm them.
        kinds = np.concatenate([np.zeros(found[0][0].size), np.ones(found[1][0].size)])
        at = np.concatenate([found[0][2], found[1][2]])
        o = np.lexsort((kinds, at))
        parts.append(tuple(np.concatenate([found[0][i], found[1][i]])[o] for i in range(4)))
    if not parts:
        return _empty()
    start, end, found_at, features = (np.concatenate([p[i] for p in parts]) for i in range(4))
    return Proposals(start.astype(np.int64), end.astype(np.int64), found_at.astype(np.int64), features)


def surest(chosen: list[ChartSpanPrediction], min_overlap: float) -> list[ChartSpanPrediction]:
    """Near-duplicate predictions of one pattern (same label, IoU >= min_overlap): the surest one
    stands for it. Kept spans are indexed by label and start, so a million candles' predictions
    are checked against their neighbours only (a span overlaps only spans starting within its
    own length, and chart spans are at most a window long)."""
    if not chosen:
        return []
    start = np.array([c.start for c in chosen], dtype=np.int64)
    end = np.array([c.end for c in chosen], dtype=np.int64)
    confidence = np.array([c.confidence for c in chosen])
    longest = int((end - start).max())
    base = int(end.max()) + 1  # (start, end) as one int that sorts like the pair
    kept: list[int] = []
    by_label: dict[str, list[int]] = {}  # label -> sorted start * base + end of kept spans
    for i in np.lexsort((end, start, -confidence)).tolist():
        c = chosen[i]
        mine = by_label.setdefault(c.label, [])
        lo = bisect.bisect_left(mine, (c.start - longest) * base)
        hi = bisect.bisect_right(mine, c.end * base + base - 1)
        if any(iou(divmod(k, base), (c.start, c.end)) >= min_overlap for k in mine[lo:hi]):
            continue
        bisect.insort(mine, c.start * base + c.end)
        kept.append(i)
    kept.sort(key=lambda i: (start[i], end[i], chosen[i].label))
    return [chosen[i] for i in kept]


def proposal_labels(proposals: Proposals, spans: list[tuple[int, int, str]], min_overlap: float) -> list[str]:
    """Each marked span labels the proposal(s) that overlap it most (IoU > min_overlap); the rest are O.

    Only the best match: a run of turns shifted by one overlaps a head-and-shoulders by 60-80 % and
    is not one, while a span marked a few candles off still finds its own proposal."""
    out = [NO_PATTERN] * len(proposals)
    starts, ends = proposals.start, proposals.end
    for start, end, name in spans:
        near = np.flatnonzero((starts <= end) & (ends >= start)).tolist()
        scores = {int(i): iou((int(starts[i]), int(ends[i])), (start, end)) for i in near}
        best = max(scores.values(), default=0.0)
        if best > min_overlap:
            for i, score in scores.items():
                if score == best:
                    out[i] = name
    return out


class ChartSettings(msgspec.Struct, forbid_unknown_fields=True):
    """What the bundle keeps to rebuild the chart model's proposals."""

    window: int
    confirm: int
    bandwidth: float
    labels: list[str]  # the classifier's classes, O first
    features: list[str]
    min_overlap: float = 0.5  # decoding: overlapping predictions of one label keep the surest

    @property
    def rules(self) -> ChartRules:
        return ChartRules(window=self.window, confirm=self.confirm, bandwidth=self.bandwidth)

    @property
    def min_history(self) -> int:
        return self.window - 1  # candles before a span's end that its window may need

    @property
    def lookahead(self) -> int:
        return self.confirm  # candles after a span's end before it is reported


@dataclass(frozen=True)
class ChartSpanPrediction:
    start: int
    end: int
    label: str
    confidence: float
    margin: float  # top-1 minus top-2 probability: how sure (the review queue asks about the least sure)
    # The row whose window confirmed it: the first candle a trader could have seen it on (often
    # more than ``confirm`` after its end: a window waits until the last turn is settled).
    found_at: int = -1


MODEL_FILE = "chart_model.ubj"


@dataclass
class ChartModel:
    settings: ChartSettings
    booster: Any  # xgboost.XGBClassifier

    def set_threads(self, n: int | None) -> None:
        """Threads per predict call (None: XGBoost's default, all cores)."""
        self.booster.set_params(n_jobs=n)

    def proba(self, proposals: Proposals) -> np.ndarray:
        """Class probabilities per proposal, in blocks (a million candles make ~300,000)."""
        out = np.zeros((len(proposals), len(self.settings.labels)))
        for lo in range(0, len(proposals), PROPOSAL_BLOCK):
            block = proposals.features[lo : lo + PROPOSAL_BLOCK]
            out[lo : lo + len(block)] = self.booster.predict_proba(block)
        return out

    def predict(self, close: np.ndarray) -> list[ChartSpanPrediction]:
        """Chart-pattern spans in a series of closes, each with the classifier's probability."""
        proposals = propose(close, self.settings.rules)
        proba = self.proba(proposals)
        names = np.asarray(self.settings.labels, dtype=object)
        if not len(proposals):
            return []
        best = proba.argmax(axis=1)
        top = proba[np.arange(best.size), best]
        second = np.sort(proba, axis=1)[:, -2] if proba.shape[1] > 1 else np.zeros(best.size)
        pick = np.flatnonzero(names[best] != NO_PATTERN)
        chosen = [
            ChartSpanPrediction(s, e, label, c, m, f)
            for s, e, label, c, m, f in zip(
                proposals.start[pick].tolist(),
                proposals.end[pick].tolist(),
                names[best[pick]].tolist(),
                top[pick].tolist(),
                (top[pick] - second[pick]).tolist(),
                proposals.found_at[pick].tolist(),
                strict=True,
            )
        ]
        return surest(chosen, self.settings.min_overlap)

    def save(self, directory: Path) -> None:
        self.booster.save_model(directory / MODEL_FILE)

    @classmethod
    def load(cls, directory: Path, settings: ChartSettings) -> ChartModel:
        import xgboost

        booster = xgboost.XGBClassifier()
        booster.load_model(directory / MODEL_FILE)
        return cls(settings, booster)


def train_chart_model(
    frame: pl.DataFrame, rules: dict[str, Any], params: ChartModelParams, seed: int
) -> tuple[ChartModel | None, dict[str, Any]]:
    """Fit the proposal classifier on the train split (early-stopped on val); None when no
    chart pattern is marked in the train split. Classes are unweighted: most proposals are not
    patterns, and the real share is what keeps a chart free of false patterns."""
    import xgboost

    train = frame.filter(pl.col("split") == "train")
    labels = [NO_PATTERN, *sorted(set(train["label"]) - {NO_PATTERN})]
    if len(labels) < 2:
        return None, {"proposals": frame.height, "skipped": "no chart pattern marked in the train split"}
    code = {name: i for i, name in enumerate(labels)}

    def xy(part: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        part = part.filter(pl.col("label").is_in(labels))  # val labels unseen in train cannot be learned
        return part.select(FEATURES).to_numpy().astype(np.float32), part["label"].replace_strict(
            code
        ).to_numpy()

    X, y = xy(train)
    X_val, y_val = xy(frame.filter(pl.col("split") == "val"))
    has_val = len(y_val) > 0
    clf = xgboost.XGBClassifier(
        n_estimators=params.n_estimators,
        max_depth=params.max_depth,
        learning_rate=params.learning_rate,
        early_stopping_rounds=params.early_stopping_rounds if has_val else None,
        tree_method="hist",
        multi_strategy=params.multi_strategy if len(labels) > 2 else "one_output_per_tree",
        eval_metric="mlogloss" if len(labels) > 2 else "logloss",  # one learned label: binary
        random_state=seed,
    )
    clf.fit(X, y, eval_set=[(X_val, y_val)] if has_val else None, verbose=False)
    settings = ChartSettings(labels=labels, features=list(FEATURES), **rules)
    info = {
        "proposals": int(len(y)),
        "marked": {name: int((y == i).sum()) for i, name in enumerate(labels) if i},
        "rounds": int(clf.get_booster().num_boosted_rounds()),
    }
    return ChartModel(settings, clf), info
