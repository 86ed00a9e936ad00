"""A trader's own labels: learned from marks as people make them, not as a rule would place them.

A label no rule knows (not in ``autolabel.patterns``) has only the trader's marks to learn from,
and people mark a candle early or late and skip occurrences. Two things follow:

* **Imprecise ends.** The ``end`` encoding learns a pattern from the one candle its span ends on,
  so a mark one candle late teaches the wrong candle. Each fresh mark (source ``human``) is a
  *bag* of candidate last candles, ``dataset.end_tolerance`` either side of the marked one, of
  which one is the real end (multiple-instance learning). A small per-label model picks it by
  hard EM: fit on every candidate (each weighted 1/bag), score the candidates, keep the best one
  of each bag, refit on those with the rest of each bag as negatives, and again. Each mark is
  scored by a model fitted on the other half of the marks (cross-fitting), so a candidate is
  never chosen because the model saw it. Corrections and confirmations place their ends on
  purpose and stay as marked; the stored marks are never rewritten.
* **Partial marking.** An unmarked candle is a negative of the label only where the trader
  looked: inside a range it reviewed (``ReviewedRange``: the review page records one with every
  answer; exports may carry them) or, for a series without one, ``dataset.reviewed_around_marks``
  candles either side of its marks (what was on screen while marking). Elsewhere, the per-label
  model decides: a candle it finds more like the label than not is left out of the negatives
  (a pattern nobody looked at), the rest stay (reliable negatives, as in PU learning).

Rule labels keep their negatives: the rules label every candle. ``own_labels`` is the pure core;
the dataset stage calls it between placing the spans and painting them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from candle_ml.annotations import ReviewedRange
from candle_ml.candles import series_key
from candle_ml.labels import Placed
from candle_ml.patterns import NO_PATTERN
from candle_ml.windows import WindowSpec, build_windows

log = logging.getLogger("candle_ml.dataset")

EM_ROUNDS = 10  # at most; EM stops once fewer than STABLE of the marks change their end in a round
STABLE = 0.005
FOLDS = 2
NEGATIVES_PER_POSITIVE = 20  # reliable negatives sampled per mark for the per-label model
DOUBT = 0.5  # an unreviewed candle scored above this is left out of the label's negatives
MIN_MARKS = 10  # fewer marks teach no model worth trusting: their ends and negatives stay as today


@dataclass
class OwnLabelResult:
    """The placed spans with their learned ends, the candles to keep out of the negatives, and
    what was learned, for the report."""

    spans: list[Placed]
    doubtful: dict[str, np.ndarray]  # per series: unreviewed candles like some own label
    report: dict[str, dict[str, Any]] = field(default_factory=dict)
    moved: list[dict[str, Any]] = field(default_factory=list)  # one row per mark whose end moved


def own_label_names(human: list[Placed], rule_labels: set[str]) -> list[str]:
    return sorted({p.span.label for p in human} - rule_labels - {NO_PATTERN})


def reviewed_masks(
    label: str,
    marks: list[Placed],
    reviewed: list[ReviewedRange],
    times: Mapping[str, np.ndarray],
    around: int,
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Per series, the candles whose absence of a ``label`` mark means "not this label", and how
    each series' region was decided (``ranges`` or ``around_marks``)."""
    masks: dict[str, np.ndarray] = {}
    how: dict[str, str] = {}
    for r in reviewed:
        if not r.covers(label):
            continue
        key = series_key(r.pair.upper(), r.timeframe)
        t = times.get(key)
        if t is None:
            continue
        lo, hi = int(np.searchsorted(t, r.start_time, "left")), int(np.searchsorted(t, r.end_time, "right"))
        masks.setdefault(key, np.zeros(t.size, dtype=bool))[lo:hi] = True
        how[key] = "ranges"
    for p in marks:
        if p.series in how:
            continue  # the trader said what it reviewed here
        t = times[p.series]
        m = masks.setdefault(p.series, np.zeros(t.size, dtype=bool))
        m[max(p.start - around, 0) : p.end + around + 1] = True
    for key in masks:
        how.setdefault(key, "around_marks")
    return masks, how


class _Scorer:
    """A small gradient-boosted classifier of one label against reliable negatives."""

    def __init__(self, seed: int):
        import xgboost as xgb

        self.model = xgb.XGBClassifier(
            n_estimators=150,
            max_depth=4,
            learning_rate=0.1,
            subsample=0.9,
            colsample_bytree=0.8,
            tree_method="hist",
            random_state=seed,
            n_jobs=None,
        )

    def fit(self, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> _Scorer:
        pos = float(w[y == 1].sum())
        neg = float(w[y == 0].sum())
        # balanced: a score above 0.5 reads "more like the label than not"
        w = np.where(y == 1, w * (neg / max(pos, 1e-9)), w)
        self.model.fit(X, y, sample_weight=w)
        return self

    def score(self, X: np.ndarray) -> np.ndarray:
        if len(X) == 0:
            return np.zeros(0)
        return self.model.predict_proba(X)[:, 1]


def own_labels(
    human: list[Placed],
    rule_labels: set[str],
    values: Mapping[str, np.ndarray],
    times: Mapping[str, np.ndarray],
    reviewed: list[ReviewedRange],
    window_size: int,
    tolerance: int,
    around: int,
    seed: int,
) -> OwnLabelResult:
    """Learn each own label's ends (fresh marks, within ``tolerance``) and which unreviewed
    candles not to call negatives. ``values``: per series, the feature rows the model reads."""
    doubtful = {k: np.zeros(v.shape[0], dtype=bool) for k, v in values.items()}
    spans = list(human)
    result = OwnLabelResult(spans, doubtful)
    rng = np.random.default_rng(seed)
    for label in own_label_names(human, rule_labels):
        idx = [i for i, p in enumerate(spans) if p.span.label == label]
        marks = [spans[i] for i in idx]
        if len(marks) < MIN_MARKS:
            result.report[label] = {
                "marks": len(marks),
                "ends_moved": 0,
                "learned": f"no: fewer than {MIN_MARKS} marks",
            }
            continue
        length = max(1, int(round(float(np.median([p.length for p in marks])))))
        spec = WindowSpec(max(window_size, length), 0, "end")
        masks, how = reviewed_masks(label, marks, reviewed, times, around)
        ends, flagged = _learn_label(marks, masks, values, spec, tolerance, seed, rng, doubtful)
        shifts = [e - p.end for e, p in zip(ends, marks, strict=True)]
        for i, p, end, shift in zip(idx, marks, ends, shifts, strict=True):
            if shift:  # the mark moves onto its learned end, with the label's usual length
                spans[i] = Placed(p.span, p.origin, p.series, max(end - length + 1, 0), end)
                result.moved.append(
                    {
                        "label": label,
                        "series": p.series,
                        "id": p.span.id,
                        "marked_end_time": int(times[p.series][p.end]),
                        "learned_end_time": int(times[p.series][end]),
                        "shift": int(shift),
                    }
                )
        result.report[label] = {
            "marks": len(marks),
            "ends_moved": sum(1 for s in shifts if s),
            # how many learned ends lie k candles after the marked one
            "shift_counts": {f"{k:+d}": shifts.count(k) for k in range(-tolerance, tolerance + 1)},
            "window": spec.window_size,
            "reviewed": {k: how[k] for k in sorted(how)},
            "left_out_of_negatives": flagged,
        }
        log.info(
            "own label %s: %d marks, %d ends moved by the learned end; %d unreviewed candles like it "
            "left out of its negatives",
            label,
            len(marks),
            result.report[label]["ends_moved"],
            flagged,
        )
    return result


def _learn_label(
    marks: list[Placed],
    masks: Mapping[str, np.ndarray],
    values: Mapping[str, np.ndarray],
    spec: WindowSpec,
    tolerance: int,
    seed: int,
    rng: np.random.Generator,
    doubtful: dict[str, np.ndarray],
) -> tuple[list[int], int]:
    """One label: its marks' learned ends, and the unreviewed candles its model finds like it
    (set in ``doubtful``; returns how many)."""
    # Candles near any mark of the label are neither reliable negatives nor doubtful.
    near = {k: np.zeros(v.shape[0], dtype=bool) for k, v in values.items()}
    for p in marks:
        near[p.series][max(p.start - tolerance, 0) : p.end + tolerance + 1] = True
    negatives = _sample_negatives(masks, near, len(marks) * NEGATIVES_PER_POSITIVE, rng)
    fresh = [j for j, p in enumerate(marks) if p.span.source == "human" and tolerance > 0]
    ends = [p.end for p in marks]
    if fresh:
        bags = [_candidates(p, tolerance, values[p.series].shape[0]) for p in marks]
        ends, _ = _em_ends(marks, bags, fresh, negatives, values, spec, tolerance, seed)
    # The label's model on the learned ends scores the candles nobody reviewed.
    everyone = list(range(len(marks)))
    scorer = _fit(
        marks, [[e] for e in ends], [np.ones(1)] * len(marks), everyone, negatives, values, spec, seed
    )
    flagged = 0
    for key, v in values.items():
        rows = np.flatnonzero(~masks.get(key, np.zeros(v.shape[0], dtype=bool)) & ~near[key])
        if rows.size:
            hit = rows[scorer.score(build_windows(v, rows, spec)) > DOUBT]
            doubtful[key][hit] = True
            flagged += int(hit.size)
    return ends, flagged


def _candidates(p: Placed, tolerance: int, n: int) -> list[int]:
    return list(range(max(p.end - tolerance, 0), min(p.end + tolerance, n - 1) + 1))


def _sample_negatives(
    masks: Mapping[str, np.ndarray], near: Mapping[str, np.ndarray], k: int, rng: np.random.Generator
) -> list[tuple[str, np.ndarray]]:
    """Up to ``k`` reviewed, unmarked candles, drawn across the series in proportion."""
    pools = [(key, np.flatnonzero(m & ~near[key])) for key, m in sorted(masks.items())]
    total = sum(p.size for _, p in pools)
    out = []
    for key, pool in pools:
        take = min(pool.size, int(round(k * pool.size / total))) if total else 0
        out.append((key, np.sort(rng.choice(pool, size=take, replace=False)) if take else pool[:0]))
    return out


def _fit(
    marks: list[Placed],
    bags: list[list[int]],
    weights: list[np.ndarray],
    use: list[int],
    negatives: list[tuple[str, np.ndarray]],
    values: Mapping[str, np.ndarray],
    spec: WindowSpec,
    seed: int,
) -> _Scorer:
    """The label's scorer on the marks ``use``: each bag's candidate is a positive with its weight
    and, from the second round on, a negative with the rest; then the reliable negatives."""
    X, y, w = [], [], []
    for j in use:
        p = marks[j]
        windows = build_windows(values[p.series], np.asarray(bags[j]), spec)
        X += [windows, windows]
        y += [np.ones(len(bags[j])), np.zeros(len(bags[j]))]
        w += [weights[j], 1.0 - weights[j]]
    for key, rows in negatives:
        if rows.size:
            X.append(build_windows(values[key], rows, spec))
            y.append(np.zeros(rows.size))
            w.append(np.ones(rows.size))
    Xa, ya, wa = np.concatenate(X), np.concatenate(y), np.concatenate(w)
    keep = wa > 1e-6
    return _Scorer(seed).fit(Xa[keep], ya[keep], wa[keep])


def _em_ends(
    marks: list[Placed],
    bags: list[list[int]],
    fresh: list[int],
    negatives: list[tuple[str, np.ndarray]],
    values: Mapping[str, np.ndarray],
    spec: WindowSpec,
    tolerance: int,
    seed: int,
) -> tuple[list[int], list[np.ndarray]]:
    """Soft EM over the fresh marks' bags, cross-fitted in ``FOLDS`` folds: each candidate's
    posterior is the shift prior times the scorer's odds; the prior (symmetric: a trader is as
    often early as late, so the marks are right on average) is re-estimated from the posteriors.
    Returns each mark's learned end and the posterior over its bag."""
    shifts = np.arange(-tolerance, tolerance + 1)
    prior = (tolerance + 1 - np.abs(shifts)).astype(float)
    prior /= prior.sum()
    is_fresh = np.zeros(len(marks), dtype=bool)
    is_fresh[fresh] = True

    def bag_prior(j: int) -> np.ndarray:
        if not is_fresh[j]:
            return (np.asarray(bags[j]) == marks[j].end).astype(float)
        pr = prior[np.asarray(bags[j]) - marks[j].end + tolerance]
        return pr / pr.sum()

    post = [bag_prior(j) for j in range(len(marks))]
    fold = np.arange(len(marks)) % FOLDS
    best = [int(np.argmax(p)) for p in post]
    for rnd in range(EM_ROUNDS):
        new = list(post)
        for f in range(FOLDS):
            train = [j for j in range(len(marks)) if fold[j] != f]
            scorer = _fit(marks, bags, post, train, negatives, values, spec, seed + rnd)
            for j in (j for j in fresh if fold[j] == f):
                s = np.clip(
                    scorer.score(build_windows(values[marks[j].series], np.asarray(bags[j]), spec)),
                    1e-4,
                    1 - 1e-4,
                )
                q = bag_prior(j) * s / (1 - s)
                new[j] = q / q.sum()
        post = new
        mass = np.zeros(shifts.size)
        for j in fresh:
            np.add.at(mass, np.asarray(bags[j]) - marks[j].end + tolerance, post[j])
        mass = (mass + mass[::-1]) / 2 + 1e-3  # symmetric, never exactly 0
        prior = mass / mass.sum()
        now = [int(np.argmax(p)) for p in post]
        changed = sum(1 for a, b in zip(now, best, strict=True) if a != b)
        best = now
        if rnd and changed <= STABLE * len(fresh):
            break
    ends = [int(bags[j][int(np.argmax(post[j]))]) for j in range(len(marks))]
    return ends, post
