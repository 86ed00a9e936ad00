"""A candle file's headers and times: the column aliases (case-insensitive) that map a header onto
the canonical columns, and timestamps of any common form, an exact format or an epoch number
turned into Unix seconds."""

from __future__ import annotations

import numpy as np
import pandas as pd

from candle_ml.candles import PRICE_COLUMNS
from candle_ml.errors import CandleError


def epoch_seconds(values: pd.Series) -> np.ndarray:
    """Epoch numbers -> seconds: microseconds above 1e14, milliseconds above 1e11, else seconds."""
    x = values.astype("float64").to_numpy(copy=True)
    x = np.where(np.abs(x) > 1e14, x / 1e6, np.where(np.abs(x) > 1e11, x / 1e3, x))
    return np.where(np.isfinite(x), np.floor(x), np.nan)


def strptime_seconds(text: pd.Series, fmt: str, naive_timezone: str) -> np.ndarray:
    """Times in one exact format -> Unix seconds (NaN where a time does not fit the format)."""
    ts = pd.to_datetime(text, format=fmt, errors="coerce", utc="%z" in fmt)
    if "%z" not in fmt:
        ts = ts.dt.tz_localize(naive_timezone, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    ns = ts.to_numpy(dtype="datetime64[ns]").astype("int64").astype("float64")
    return np.where(ts.isna().to_numpy(), np.nan, np.floor(ns / 1e9))


# Lower-cased source header -> canonical name.
COLUMN_ALIASES = {
    **{
        a: "time"
        for a in ("time", "date", "datetime", "timestamp", "ts", "date_time", "time_utc", "timestamp_utc")
    },
    **{a: "open" for a in ("open", "o", "open_price")},
    **{a: "high" for a in ("high", "h", "high_price")},
    **{a: "low" for a in ("low", "l", "low_price")},
    **{a: "close" for a in ("close", "c", "close_price", "last")},
    **{a: "volume" for a in ("volume", "v", "vol", "tick_volume", "tickvol")},
}


_TZ_SUFFIX_RE = r"(?:Z|[+-]\d{2}:?\d{2})$"


def _unnamed(col: str) -> bool:
    """pandas' name for a column with an empty header, such as the index ``df.to_csv()`` writes."""
    return not col.strip() or col.startswith("Unnamed: ")


def canonical_columns(columns: list[str], source: str, time_column: str | None = None) -> dict[str, str]:
    """Map source headers onto the canonical names (case-insensitive aliases).

    ``time_column`` names the time column outright. Without it and without a time alias, an
    unnamed first column is the time: what pandas' ``df.to_csv()`` writes for a date index.
    """
    if time_column is not None and time_column not in columns:
        raise CandleError(
            f"{source}: no column '{time_column}' (the time column asked for); columns: {', '.join(columns)}",
            field="time",
            rule="time column exists",
        )
    mapping: dict[str, str] = {}
    for col in columns:
        canon = COLUMN_ALIASES.get(_key(col))
        if time_column is not None:  # that column is the time, and no other is
            canon = "time" if col == time_column else (None if canon == "time" else canon)
        if canon is None:
            continue
        if canon in mapping.values():
            other = next(k for k, v in mapping.items() if v == canon)
            raise CandleError(f"{source}: columns '{other}' and '{col}' both mean '{canon}'; keep one")
        mapping[col] = canon
    if "time" not in mapping.values() and columns and _unnamed(columns[0]):
        mapping = {columns[0]: "time", **mapping}
    missing = [c for c in ("time", *PRICE_COLUMNS) if c not in mapping.values()]
    if missing:
        hint = (
            "; name it with --time-column NAME (candle-ml check/predict) or ingest.time_column in params.yaml"
            if "time" in missing
            else ""
        )
        raise CandleError(
            f"{source}: missing required column(s) {', '.join(missing)} "
            f"(found: {', '.join(columns)}; accepted names include Date/Datetime/timestamp, "
            f"Open, High, Low, Close, Volume){hint}",
            field=missing[0],
            rule="required column",
        )
    return mapping


def _key(col: str) -> str:
    return col.strip().lower().replace(" ", "_")


def parse_times(values: pd.Series, naive_timezone: str = "UTC") -> np.ndarray:
    """Timestamps of any common form -> Unix seconds (float, NaN where unparseable).

    Integers are epoch seconds (or milliseconds when > 1e11); strings and datetimes
    are parsed, naive ones taken to be in ``naive_timezone``.
    """
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        secs = values.astype("float64").to_numpy(copy=True)
        secs = np.where(np.abs(secs) > 1e11, secs / 1000.0, secs)
        return np.where(np.isfinite(secs) & (secs == np.floor(secs)), secs, np.nan)
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values):
        ts = values if isinstance(values.dtype, pd.DatetimeTZDtype) else values.dt.tz_localize(naive_timezone)
        ts = ts.dt.tz_convert("UTC")
    else:
        text = values.astype("string").str.strip()
        aware = text.str.contains(_TZ_SUFFIX_RE, regex=True).fillna(False).to_numpy(dtype=bool)
        ts = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
        if aware.any():
            ts[aware] = pd.to_datetime(text[aware], utc=True, errors="coerce", format="mixed")
        if (~aware).any():
            naive = pd.to_datetime(text[~aware], errors="coerce", format="mixed")
            ts[~aware] = naive.dt.tz_localize(
                naive_timezone, ambiguous="NaT", nonexistent="NaT"
            ).dt.tz_convert("UTC")
    ns = ts.to_numpy(dtype="datetime64[ns]").astype("int64").astype("float64")
    return np.where(ts.isna().to_numpy(), np.nan, np.floor(ns / 1e9))
