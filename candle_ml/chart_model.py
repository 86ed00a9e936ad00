"""Learning chart patterns (10-40 candle spans) from marked spans: propose, then classify.

A per-candle window model cannot see a head-and-shoulders: the pattern is five turns over weeks.
So chart patterns get a span-proposal model. The proposals are the labeller's own candidates
(``candle_ml.chart_patterns``): every run of five consecutive turns of the kernel-smoothed close,
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

from candle_ml.chart_patterns import ChartRules, Extremum, confirmed_windows, extrema
from candle_ml.config import ChartModelParams
from candle_ml.patterns import NO_PATTERN

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
class Proposal:
    start: int  # row of the first turn
    end: int  # row of the last turn
    found_at: int  # the row whose window confirmed it
    features: np.ndarray


def _five(e: list[Extremum]) -> dict[str, float]:
    s = 1.0 if e[0].is_max else -1.0
    p = np.array([x.price for x in e])
    m = float(p.mean())
    q = s * (p / m - 1.0)
    f = {f"p{i + 1}_rel": float(q[i]) for i in range(5)}
    f |= {f"gap{i + 1}": float(e[i + 1].row - e[i].row) for i in range(4)}
    f["ends_spread"] = float(abs(p[0] - p[4]) / ((p[0] + p[4]) / 2))
    f["inner_spread"] = float(abs(p[1] - p[3]) / ((p[1] + p[3]) / 2))
    f["head_over_ends"] = float(q[2] - max(q[0], q[4]))
    f["tops_rise"], f["tops_rise_late"], f["bottoms_rise"] = (
        float(q[2] - q[0]),
        float(q[4] - q[2]),
        float(q[3] - q[1]),
    )
    tops = p[[0, 2, 4]]
    f["tops_spread"] = float((tops.max() - tops.min()) / tops.mean())
    f["tops_over_bottoms"] = float(min(q[0], q[2], q[4]) - max(q[1], q[3]))
    return f


def _pair(e: list[Extremum], b: int) -> dict[str, float]:
    first, second = e[0], e[b]
    s = 1.0 if first.is_max else -1.0
    mean = (first.price + second.price) / 2
    between = e[1:b]
    same = [x.price for x in between if x.is_max == first.is_max]
    opposite = [x.price for x in between if x.is_max != first.is_max]
    return {
        "pair_spread": abs(first.price - second.price) / mean,
        "pair_gap": float(second.row - first.row),
        "pair_depth": s * (mean - (max(opposite) if s < 0 else min(opposite))) / mean if opposite else np.nan,
        "pair_beaten": s * ((max(same) if s > 0 else min(same)) - second.price) / mean if same else np.nan,
        "pair_between": float(len(between)),
    }


def _vector(is_top: bool, turns: int, start: int, end: int, values: dict[str, float]) -> np.ndarray:
    row = dict.fromkeys(FEATURES, np.nan) | {"is_top": 1.0 if is_top else -1.0, "turns": float(turns)}
    row["candles"] = float(end - start + 1)
    row |= values
    return np.array([row[k] for k in FEATURES], dtype=np.float32)


def propose(close: np.ndarray, rules: ChartRules) -> list[Proposal]:
    """Every candidate span, once, in the order the windows confirm them."""
    close = np.asarray(close, dtype=np.float64)
    if close.size < rules.window:
        return []
    out: list[Proposal] = []
    seen: set[tuple[int, int, int]] = set()
    for last_row, rows, is_max, a, b in confirmed_windows(close, rules):
        # Consecutive windows mostly see the same turns: features only for proposals not seen yet.
        if b - a >= 5 and (5, rows[b - 5], rows[b - 1]) not in seen:
            seen.add((5, int(rows[b - 5]), int(rows[b - 1])))
            five = extrema(close, rows, is_max, b - 5, b)
            values = _five(five)
            out.append(
                Proposal(
                    five[0].row,
                    five[-1].row,
                    last_row,
                    _vector(five[0].is_max, 5, five[0].row, five[-1].row, values),
                )
            )
        same = a + 1 + np.flatnonzero(is_max[a + 1 : b] == is_max[a])
        if same.size:
            z = int(same[-1])
            start, end = int(rows[a]), int(rows[z])
            if (
                end - start >= MIN_PAIR_GAP
                and last_row - end >= rules.confirm
                and (2, start, end) not in seen
            ):
                seen.add((2, start, end))
                ext = extrema(close, rows, is_max, a, z + 1)
                out.append(
                    Proposal(
                        start, end, last_row, _vector(ext[0].is_max, 2, start, end, _pair(ext, len(ext) - 1))
                    )
                )
    return out


def surest(chosen: list[ChartSpanPrediction], min_overlap: float) -> list[ChartSpanPrediction]:
    """Near-duplicate predictions of one pattern (same label, IoU >= min_overlap): the surest one
    stands for it. Kept spans are indexed by label and start, so a million candles' predictions
    are checked against their neighbours only (a span overlaps only spans starting within its
    own length, and chart spans are at most a window long)."""
    kept: list[ChartSpanPrediction] = []
    starts: dict[str, list[tuple[int, int]]] = {}  # label -> sorted (start, end) of kept spans
    longest = max((c.end - c.start for c in chosen), default=0)
    for c in sorted(chosen, key=lambda c: (-c.confidence, c.start, c.end)):
        mine = starts.setdefault(c.label, [])
        lo = bisect.bisect_left(mine, (c.start - longest, -1))
        hi = bisect.bisect_right(mine, (c.end, np.iinfo(np.int64).max))
        if any(iou(k, (c.start, c.end)) >= min_overlap for k in mine[lo:hi]):
            continue
        bisect.insort(mine, (c.start, c.end))
        kept.append(c)
    return sorted(kept, key=lambda c: (c.start, c.end, c.label))


def iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    inter = min(a[1], b[1]) - max(a[0], b[0]) + 1
    return inter / (a[1] - a[0] + b[1] - b[0] + 2 - inter) if inter > 0 else 0.0


def proposal_labels(
    proposals: list[Proposal], spans: list[tuple[int, int, str]], min_overlap: float
) -> list[str]:
    """Each marked span labels the proposal(s) that overlap it most (IoU > min_overlap); the rest are O.

    Only the best match: a run of turns shifted by one overlaps a head-and-shoulders by 60-80 % and
    is not one, while a span marked a few candles off still finds its own proposal."""
    out = [NO_PATTERN] * len(proposals)
    starts = np.array([p.start for p in proposals], dtype=np.int64)
    ends = np.array([p.end for p in proposals], dtype=np.int64)
    for start, end, name in spans:
        near = np.flatnonzero((starts <= end) & (ends >= start)).tolist()
        scores = {int(i): iou((proposals[i].start, proposals[i].end), (start, end)) for i in near}
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


MODEL_FILE = "chart_model.ubj"


@dataclass
class ChartModel:
    settings: ChartSettings
    booster: Any  # xgboost.XGBClassifier

    def proba(self, proposals: list[Proposal]) -> np.ndarray:
        """Class probabilities per proposal, in blocks (a million candles make ~300,000)."""
        out = np.zeros((len(proposals), len(self.settings.labels)))
        for lo in range(0, len(proposals), PROPOSAL_BLOCK):
            block = proposals[lo : lo + PROPOSAL_BLOCK]
            out[lo : lo + len(block)] = self.booster.predict_proba(np.stack([p.features for p in block]))
        return out

    def predict(self, close: np.ndarray) -> list[ChartSpanPrediction]:
        """Chart-pattern spans in a series of closes, each with the classifier's probability."""
        proposals = propose(close, self.settings.rules)
        proba = self.proba(proposals)
        names = self.settings.labels
        chosen = []
        for p, row in zip(proposals, proba, strict=True):
            order = np.argsort(row)[::-1]
            best = int(order[0])
            if names[best] != NO_PATTERN:
                margin = float(row[best] - row[order[1]]) if row.size > 1 else 1.0
                chosen.append(ChartSpanPrediction(p.start, p.end, names[best], float(row[best]), margin))
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
