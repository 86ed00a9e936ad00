"""The series ``ingest`` stored, as the server holds them: a snapshot read into memory (kept when
a later ``dvc repro`` breaks ``data/candles/``), a whole series predicted in one pass for the review
routes, and a stored range predicted in chunks (``POST /predict/batch``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from candle_ml.confirmation import Confirmer
from candle_ml.errors import CandleMLError, EmptyRange, TooManyCandles, UnknownSeries
from candle_ml.loading import LoadedModel
from candle_ml.paths import INDEX
from candle_ml.prediction import (
    DEFAULT_BATCH_SIZE,
    Checkpoint,
    PredictResponse,
    SpanPrediction,
    chart_predictions,
    chart_spans,
    confirmer,
    no_deadline,
    predict_chunks,
    respond,
)
from candle_ml.review import margins
from candle_ml.stage_outputs import real_series


@dataclass(frozen=True)
class StoredSeries:
    """The real series ``ingest`` stored, read into memory (a few MB): a snapshot the server keeps
    serving when a later ``dvc repro`` removes or breaks ``data/candles/``."""

    candles: dict[tuple[str, str], pl.DataFrame]
    source: Path

    def get(self, pair: str, timeframe: str) -> pl.DataFrame:
        """Every candle of a series, or a 404 that lists the known ones."""
        frame = self.candles.get((pair, timeframe))
        if frame is None:
            listing = (
                ", ".join(f"{p} {t}" for p, t in sorted(self.candles))
                or f"none (run `dvc repro` to ingest into {self.source})"
            )
            raise UnknownSeries(f"no stored series {pair} {timeframe}; known: {listing}", field="pair")
        return frame

    def info(self) -> list[dict[str, int | str]]:
        """Pair, timeframe, candle count, first and last time of each series."""
        return [
            {
                "pair": p,
                "timeframe": t,
                "candles": f.height,
                "first_time": int(f["time"][0]),
                "last_time": int(f["time"][-1]),
            }
            for (p, t), f in sorted(self.candles.items())
        ]


def load_stored(candles_dir: Path) -> StoredSeries:
    """Read every real series of ``ingest``'s index (augmented copies left out).

    No index: an empty snapshot (nothing ingested yet). An index whose files are missing or
    unreadable (a rebuild that failed half way) is an error, so a caller can keep what it has.
    """
    if not (candles_dir / INDEX).is_file():
        return StoredSeries({}, candles_dir)
    try:  # each file comes from ingest's index, never from a request
        candles = {(e.pair, e.timeframe): frame for e, frame in real_series(candles_dir)}
    except (OSError, CandleMLError, pl.exceptions.PolarsError) as exc:
        raise CandleMLError(
            f"{candles_dir}: cannot read the stored series ({type(exc).__name__}: {exc}); "
            "`dvc checkout` restores the last good ones"
        ) from None
    return StoredSeries(candles, candles_dir)


@dataclass(frozen=True)
class SeriesPrediction:
    """A whole stored series predicted in one pass (what the review routes slice)."""

    times: np.ndarray
    labels: np.ndarray  # object: label, or None without enough history
    confidence: np.ndarray  # NaN without a prediction
    margin: np.ndarray  # top-1 minus top-2 probability (candle_ml.review.margins)
    chart: list[SpanPrediction]  # chart-pattern spans of the whole series
    chart_margin: list[float]  # and how sure the chart model is of each
    confirm: Confirmer | None = None  # higher-timeframe confirmation over the whole series

    def window(self, start: int | None, end: int | None) -> slice:
        return time_window(self.times, start, end)

    def chart_in(self, window: slice) -> list[SpanPrediction]:
        """Chart spans overlapping the rows of ``window``."""
        if window.start >= window.stop:
            return []
        first, last = int(self.times[window.start]), int(self.times[window.stop - 1])
        return [c for c in self.chart if c.start_time <= last and c.end_time >= first]


def time_window(times: np.ndarray, start: int | None, end: int | None) -> slice:
    """The rows of sorted ``times`` from ``start`` to ``end`` inclusive (None: that end of the series)."""
    lo = 0 if start is None else int(np.searchsorted(times, start, "left"))
    hi = times.size if end is None else int(np.searchsorted(times, end, "right"))
    return slice(lo, hi)


def predict_series(model: LoadedModel, candles: pl.DataFrame) -> SeriesPrediction:
    pred = model.bundle.predict(candles)
    chart = chart_predictions(model, candles)
    return SeriesPrediction(
        pred.time,
        pred.label,
        pred.confidence,
        margins(pred.proba),
        [span for span, _ in chart],
        [margin for _, margin in chart],
        confirmer(model, candles),
    )


def predict_stored(
    model: LoadedModel,
    series: pl.DataFrame,
    pair: str,
    timeframe: str,
    start: int | None = None,
    end: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    min_confidence: float = 0.0,
    checkpoint: Checkpoint = no_deadline,
    max_candles: int | None = None,
) -> PredictResponse:
    """Predict a stored series (or its ``start``..``end`` range) ``batch_size`` candles at a time.

    ``max_candles`` caps the range one call may ask for (the server's bound on work per request).
    """
    times = series["time"].to_numpy()
    window = time_window(times, start, end)
    lo, hi = window.start, window.stop
    if lo >= hi:
        raise EmptyRange(
            f"start/end: no candles of {pair} {timeframe} between {start} and {end} "
            f"(stored: {int(times[0])} to {int(times[-1])})",
            field="start",
            rule="range has candles",
        )
    if max_candles is not None and hi - lo > max_candles:
        raise TooManyCandles(
            f"start/end: {hi - lo} candles of {pair} {timeframe} in range; one call predicts at most "
            f"{max_candles}: ask for a narrower start..end, in several calls",
            field="end",
            rule=f"at most {max_candles} candles per call",
        )
    labels, confidence = predict_chunks(model, series, lo, hi, batch_size, checkpoint)
    checkpoint()
    return respond(
        model,
        times[lo:hi],
        labels,
        confidence,
        min_confidence,
        chart_spans(model, series, lo, hi),
        confirmer(model, series),
    )
