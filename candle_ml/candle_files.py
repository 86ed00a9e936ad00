"""Reading a user's candle file (CSV or Parquet): its headers mapped onto the canonical columns,
its times parsed to Unix seconds, whole or a block at a time; ``read_candle_file`` then validates
it (candle_ml/candles.py), the one reader ingest, ``candle-ml check``, ``predict``, ``outcomes`` and
``batch`` share."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

from candle_ml.candles import PRICE_COLUMNS, ValidationReport, validate_candles
from candle_ml.errors import CandleError

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


def read_series_file(
    path: Path, naive_timezone: str = "UTC", time_column: str | None = None
) -> tuple[pd.DataFrame, pd.Series]:
    """Read a user CSV/Parquet file into canonical columns.

    Returns the frame (times still unvalidated, as float seconds with NaN for
    unparseable ones) and the raw time column, for error messages (a row's text is made
    only for a row an error names: a million strings would be ~100 MB).
    """
    raw = pd.read_csv(path) if _file_type(path) == "csv" else pd.read_parquet(path)
    mapping = canonical_columns([str(c) for c in raw.columns], path.name, time_column)
    return _canonical_frame(raw, mapping, naive_timezone)


def read_candle_file(
    path: Path, naive_timezone: str = "UTC", time_column: str | None = None, on_invalid: str = "error"
) -> tuple[pl.DataFrame, ValidationReport]:
    """A user's candle file -> validated canonical candles and the report: the one reader that
    ingest, ``candle-ml check``, ``predict``, ``outcomes`` and ``batch`` share, so a file one of
    them accepts the others accept too."""
    frame, raw_times = read_series_file(path, naive_timezone, time_column)
    return validate_candles(frame, path.name, on_invalid, raw_times)


def iter_series_file(
    path: Path, naive_timezone: str = "UTC", time_column: str | None = None, block_rows: int = 100_000
) -> Iterator[tuple[pd.DataFrame, pd.Series]]:
    """``read_series_file`` a block of ``block_rows`` rows at a time, in file order: what a file
    larger than memory needs (a CSV through pandas' chunked reader, a Parquet file by record
    batches). Every block has the canonical columns; an empty file yields nothing."""
    if _file_type(path) == "csv":
        try:
            reader = pd.read_csv(path, chunksize=block_rows)
        except pd.errors.EmptyDataError:
            return
        with reader:
            yield from _canonical_blocks(reader, path.name, naive_timezone, time_column)
    else:
        import pyarrow.parquet as pq

        with pq.ParquetFile(path) as parquet:
            batches = (b.to_pandas() for b in parquet.iter_batches(batch_size=block_rows))
            yield from _canonical_blocks(batches, path.name, naive_timezone, time_column)


def _file_type(path: Path) -> str:
    """ "csv" or "parquet", from the file's suffix; any other is refused by name."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise CandleError(f"{path.name}: unsupported file type (use .csv or .parquet)")


def _canonical_blocks(
    blocks: Iterable[pd.DataFrame], source: str, naive_timezone: str, time_column: str | None
) -> Iterator[tuple[pd.DataFrame, pd.Series]]:
    mapping: dict[str, str] | None = None
    for raw in blocks:
        if mapping is None:  # every block has the file's columns
            mapping = canonical_columns([str(c) for c in raw.columns], source, time_column)
        if len(raw):
            yield _canonical_frame(raw, mapping, naive_timezone)


def _canonical_frame(
    raw: pd.DataFrame, mapping: dict[str, str], naive_timezone: str
) -> tuple[pd.DataFrame, pd.Series]:
    # A chunked CSV's blocks keep their row numbers as the index: renumber from 0 so the
    # columns built below line up with them.
    raw = raw.rename(columns=mapping)[list(mapping.values())].reset_index(drop=True)
    frame = pd.DataFrame({"time": parse_times(raw["time"], naive_timezone)})
    for col in (*PRICE_COLUMNS, "volume"):
        if col in raw:
            frame[col] = pd.to_numeric(raw[col], errors="coerce").astype("float64")
    return frame, raw["time"]
