"""The stored series the server serves, and their whole-series predictions.

The series are read into memory at startup and on ``POST /model/reload`` (a few MB), and every
route reads that snapshot: a ``dvc repro`` that removes ``data/candles/`` and then fails leaves
the server serving the last good series until a reload finds a good set again (a failed read
keeps the old snapshot and says why in ``/health``).

``/review`` and ``/review/queue`` slice one cached prediction pass per model version, snapshot
and series instead of predicting again; a new model version or snapshot simply misses the cache.
At most ``MAX_ENTRIES`` passes are kept.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import polars as pl

from candle_ml.candles import series_key
from candle_ml.errors import CandleMLError, require_history
from candle_ml.loading import LoadedModel
from candle_ml.opened_charts import (
    ChartConflict,
    ChartStore,
    OpenedChart,
    check_same_where_both,
    keep_for_training,
    merge_for_training,
    text_files_named,
)
from candle_ml.stored_series import SeriesPrediction, StoredSeries, load_stored, predict_series

log = logging.getLogger("candle_ml.serve")

MAX_ENTRIES = 16


class SeriesCache:
    def __init__(self, candles_dir: Path, charts_dir: Path | None = None, raw_dir: Path | None = None):
        self.candles_dir = candles_dir
        # Charts opened in the page (candle_ml.opened_charts), served beside the ingested series;
        # answers on one keep its candles in raw_dir for the next `dvc repro`.
        self.charts = ChartStore(charts_dir) if charts_dir is not None else None
        self.raw_dir = raw_dir
        self.opened: dict[tuple[str, str], pl.DataFrame] = self.charts.load() if self.charts else {}
        self.ingested: set[tuple[str, str]] = set()  # the series of the last good data/candles read
        # opened charts whose candles are in raw_dir: the file's (size, mtime) when last checked
        self._kept: dict[tuple[str, str], tuple[int, int]] = {}
        self._stored = StoredSeries(dict(self.opened), candles_dir)
        self._charts_seen = _mtime(charts_dir) if charts_dir is not None else -1
        self.generation = 0  # bumped by every snapshot swap: part of the prediction cache key
        self.last_error: str | None = None
        self._entries: OrderedDict[tuple[str, int, str, str], SeriesPrediction] = OrderedDict()
        self._lock = threading.Lock()
        self._computing: dict[tuple[str, int, str, str], threading.Lock] = {}

    @property
    def stored(self) -> StoredSeries:
        """The series served now: ingested ones, and every chart opened (by any server worker)."""
        self._sync_opened()
        return self._stored

    def _sync_opened(self) -> None:
        """Serve the charts another worker (``candle-ml serve --workers``) opened since the last
        look: one stat of the charts folder per call, a read only when it changed."""
        if self.charts is None:
            return
        seen = _mtime(self.charts.dir)
        if seen == self._charts_seen:
            return
        with self._lock:
            new = self.charts.load(skip=set(self.opened))
            if new:
                self.opened.update(new)
                self._stored = StoredSeries({**new, **self._stored.candles}, self._stored.source)
            # a change within the file system's timestamp resolution could hide the next: look again
            self._charts_seen = seen if time.time_ns() - seen > 1_000_000_000 else -2

    def reload(self) -> StoredSeries:
        """Read the stored series again; on failure keep serving the previous snapshot and raise."""
        try:
            fresh = load_stored(self.candles_dir)
            if not fresh.candles and self.stored.candles:  # dvc repro removes outputs before rebuilding them
                raise CandleMLError(
                    f"{self.candles_dir}: no stored series now (a rebuild in progress, or one that failed); "
                    "`dvc checkout data/candles` restores the last good ones"
                )
        except CandleMLError as exc:
            self.last_error = str(exc)
            log.error(
                "stored series not reloaded, still serving %d series: %s", len(self.stored.candles), exc
            )
            raise
        self._sync_opened()
        with self._lock:
            merged = StoredSeries({**self.opened, **fresh.candles}, fresh.source)  # ingested ones win
            self._stored, self.generation, self.last_error = merged, self.generation + 1, None
            self.ingested = set(fresh.candles)
            self._entries.clear()
        log.info("serving %d stored series from %s", len(fresh.candles), self.candles_dir)
        return fresh

    def open_chart(self, chart: OpenedChart) -> bool:
        """Serve an opened chart beside the stored series (False: it was open already)."""
        if self.charts is None:
            raise CandleMLError("this server keeps no opened charts (candle-ml serve --charts-dir)")
        self._sync_opened()
        with self._lock:
            added = self.charts.add(chart, self._stored.candles)
            key = (chart.pair, chart.timeframe)
            if key not in self._stored.candles:  # new, or opened by another worker a moment ago
                self.opened[key] = chart.candles
                self._stored = StoredSeries({**self._stored.candles, key: chart.candles}, self._stored.source)
        return added

    def keep_answered(self, series: set[tuple[str, str]]) -> list[Path]:
        """The opened charts among ``series`` (answered, about to be acknowledged) written to
        ``data/raw/`` with their candles, unless ingest stored that series already."""
        kept = []
        self._sync_opened()
        for key in sorted(series):
            candles = self.opened.get(key)
            if candles is None or key in self.ingested or self.raw_dir is None:
                continue
            path = self.raw_dir / f"{series_key(*key)}.parquet"
            # read back only when the file is not the one last checked (or a CSV of that name came)
            if self._kept.get(key) != _signature(path) or text_files_named(self.raw_dir, path.stem):
                keep_for_training(self.raw_dir, *key, candles)
                self._kept[key] = _signature(path)
            kept.append(path)
        return kept

    def keep_task(self, pair: str, timeframe: str, candles: pl.DataFrame) -> Path | None:
        """A Label Studio task's candles, before its annotation is acknowledged: a series ingest
        stored must hold every one of them, with the same prices (nothing to write); any other
        series is merged into ``raw_dir`` for the next ``dvc repro`` (``ChartConflict``: a candle
        that disagrees)."""
        key = (pair, timeframe)
        self._sync_opened()
        with self._lock:
            held, ingested = self._stored.candles.get(key), key in self.ingested
        if held is not None:
            check_same_where_both(held, candles, f"{series_key(pair, timeframe)} as stored")
            if ingested:
                extra = ~np.isin(candles["time"].to_numpy(), held["time"].to_numpy())
                if extra.any():
                    raise ChartConflict(
                        f"{series_key(pair, timeframe)}: the task holds {int(extra.sum())} candles the "
                        f"stored series lacks (first at {int(candles['time'][int(np.argmax(extra))])}); "
                        "name the task's pair differently or add them to data/raw/ and `dvc repro`",
                        field="pair",
                        rule="one series per name",
                    )
                return None
        if self.raw_dir is None:
            raise CandleMLError(
                f"{series_key(pair, timeframe)} is not stored and this server keeps no candles for "
                "training (candle-ml serve --raw-dir data/raw)",
                field="pair",
                rule="raw dir",
            )
        return merge_for_training(self.raw_dir, pair, timeframe, candles)

    def series(self, pair: str, timeframe: str) -> pl.DataFrame:
        """Every candle of a stored series (404 for one ingest did not store)."""
        return self.stored.get(pair, timeframe)

    def times(self, pair: str, timeframe: str) -> np.ndarray:
        return self.series(pair, timeframe)["time"].to_numpy()

    def get(self, model: LoadedModel, pair: str, timeframe: str) -> SeriesPrediction:
        """The whole series predicted by ``model``, computed once per model version and snapshot."""
        key = (model.version, self.generation, pair, timeframe)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            computing = self._computing.setdefault(key, threading.Lock())
        with computing:  # one computation per key; concurrent requests for it wait for that one
            with self._lock:
                if key in self._entries:
                    return self._entries[key]
            candles = self.series(pair, timeframe)
            require_history(candles.height, model.bundle.meta.min_history, f"{pair} {timeframe}")
            result = predict_series(model, candles)
            with self._lock:
                self._entries[key] = result
                while len(self._entries) > MAX_ENTRIES:
                    self._entries.popitem(last=False)
                self._computing.pop(key, None)
        return result


def _mtime(folder: Path) -> int:
    try:
        return folder.stat().st_mtime_ns
    except FileNotFoundError:
        return -1


def _signature(path: Path) -> tuple[int, int]:
    """A file's size and modification time (ns); (-1, -1) when it is not there."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return -1, -1
    return st.st_size, st.st_mtime_ns
