"""Fixed windows of candle features around anchor candles, flattened into rows.

The dataset stage builds training rows with it; evaluation and the server build
a window around every candle with the same function, so the model always sees
the same layout. An ``end`` window is the ``window_size`` candles ending at the anchor
plus ``context`` more before them (it never looks ahead); a ``centre`` window covers
``window_size`` candles centred on the anchor plus ``context`` candles on each side.
Positions outside the series (or outside the allowed range) are padding: features 0
and ``pad@<offset>`` = 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Anchor = Literal["end", "centre"]


@dataclass(frozen=True)
class WindowSpec:
    window_size: int
    context: int
    anchor: Anchor = "centre"

    @property
    def before(self) -> int:
        if self.anchor == "end":
            return self.window_size - 1 + self.context
        return (self.window_size - 1) // 2 + self.context

    @property
    def after(self) -> int:
        return 0 if self.anchor == "end" else self.window_size // 2 + self.context

    @property
    def offsets(self) -> np.ndarray:
        return np.arange(-self.before, self.after + 1)


def _off(o: int) -> str:
    return f"{o:+d}"


def window_columns(features: list[str], spec: WindowSpec) -> list[str]:
    """Column names of a flattened window: ``feature@offset`` (offset-major), then ``pad@offset``."""
    cols = [f"{f}@{_off(o)}" for o in spec.offsets for f in features]
    return cols + [f"pad@{_off(o)}" for o in spec.offsets]


def build_windows(
    values: np.ndarray,
    anchors: np.ndarray,
    spec: WindowSpec,
    lo: np.ndarray | int = 0,
    hi: np.ndarray | int | None = None,
    columns: np.ndarray | None = None,
) -> np.ndarray:
    """Windows around ``anchors`` (row indices into ``values``, shape (n, f)) -> float32 (k, L*f + L).

    Positions outside ``[lo, hi)`` (per anchor or shared; default the whole
    series) are padded, so a window never reads across a series or split edge.
    ``columns`` (indices into ``window_columns``) builds only those, in that order: what a model
    trained on some of them (``train.top_inputs``) reads, without making the rest.
    """
    values = np.asarray(values, dtype=np.float32)
    n, f = values.shape
    anchors = np.asarray(anchors, dtype=np.int64)
    hi = n if hi is None else hi
    if columns is None:  # every column: whole rows gathered at once (the faster copy)
        idx = anchors[:, None] + spec.offsets[None, :]  # (k, L)
        inside = (idx >= np.asarray(lo).reshape(-1, 1)) & (idx < np.asarray(hi).reshape(-1, 1))
        gathered = values[np.clip(idx, 0, max(n - 1, 0))]  # (k, L, f)
        gathered[~inside] = 0.0
        return np.concatenate([gathered.reshape(len(anchors), -1), (~inside).astype(np.float32)], axis=1)
    size = len(spec.offsets)
    columns = np.asarray(columns, dtype=np.int64)
    out = np.empty((len(anchors), len(columns)), dtype=np.float32)
    # window_columns' layout: feature i at offset slot j is column j*f + i; pad@slot j is size*f + j.
    # One row gather per offset, of only the features the model reads there.
    for j, offset in enumerate(spec.offsets):
        at = np.flatnonzero((columns >= j * f) & (columns < (j + 1) * f))
        pad = np.flatnonzero(columns == size * f + j)
        if not (at.size or pad.size):
            continue
        rows = anchors + offset
        inside = (rows >= np.asarray(lo).reshape(-1)) & (rows < np.asarray(hi).reshape(-1))
        if at.size:
            block = values[np.clip(rows, 0, max(n - 1, 0))][:, columns[at] - j * f]
            block[~inside] = 0.0
            out[:, at] = block
        out[:, pad] = (~inside).astype(np.float32)[:, None]
    return out


def straddles(anchors: np.ndarray, spec: WindowSpec, lo: np.ndarray, hi: np.ndarray, n: int) -> np.ndarray:
    """True where an anchor's window would reach real candles outside ``[lo, hi)``.

    Positions beyond the series itself (before 0 or from n on) are padding, not a straddle.
    """
    first = np.maximum(anchors - spec.before, 0)
    last = np.minimum(anchors + spec.after, n - 1)
    return (first < lo) | (last >= hi)
