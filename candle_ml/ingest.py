"""Ingest: bundled real OHLCV + user files -> validated canonical candles.

Sources: the symbols of ``bokeh_sampledata.stocks`` listed in ``ingest.bundled``
(real daily OHLCV, unadjusted) and every ``{PAIR}_{TIMEFRAME}.csv|parquet`` in
``ingest.raw_dir``, validated by the rules in ``candle_ml.candles``; ``mirror`` makes the
upside-down training-only copies that ``ingest.augment`` asks for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from candle_ml.candle_files import read_candle_file
from candle_ml.candles import CANDLE_SUFFIXES, ValidationReport, series_key, validate_candles
from candle_ml.config import IngestParams
from candle_ml.errors import CandleError
from candle_ml.series_names import name_series
from candle_ml.stage_outputs import CandlesIndex, SeriesEntry

MIRROR_SUFFIX = "-MIRROR"
GAPLESS_SUFFIX = "-GAPLESS"


@dataclass
class Series:
    pair: str
    timeframe: str
    source: str
    candles: pl.DataFrame
    report: ValidationReport
    augmented_from: str | None = None  # key of the real series this one was made from

    @property
    def key(self) -> str:
        return series_key(self.pair, self.timeframe)


def bundled_frame(symbol: str) -> pd.DataFrame:
    """One symbol of bokeh_sampledata.stocks as a frame with Unix-second times (dates are UTC midnights)."""
    try:
        import bokeh_sampledata.stocks as stocks
    except ImportError as exc:
        raise CandleError(
            f"bokeh-sampledata is needed for the bundled data: pip install bokeh-sampledata ({exc})"
        ) from None
    data = getattr(stocks, symbol.upper(), None)
    if not isinstance(data, dict) or "date" not in data:
        known = sorted(n for n in dir(stocks) if n.isupper() and isinstance(getattr(stocks, n), dict))
        raise CandleError(f"ingest.bundled: unknown symbol '{symbol}' (bundled: {', '.join(known)})")
    days = np.asarray(data["date"], dtype="datetime64[D]")
    return pd.DataFrame(
        {
            "time": days.astype("datetime64[s]").astype(np.int64).astype(np.float64),
            **{c: np.asarray(data[c], dtype=np.float64) for c in ("open", "high", "low", "close", "volume")},
        }
    )


def raw_files(raw_dir: Path) -> list[Path]:
    if not raw_dir.is_dir():
        return []
    return sorted(p for p in raw_dir.iterdir() if p.is_file() and p.suffix.lower() in CANDLE_SUFFIXES)


def raw_series(params: IngestParams) -> list[Series]:
    """Every candle file in ``ingest.raw_dir``, read, validated and named; the first bad one is an
    error naming the file, the row and the rule."""
    out = []
    for path in raw_files(Path(params.raw_dir)):
        candles, report = read_candle_file(path, params.naive_timezone, params.time_column, params.on_invalid)
        name = name_series(path, candles["time"].to_numpy(), params.names)
        out.append(Series(name.pair, name.timeframe, str(path), candles, report))
    return out


def check_raw(params: IngestParams) -> dict[str, Any]:
    """The ``check_raw`` stage's report: each raw file as ingest will store it. Raises before
    ingest runs (and DVC removes ``data/candles/``) on a file ingest would refuse."""
    series = raw_series(params)
    bundled = {series_key(s.upper(), params.bundled_timeframe) for s in params.bundled}
    seen: dict[str, str] = {}
    for s in series:
        if s.key in bundled or s.key in seen:
            other = seen.get(s.key, f"ingest.bundled ({s.pair})")
            raise CandleError(f"series {s.key} comes from both {other} and {s.source}; keep one")
        seen[s.key] = s.source
    return {
        "files": [{"file": Path(s.source).name, "series": s.key, "candles": s.candles.height} for s in series]
    }


def ingest(params: IngestParams) -> list[Series]:
    """Read and validate every configured source; pure apart from reading the inputs."""
    out: dict[str, Series] = {}

    def add(series: Series) -> None:
        if series.key in out:
            raise CandleError(
                f"series {series.key} comes from both {out[series.key].source} and {series.source}; keep one"
            )
        out[series.key] = series

    for symbol in params.bundled:
        source = f"bokeh_sampledata.stocks.{symbol.upper()}"
        candles, report = validate_candles(bundled_frame(symbol), source, params.on_invalid)
        add(Series(symbol.upper(), params.bundled_timeframe, source, candles, report))
    for series in raw_series(params):
        add(series)
    if not out:
        raise CandleError(
            f"ingest: no series (ingest.bundled is empty and {params.raw_dir} holds no CSV/Parquet files)"
        )
    return [out[k] for k in sorted(out)]


def mirror(candles: pl.DataFrame) -> pl.DataFrame:
    """Reflect prices about the series' highest high: p -> 2*M - p (high and low swap roles).

    Candle shapes and sizes are kept exactly, directions flip, prices stay positive.
    """
    top = 2 * float(np.max(candles["high"].to_numpy()))
    return candles.with_columns(
        open=top - pl.col("open"),
        high=top - pl.col("low"),
        low=top - pl.col("high"),
        close=top - pl.col("close"),
    )


def gapless(candles: pl.DataFrame) -> pl.DataFrame:
    """Every open moved to the previous close, the high and low widened to keep it.

    Stock candles gap at almost every open (AAPL: 98 %); an index or a 24-hour market opens
    where it closed (S&P 500 daily: 42 % of opens). Without such candles in training, gap
    features sit where the model never saw them and the gap-defined patterns (stars,
    piercing, dark cloud cover) are confused with their gapless look-alikes.
    """
    opened = pl.col("close").shift(1).fill_null(pl.col("open"))
    return candles.with_columns(open=opened).with_columns(
        high=pl.max_horizontal("high", "open", "close"), low=pl.min_horizontal("low", "open", "close")
    )


def augmented(series: list[Series], kinds: list[str]) -> list[Series]:
    out = []
    if "gapless" in kinds:
        out += [
            Series(
                s.pair + GAPLESS_SUFFIX, s.timeframe, f"gapless {s.key}", gapless(s.candles), s.report, s.key
            )
            for s in series
        ]
    if "mirror" in kinds:
        out += [
            Series(
                s.pair + MIRROR_SUFFIX, s.timeframe, f"mirror of {s.key}", mirror(s.candles), s.report, s.key
            )
            for s in series
        ]
    return out


def series_index(series: list[Series]) -> CandlesIndex:
    return CandlesIndex(
        [
            SeriesEntry(
                pair=s.pair,
                timeframe=s.timeframe,
                file=f"{s.key}.parquet",
                source=s.source,
                rows=s.candles.height,
                first_time=int(s.candles["time"][0]),
                last_time=int(s.candles["time"][-1]),
                augmented_from=s.augmented_from,
            )
            for s in series
        ]
    )


def ingest_metrics(series: list[Series]) -> dict[str, Any]:
    """The numbers of reports/ingest.json (real series only; augmented ones counted apart)."""
    real = [s for s in series if not s.augmented_from]
    dropped: dict[str, int] = {}
    for s in series:
        for rule, n in s.report.dropped_by_rule.items():
            dropped[rule] = dropped.get(rule, 0) + n
    return {
        "series": len(real),
        "rows": sum(s.candles.height for s in real),
        "rows_per_series": {s.key: s.candles.height for s in real},
        "augmented_series": len(series) - len(real),
        "dropped_rows": dropped,
        "volume_filled_with_zero": sum(s.report.volume_filled for s in series),
    }
