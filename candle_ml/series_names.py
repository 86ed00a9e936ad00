"""A candle file's pair and timeframe, for a file named as it was downloaded.

In order: a mapping (``ingest.names`` in params.yaml: file name -> ``PAIR_TIMEFRAME``); our own
``{PAIR}_{TIMEFRAME}`` names; the platforms' names (MetaTrader 4 ``EURUSD60.csv``, MetaTrader 5
``EURUSD_H1.csv``, Binance ``BTCUSDT-1h-2024-01.csv``, TradingView ``NASDAQ_AAPL, 1D.csv``,
Dukascopy ``EURUSD_Candlestick_1_Hour_BID_...csv``); else the whole stem is the pair and the
candles' median spacing gives the timeframe. A timeframe the name gives must agree with the
spacing, so a mislabelled file is refused, saying how to name it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from candle_ml.candles import PAIR_PATTERN, SERIES_FILE_RE
from candle_ml.errors import CandleError
from candle_ml.timeframes import parse_timeframe

MT_PERIODS = {"M": "m", "H": "h", "D": "d", "W": "w"}  # MetaTrader 5: M15, H1, D1, W1
MT4_MINUTES = {1: "1m", 5: "5m", 15: "15m", 30: "30m", 60: "1h", 240: "4h", 1440: "1d", 10080: "1w"}
DUKASCOPY_UNITS = {
    "s": "s",
    "m": "m",
    "min": "m",
    "mins": "m",
    "hour": "h",
    "hours": "h",
    "d": "d",
    "day": "d",
}
DUKASCOPY_UNITS |= {"days": "d", "w": "w", "week": "w", "weeks": "w"}
UNIT_SECONDS = (("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))

_PAIR = re.compile(rf"^{PAIR_PATTERN}$")
_MT5 = re.compile(rf"^(?P<pair>{PAIR_PATTERN}?)_(?P<unit>[MHDW])(?P<n>\d+)(?:_\d{{12}}_\d{{12}})?$")
_MT4 = re.compile(r"^(?P<pair>[A-Za-z][A-Za-z0-9.]*?)(?P<minutes>1|5|15|30|60|240|1440|10080)$")
_BINANCE = re.compile(rf"^(?P<pair>{PAIR_PATTERN}?)-(?P<tf>\d+[smhdw])-\d{{4}}-\d{{2}}(?:-\d{{2}})?$")
_TRADINGVIEW = re.compile(r"^(?:[A-Z0-9]+_)?(?P<pair>[A-Za-z0-9.\-]+), (?P<tf>\d+[SDW]?)(?:_[0-9a-f]+)?$")
_DUKASCOPY = re.compile(r"^(?P<pair>[A-Za-z0-9.]+)_Candlestick_(?P<n>\d+)_(?P<unit>[A-Za-z]+)_(?:BID|ASK)_")


@dataclass(frozen=True)
class SeriesName:
    pair: str
    timeframe: str
    how: str  # where it came from, for `candle-ml check`


def timeframe_of_spacing(times: np.ndarray) -> str | None:
    """The timeframe the candles' median spacing says (a daily stock chart's weekends do not move
    the median), or None for fewer than 2 candles or a spacing no whole unit gives."""
    if times.size < 2:
        return None
    step = int(np.median(np.diff(times)))
    for unit, seconds in UNIT_SECONDS:
        if step >= seconds and step % seconds == 0:
            return f"{step // seconds}{unit}"
    return None


def name_from_file(path: Path) -> tuple[str, str | None, str] | None:
    """(pair, timeframe or None, how) from the file name alone, or None when the stem is no pair."""
    stem = path.stem
    if m := SERIES_FILE_RE.match(stem):
        return m["pair"].upper(), m["timeframe"], "the file name (PAIR_TIMEFRAME)"
    if m := _MT5.match(stem):
        return m["pair"].upper(), f"{m['n']}{MT_PERIODS[m['unit']]}", "MetaTrader 5's file name"
    if m := _BINANCE.match(stem):
        return m["pair"].upper(), m["tf"], "Binance's file name"
    if m := _DUKASCOPY.match(stem):
        unit = DUKASCOPY_UNITS.get(m["unit"].lower())
        return m["pair"].upper(), f"{m['n']}{unit}" if unit else None, "Dukascopy's file name"
    if m := _TRADINGVIEW.match(stem):
        tf = m["tf"]
        tf = f"{tf[:-1]}{tf[-1].lower()}" if tf[-1].isalpha() else _minutes(int(tf))
        return m["pair"].upper(), tf, "TradingView's file name"
    if m := _MT4.match(stem):
        return (
            m["pair"].upper(),
            MT4_MINUTES[int(m["minutes"])],
            "MetaTrader 4's file name (symbol + minutes)",
        )
    if _PAIR.match(stem):
        return stem.upper(), None, "the file name"
    return None


def _minutes(n: int) -> str:
    return f"{n // 60}h" if n % 60 == 0 else f"{n}m"


def name_series(path: Path, times: np.ndarray, names: dict[str, str] | None = None) -> SeriesName:
    """The series' pair and timeframe (see the module's docstring); a clear error when neither the
    name nor the candles settle it, or when they disagree."""
    how_to = (
        f"rename it {{PAIR}}_{{TIMEFRAME}}{path.suffix} (e.g. EURUSD_1h{path.suffix}) or map it in "
        f"params.yaml: ingest: names: {{'{path.name}': EURUSD_1h}}"
    )
    if names and path.name in names:
        m = SERIES_FILE_RE.match(names[path.name])
        if not m:
            raise CandleError(
                f"ingest.names['{path.name}']: '{names[path.name]}' is not PAIR_TIMEFRAME (e.g. EURUSD_1h)",
                field="ingest.names",
                rule="PAIR_TIMEFRAME",
            )
        return SeriesName(m["pair"].upper(), m["timeframe"], "ingest.names in params.yaml")
    named = name_from_file(path)
    if named is None:
        raise CandleError(
            f"{path.name}: the file name says no pair; {how_to}", field="pair", rule="series name"
        )
    pair, timeframe, how = named
    spacing = timeframe_of_spacing(times)
    if timeframe is None:
        if spacing is None:
            raise CandleError(
                f"{path.name}: no timeframe in the name and none in the candles' spacing; {how_to}",
                field="timeframe",
                rule="series name",
            )
        return SeriesName(pair, spacing, f"{how}; the timeframe from the candles' spacing")
    name_s, spacing_s = parse_timeframe(timeframe), parse_timeframe(spacing) if spacing else None
    if name_s is None:
        raise CandleError(
            f"{path.name}: {how} gives the timeframe '{timeframe}', which candle-ml cannot read; {how_to}",
            field="timeframe",
            rule="series name",
        )
    # closer than the bars' size, or most bars a whole bar apart or more: not that timeframe
    if spacing_s is not None and not name_s <= spacing_s < 2 * name_s:
        if how.startswith("MetaTrader 4") and spacing:  # a guess (US30 is a symbol): the candles decide
            return SeriesName(
                path.stem.upper(), spacing, "the file name; the timeframe from the candles' spacing"
            )
        raise CandleError(
            f"{path.name}: {how} says {timeframe} but the candles are {spacing} apart; {how_to}",
            field="timeframe",
            rule="name agrees with the candles",
        )
    return SeriesName(pair, timeframe, how)


def name_candle_file(
    path: Path,
    names: dict[str, str] | None = None,
    naive_timezone: str = "UTC",
    time_column: str | None = None,
) -> SeriesName:
    """``name_series`` of a file not read yet (``candle-ml predict``, ``batch``): its first candles
    give the spacing, so every file is named, and checked against its name, as ingest does."""
    from candle_ml.candle_files import iter_series_file

    first = next(iter_series_file(path, naive_timezone, time_column, 1_000), None)
    times = first[0]["time"].dropna().to_numpy() if first is not None else np.empty(0)
    return name_series(path, times, names)
