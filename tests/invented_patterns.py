"""Patterns no rule in candle-ml knows: a trader's own setups, for the simulated traders.

The learning curve (``learning_curve.own_patterns``) draws the complete truth of each pattern
from these definitions, lets simulated traders mark it the way people do (ends a candle or two
off, 60 % of occurrences, 5 % mislabelled) and scores the model trained on those marks against
the truth. They live in the tests, not the library: the library must learn them from marks alone.

Each function takes a series' candles (polars, ``open``/``high``/``low``/``close``) and returns a
boolean array, True on the **last** candle of an occurrence; its ``length`` attribute is how many
candles an occurrence covers, ending there. The definitions follow public descriptions of common
setups (the rules are exact so the truth is known; the thresholds make each one a few percent of
candles, as a trader's favourite setup is):

* ``key_reversal`` (2): an outside bar that reverses: the second candle trades below the first's
  low and closes above its high.
* ``inside_breakout`` (3): a mother bar, an inside bar within its range, then a close above the
  mother bar's high (the inside-bar breakout).
* ``bull_flag`` (5): a strong up candle (body over 1.5x the average body of the previous 10), three
  candles holding in its upper half, then a close above everything since the pole.
* ``nr7_breakout`` (8): the seventh candle has the narrowest range of seven (Crabel's NR7) and the
  eighth closes above the seven candles' high.
"""

from __future__ import annotations

import numpy as np
import polars as pl


def _ohlc(candles: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return tuple(candles[k].to_numpy().astype(np.float64) for k in ("open", "high", "low", "close"))  # type: ignore[return-value]


def _back(x: np.ndarray, k: int) -> np.ndarray:
    """x shifted k candles later (NaN where there is no candle k back)."""
    out = np.full(x.shape, np.nan)
    if k < x.size:
        out[k:] = x[: x.size - k]
    return out


def key_reversal(candles: pl.DataFrame) -> np.ndarray:
    _, h, low, c = _ohlc(candles)
    return (low < _back(low, 1)) & (c > _back(h, 1))


key_reversal.length = 2  # type: ignore[attr-defined]


def inside_breakout(candles: pl.DataFrame) -> np.ndarray:
    _, h, low, c = _ohlc(candles)
    inside = (_back(h, 1) < _back(h, 2)) & (_back(low, 1) > _back(low, 2))
    return inside & (c > _back(h, 2))


inside_breakout.length = 3  # type: ignore[attr-defined]


def bull_flag(candles: pl.DataFrame) -> np.ndarray:
    o, h, low, c = _ohlc(candles)
    body = np.abs(c - o)
    avg_body = pl.Series(body).rolling_mean(10).shift(1).to_numpy()
    pole = (c > o) & (body > 1.5 * avg_body)
    pole_at = _back(pole.astype(np.float64), 4) == 1.0
    mid = (_back(o, 4) + _back(c, 4)) / 2
    holds = np.ones(c.size, dtype=bool)
    for k in (1, 2, 3):
        holds &= _back(low, k) > mid
    top = np.fmax.reduce([_back(h, k) for k in (1, 2, 3, 4)])
    return pole_at & holds & (c > top)


bull_flag.length = 5  # type: ignore[attr-defined]


def nr7_breakout(candles: pl.DataFrame) -> np.ndarray:
    _, h, low, c = _ohlc(candles)
    rng = h - low
    narrowest = np.ones(c.size, dtype=bool)
    for k in range(2, 8):
        narrowest &= _back(rng, 1) < _back(rng, k)
    top = np.fmax.reduce([_back(h, k) for k in range(1, 8)])
    return narrowest & (c > top)


nr7_breakout.length = 8  # type: ignore[attr-defined]
