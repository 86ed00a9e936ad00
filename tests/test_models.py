"""Model registry, class weights, training and the bundle round trip."""

from __future__ import annotations

import msgspec
import numpy as np
import polars as pl
import pytest

from candle_ml import models
from candle_ml.annotations import Annotation
from candle_ml.autolabel import autolabel
from candle_ml.bundle import load_bundle, save_bundle
from candle_ml.config import FeaturizeParams, RandomForestParams, TrainParams, XGBoostParams
from candle_ml.dataset import SeriesFrame, build_dataset
from candle_ml.errors import BundleError
from candle_ml.features import drop_warmup, featurize
from candle_ml.models import UnknownModelType, create_model
from candle_ml.stage_outputs import FeaturesIndex, SeriesEntry, features_entry, model_schema
from candle_ml.training import bundle_meta, sample_weights, train

from .conftest import make_candles, quiet_history


def test_unknown_model_type_lists_the_supported_ones():
    with pytest.raises(
        UnknownModelType,
        match="unknown model type 'lstm' \\(supported: xgboost, random_forest, xgboost_spark\\)",
    ):
        create_model(TrainParams(model_type="lstm"), 3)


@pytest.mark.parametrize("model_type", list(models.MODEL_TYPES))
def test_each_registered_model_type_declares_what_the_registry_needs(model_type):
    """A model type is its class, its params section in TrainParams (train.<model_type>, of the
    class's params_type) and every PatternModel member, so a new one that forgets any fails here."""
    cls = models.MODEL_TYPES[model_type]
    assert cls.model_type == model_type
    fields = {f.name: f.type for f in msgspec.structs.fields(TrainParams)}
    assert fields.get(model_type) is cls.params_type, f"TrainParams needs `{model_type}: {cls.params_type}`"
    members = [m for m in dir(models.PatternModel) if not m.startswith("_")]
    members += list(models.PatternModel.__annotations__)
    assert [m for m in members if not hasattr(cls, m)] == []
    section = models.hyperparams(TrainParams(model_type=model_type))
    assert isinstance(section, cls.params_type)


def test_balanced_class_weights():
    w = sample_weights(np.array([0, 0, 0, 1]), "balanced")
    np.testing.assert_allclose(w, [2 / 3, 2 / 3, 2 / 3, 2.0])  # n / (classes * count)
    assert sample_weights(np.array([0, 1]), "none") is None


@pytest.fixture(scope="module")
def small_dataset():
    return build_small("end")


def build_small(encoding: str):
    """Featurized synthetic candles with TA-Lib doji/engulfing labels, as the pipeline builds them."""
    rng = np.random.default_rng(3)
    rows = quiet_history(400, seed=1)
    rows = [(o, h, lo, o + (c - o) * rng.choice([1.0, 0.02, -1.5])) for o, h, lo, c in rows]
    rows = [(o, max(h, o, c) + 0.1, min(lo, o, c) - 0.1, c) for o, h, lo, c in rows]
    candles = make_candles(rows)
    cfg = FeaturizeParams()
    kept, warm = drop_warmup(featurize(candles, cfg))
    spans = autolabel(candles, ["CDLENGULFING", "CDLDOJI"], "SYN", "1d")
    priority = ["bullish_engulfing", "bearish_engulfing", "doji"]
    from candle_ml.config import DatasetParams

    res = build_dataset(
        [SeriesFrame("SYN", "1d", kept, int(candles["time"][0]))],
        [],
        [Annotation(s, "autolabel") for s in spans],
        priority,
        DatasetParams(encoding=encoding, window_size=3, context=1, features=["*_rel"]),
    )
    first, last = int(candles["time"][0]), int(candles["time"][-1])
    entry = SeriesEntry("SYN", "1d", "SYN_1d.parquet", "test", candles.height, first, last, None)
    index = FeaturesIndex([features_entry(entry, kept, warm)], list(kept.columns), cfg, warm, {}, {})
    schema = model_schema(res.schema, index)
    return candles, res.frame, schema


def test_train_passes_class_weights_to_the_model(small_dataset, monkeypatch):
    _, frame, schema = small_dataset
    seen = {}

    class Recorder:  # stands in for the xgboost type, with its params section
        model_type, file_name, params_type = "xgboost", "x", XGBoostParams

        def __init__(self, params, n_classes, seed, device):
            pass

        def fit(self, X, y, sample_weight, X_val, y_val):
            seen["w"], seen["y"] = sample_weight, y
            return {}

    monkeypatch.setitem(models.MODEL_TYPES, "xgboost", Recorder)
    train(frame, schema, TrainParams(model_type="xgboost", class_weight="balanced"))
    y, w = seen["y"], seen["w"]
    totals = [w[y == k].sum() for k in np.unique(y)]
    np.testing.assert_allclose(totals, totals[0])  # every class weighs the same in total


@pytest.mark.parametrize(
    "params",
    [
        TrainParams(model_type="xgboost", xgboost=XGBoostParams(n_estimators=20, n_jobs=1)),
        TrainParams(model_type="random_forest", random_forest=RandomForestParams(n_estimators=20, n_jobs=1)),
        # the shipped layout: multi-output trees reading only the most telling window columns
        TrainParams(
            model_type="xgboost",
            top_inputs=12,
            xgboost=XGBoostParams(n_estimators=20, n_jobs=1, multi_strategy="multi_output_tree"),
        ),
    ],
    ids=["xgboost", "random_forest", "xgboost_top_inputs"],
)
@pytest.mark.parametrize("encoding", ["end", "window"])
def test_bundle_round_trip_gives_the_same_predictions(tmp_path, params, encoding):
    candles, frame, schema = build_small(encoding)
    result = train(frame, schema, params)
    meta = bundle_meta(result, schema, params)
    save_bundle(tmp_path, result.model, meta)
    bundle = load_bundle(tmp_path)
    assert bundle.meta.label_names == result.classes and bundle.meta.labels[0].color == "#9e9e9e"
    pred = bundle.predict(candles)
    assert all(lab is None for lab in pred.label[: meta.min_history])  # not enough history
    assert all(lab is not None for lab in pred.label[meta.min_history :])
    # Same inputs through the in-memory model: identical probabilities.
    from candle_ml.windows import build_windows, window_columns

    every = window_columns(meta.feature_columns, meta.window)
    if params.top_inputs:
        assert len(meta.input_columns) == params.top_inputs
        assert meta.input_columns == [c for c in every if c in meta.input_columns]  # layout order
    else:
        assert meta.input_columns == every
    kept, first = drop_warmup(featurize(candles, meta.featurize))
    anchors = np.arange(meta.min_history - first, kept.height)
    X = build_windows(kept.select(meta.feature_columns).to_numpy(), anchors, meta.window)
    X = X[:, [every.index(c) for c in meta.input_columns]]  # the columns the model reads, by name
    own = result.model.predict_proba(X)
    # Each candle has the probabilities of the candle its pattern ends on: its own, or one of the
    # next lookahead candles' (the second candle of an engulfing names the first one too).
    got = pred.proba[anchors + first]
    for i in range(len(anchors)):
        ahead = own[i : i + meta.lookahead + 1]
        assert np.isclose(ahead, got[i], rtol=1e-6).all(axis=1).any(), f"candle {anchors[i] + first}"
        if pred.label[anchors[i] + first] == "O":
            np.testing.assert_allclose(got[i], own[i], rtol=1e-6)
    assert (pl.Series(pred.label[meta.min_history :]) != "O").sum() > 0


def test_loading_a_directory_without_a_bundle_says_what_to_do(tmp_path):
    with pytest.raises(BundleError, match="no bundle.json here; run `dvc repro`"):
        load_bundle(tmp_path)


def test_xgboost_logs_progress_and_saves_its_training_curve(small_dataset, tmp_path, caplog, monkeypatch):
    import logging

    from candle_ml.models.xgboost_model import XGBoostModel

    _, frame, schema = small_dataset
    params = TrainParams(model_type="xgboost", xgboost=XGBoostParams(n_estimators=15, n_jobs=1))
    monkeypatch.setattr(XGBoostModel, "progress_every_s", 0.0)  # a line every round
    with caplog.at_level(logging.INFO, logger="candle_ml.train"):
        result = train(frame, schema, params)
    assert "round 1/15, validation mlogloss" in caplog.text
    save_bundle(tmp_path, result.model, bundle_meta(result, schema, params))
    curve = pl.read_csv(tmp_path / "training_curve.csv")
    assert curve.columns == ["round", "validation_mlogloss"] and 1 <= curve.height <= 15
    assert curve["validation_mlogloss"][-1] < curve["validation_mlogloss"][0]
    load_bundle(tmp_path)  # the saved model is unaffected by the callback


def test_an_end_model_paints_each_predicted_pattern_back_over_its_candles(tmp_path):
    """The end model names a pattern on its last candle; every candle it covers gets it, the higher
    priority wins an overlap, a pattern below its threshold paints nothing, and one reaching back
    past the first candle with history is cut there."""
    candles, frame, schema = build_small("end")
    params = TrainParams(model_type="xgboost", xgboost=XGBoostParams(n_estimators=5, n_jobs=1))
    result = train(frame, schema, params)
    meta = bundle_meta(result, schema, params)
    meta = msgspec.structs.replace(
        meta,
        label_lengths={"bullish_engulfing": 2, "bearish_engulfing": 2, "doji": 1},
        label_priority=["bullish_engulfing", "bearish_engulfing", "doji"],
        thresholds={"doji": 0.65},
    )
    save_bundle(tmp_path, result.model, meta)
    bundle = load_bundle(tmp_path)
    names = meta.label_names
    served = candles.height - meta.min_history
    designed = np.full((served, len(names)), 0.1 / (len(names) - 1))
    designed[:, names.index("O")] = 0.9

    def ends(row: int, label: str, p: float) -> None:
        designed[row] = (1 - p) / (len(names) - 1)
        designed[row, names.index(label)] = p

    ends(0, "bullish_engulfing", 0.95)  # reaches back before the first served candle
    ends(10, "doji", 0.8)
    ends(11, "bullish_engulfing", 0.7)  # covers the doji: higher priority
    ends(20, "bearish_engulfing", 0.9)
    ends(21, "bearish_engulfing", 0.6)  # overlaps the one before: the later one wins candle 20
    ends(30, "doji", 0.6)  # below its 0.65 threshold: O

    class Designed:
        def predict_proba(self, X):
            return designed[: len(X)]

    bundle.model = Designed()  # type: ignore[assignment]
    pred = bundle.predict(candles, calibrated=False)
    at = meta.min_history
    got = {
        i: (pred.label[at + i], round(float(pred.confidence[at + i]), 2))
        for i in (0, 9, 10, 11, 19, 20, 21, 30)
    }
    assert pred.label[at - 1] is None and np.isnan(pred.confidence[at - 1])
    assert got == {
        0: ("bullish_engulfing", 0.95),
        9: ("O", 0.9),
        10: ("bullish_engulfing", 0.7),
        11: ("bullish_engulfing", 0.7),
        19: ("bearish_engulfing", 0.9),
        20: ("bearish_engulfing", 0.6),
        21: ("bearish_engulfing", 0.6),
        30: ("O", 0.6),
    }
    np.testing.assert_allclose(pred.proba[at + 10], designed[11])


def test_the_run_record_stays_beside_the_bundle_and_only_describes_its_own_bundle(tmp_path, caplog):
    """bundle.json holds nothing of the run (same data and params, same bytes); the run record
    beside it fills in time, run and commit on loading, unless the bundle is another one."""
    from candle_ml.bundle import RunRecord, run_record_file
    from candle_ml.training import run_record

    candles, frame, schema = build_small("end")
    params = TrainParams(model_type="xgboost", xgboost=XGBoostParams(n_estimators=5, n_jobs=1))
    result = train(frame, schema, params)
    meta = bundle_meta(result, schema, params)
    bundle_dir = tmp_path / "models"
    save_bundle(bundle_dir, result.model, meta, run=run_record(result, "run-1"))
    text = (bundle_dir / "bundle.json").read_text()
    assert "trained_at" not in text and "run-1" not in text and "seconds" not in text
    assert not any(p.name.endswith(".run.json") for p in bundle_dir.iterdir())
    loaded = load_bundle(bundle_dir).meta.training
    assert loaded.run_id == "run-1" and loaded.trained_at and loaded.fit["seconds"] >= 0
    first = (bundle_dir / "bundle.json").read_bytes()
    save_bundle(bundle_dir, result.model, meta, run=run_record(result, "run-2"))
    assert (bundle_dir / "bundle.json").read_bytes() == first  # the same model, the same bytes
    # Another bundle restored where the record's one was (DVC's cache): the record is not its run.
    record = msgspec.json.decode(run_record_file(bundle_dir).read_bytes(), type=RunRecord)
    other = msgspec.structs.replace(meta, temperature=meta.temperature + 1)
    save_bundle(bundle_dir, result.model, other)  # no run: a stale record is removed
    assert not run_record_file(bundle_dir).exists()
    run_record_file(bundle_dir).write_bytes(msgspec.json.encode(record))
    assert load_bundle(bundle_dir).meta.training.run_id is None
    assert "describes another bundle" in caplog.text


def test_top_inputs_below_zero_is_refused_by_name():
    with pytest.raises(ValueError, match="train.top_inputs must be >= 0"):
        TrainParams(top_inputs=-1)
