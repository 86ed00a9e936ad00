"""Cross-timeframe confirmation: on which higher timeframes a predicted span's pattern shows too.

A trader trusts a hammer on the hourly chart more when the day it closed in printed a hammer as
well. ``Confirmer`` resamples the candles a prediction saw (``candle_ml.timeframes``: finished
higher-timeframe candles only) and answers per span with the timeframes that confirm it; the
answer is ``SpanPrediction.confirmed_on``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from candle_ml.chart.patterns import ChartRules, find_chart_patterns
from candle_ml.patterns import PATTERNS, label_for, labels_for
from candle_ml.talib_api import import_talib
from candle_ml.timeframes import Resampled, bucket_ids, bucket_start, parse_timeframe, resample

# Each label a TA-Lib rule produces -> the rule: what confirms a candlestick span (its direction is
# checked through label_for).
LABEL_RULES: dict[str, str] = {label: fn for fn in PATTERNS for label in labels_for(fn)}


@dataclass
class Confirmer:
    """On which higher timeframes a predicted span's own pattern shows, in the candles given.

    A candlestick span is confirmed on ``H`` when TA-Lib's rule for its label fires, in the
    same direction, on the finished ``H`` candle holding the span's last candle. A chart
    pattern is confirmed when the same pattern is found on the finished ``H`` candles and
    overlaps the span in time. A span whose ``H`` candle is still open is not (yet) confirmed.
    """

    times: np.ndarray
    o: np.ndarray
    h: np.ndarray
    low: np.ndarray
    c: np.ndarray
    timeframes: list[str]
    chart_rules: ChartRules | None = None
    chart_labels: list[str] = field(default_factory=list)
    _resampled: dict[str, Resampled] = field(default_factory=dict, repr=False)
    _signals: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, repr=False)
    _charts: dict[str, list[tuple[str, int, int]]] = field(default_factory=dict, repr=False)

    def resampled(self, tf: str) -> Resampled:
        if tf not in self._resampled:
            seconds = parse_timeframe(tf)
            assert seconds is not None  # checked by FeaturizeParams
            self._resampled[tf] = resample(self.times, self.o, self.h, self.low, self.c, seconds)
        return self._resampled[tf]

    def _signal(self, tf: str, rule: str) -> np.ndarray:
        """The rule's output on the finished candles (row i = bucket position i + 1)."""
        if (tf, rule) not in self._signals:
            r = self.resampled(tf)
            arrays = (
                np.ascontiguousarray(x[r.complete], dtype=np.float64)
                for x in (r.open, r.high, r.low, r.close)
            )
            self._signals[tf, rule] = np.asarray(getattr(import_talib(), rule)(*arrays))
        return self._signals[tf, rule]

    def _chart(self, tf: str) -> list[tuple[str, int, int]]:
        """Chart patterns on the finished candles: label, first and last time they cover."""
        if tf not in self._charts:
            r = self.resampled(tf)
            done = r.complete
            found = find_chart_patterns(r.close[done], self.chart_labels, self.chart_rules)
            buckets = r.bucket[done]
            self._charts[tf] = [
                (
                    s.label,
                    bucket_start(int(buckets[s.start]), r.seconds),
                    bucket_start(int(buckets[s.end]) + 1, r.seconds) - 1,
                )
                for s in found
            ]
        return self._charts[tf]

    def __call__(self, label: str, kind: str, start_time: int, end_time: int) -> list[str]:
        return [tf for tf in self.timeframes if self._confirmed(tf, label, kind, start_time, end_time)]

    def _confirmed(self, tf: str, label: str, kind: str, start_time: int, end_time: int) -> bool:
        if kind == "chart":
            if label not in self.chart_labels:
                return False
            return any(x == label and a <= end_time and b >= start_time for x, a, b in self._chart(tf))
        if label not in LABEL_RULES:
            return False
        rule = LABEL_RULES[label]
        r = self.resampled(tf)
        done = r.complete
        bucket = bucket_ids(np.array([end_time]), r.seconds)[0]
        at = int(np.searchsorted(r.bucket, bucket))
        if not done.start <= at < done.stop or r.bucket[at] != bucket:
            return False
        signal = int(self._signal(tf, rule)[at - done.start])
        return signal != 0 and label_for(rule, signal) == label
