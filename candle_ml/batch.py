"""Batch labelling of many series, in this process or on Spark (``candle-ml batch``).

Per series, in blocks of ``block_size`` candles, both engines write:

- ``OUT/predictions/pair=P/timeframe=T/*.parquet``: every candle's ``time``, the model's ``label``
  and ``confidence`` (null without the history the model needs), featurized by the bundle's own
  feature code, exactly as ``candle-ml predict`` and ``POST /predict`` label it;
- ``OUT/spans/pair=P/timeframe=T/*.parquet``: the rules' spans (``autolabel``: TA-Lib's
  candlestick rules and the chart-pattern rules), as the ``autolabel`` stage finds them.

A block is read with the candles before it that its first candle needs (``BlockPlan.before``:
the model's ``min_history``, the rules' lookback, two chart windows) and the model's lookahead
after it, and only its own candles are kept, so a series cut into blocks gets the answer one
pass over it gives. On Spark each block is one ``applyInPandas`` group: a series longer than one
executor's memory is spread over many tasks.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from candle_ml.autolabel import autolabel, lookback
from candle_ml.bundle import Bundle, load_bundle
from candle_ml.candles import CANDLE_COLUMNS, CANDLE_SUFFIXES, parse_series_filename
from candle_ml.chart.patterns import ChartRules, find_chart_patterns
from candle_ml.errors import CandleMLError
from candle_ml.series_names import name_candle_file

log = logging.getLogger("candle_ml.batch")

PREDICTION_COLUMNS = {"time": pl.Int64, "label": pl.String, "confidence": pl.Float64}
SPAN_COLUMNS = {
    "start_time": pl.Int64,
    "end_time": pl.Int64,
    "label": pl.String,
    "source": pl.String,  # "candlestick": a TA-Lib rule | "chart": a chart-pattern rule
    "confidence": pl.Float64,
}
SPARK_PREDICTIONS = "pair string, timeframe string, time long, label string, confidence double"
SPARK_SPANS = (
    "pair string, timeframe string, start_time long, end_time long, label string, source string, "
    "confidence double"
)


class BatchError(CandleMLError):
    """Bad input or settings for a batch run."""


@dataclass(frozen=True)
class BlockPlan:
    size: int  # candles each block labels
    before: int  # candles read before a block
    after: int  # candles read after it

    def blocks(self, n: int) -> Iterator[tuple[int, int, int, int]]:
        """(first read, first kept, one past the last kept, one past the last read) per block."""
        for lo in range(0, n, self.size):
            hi = min(lo + self.size, n)
            yield max(0, lo - self.before), lo, hi, min(n, hi + self.after)


@dataclass(frozen=True)
class Rules:
    """What the rules label: TA-Lib functions and chart patterns (params.yaml's autolabel)."""

    patterns: list[str]
    chart_labels: list[str]
    chart: ChartRules


def plan(bundle: Bundle, rules: Rules, block_size: int) -> BlockPlan:
    before = max(bundle.meta.min_history, lookback(rules.patterns), 2 * rules.chart.window)
    after = bundle.meta.lookahead
    if block_size < max(before, after, 1):
        raise BatchError(
            f"--block-size {block_size}: a block must be at least the history it is read with "
            f"({before} candles: the model's min_history, the rules' lookback, two chart windows)"
        )
    return BlockPlan(block_size, before, after)


def predict_rows(bundle: Bundle, candles: pl.DataFrame, lo: int, hi: int) -> dict[str, Any]:
    """The model's labels of rows ``lo:hi`` of ``candles`` (which carries the block's history and
    lookahead around them)."""
    pred = bundle.predict(candles)
    # null where the candle lacks the history, as candle-ml predict writes it
    confidence = [None if np.isnan(c) else c for c in pred.confidence[lo:hi].tolist()]
    return {
        "time": candles["time"].to_numpy()[lo:hi],
        "label": pred.label[lo:hi].tolist(),
        "confidence": confidence,
    }


def rule_spans(
    rules: Rules, candles: pl.DataFrame, lo: int, hi: int, pair: str, timeframe: str
) -> dict[str, list[Any]]:
    """The rules' spans found on rows ``lo:hi``: a TA-Lib pattern on the candle it ends on, a
    chart pattern on the candle that confirmed it (``found_at``)."""
    times = candles["time"].to_numpy()
    found: list[tuple[int, int, str, str, float]] = []
    if hi > lo:
        first_kept, last_kept = int(times[lo]), int(times[hi - 1])
        for s in autolabel(candles, rules.patterns, pair, timeframe):
            if first_kept <= s.end_time <= last_kept:
                found.append((s.start_time, s.end_time, s.label, "candlestick", s.confidence))
        for c in find_chart_patterns(candles["close"].to_numpy(), rules.chart_labels, rules.chart):
            if lo <= c.found_at < hi:
                found.append((int(times[c.start]), int(times[c.end]), c.label, "chart", 1.0))
    found.sort()
    return {k: [f[i] for f in found] for i, k in enumerate(SPAN_COLUMNS)}


def label_series(
    bundle: Bundle, rules: Rules, candles: pl.DataFrame, blocks: BlockPlan, pair: str, timeframe: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    parts = [pl.DataFrame(schema=PREDICTION_COLUMNS)]
    span_parts = [pl.DataFrame(schema=SPAN_COLUMNS)]
    for first, lo, hi, last in blocks.blocks(candles.height):
        block = candles.slice(first, last - first)
        parts.append(
            pl.DataFrame(predict_rows(bundle, block, lo - first, hi - first), schema=PREDICTION_COLUMNS)
        )
        spans = rule_spans(rules, block, lo - first, hi - first, pair, timeframe)
        span_parts.append(pl.DataFrame(spans, schema=SPAN_COLUMNS))
    return pl.concat(parts), pl.concat(span_parts)


def write_partitioned(frame: pl.DataFrame, root: Path) -> None:
    """Hive-partitioned Parquet (``pair=…/timeframe=…``), as Spark writes it."""
    import pyarrow.parquet as pq

    pq.write_to_dataset(frame.to_arrow(), root, partition_cols=["pair", "timeframe"])


def series_files(inputs: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in inputs:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix.lower() in CANDLE_SUFFIXES)
        elif path.exists():
            files.append(path)
        else:
            raise BatchError(f"{path}: no such file or directory")
    if not files:
        raise BatchError(f"no .csv, .txt or .parquet series in {', '.join(map(str, inputs))}")
    return files


def check_unique(named: list[tuple[Path, str, str]]) -> None:
    """Each series once: two files that name the same pair and timeframe are refused."""
    seen: dict[tuple[str, str], Path] = {}
    for f, pair, timeframe in named:
        if (pair, timeframe) in seen:
            raise BatchError(
                f"{f} and {seen[pair, timeframe]} are both {pair} {timeframe}: give each series once"
            )
        seen[pair, timeframe] = f


def run_local(
    inputs: list[Path], bundle_dir: Path, rules: Rules, out: Path, block_size: int
) -> dict[str, Any]:
    """Every series in this process, one after another."""
    from candle_ml.candle_files import read_candle_file

    files = series_files(inputs)
    bundle = load_bundle(bundle_dir)
    blocks = plan(bundle, rules, block_size)
    # named as check and ingest name them (a file as downloaded too); every name settled first
    names = [name_candle_file(f) for f in files]
    named = [(f, n.pair, n.timeframe) for f, n in zip(files, names, strict=True)]
    check_unique(named)
    started, candles_done = time.perf_counter(), 0
    for path, pair, timeframe in named:  # one series in memory at a time, written as it is done
        candles, _ = read_candle_file(path)
        p, s = label_series(bundle, rules, candles.select(CANDLE_COLUMNS), blocks, pair, timeframe)
        keys = [pl.lit(pair).alias("pair"), pl.lit(timeframe).alias("timeframe")]
        write_partitioned(p.with_columns(keys), out / "predictions")
        write_partitioned(s.with_columns(keys), out / "spans")
        candles_done += candles.height
    return {"candles": candles_done, "seconds": time.perf_counter() - started}


# ------------------------------------------------------------------------------------- Spark

_BUNDLES: dict[str, Bundle] = {}  # one load per Python worker, not per group


def _bundle_on_worker(name: str) -> Bundle:
    from pyspark import SparkFiles

    if name not in _BUNDLES:
        _BUNDLES[name] = load_bundle(Path(SparkFiles.get(name)))
    return _BUNDLES[name]


def spark_candles(spark: Any, inputs: list[Path], staging: Path) -> Any:
    """Candles as one Spark DataFrame with ``pair`` and ``timeframe``: a hive dataset's partitions
    (``pair=…/timeframe=…``) and stored series (``data/candles/PAIR_TF.parquet``) read by Spark
    itself; any other candle file (a MetaTrader, Binance, Yahoo... export, a CSV) read and named by
    the readers ``check`` and ingest use, one at a time, into ``staging`` as hive Parquet first."""
    from pyspark.sql import functions as sf

    from candle_ml.candle_files import read_candle_file

    frames, direct, staged = [], [], False
    named: list[tuple[Path, str, str]] = []
    for path in inputs:
        if path.is_dir() and any(p.name.startswith("pair=") for p in path.iterdir()):
            frames.append(spark.read.parquet(str(path)))
            continue
        for f in series_files([path]):
            name = name_candle_file(f)
            named.append((f, name.pair, name.timeframe))
            if _stored_series(f, name.pair, name.timeframe):
                direct.append(f)
                continue
            candles, _ = read_candle_file(f)
            keys = [pl.lit(name.pair).alias("pair"), pl.lit(name.timeframe).alias("timeframe")]
            write_partitioned(candles.select(CANDLE_COLUMNS).with_columns(keys), staging)
            staged = True
    check_unique(named)
    if direct:
        frame = spark.read.parquet(*[str(f) for f in direct]).withColumn("file", sf.input_file_name())
        # PAIR_TF.parquet (checked by _stored_series): split at the last "_", as parse_series_filename does
        pattern = r"([^/]+)_([^/_]+)\.parquet$"
        frames.append(
            frame.withColumn("pair", sf.upper(sf.regexp_extract("file", pattern, 1)))
            .withColumn("timeframe", sf.regexp_extract("file", pattern, 2))
            .drop("file")
        )
    if staged:
        frames.append(spark.read.parquet(str(staging)))
    every = frames[0]
    for frame in frames[1:]:
        every = every.unionByName(frame)
    return every.select("pair", "timeframe", *CANDLE_COLUMNS)


def _stored_series(path: Path, pair: str, timeframe: str) -> bool:
    """A file Spark can read as it is: PAIR_TF.parquet named as ``name_candle_file`` names it, with
    ingest's columns (time as integer seconds)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.suffix.lower() != ".parquet":
        return False
    try:
        if parse_series_filename(path) != (pair, timeframe):
            return False
    except CandleMLError:
        return False
    schema = pq.read_schema(path)
    return set(CANDLE_COLUMNS) <= set(schema.names) and pa.types.is_integer(schema.field("time").type)


def run_spark(
    spark: Any, inputs: list[Path], bundle_dir: Path, rules: Rules, out: Path, block_size: int
) -> dict[str, Any]:
    """The same blocks as ``run_local``, one ``applyInPandas`` group each, on ``spark``."""
    bundle_dir = Path(bundle_dir).resolve()
    blocks = plan(load_bundle(bundle_dir), rules, block_size)
    spark.sparkContext.addFile(str(bundle_dir), recursive=True)
    name = bundle_dir.name
    started = time.perf_counter()

    staging = Path(tempfile.mkdtemp(prefix="candle-ml-batch-"))  # exports read by our readers
    try:
        return _run_spark(spark, inputs, staging, name, blocks, rules, out, started)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _run_spark(
    spark: Any,
    inputs: list[Path],
    staging: Path,
    name: str,
    blocks: BlockPlan,
    rules: Rules,
    out: Path,
    started: float,
) -> dict[str, Any]:
    import pandas as pd
    from pyspark.sql import Window
    from pyspark.sql import functions as sf

    size, before, after = blocks.size, blocks.before, blocks.after
    candles = spark_candles(spark, inputs, staging)
    row = sf.row_number().over(Window.partitionBy("pair", "timeframe").orderBy("time")) - 1
    candles = candles.withColumn("row", row)
    block = sf.floor(sf.col("row") / size)
    # a candle is kept by its own block and read by the next (history) or the previous (lookahead)
    member = sf.array(
        block,
        sf.when(sf.col("row") >= (block + 1) * size - before, block + 1),
        sf.when((block >= 1) & (sf.col("row") < block * size + after), block - 1),
    )
    exploded = candles.withColumn("block", sf.explode(sf.filter(member, lambda b: b.isNotNull()))).cache()

    def block_rows(pdf: pd.DataFrame) -> tuple[pl.DataFrame, int, int, dict[str, str]]:
        """The group's candles in order, the rows it keeps, and its series."""
        pdf = pdf.sort_values("row")
        kept = np.flatnonzero((pdf["row"].to_numpy() // size) == pdf["block"].iloc[0])
        frame = pl.from_pandas(pdf[list(CANDLE_COLUMNS)]).cast({"time": pl.Int64})
        keys = {"pair": str(pdf["pair"].iloc[0]), "timeframe": str(pdf["timeframe"].iloc[0])}
        return frame, (int(kept[0]) if kept.size else 0), (int(kept[-1]) + 1 if kept.size else 0), keys

    def plain(columns: dict[str, Any], names: list[str]) -> pd.DataFrame:
        # object columns: pandas 3's Arrow-backed strings are chunked, which pyspark 4.3's Arrow
        # conversion refuses
        return pd.DataFrame({k: pd.Series(columns.get(k, []), dtype=object) for k in names})

    def predict_group(pdf: pd.DataFrame) -> pd.DataFrame:
        frame, lo, hi, keys = block_rows(pdf)
        predicted = predict_rows(_bundle_on_worker(name), frame, lo, hi) if hi > lo else {}
        n = len(predicted.get("time", []))
        return plain({k: [v] * n for k, v in keys.items()} | predicted, [*keys, *PREDICTION_COLUMNS])

    def spans_group(pdf: pd.DataFrame) -> pd.DataFrame:
        frame, lo, hi, keys = block_rows(pdf)
        spans = rule_spans(rules, frame, lo, hi, keys["pair"], keys["timeframe"])
        n = len(spans["label"])
        return plain({k: [v] * n for k, v in keys.items()} | spans, [*keys, *SPAN_COLUMNS])

    groups = exploded.groupBy("pair", "timeframe", "block")
    for what, fn, schema in (
        ("predictions", predict_group, SPARK_PREDICTIONS),
        ("spans", spans_group, SPARK_SPANS),
    ):
        groups.applyInPandas(fn, schema).write.mode("overwrite").partitionBy("pair", "timeframe").parquet(
            str(out / what)
        )
    total = candles.count()
    exploded.unpersist()
    return {"candles": total, "seconds": time.perf_counter() - started}
