"""Generalization: the model on series it never trained on, scored against TA-Lib's signals there.

A holdout series is real OHLCV shipped inside an installed package (nothing is downloaded),
validated by the ingest rules, predicted exactly as the server predicts (``Bundle.predict`` on
the raw candles) and compared, candle by candle and span by span, with what the autolabel
patterns' TA-Lib functions say on the same candles: the labels the model was trained to give.
The chart-pattern model is scored the same way against the chart rules' spans.

Sources (``holdout.series`` in params.yaml):

- ``SP500`` and ``NASDAQ``: daily S&P 500 and NASDAQ Composite index OHLCV, 1999-2018, shipped
  in the ``arch`` package (``arch/data/sp500``, ``arch/data/nasdaq``; University of
  Illinois/NCSA Open Source License). Indices, not stocks, and a later period than the
  training data (2000-2013 stocks).
- ``FX24H``: a simulated 24-hour market, hourly, what no installed package ships: no gaps (every
  open at the previous close), a daily volatility cycle (quiet late-night hours, a busy afternoon
  overlap), fat-tailed moves and bodies small against the candle's range, as FX and crypto print.
  Generated from a fixed seed (``synthetic_24h``), so the same candles every run.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from candle_ml.annotations import Annotation
from candle_ml.autolabel import autolabel, label_priority
from candle_ml.bundle import Bundle
from candle_ml.candles import series_key, validate_candles
from candle_ml.chart.evaluation import chart_counts, summarize
from candle_ml.chart.patterns import CHART_PATTERNS, find_chart_patterns
from candle_ml.errors import ConfigError
from candle_ml.evaluation import score_predictions
from candle_ml.labels import Placed, Skipped, or_o, paint, place_spans, priority_order


@dataclass(frozen=True)
class Source:
    package: str
    path: str  # inside the package
    timeframe: str
    licence: str


SOURCES = {
    "SP500": Source("arch", "data/sp500/sp500.csv.gz", "1d", "NCSA (arch)"),
    "NASDAQ": Source("arch", "data/nasdaq/nasdaq.csv.gz", "1d", "NCSA (arch)"),
    # Hourly EUR/USD, 2017-04-19 .. 2018-02-07, 5,000 candles, in backtesting.py's tests. AGPL-3.0:
    # not a dependency of candle-ml; `pip install backtesting` to score it (read, never imported).
    "EURUSD": Source("backtesting", "test/EURUSD.csv", "1h", "AGPL-3.0 (backtesting)"),
}


@dataclass(frozen=True)
class HoldoutSeries:
    pair: str
    timeframe: str
    candles: pl.DataFrame
    source: str

    @property
    def key(self) -> str:
        return series_key(self.pair, self.timeframe)

    @property
    def times(self) -> np.ndarray:
        return self.candles["time"].to_numpy()

    @property
    def candles_first_time(self) -> int:
        return int(self.candles["time"][0])


SYNTHETIC = {"FX24H": "1h"}


def synthetic_24h(hours: int = 8_760, seed: int = 24) -> pd.DataFrame:
    """A year of a 24-hour market's hourly candles (see the module docstring)."""
    rng = np.random.default_rng(seed)
    time = 1_577_923_200 + 3_600 * np.arange(hours, dtype=np.int64)  # from 2020-01-02 00:00 UTC
    hour = (time // 3_600) % 24
    # Volatility by hour of day: ~0.35x at night, ~1.6x in the afternoon overlap.
    cycle = 0.35 + 1.25 * np.exp(-0.5 * ((hour - 14) / 3.0) ** 2)
    sigma = 0.0012 * cycle * np.exp(0.25 * np.sin(2 * np.pi * np.arange(hours) / 500.0))  # slow regimes
    moves = sigma * rng.standard_t(4, size=hours) / np.sqrt(2.0)
    close = 1.10 * np.exp(np.cumsum(moves))
    open_ = np.concatenate([[1.10], close[:-1]])  # no gaps
    reach = sigma * close * np.abs(rng.normal(size=(2, hours))) * 1.2  # wicks beyond the body
    return pd.DataFrame(
        {
            "time": time.astype(np.float64),
            "open": open_,
            "high": np.maximum(open_, close) + reach[0],
            "low": np.minimum(open_, close) - reach[1],
            "close": close,
            "volume": np.round(1_000 * cycle * rng.lognormal(0.0, 0.3, size=hours)),
        }
    )


def load_holdout(name: str) -> HoldoutSeries:
    """One holdout series, validated like ingest's input (bad rows dropped and counted)."""
    if name.upper() in SYNTHETIC:
        validated, _ = validate_candles(synthetic_24h(), "synthetic 24-hour market", "drop")
        return HoldoutSeries(
            name.upper(), SYNTHETIC[name.upper()], validated, "simulated (candle_ml/holdout.py)"
        )
    source = SOURCES.get(name.upper())
    if source is None:
        known = ", ".join(sorted([*SOURCES, *SYNTHETIC]))
        raise ConfigError(f"holdout.series: unknown series '{name}' (known: {known})")
    # Found without importing the package: only its data file is read.
    spec = importlib.util.find_spec(source.package)
    try:
        if spec is None or spec.origin is None:
            raise FileNotFoundError(f"package {source.package} is not installed")
        raw = (Path(spec.origin).parent / source.path).read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(
            f"holdout.series: {name} needs the '{source.package}' package "
            f"(pip install {source.package}; licence {source.licence}): {exc}"
        ) from None
    frame = pd.read_csv(io.BytesIO(gzip.decompress(raw) if source.path.endswith(".gz") else raw))
    stamps = frame["Date"] if "Date" in frame.columns else frame.iloc[:, 0]  # backtesting: unnamed index
    dates = pd.to_datetime(stamps, format="mixed").to_numpy().astype("datetime64[s]")
    candles = pd.DataFrame(
        {
            "time": dates.astype(np.int64).astype(np.float64),
            **{c.lower(): frame[c].astype(np.float64) for c in ("Open", "High", "Low", "Close", "Volume")},
        }
    )
    where = f"{source.package}/{source.path}"
    validated, _ = validate_candles(candles, where, "drop")
    return HoldoutSeries(name.upper(), source.timeframe, validated, where)


def reference_labels(series: HoldoutSeries, patterns: list[str]) -> np.ndarray:
    """Every candle's label by the autolabel rules, painted with the dataset's priorities."""
    spans = autolabel(series.candles, patterns, series.pair, series.timeframe)
    placed: list[Placed] = place_spans(
        [Annotation(sp, "autolabel") for sp in spans], {series.key: series}, 0.0, Skipped()
    )
    ordered = priority_order([], placed, "human_priority", label_priority(patterns))
    labels, _ = paint(series.candles.height, ordered)
    return or_o(labels)


def score_holdout(
    bundle: Bundle, series: HoldoutSeries, patterns: list[str], min_overlap: float
) -> dict[str, Any]:
    """Candle and span scores of the model's predictions on ``series`` against the rules' labels."""
    pred = bundle.predict(series.candles)
    frame = pl.DataFrame(
        {
            "pair": [series.pair] * series.candles.height,
            "timeframe": [series.timeframe] * series.candles.height,
            "time": series.times,
            "label": pl.Series(list(reference_labels(series, patterns)), dtype=pl.String),
            "predicted": pl.Series(list(pred.label), dtype=pl.String),
            "confidence": pred.confidence,
            "raw_confidence": pred.raw_confidence,
        }
    ).filter(pl.col("predicted").is_not_null())
    # Only labels the model knows can be scored (a pattern added after training is not its fault).
    known = set(bundle.meta.label_names)
    frame = frame.with_columns(
        label=pl.when(pl.col("label").is_in(list(known))).then(pl.col("label")).otherwise(pl.lit("O"))
    )
    return {
        "source": series.source,
        "candles": frame.height,
        "first_time": int(series.times[0]),
        "last_time": int(series.times[-1]),
        **score_predictions(frame, min_overlap),
    }


def score_holdout_chart(bundle: Bundle, series: HoldoutSeries, min_overlap: float) -> dict[str, Any] | None:
    """The chart model on the whole series against the chart rules' spans there (None: no chart
    model, or it learned no rule-named pattern)."""
    chart = bundle.meta.chart
    if chart is None or bundle.chart_model is None:
        return None
    labels = [x for x in chart.labels if x in CHART_PATTERNS]
    if not labels:
        return None
    found = find_chart_patterns(series.candles["close"].to_numpy(), labels, chart.rules)
    totals: dict[str, Counter] = {}
    chart_counts(
        bundle.chart_model, series.candles, [(c.start, c.end, c.label) for c in found], 0, min_overlap, totals
    )
    return summarize(totals, min_overlap)


def holdout_headline(report: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Span F1 macro per series, one ``dvc metrics show`` column each (the rest stays in the report)."""
    return {key: r["span_f1_macro"] for key, r in report.items()}


def holdout_chart_headline(report: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The chart model's span F1 macro per series (the same columns as ``holdout_headline``)."""
    return {key: r["chart_patterns"]["span_f1_macro"] for key, r in report.items() if r.get("chart_patterns")}
