"""Whole-series predictions for the review routes, computed once per model version and series.

A stored series does not change while the server runs and a model version never changes, so
``/review`` and ``/review/queue`` slice one cached pass instead of predicting again; a reload
(new version) simply misses the cache. At most ``MAX_ENTRIES`` series are kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from candle_ml.loading import LoadedModel
from candle_ml.prediction import SeriesPrediction, predict_series, read_stored, require_history

MAX_ENTRIES = 16


class SeriesCache:
    def __init__(self, candles_dir: Path):
        self.candles_dir = candles_dir
        self._entries: OrderedDict[tuple[str, str, str], SeriesPrediction] = OrderedDict()
        self._lock = threading.Lock()
        self._computing: dict[tuple[str, str, str], threading.Lock] = {}
        self._times: dict[tuple[str, str], np.ndarray] = {}

    def times(self, pair: str, timeframe: str) -> np.ndarray:
        """The stored candle times of a series (404 for a series ingest did not store)."""
        key = (pair, timeframe)
        if key not in self._times:
            self._times[key] = read_stored(self.candles_dir, pair, timeframe)["time"].to_numpy()
        return self._times[key]

    def get(self, model: LoadedModel, pair: str, timeframe: str) -> SeriesPrediction:
        key = (model.version, pair, timeframe)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            computing = self._computing.setdefault(key, threading.Lock())
        with computing:  # one computation per key; concurrent requests for it wait for that one
            with self._lock:
                if key in self._entries:
                    return self._entries[key]
            candles = read_stored(self.candles_dir, pair, timeframe)
            require_history(candles.height, model.bundle.meta.min_history, f"{pair} {timeframe}")
            result = predict_series(model, candles)
            with self._lock:
                self._entries[key] = result
                while len(self._entries) > MAX_ENTRIES:
                    self._entries.popitem(last=False)
                self._computing.pop(key, None)
        return result
