"""How much history a served request needs before its features match the whole series'.

Exponential indicators (RSI, ATR, ADX...: TA-Lib's "unstable period") depend on every
earlier candle, so a request carrying only the tail of a series sees slightly different
values until the tail's own start is forgotten. The ``featurize`` stage measures that here
on the real series; the model bundle serves predictions only to candles with that much history.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from candle_ml.candles import CANDLE_COLUMNS
from candle_ml.config import FeaturizeParams
from candle_ml.errors import FeatureError
from candle_ml.features import feature_columns, featurize

# Convergence is measured on chunks starting this deep into a series (so the full-history
# reference has itself converged) and this long; the measured count is padded by
# HISTORY_SAFETY because other series may start further from their steady state.
CONVERGENCE_START = 500
CONVERGENCE_CHUNK = 1000
CONVERGENCE_STEP = 500
HISTORY_SAFETY = 1.25


def unconverged_rows(
    full: pl.DataFrame, chunk_start: int, cfg: FeaturizeParams, tolerance: float
) -> tuple[int, str | None]:
    """Leading rows of a chunk whose features differ from the full series' by more than ``tolerance``.

    Exponential indicators (RSI, ATR, ADX...: TA-Lib's "unstable period") depend on every
    earlier candle, so a request carrying a chunk of a series sees slightly different
    values until the chunk's own start is forgotten. ``full`` is ``featurize`` of the whole
    series; the chunk ``[chunk_start, chunk_start + CONVERGENCE_CHUNK)`` is featurized on its
    own. Differences are relative to each column's typical size. Returns the count and the
    column that converged last (None when none differs).
    """
    per_column = unconverged_per_column(full, chunk_start, cfg, tolerance)
    rows = max(per_column.values(), default=0)
    if rows == 0:
        return 0, None
    return rows, next(c for c, n in per_column.items() if n == rows)


def unconverged_per_column(
    full: pl.DataFrame, chunk_start: int, cfg: FeaturizeParams, tolerance: float
) -> dict[str, int]:
    """``unconverged_rows`` of each feature column on its own: a model that reads only some
    features needs only their history."""
    cols = feature_columns(full)
    candles = full.select(CANDLE_COLUMNS)[chunk_start : chunk_start + CONVERGENCE_CHUNK]
    ref = full.select(cols)[chunk_start : chunk_start + candles.height].to_numpy()
    got = featurize(candles, cfg).select(cols).to_numpy()
    scale = np.nanmedian(np.abs(full.select(cols).to_numpy()), axis=0)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    both_nan = np.isnan(ref) & np.isnan(got)
    differs = ~both_nan & ~(np.abs(ref - got) <= tolerance * np.maximum(np.abs(ref), scale))
    # Per column: one past the last row that differs (0 when none does).
    last = np.where(differs.any(axis=0), differs.shape[0] - np.argmax(differs[::-1], axis=0), 0)
    return dict(zip(cols, (int(x) for x in last), strict=True))


def history_to_converge(
    series: dict[str, pl.DataFrame], cfg: FeaturizeParams, tolerance: float
) -> tuple[int | None, dict]:
    """Candles a request needs before its features match the full series within ``tolerance``.

    Measured on every chunk start ``CONVERGENCE_START, +STEP, ...`` of every series long
    enough, padded by ``HISTORY_SAFETY``. None when no series is long enough to measure.
    A feature still differing at the end of a chunk depends on the whole history (OBV, AD):
    no request could reproduce it, so that is an error naming the column.
    """
    worst, where = 0, None
    by_column: dict[str, int] = {}
    for key, full in series.items():
        for start in range(CONVERGENCE_START, full.height - CONVERGENCE_CHUNK // 2 + 1, CONVERGENCE_STEP):
            per_column = unconverged_per_column(full, start, cfg, tolerance)
            by_column = {c: max(n, by_column.get(c, 0)) for c, n in per_column.items()}
            rows = max(per_column.values(), default=0)
            column = next((c for c, n in per_column.items() if n == rows), None) if rows else None
            chunk = min(CONVERGENCE_CHUNK, full.height - start)
            if rows > chunk * 0.9:
                raise FeatureError(
                    f"featurize: feature '{column}' still differs after {chunk} candles when {key} is cut "
                    f"at row {start + 1}: it depends on the whole history (cumulative indicators such as "
                    "OBV or AD do), so a served request could never reproduce it; remove it from featurize"
                )
            if rows > worst:
                worst, where = rows, (key, start, column)
    if where is None and not any(
        f.height >= CONVERGENCE_START + CONVERGENCE_CHUNK // 2 for f in series.values()
    ):
        return None, {}
    needed = int(np.ceil(worst * HISTORY_SAFETY))
    return needed, {
        "measured": worst,
        "series": where[0] if where else None,
        "column": where[2] if where else None,
        # each column's own need, padded alike
        "by_column": {c: int(np.ceil(n * HISTORY_SAFETY)) for c, n in by_column.items()},
    }


def leading_undefined(frame: pl.DataFrame) -> dict[str, int]:
    """Per feature column, its leading rows without a value (its own warm-up)."""
    out = {}
    for c in feature_columns(frame):
        bad = ~np.isfinite(frame[c].to_numpy())
        out[c] = int(np.argmin(bad)) if not bad.all() else bad.size
    return out


@dataclass(frozen=True)
class ServedHistory:
    """Candles of history a served prediction needs, in all and per feature column."""

    candles: int  # every feature converged (and past its warm-up)
    measured: bool  # False: no series was long enough; only the warm-up is known
    how: str  # a sentence for the log
    by_column: dict[str, int]  # each column's own: its warm-up, and its convergence when measured
    warmup_by_column: dict[str, int]  # each column's leading undefined rows, longest over the series


def served_history(
    full: dict[str, pl.DataFrame], warmup: dict[str, int], cfg: FeaturizeParams
) -> ServedHistory:
    """Candles of history a served prediction needs, whether that was measured, and how.

    The measured convergence when some series is long enough to measure it, else the
    longest warm-up (served predictions may then differ slightly from whole-series ones).
    Per column too: a model that reads some features (``train.top_inputs``) needs only theirs.
    """
    longest_warmup = max(warmup.values(), default=0)
    warmup_by_column: dict[str, int] = {}
    for frame in full.values():
        for c, n in leading_undefined(frame).items():
            warmup_by_column[c] = max(n, warmup_by_column.get(c, 0))
    history, detail = history_to_converge(full, cfg, cfg.convergence_tolerance)
    if history is None:
        return ServedHistory(
            longest_warmup,
            False,
            (
                f"no series has {CONVERGENCE_START + CONVERGENCE_CHUNK // 2} candles to measure how long the "
                f"indicators take to converge; served predictions will need only the warm-up "
                f"({longest_warmup} "
                "candles) and may differ from whole-series ones"
            ),
            dict(warmup_by_column),
            warmup_by_column,
        )
    history = max(history, longest_warmup)
    return ServedHistory(
        history,
        True,
        (
            f"features converge to {cfg.convergence_tolerance:g} within {history} candles (measured "
            f"{detail['measured']} on {detail['series']}, last column {detail['column']})"
        ),
        {c: max(n, detail["by_column"].get(c, 0)) for c, n in warmup_by_column.items()},
        warmup_by_column,
    )
