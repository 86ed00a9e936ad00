"""Higher-timeframe context: a series resampled into longer candles, without look-ahead.

A candle at Unix time ``t`` belongs to the higher-timeframe bucket ``(t - origin) // seconds``:
buckets start at UTC midnight multiples (4h: 00:00, 04:00, ...; 1d: 00:00 UTC) and weeks on
Monday 00:00 UTC. Within the candles given:

- the first bucket may have begun before them, so it is never used (a request cut mid-day and the
  whole series then agree on every later bucket);
- the last bucket may still be in progress, so nothing treats it as a finished candle;
- a candle sees only the buckets before its own, all of which closed before it opened.

``higher_timeframe_arrays`` turns that into features (``featurize.higher_timeframes``);
``candle_ml.confirmation`` says, for a predicted span, on which of them the same pattern shows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from candle_ml.errors import FeatureError

# The one timeframe grammar (file names, params, request fields, the OpenAPI schema): a count
# from 1 and a unit, case-insensitive. Written without flags, so JSON Schema (ECMA) reads it alike.
_COUNT, _UNIT = r"0{0,8}[1-9][0-9]{0,5}", r"[sS]|[mM]|[mM][iI][nN]|[hH]|[dD]|[wW]"
TIMEFRAME_PATTERN = rf"{_COUNT}(?:{_UNIT})"
TIMEFRAME = re.compile(rf"(?P<n>{_COUNT})(?P<unit>{_UNIT})")
UNIT_SECONDS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
WEEK = 7 * 86400
WEEK_ORIGIN = 4 * 86400  # 1970-01-01 was a Thursday; Monday 1970-01-05 starts the weeks
REL_CLIP = 100.0


def parse_timeframe(text: str) -> int | None:
    """``1d`` -> 86400, ``4h`` -> 14400, ``15m`` -> 900; None for any other form."""
    match = TIMEFRAME.fullmatch(text)
    if not match:
        return None
    return int(match["n"]) * UNIT_SECONDS[match["unit"].lower()]


def bucket_ids(times: np.ndarray, seconds: int) -> np.ndarray:
    origin = WEEK_ORIGIN if seconds % WEEK == 0 else 0
    return (np.asarray(times, dtype=np.int64) - origin) // seconds


def bucket_start(bucket: int, seconds: int) -> int:
    return bucket * seconds + (WEEK_ORIGIN if seconds % WEEK == 0 else 0)


@dataclass(frozen=True)
class Resampled:
    """Higher-timeframe candles of every bucket the candles touch (first and last included)."""

    seconds: int
    bucket: np.ndarray  # bucket id of each higher-timeframe candle, increasing
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    of_candle: np.ndarray  # per lower candle: the position of its bucket in ``bucket``

    @property
    def complete(self) -> slice:
        """The buckets known to be whole: all but the first and the last."""
        return slice(1, max(1, self.bucket.size - 1))


def resample(
    times: np.ndarray, o: np.ndarray, h: np.ndarray, low: np.ndarray, c: np.ndarray, seconds: int
) -> Resampled:
    """OHLC per bucket. Times increase strictly, so each bucket is one run of candles."""
    ids = bucket_ids(times, seconds)
    n = ids.size
    if n == 0:
        empty = np.empty(0)
        return Resampled(seconds, ids, empty, empty, empty, empty, ids)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], n] - 1
    return Resampled(
        seconds,
        ids[starts],
        o[starts],
        np.maximum.reduceat(h, starts),
        np.minimum.reduceat(low, starts),
        c[ends],
        np.repeat(np.arange(starts.size), ends - starts + 1),
    )


def _ratio(num: np.ndarray, den: np.ndarray, default: float) -> np.ndarray:
    out = np.divide(num, den, out=np.full(num.shape, default), where=den > 0)
    return np.clip(out, -REL_CLIP, REL_CLIP)


def higher_timeframe_arrays(
    times: np.ndarray, o: np.ndarray, h: np.ndarray, low: np.ndarray, c: np.ndarray, timeframes: list[str]
) -> dict[str, np.ndarray]:
    """Per higher timeframe ``H``, features of the last two finished ``H`` candles before each
    candle's own bucket, all relative to those candles' ranges (no history beyond them needed):

    - ``htf_H_body_to_range``: signed body of the last one (+1 all bullish body, -1 all bearish);
    - ``htf_H_upper_wick_to_range`` / ``htf_H_lower_wick_to_range``: its wicks;
    - ``htf_H_close_position``: this candle's close within the last one's range (0 low, 1 high);
    - ``htf_H_change_to_range``: the last one's close minus the one before, in its range;
    - ``htf_H_range_change``: its range against the one before (volatility expanding or not).

    NaN until a candle has two finished buckets before its own (warm-up: three buckets).
    """
    columns: dict[str, np.ndarray] = {}
    for tf in timeframes:
        seconds = parse_timeframe(tf)
        if seconds is None:
            raise ValueError(f"higher timeframe '{tf}' is not of the form <n>s|m|h|d|w")
        r = resample(times, o, h, low, c, seconds)
        rng = r.high - r.low
        top, bottom = np.maximum(r.open, r.close), np.minimum(r.open, r.close)
        per_bucket = {
            "body_to_range": _ratio(r.close - r.open, rng, 0.0),
            "upper_wick_to_range": _ratio(r.high - top, rng, 0.0),
            "lower_wick_to_range": _ratio(bottom - r.low, rng, 0.0),
            "change_to_range": _ratio(r.close - np.r_[np.nan, r.close[:-1]], rng, 0.0),
            "range_change": _ratio(rng, np.r_[np.nan, rng[:-1]], 1.0),
        }
        last = r.of_candle - 1  # the bucket before each candle's own
        valid = last >= 2  # it and the one before it are whole (bucket 0 may be partial)
        at = np.where(valid, last, 0)
        prefix = f"htf_{tf}_"
        for name, values in per_bucket.items():
            columns[prefix + name] = np.where(valid, values[at], np.nan)
        columns[prefix + "close_position"] = np.where(valid, _ratio(c - r.low[at], rng[at], 0.5), np.nan)
    return columns


def check_shorter(key: str, timeframe: str, higher: list[str]) -> None:
    """A series' own timeframe must be shorter than each higher one, and divide it."""
    if not higher:
        return
    own = parse_timeframe(timeframe)
    if own is None:
        raise FeatureError(
            f"{key}: timeframe '{timeframe}' is not of the form <n>s|m|h|d|w, so it cannot be resampled "
            f"into featurize.higher_timeframes {higher}; rename the file or set higher_timeframes: []"
        )
    for tf in higher:
        seconds = parse_timeframe(tf)
        assert seconds is not None
        if seconds <= own or seconds % own:
            raise FeatureError(
                f"{key}: featurize.higher_timeframes '{tf}' must be a multiple of the series' own timeframe "
                f"'{timeframe}' and longer than it; list only timeframes above every series'"
            )
