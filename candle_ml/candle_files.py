"""Reading a user's candle file (CSV or Parquet): its headers mapped onto the canonical columns,
its times parsed to Unix seconds, whole or a block at a time; ``read_candle_file`` then validates
it (candle_ml/candles.py), the one reader ingest, ``candle-ml check``, ``predict``, ``outcomes`` and
``batch`` share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import polars as pl

from candle_ml.candle_formats import Layout, detect_layout, generic_layout
from candle_ml.candles import PARQUET_SUFFIXES, TEXT_SUFFIXES, ValidationReport, validate_candles
from candle_ml.errors import CandleError


def file_layout(path: Path, time_column: str | None = None) -> Layout:
    """The file's layout (``candle_ml.candle_formats``): a CSV's from its first lines (any
    separator, with or without a header, the platforms' own layouts), a Parquet file's from
    its schema."""
    if _file_type(path) == "parquet":
        import pyarrow.parquet as pq

        names = [str(c) for c in pq.read_schema(path).names]
        return generic_layout(names, path.name, None, time_column)
    return detect_layout(path, time_column)


def read_series_file(
    path: Path, naive_timezone: str = "UTC", time_column: str | None = None
) -> tuple[pd.DataFrame, pd.Series]:
    """Read a user CSV/Parquet file into canonical columns.

    Returns the frame (times still unvalidated, as float seconds with NaN for
    unparseable ones) and the raw time column, for error messages (a row's text is made
    only for a row an error names: a million strings would be ~100 MB).
    """
    layout = file_layout(path, time_column)
    if layout.separator is None:
        raw = pd.read_parquet(path)
    else:
        raw = _stripped(pd.read_csv(path, **layout.read_options()))
    return layout.canonical(raw, naive_timezone)


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
    if _file_type(path) == "csv" and path.stat().st_size == 0:
        return
    layout = file_layout(path, time_column)
    if layout.separator is not None:
        with pd.read_csv(path, chunksize=block_rows, **layout.read_options()) as reader:
            for raw in reader:
                if len(raw):
                    yield layout.canonical(_stripped(raw), naive_timezone)
    else:
        import pyarrow.parquet as pq

        with pq.ParquetFile(path) as parquet:
            for batch in parquet.iter_batches(batch_size=block_rows):
                if batch.num_rows:
                    yield layout.canonical(batch.to_pandas(), naive_timezone)


def _stripped(raw: pd.DataFrame) -> pd.DataFrame:
    """Header names as the layout knows them (a platform's padding around a name dropped)."""
    raw.columns = [str(c).strip() for c in raw.columns]
    return raw


def _file_type(path: Path) -> str:
    """ "csv" (any delimited text) or "parquet", from the file's suffix; any other is refused by name."""
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return "csv"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    raise CandleError(f"{path.name}: unsupported file type (use .csv, .txt or .parquet)")
