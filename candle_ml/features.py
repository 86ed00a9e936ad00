"""Features: candles -> candle shape features + TA-Lib indicators + custom features.

``featurize(candles, cfg)`` is the pure per-series core; the ``featurize`` stage, the
model bundle's ``predict`` (so evaluation and the server) all call exactly it, so
training and serving share preprocessing by construction. It returns every input row;
rows whose features are not yet defined (indicator warm-up) hold NaN and are dropped
per series (``drop_warmup``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from candle_ml.candles import CANDLE_COLUMNS
from candle_ml.config import FeaturizeParams
from candle_ml.errors import CandleError, FeatureError
from candle_ml.indicators import indicator_arrays, indicator_features
from candle_ml.timeframes import higher_timeframe_arrays

# A scale below this fraction of the close (a run of zero-range candles) is floored,
# so relative features stay finite; they are also clipped to +-REL_CLIP.
MIN_SCALE_FRACTION = 1e-6
REL_CLIP = 100.0
BREAKOUT_LOOKBACK = 7  # the close against the previous 1..7 candles' extremes (patterns of up to 8)


def candle_features(candles: pl.DataFrame, scale_window: int) -> pl.DataFrame:
    """Shape features of each candle as columns (``candle_arrays``)."""
    o, h, low, c = (
        candles[k].to_numpy().astype(np.float64, copy=False) for k in ("open", "high", "low", "close")
    )
    return pl.DataFrame(candle_arrays(o, h, low, c, scale_window))


def candle_arrays(
    o: np.ndarray, h: np.ndarray, low: np.ndarray, c: np.ndarray, scale_window: int
) -> dict[str, np.ndarray]:
    """Shape features of each candle, raw (price units) and scale-free (``*_rel``).

    Scale-free versions divide by the mean range of the previous ``scale_window``
    candles (TA-Lib compares candle sizes with the same kind of average), so one
    model serves $1.07 FX and $500 stocks, and survives unadjusted splits.
    numpy, not polars expressions: a polars select of this size costs ~7 ms of planning
    whatever the length, which is most of a served request; this costs ~0.3 ms.
    """
    n = len(c)
    body_top, body_bottom = np.maximum(o, c), np.minimum(o, c)
    rng = h - low
    body = np.abs(c - o)
    upper = h - body_top
    lower = body_bottom - low
    wicks = upper + lower

    def prev(x: np.ndarray, k: int = 1) -> np.ndarray:
        out = np.full(n, np.nan)
        out[k:] = x[: n - k] if n > k else out[k:]
        return out

    def prev_mean(x: np.ndarray) -> np.ndarray:
        # Mean over the previous N candles, not including this one (NaN until N exist).
        # Each window is summed on its own, so the value never depends on older history.
        out = np.full(n, np.nan)
        if n > scale_window:
            out[scale_window:] = np.lib.stride_tricks.sliding_window_view(x, scale_window).mean(axis=1)[:-1]
        return out

    prev_extreme = _prev_extreme

    def floored(avg: np.ndarray) -> np.ndarray:
        return np.maximum(avg, c * MIN_SCALE_FRACTION)  # NaN (warm-up) stays NaN

    scale = floored(prev_mean(rng))
    avg_body = floored(prev_mean(body))

    def rel(x: np.ndarray, denom: np.ndarray = scale) -> np.ndarray:
        return np.clip(x / denom, -REL_CLIP, REL_CLIP)

    def safe_ratio(num: np.ndarray, den: np.ndarray, default: float) -> np.ndarray:
        return np.divide(num, den, out=np.full(n, default), where=den > 0)

    prev_close = prev(c)
    # TA-Lib's "near" (candle setting Near: 0.2 x the mean range of the 5 candles before the
    # previous one) decides a hammer's and a hanging man's body against the previous candle's low
    # and high: those two distances in that unit read the rule itself, not the bundled stocks'
    # typical candle (the 10-candle scale and the 5-candle one differ where volatility cycles
    # within a day: a 24-hour market's hanging man 0.70 -> 0.91, hammer 0.82 -> 0.93).
    near = floored(prev(_prev_mean_of(rng, 5)))
    body_mid = (o + c) / 2
    tiny_body = scale * 0.01  # keeps shadow/body ratios finite for doji-like bodies
    columns = dict(
        range=rng,
        body_size=body,
        body_direction=np.sign(c - o),
        upper_wick=upper,
        lower_wick=lower,
        # Share of the wicks that is above the body: 1 = all upper, 0 = all lower, 0.5 = none/even.
        wick_ratio=safe_ratio(upper, wicks, 0.5),
        body_to_range=safe_ratio(body, rng, 0.0),
        gap=o - prev_close,
        range_rel=rel(rng),
        body_rel=rel(body),
        upper_wick_rel=rel(upper),
        lower_wick_rel=rel(lower),
        gap_rel=rel(o - prev_close),
        close_change_rel=rel(c - prev_close),
        high_change_rel=rel(h - prev(h)),
        low_change_rel=rel(low - prev(low)),
        body_top_change_rel=rel(body_top - prev(body_top)),
        body_bottom_change_rel=rel(body_bottom - prev(body_bottom)),
        body_vs_avg_body_rel=rel(body, avg_body),
        # Relations that two- and three-candle patterns are defined by: opening beyond the
        # previous extreme (piercing, dark cloud), closing past the previous body's midpoint,
        # bodies gapping away from the previous body (stars), closing into the body two back.
        open_vs_prev_high_rel=rel(o - prev(h)),
        open_vs_prev_low_rel=rel(o - prev(low)),
        close_vs_prev_mid_rel=rel(c - prev(body_mid)),
        body_gap_up_rel=rel(body_bottom - prev(body_top)),
        body_gap_down_rel=rel(prev(body_bottom) - body_top),
        close_vs_mid_2back_rel=rel(c - prev(body_mid, 2)),
        # Hammer-like shapes: shadows against the body itself, and where the body sits
        # against the previous candle's extremes (the trend context TA-Lib checks).
        lower_wick_to_body_rel=rel(lower, np.maximum(body, tiny_body)),
        upper_wick_to_body_rel=rel(upper, np.maximum(body, tiny_body)),
        body_bottom_vs_prev_low_rel=rel(body_bottom - prev(low), near),
        body_top_vs_prev_high_rel=rel(body_top - prev(h)),
        # A hanging man's whole body sits at or above the previous high (TA-Lib: within "near").
        body_bottom_vs_prev_high_rel=rel(body_bottom - prev(h), near),
        # Penetration into an earlier body as a share of that body: TA-Lib's piercing/dark
        # cloud (0.5) and star (0.3) thresholds are fixed numbers on exactly this ratio.
        close_into_prev_body_rel=rel(c - prev(c), np.maximum(prev(body), tiny_body)),
        close_into_body_2back_rel=rel(c - prev(c, 2), np.maximum(prev(body, 2), tiny_body)),
    )
    # setup_*: where the close sits against the previous k candles' extremes (Donchian
    # breakouts), and a range against the narrowest of the previous k (Crabel's NR4/NR7): the
    # relations many traders' own setups are defined by, readable at a setup's last candle in
    # one split. Scale-free like *_rel, but read only by models of a trader's own labels
    # (dataset.own_label_features): the rules' labels do not need them, and generalize worse
    # to other markets with them (a 24-hour market: shooting star 0.0, span F1 0.935 -> 0.863).
    for k in range(1, BREAKOUT_LOOKBACK + 1):
        columns[f"setup_close_vs_high_{k}"] = rel(c - prev_extreme(h, k, np.max))
        columns[f"setup_close_vs_low_{k}"] = rel(c - prev_extreme(low, k, np.min))
    for k in (3, 6):
        columns[f"setup_range_vs_min_{k}"] = rel(rng, np.maximum(prev_extreme(rng, k, np.min), scale * 0.01))
    return columns


def _prev_mean_of(x: np.ndarray, k: int) -> np.ndarray:
    """Mean over the previous ``k`` values, not this one (NaN until k exist)."""
    return _prev_extreme(x, k, np.mean)


def _prev_extreme(x: np.ndarray, k: int, reduce: Any) -> np.ndarray:
    """``reduce`` over the previous ``k`` values, not this one (NaN until k exist)."""
    out = np.full(x.size, np.nan)
    if x.size > k:
        out[k:] = reduce(np.lib.stride_tricks.sliding_window_view(x, k), axis=1)[:-1]
    return out


def load_custom(entry: str, where: str = "featurize.custom") -> Callable[[pl.DataFrame], Any]:
    """``path/to/file.py:function`` or ``package.module:function`` -> the function (``where``: the
    params key that named it, for the error)."""
    target, sep, func_name = entry.rpartition(":")
    if not sep or not target or not func_name:
        raise FeatureError(f"{where} '{entry}': expected 'path/to/file.py:function' or 'module:function'")
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise FeatureError(f"{where} '{entry}': file {path} not found")
            mod_name = f"candle_ml_custom_{abs(hash(str(path.resolve())))}"
            spec = importlib.util.spec_from_file_location(mod_name, path)
            if spec is None or spec.loader is None:
                raise FeatureError(f"{where} '{entry}': {path} cannot be imported as Python")
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except FeatureError:
        raise
    except Exception as exc:
        raise FeatureError(
            f"{where} '{entry}': cannot import {target}: {type(exc).__name__}: {exc}"
        ) from None
    fn = getattr(module, func_name, None)
    if not callable(fn):
        raise FeatureError(f"{where} '{entry}': {target} has no function '{func_name}'")
    return fn


def custom_features(frame: pl.DataFrame, entries: list[str]) -> pl.DataFrame:
    """Call each custom function with the frame so far; each returns one or more named columns."""
    for entry in entries:
        fn = load_custom(entry)
        try:
            result = fn(frame)
        except Exception as exc:
            raise FeatureError(f"featurize.custom '{entry}' raised {type(exc).__name__}: {exc}") from None
        if isinstance(result, pd.Series | pd.DataFrame):
            result = pl.from_pandas(
                result.reset_index(drop=True) if isinstance(result, pd.DataFrame) else result.to_frame()
            )
        if isinstance(result, pl.Series):
            result = result.to_frame()
        elif isinstance(result, dict):
            result = pl.DataFrame({k: np.asarray(v, dtype=np.float64) for k, v in result.items()})
        if not isinstance(result, pl.DataFrame) or result.width == 0:
            raise FeatureError(
                f"featurize.custom '{entry}': must return a named polars/pandas Series, a DataFrame "
                "or a dict of columns, "
                f"got {type(result).__name__}"
            )
        if result.height != frame.height:
            raise FeatureError(
                f"featurize.custom '{entry}': returned {result.height} rows for {frame.height} candles"
            )
        clash = [c for c in result.columns if c in frame.columns]
        if clash:
            raise FeatureError(
                f"featurize.custom '{entry}': column(s) {', '.join(clash)} already exist; rename them"
            )
        non_numeric = [c for c, t in result.schema.items() if not t.is_numeric()]
        if non_numeric:
            raise FeatureError(
                f"featurize.custom '{entry}': column(s) {', '.join(non_numeric)} are not numeric"
            )
        frame = frame.hstack(result.cast({c: pl.Float64 for c in result.columns}).fill_null(float("nan")))
    return frame


def _checked_prices(candles: pl.DataFrame) -> dict[str, np.ndarray]:
    missing = [c for c in CANDLE_COLUMNS if c not in candles.columns]
    if missing:
        raise CandleError(f"featurize: candles lack column(s) {', '.join(missing)}")
    prices = {k: candles[k].cast(pl.Float64).to_numpy() for k in ("open", "high", "low", "close", "volume")}
    # TA-Lib does not handle NaN mid-series (one NaN blanks its averages): refuse it here.
    bad = np.logical_or.reduce([~np.isfinite(x) for x in prices.values()])
    if bad.any():
        row = int(np.argmax(bad))
        raise CandleError(
            f"featurize: candle row {row + 1} has a non-finite price or volume; validate candles first"
        )
    return prices


def featurize(candles: pl.DataFrame, cfg: FeaturizeParams) -> pl.DataFrame:
    """Pure per-series core: canonical candles in, candles + every feature column out (same rows)."""
    prices = _checked_prices(candles)
    candles = candles.select(CANDLE_COLUMNS).cast({c: pl.Float64 for c in CANDLE_COLUMNS if c != "time"})
    frame = pl.concat(
        [
            candles,
            candle_features(candles, cfg.scale_window),
            indicator_features(candles, cfg.indicators),
            pl.DataFrame(context_arrays(candles["time"].to_numpy(), prices, cfg)),
        ],
        how="horizontal",
    )
    return custom_features(frame, cfg.custom)


def context_arrays(
    times: np.ndarray, p: dict[str, np.ndarray], cfg: FeaturizeParams
) -> dict[str, np.ndarray]:
    """Higher-timeframe features (``featurize.higher_timeframes``; none by default)."""
    if not cfg.higher_timeframes:
        return {}
    return higher_timeframe_arrays(times, p["open"], p["high"], p["low"], p["close"], cfg.higher_timeframes)


def feature_matrix(candles: pl.DataFrame, cfg: FeaturizeParams, columns: list[str]) -> tuple[np.ndarray, int]:
    """``columns`` of ``featurize`` as float32 from the first row where all of them are defined,
    and that row: the same numbers, without a polars frame per request (~1.5 ms of a
    500-candle prediction), and only what ``columns`` needs (indicators the model never reads
    are not computed). Custom features take the frame itself, so with them this goes through
    ``featurize``."""
    if cfg.custom:
        frame = featurize(candles, cfg).select(columns)
        first = warm_start({c: frame[c].to_numpy() for c in columns}, frame.height)
        return frame.slice(first).to_numpy().astype(np.float32), first
    p = _checked_prices(candles)
    wanted = set(columns)
    made = candle_arrays(p["open"], p["high"], p["low"], p["close"], cfg.scale_window)
    made |= indicator_arrays(p, cfg.indicators, wanted)
    if any(c.startswith("htf_") for c in wanted):
        made |= context_arrays(candles["time"].to_numpy(), p, cfg)
    missing = [c for c in columns if c not in made]
    if missing:
        raise FeatureError(f"featurize: this configuration makes no column(s) {', '.join(missing)}")
    arrays = {c: made[c] for c in columns}
    n = len(p["close"])
    first = warm_start(arrays, n)
    # Each column written as a contiguous row of the transpose, then one transposing copy: ~4x
    # faster than writing strided columns, and never every feature stacked as float64.
    out = np.empty((len(columns), n - first), dtype=np.float32)
    for j, c in enumerate(columns):
        out[j] = arrays[c][first:]
    return np.ascontiguousarray(out.T), first


def feature_columns(frame: pl.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in CANDLE_COLUMNS]


def warm_start(arrays: dict[str, np.ndarray], n: int) -> int:
    """The first of ``n`` rows where every feature (named arrays) is defined; a NaN after it is
    an error naming the row and the columns, not warm-up. No matrix of them all is made."""
    bad = np.logical_or.reduce([~np.isfinite(a) for a in arrays.values()]) if arrays else np.zeros(n, bool)
    first = int(np.argmin(bad)) if not bad.all() else bad.size
    if bad[first:].any():
        row = first + int(np.argmax(bad[first:]))
        cols = [c for c, a in arrays.items() if not np.isfinite(a[row])]
        raise FeatureError(f"featurize: NaN after warm-up at row {row + 1} in {', '.join(cols)}")
    return first


def drop_warmup(frame: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Drop the leading warm-up rows of one series; a NaN after them is an error, not warm-up."""
    names = feature_columns(frame)
    first = warm_start({c: frame[c].to_numpy() for c in names}, frame.height)
    return frame.slice(first), first
