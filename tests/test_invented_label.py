"""A label a trader invents trains and predicts like any other, with no code change."""

from __future__ import annotations

import msgspec
import numpy as np

from candle_ml.annotations import Annotation
from candle_ml.autolabel import autolabel
from candle_ml.bundle import Bundle

from .conftest import train_on_bundled


def test_a_label_only_traders_use_is_learned_and_served(tmp_path):
    def exports(s) -> list[Annotation]:
        # A trader's own name for a shape TA-Lib knows under another: only in their exports.
        return [
            Annotation(msgspec.structs.replace(sp, label="my_bull_wrap", source="human"), "export.json")
            for sp in autolabel(s.candles, ["CDLENGULFING"], s.pair, s.timeframe)
            if sp.label == "bullish_engulfing"
        ]

    # The marks are exact (the rule's ends): no end to learn (`dataset.end_tolerance: 0` skips the
    # EM's 21 fits, 11 s; tests/test_own_labels.py covers marks off by a candle or two, and that
    # exact ones stay where they are).
    result, schema, series, meta = train_on_bundled(
        tmp_path, ["CDLDOJI"], exports, n_estimators=60, end_tolerance=0
    )
    assert "my_bull_wrap" in schema.labels and "my_bull_wrap" in meta.label_names
    assert next(x.color for x in meta.labels if x.name == "my_bull_wrap").startswith("#")
    bundle = Bundle(meta, result.model, tmp_path)

    aapl = next(s for s in series if s.pair == "AAPL")
    pred = bundle.predict(aapl.candles)
    times = aapl.candles["time"].to_numpy()
    marked = np.zeros(times.size, dtype=bool)
    for a in exports(aapl):
        marked[np.searchsorted(times, a.span.start_time) : np.searchsorted(times, a.span.end_time) + 1] = True
    test = np.arange(times.size) >= int(times.size * 0.85)  # the test split: never trained on
    hit = (pred.label == "my_bull_wrap") & marked & test
    recall = hit.sum() / (marked & test).sum()
    precision = hit.sum() / ((pred.label == "my_bull_wrap") & test).sum()
    print(f"my_bull_wrap on the AAPL test split: recall {recall:.3f}, precision {precision:.3f}")
    assert recall > 0.8 and precision > 0.8, (recall, precision)
