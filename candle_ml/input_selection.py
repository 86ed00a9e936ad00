"""Which window columns the model reads (``train.top_inputs``): the columns quick XGBoost fits find
most telling for some label, a trader's own labels' best columns besides, and a slow column (one
needing more history than ``train.max_history``) only where a fit with it beats one without on
validation, so a pattern that needs no trend labels a short chart early."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import numpy as np

from candle_ml.config import TrainParams
from candle_ml.stage_outputs import ModelSchema

log = logging.getLogger("candle_ml.train")  # its lines are the train stage's


def _ranker(n_classes: int, params: TrainParams) -> Any:
    """The quick XGBoost fit that ranks columns: ``train.xgboost``'s knobs, a tree per class."""
    from candle_ml.models.xgboost_model import XGBoostModel

    return XGBoostModel(
        msgspec.structs.replace(params.xgboost, multi_strategy="one_output_per_tree"),
        n_classes,
        params.seed,
        params.device,
    )


def column_history(schema: ModelSchema, inputs: list[str]) -> np.ndarray:
    """Candles of history each window column's feature needs to match the whole series (0 for
    columns of no feature)."""
    by_column = schema.history_by_column
    return np.array([int(by_column.get(c.rpartition("@")[0], 0)) for c in inputs], dtype=np.int64)


def _top(score: np.ndarray, candidates: np.ndarray, n: int, taken: set[int] | None = None) -> list[int]:
    """The ``n`` best ``candidates`` by ``score`` (stable order), skipping ``taken``."""
    ranked = candidates[np.argsort(-score[candidates], kind="stable")]
    return [int(i) for i in ranked if not taken or int(i) not in taken][:n]


OWN_F1_MARGIN = 0.02  # an own label keeps a slow column only for this much validation F1 more


def _val_proba(
    cols: list[int],
    X: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None,
    X_val: np.ndarray,
    y_val: np.ndarray,
    params: TrainParams,
) -> np.ndarray:
    """The validation rows' probabilities under a quick fit on ``cols``."""
    ranker = _ranker(int(y.max()) + 1, params)
    ranker.fit(X[:, cols], y, weights, X_val[:, cols], y_val)
    return np.clip(ranker.predict_proba(X_val[:, cols]), 1e-7, 1 - 1e-7)


def _f1(predicted: np.ndarray, truth: np.ndarray) -> float:
    tp = float((predicted & truth).sum())
    return 2 * tp / max(float(predicted.sum() + truth.sum()), 1.0)


def _fast_unless_slow_wins(
    with_slow: list[int],
    fast: list[int],
    slow: np.ndarray,
    what: str,
    label: int | None,
    fit: Any,
    y_val: np.ndarray,
    params: TrainParams,
) -> list[int]:
    """``with_slow`` if it reads no slow column or wins on validation, else ``fast``. The rules'
    labels (``label`` None): a lower mean log loss by more than twice the standard error of the
    paired per-row differences. An own label: its F1 on the validation candles (what the chart
    shows) higher by ``OWN_F1_MARGIN``: a lower loss alone kept RSI for an inside-bar breakout
    (min_history 15 -> 292) whose span F1 it did not raise."""
    if not slow[with_slow].any():
        return with_slow
    p_with, p_without = fit(with_slow), fit(fast)
    if label is None:
        rows = np.arange(len(y_val))
        gain = np.log(p_with[rows, y_val]) - np.log(p_without[rows, y_val])
        wins = bool(gain.mean() > 2 * gain.std() / np.sqrt(gain.size))
        score_with, score_without = (
            -np.log(p_with[rows, y_val]).mean(),
            -np.log(p_without[rows, y_val]).mean(),
        )
        measure = "log loss"
    else:
        truth = y_val == label
        score_with = _f1(p_with.argmax(axis=1) == label, truth)
        score_without = _f1(p_without.argmax(axis=1) == label, truth)
        wins = score_with >= score_without + OWN_F1_MARGIN
        measure = "F1"
    log.info(
        "top_inputs: %s: slow columns (history > %d candles) %s: validation %s %.4f with, %.4f without",
        what,
        params.max_history,
        "kept" if wins else "left out",
        measure,
        score_with,
        score_without,
    )
    return with_slow if wins else fast


def choose_inputs(
    share: np.ndarray,
    own: list[int],
    own_only: np.ndarray,
    history: np.ndarray,
    X: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None,
    X_val: np.ndarray,
    y_val: np.ndarray,
    params: TrainParams,
) -> np.ndarray:
    """Ascending indices of the columns a model reads: the ``train.top_inputs`` with the largest
    share of some label's gain (never an ``own_only`` column), plus, for each trader's own label
    (``own``: class indices), the ``train.own_inputs`` best for it alone, so a setup the rules do
    not know is not squeezed out by 14 rule labels competing for 30 columns. A slow column
    (history over ``train.max_history``) stays only where a quick fit with it beats one on the
    best fast columns on validation (``_fast_unless_slow_wins``): the rules' labels judged
    together, each own label on its own loss."""
    everything = np.arange(share.shape[1])
    slow = history > params.max_history if params.max_history else np.zeros(share.shape[1], dtype=bool)
    check = len(X_val) > 0

    def fit(cols: list[int]) -> np.ndarray:
        return _val_proba(sorted(cols), X, y, weights, X_val, y_val, params)

    shared = everything[~own_only]
    best = share.max(axis=0)
    kept = _top(best, shared, params.top_inputs)
    if check:
        kept = _fast_unless_slow_wins(
            kept,
            _top(best, shared[~slow[shared]], params.top_inputs),
            slow,
            "rule labels",
            None,
            fit,
            y_val,
            params,
        )
    for c in own:
        taken = set(kept)
        mine = _top(share[c], everything, params.own_inputs, taken)
        if check:
            fast = _top(share[c], everything[~slow], params.own_inputs, taken)
            chosen = _fast_unless_slow_wins(
                kept + mine, kept + fast, slow, f"own label {c}", c, fit, y_val, params
            )
            mine = chosen[len(kept) :]
        kept += mine
    return np.sort(np.asarray(kept, dtype=np.int64))


def input_shares(
    X: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None,
    X_val: np.ndarray,
    y_val: np.ndarray,
    params: TrainParams,
) -> np.ndarray:
    """Each column's share of each label's total split gain (labels x columns), from a quick
    XGBoost fit (``train.xgboost``'s knobs, a tree per class per round, whatever the model type:
    a few seconds, where multi-output trees fit ~10x slower). ``choose_inputs`` ranks a column by
    its largest share: ranked by overall gain instead, a rare pattern's telling columns lose to
    the frequent ones'. Columns never split on rank last, in their order."""
    n_classes = int(y.max()) + 1
    ranker = _ranker(n_classes, params)
    ranker.fit(X, y, weights, X_val, y_val)
    nodes = ranker.clf.get_booster().trees_to_dataframe()  # tree t scores class t % n_classes
    splits = nodes[nodes["Feature"] != "Leaf"]
    gain = np.zeros((n_classes, X.shape[1]))
    np.add.at(
        gain,
        (splits["Tree"].to_numpy() % n_classes, splits["Feature"].str[1:].astype(int).to_numpy()),
        splits["Gain"].to_numpy(),
    )
    return gain / np.maximum(gain.sum(axis=1, keepdims=True), 1e-12)


def read_history(schema: ModelSchema, input_columns: list[str]) -> tuple[int, int]:
    """The warm-up and converged history of the features behind ``input_columns`` (window
    columns ``feature@offset``): a model that reads no slow indicator (``train.top_inputs``)
    labels from a few candles in, not after the slowest indicator's ~300. A schema without
    per-column numbers (made before they were recorded) gives every feature's."""
    warmup, history = schema.warmup, schema.history
    by_column, warmup_by_column = schema.history_by_column, schema.warmup_by_column
    if not by_column or not warmup_by_column:
        return warmup, history
    # (a window's own columns, such as where it is padded, are no feature)
    read = {c.rpartition("@")[0] for c in input_columns} & set(schema.feature_columns)
    if not read:
        return 0, 0
    return max(warmup_by_column[f] for f in read), max(by_column[f] for f in read)
