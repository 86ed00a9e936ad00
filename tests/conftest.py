"""Shared helpers: small hand-made candle series where the right answer is known."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import polars as pl
import pytest

from candle_ml.candles import CANDLE_SCHEMA

DAY = 86_400
T0 = 1_500_000_000 - (1_500_000_000 % DAY)  # a UTC midnight


def make_candles(rows: list[tuple[float, float, float, float]], volume: float = 1000.0, start: int = T0) -> pl.DataFrame:
    """(open, high, low, close) rows -> canonical candles, one per day."""
    arr = np.asarray(rows, dtype=np.float64)
    n = len(arr)
    return pl.DataFrame(
        {
            "time": start + DAY * np.arange(n, dtype=np.int64),
            "open": arr[:, 0],
            "high": arr[:, 1],
            "low": arr[:, 2],
            "close": arr[:, 3],
            "volume": np.full(n, volume),
        },
        schema=CANDLE_SCHEMA,
    )


def quiet_history(n: int, price: float = 100.0, seed: int = 0) -> list[tuple[float, float, float, float]]:
    """Ordinary mid-size candles alternating in colour, no pattern intended."""
    rng = np.random.default_rng(seed)
    rows = []
    p = price
    for i in range(n):
        body = 0.5 + 0.2 * rng.random()
        o = p
        c = p + body if i % 2 == 0 else p - body
        rows.append((o, max(o, c) + 0.4, min(o, c) - 0.4, c))
        p = c
    return rows


@pytest.fixture
def candles_factory():
    return make_candles


@pytest.fixture(scope="session")
def served_model(tmp_path_factory):
    """A small XGBoost bundle trained on bundled AAPL and IBM candles exactly as the stages do,
    with the default featurize config (exponential indicators included), plus ingest's
    candles directory for /predict/batch. Returns (bundle dir, candles dir)."""
    from candle_ml.bundle import save_bundle
    from candle_ml.config import DatasetParams, FeaturizeParams, IngestParams, TrainParams, XGBoostParams, load_section
    from candle_ml.patterns import labels_for
    from candle_ml.stageio import write_json
    from stages.autolabel import autolabel
    from stages.dataset import Annotation, SeriesFrame, build_dataset
    from stages.featurize import drop_warmup, featurize, history_to_converge
    from stages.ingest import ingest, series_index
    from stages.train import bundle_meta, train

    root = tmp_path_factory.mktemp("served")
    repo = Path(__file__).resolve().parent.parent
    cfg = load_section("featurize", FeaturizeParams, repo / "params.yaml")
    series = ingest(IngestParams(bundled=["AAPL", "IBM"], raw_dir=str(root / "raw"), augment=[]))
    candles_dir = root / "candles"
    candles_dir.mkdir()
    for s in series:
        s.candles.write_parquet(candles_dir / f"{s.key}.parquet")
    write_json(candles_dir / "index.json", {"series": series_index(series)})

    patterns = ["CDLENGULFING", "CDLHAMMER", "CDLDOJI"]
    full = {s.key: featurize(s.candles, cfg) for s in series}
    history, _ = history_to_converge(full, cfg, cfg.convergence_tolerance)
    frames, programmatic, warmup = [], [], 0
    for s in series:
        kept, dropped = drop_warmup(full[s.key])
        warmup = max(warmup, dropped)
        frames.append(SeriesFrame(s.pair, s.timeframe, kept, int(s.candles["time"][0])))
        programmatic += [Annotation(sp, "autolabel") for sp in autolabel(s.candles, patterns, s.pair, s.timeframe)]
    priority = [label for p in patterns for label in labels_for(p)]
    dataset = build_dataset(frames, [], programmatic, priority, load_section("dataset", DatasetParams, repo / "params.yaml"))
    schema = {**dataset.schema, "featurize": msgspec.to_builtins(cfg), "warmup": warmup, "history": history}
    params = TrainParams(model_type="xgboost", xgboost=XGBoostParams(n_estimators=30, n_jobs=2))
    result = train(dataset.frame, schema, params)
    bundle_dir = root / "models"
    save_bundle(bundle_dir, result.model, bundle_meta(result, schema, params, run_id=None))
    return bundle_dir, candles_dir
