"""A label a trader invents trains and predicts like any other, with no code change."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np

from candle_ml.annotations import Annotation
from candle_ml.autolabel import autolabel, label_priority
from candle_ml.bundle import Bundle
from candle_ml.config import (
    DatasetParams,
    FeaturizeParams,
    IngestParams,
    TrainParams,
    XGBoostParams,
    load_section,
)
from candle_ml.convergence import history_to_converge
from candle_ml.dataset import SeriesFrame, build_dataset, model_schema
from candle_ml.features import drop_warmup, featurize
from candle_ml.ingest import ingest
from candle_ml.training import bundle_meta, train

ROOT = Path(__file__).resolve().parent.parent


def test_a_label_only_traders_use_is_learned_and_served(tmp_path):
    cfg = load_section("featurize", FeaturizeParams, ROOT / "params.yaml")
    series = ingest(IngestParams(bundled=["AAPL", "IBM"], raw_dir=str(tmp_path / "raw"), augment=[]))
    full = {s.key: featurize(s.candles, cfg) for s in series}
    history, _ = history_to_converge(full, cfg, cfg.convergence_tolerance)
    frames, human, programmatic, warmup = [], [], [], 0
    for s in series:
        kept, dropped = drop_warmup(full[s.key])
        warmup = max(warmup, dropped)
        frames.append(SeriesFrame(s.pair, s.timeframe, kept, int(s.candles["time"][0])))
        programmatic += [
            Annotation(sp, "autolabel") for sp in autolabel(s.candles, ["CDLDOJI"], s.pair, s.timeframe)
        ]
        # A trader's own name for a shape TA-Lib knows under another: only in their exports.
        human += [
            Annotation(msgspec.structs.replace(sp, label="my_bull_wrap", source="human"), "export.json")
            for sp in autolabel(s.candles, ["CDLENGULFING"], s.pair, s.timeframe)
            if sp.label == "bullish_engulfing"
        ]
    params = load_section("dataset", DatasetParams, ROOT / "params.yaml")
    dataset = build_dataset(frames, human, programmatic, label_priority(["CDLDOJI"]), params)
    schema = model_schema(dataset.schema, cfg, warmup, history)
    assert "my_bull_wrap" in schema["labels"]
    result = train(dataset.frame, schema, TrainParams(xgboost=XGBoostParams(n_estimators=60, n_jobs=2)))
    bundle = Bundle(bundle_meta(result, schema, TrainParams(), None), result.model, tmp_path)
    assert "my_bull_wrap" in bundle.meta.label_names
    assert next(x.color for x in bundle.meta.labels if x.name == "my_bull_wrap").startswith("#")

    aapl = next(s for s in series if s.pair == "AAPL").candles
    pred = bundle.predict(aapl)
    marked = np.zeros(aapl.height, dtype=bool)
    times = aapl["time"].to_numpy()
    for a in human:
        if a.span.pair == "AAPL":
            marked[
                np.searchsorted(times, a.span.start_time) : np.searchsorted(times, a.span.end_time) + 1
            ] = True
    # Test split: the last 15 % of the series, never trained on.
    test = np.zeros(aapl.height, dtype=bool)
    test[int(aapl.height * 0.85) :] = True
    hit = (pred.label == "my_bull_wrap") & marked & test
    recall = hit.sum() / (marked & test).sum()
    precision = hit.sum() / ((pred.label == "my_bull_wrap") & test).sum()
    print(f"my_bull_wrap on the AAPL test split: recall {recall:.3f}, precision {precision:.3f}")
    assert recall > 0.8 and precision > 0.8, (recall, precision)
