"""``candle-ml predict FILE -o OUT.csv|parquet``: a file of candles labelled in bounded memory.

The file is read, validated and predicted a block at a time (``iter_series_file`` ->
``validate_blocks`` -> ``predict_blocks``) and each block's rows are written before the next is
read, so a file of any length needs about one block's memory (50,000 candles by default: tens of MB) on top
of the libraries. The output goes to a temporary file beside it, renamed into place only when
every row is written: a bad row half way through leaves an earlier output untouched.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np
import polars as pl

from candle_ml.candle_files import iter_series_file
from candle_ml.candles import CANDLE_COLUMNS, validate_blocks
from candle_ml.loading import LoadedModel
from candle_ml.patterns import NO_PATTERN
from candle_ml.prediction import OFFLINE_BATCH_SIZE, above_min_confidence, predict_blocks
from candle_ml.spans import span_bounds


def prediction_table(
    candles: pl.DataFrame, labels: np.ndarray, confidence: np.ndarray, pair: str | None, timeframe: str | None
) -> pl.DataFrame:
    """One row per candle: time, time_utc, pair, timeframe, the candle, label, confidence."""
    return candles.select(
        pl.col("time"),
        pl.from_epoch("time", "s").dt.strftime("%Y-%m-%dT%H:%M:%SZ").alias("time_utc"),
        pl.lit(pair, dtype=pl.String).alias("pair"),
        pl.lit(timeframe, dtype=pl.String).alias("timeframe"),
        *CANDLE_COLUMNS[1:],
        pl.Series("label", labels.tolist(), dtype=pl.String),
        pl.Series("confidence", confidence, dtype=pl.Float64, nan_to_null=True),
    )


class TableSink:
    """Writes a table in parts: CSV (one header) or Parquet, to ``path`` or, without one, stdout."""

    def __init__(self, path: Path | None):
        self.path = path
        self.parquet = path is not None and path.suffix.lower() == ".parquet"
        self.tmp = None if path is None else path.with_name(f".{path.name}.partial")
        self.writer: Any = None  # pyarrow's ParquetWriter, opened with the first part's schema
        self.file: IO[bytes] | None = None
        self.parts = 0

    def __enter__(self) -> TableSink:
        return self

    def write(self, table: pl.DataFrame) -> None:
        if self.parquet:
            import pyarrow.parquet as pq

            arrow = table.to_arrow()
            if self.writer is None:
                self.writer = pq.ParquetWriter(self.tmp, arrow.schema, compression="zstd")
            self.writer.write_table(arrow)
        else:
            if self.file is None:
                self.file = sys.stdout.buffer if self.tmp is None else open(self.tmp, "wb")  # noqa: SIM115
            table.write_csv(self.file, include_header=self.parts == 0)
        self.parts += 1

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.file is not None and self.tmp is not None:
            self.file.close()
        elif self.file is not None:
            self.file.flush()
        if self.tmp is None or self.path is None:
            return
        if kind is None and self.parts:
            os.replace(self.tmp, self.path)  # the whole output appears at once
        else:
            self.tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class FileSummary:
    candles: int
    labeled: int  # candles in a pattern (neither O nor without history)
    spans: int  # runs of one pattern label, counted across blocks as over the whole file


def predict_file(
    model: LoadedModel,
    path: Path,
    output: Path | None,
    *,
    pair: str | None,
    timeframe: str | None,
    min_confidence: float = 0.0,
    naive_timezone: str = "UTC",
    time_column: str | None = None,
    block_rows: int = OFFLINE_BATCH_SIZE,
) -> FileSummary:
    """Label every candle of ``path`` into ``output`` (.csv, .parquet; None: CSV on stdout)."""
    blocks = validate_blocks(iter_series_file(path, naive_timezone, time_column, block_rows), path.name)
    n = labeled = spans = 0
    previous: str | None = None  # the last label written, to join a span cut by a block edge
    with TableSink(output) as sink:
        for candles, labels, confidence in predict_blocks(model, blocks, path.name, block_rows):
            labels = above_min_confidence(labels, confidence, min_confidence)
            sink.write(prediction_table(candles, labels, confidence, pair, timeframe))
            n += candles.height
            labeled += int(((labels != None) & (labels != NO_PATTERN)).sum())  # noqa: E711
            spans += span_bounds(labels)[0].size - int(
                previous not in (None, NO_PATTERN) and labels[0] == previous
            )
            previous = labels[-1]
    return FileSummary(n, labeled, spans)
