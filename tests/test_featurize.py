"""Candle features, TA-Lib indicators, custom features and warm-up handling."""

from __future__ import annotations

import msgspec
import numpy as np
import polars as pl
import pytest

from candle_ml.config import FeaturizeParams, IndicatorSpec
from candle_ml.convergence import history_to_converge, unconverged_rows
from candle_ml.errors import CandleError, FeatureError
from candle_ml.features import drop_warmup, feature_columns, featurize

from .conftest import make_candles, quiet_history

CFG = FeaturizeParams(
    indicators=[
        IndicatorSpec("RSI", {"timeperiod": 14}),
        IndicatorSpec("ATR", {"timeperiod": 14}),
        IndicatorSpec("MACD", {}),
        IndicatorSpec("BBANDS", {"timeperiod": 20}),
    ]
)


def test_indicator_columns_are_named_by_params_and_outputs():
    out = featurize(make_candles(quiet_history(60)), CFG)
    cols = feature_columns(out)
    assert {
        "rsi_14",
        "atr_14",
        "macd_macd",
        "macd_macdsignal",
        "macd_macdhist",
        "bbands_20_upperband",
        "bbands_20_middleband",
        "bbands_20_lowerband",
    } <= set(cols)
    assert out.height == 60  # the pure core keeps every row; the stage drops warm-up


def test_candle_features_of_a_known_candle():
    rows = quiet_history(12) + [(10.0, 13.0, 9.0, 12.0)]  # body 2, upper wick 1, lower wick 1, range 4
    out = featurize(make_candles(rows), FeaturizeParams()).row(-1, named=True)
    assert (out["body_size"], out["upper_wick"], out["lower_wick"], out["range"]) == (2.0, 1.0, 1.0, 4.0)
    assert out["body_direction"] == 1.0 and out["body_to_range"] == 0.5 and out["wick_ratio"] == 0.5


def test_zero_range_candle_gives_finite_features():
    rows = quiet_history(40) + [(100.0, 100.0, 100.0, 100.0)] + quiet_history(5, price=100.0)
    out = featurize(make_candles(rows), CFG)
    kept, _ = drop_warmup(out)
    flat = kept.filter(pl.col("range") == 0)
    assert flat.height == 1
    values = flat.select(feature_columns(kept)).to_numpy()
    assert np.isfinite(values).all()
    assert flat["body_to_range"][0] == 0.0 and flat["wick_ratio"][0] == 0.5


def test_a_run_of_flat_candles_stays_finite():
    rows = quiet_history(15) + [(100.0, 100.0, 100.0, 100.0)] * 15 + [(100.0, 101.0, 99.0, 100.5)]
    kept, _ = drop_warmup(featurize(make_candles(rows), FeaturizeParams()))
    assert np.isfinite(kept.select(feature_columns(kept)).to_numpy()).all()


def test_scale_free_features_do_not_depend_on_price_level():
    rows = quiet_history(40, price=1.07)
    cheap = featurize(make_candles(rows), FeaturizeParams())
    dear = featurize(make_candles([tuple(500 * np.asarray(r)) for r in rows]), FeaturizeParams())
    rel = [c for c in feature_columns(cheap) if c.endswith("_rel")]
    assert len(rel) >= 8
    np.testing.assert_allclose(
        cheap.select(rel).to_numpy(), dear.select(rel).to_numpy(), rtol=1e-9, equal_nan=True
    )


def test_warmup_rows_are_the_leading_nan_rows():
    out = featurize(make_candles(quiet_history(80)), CFG)
    kept, dropped = drop_warmup(out)
    assert dropped == 33  # MACD(12, 26, 9) needs 33 candles, the longest lookback here
    assert kept.height == 47 and np.isfinite(kept.select(feature_columns(kept)).to_numpy()).all()


def test_unknown_indicator_lists_close_matches():
    with pytest.raises(
        FeatureError, match=r"featurize.indicators\[0\]: unknown TA-Lib indicator 'RSII'; close matches: RSI"
    ):
        featurize(make_candles(quiet_history(30)), FeaturizeParams(indicators=[IndicatorSpec("RSII")]))


def test_unknown_indicator_parameter_lists_accepted_ones():
    spec = IndicatorSpec("RSI", {"period": 14})
    with pytest.raises(FeatureError, match="unknown parameter\\(s\\) period \\(accepted: timeperiod\\)"):
        featurize(make_candles(quiet_history(30)), FeaturizeParams(indicators=[spec]))


def test_custom_features_from_a_file(tmp_path):
    plugin = tmp_path / "myfeat.py"
    plugin.write_text(
        "import polars as pl\n"
        "def two(frame):\n"
        "    return pl.DataFrame({'hl2': (frame['high'] + frame['low']) / 2, 'one': [1.0] * frame.height})\n"
        "def broken(frame):\n"
        "    raise RuntimeError('boom')\n"
        "def short(frame):\n"
        "    return pl.Series('x', [1.0])\n"
    )
    candles = make_candles(quiet_history(20))
    out = featurize(candles, FeaturizeParams(custom=[f"{plugin}:two"]))
    np.testing.assert_allclose(out["hl2"].to_numpy(), ((candles["high"] + candles["low"]) / 2).to_numpy())
    with pytest.raises(
        FeatureError, match=r"featurize.custom '.*myfeat.py:broken' raised RuntimeError: boom"
    ):
        featurize(candles, FeaturizeParams(custom=[f"{plugin}:broken"]))
    with pytest.raises(FeatureError, match=r"myfeat.py:short': returned 1 rows for 20 candles"):
        featurize(candles, FeaturizeParams(custom=[f"{plugin}:short"]))
    with pytest.raises(FeatureError, match="has no function 'nope'"):
        featurize(candles, FeaturizeParams(custom=[f"{plugin}:nope"]))
    with pytest.raises(FeatureError, match="expected 'path/to/file.py:function'"):
        featurize(candles, FeaturizeParams(custom=["no_colon"]))


def test_custom_feature_from_a_module():
    out = featurize(
        make_candles(quiet_history(20)), FeaturizeParams(custom=["tests.custom_feature_example:log_volume"])
    )
    assert "log_volume" in out.columns


def test_nan_inside_a_series_is_refused_before_talib():
    candles = make_candles(quiet_history(20)).with_columns(
        close=pl.when(pl.int_range(pl.len()) == 7).then(float("nan")).otherwise(pl.col("close"))
    )
    with pytest.raises(CandleError, match="row 8 has a non-finite price"):
        featurize(candles, CFG)


def test_missing_talib_says_how_to_install(monkeypatch):
    import sys

    from candle_ml.errors import TalibMissingError
    from candle_ml.talib_api import import_talib

    monkeypatch.setitem(sys.modules, "talib", None)  # makes `import talib` raise ImportError
    with pytest.raises(TalibMissingError, match="pip install ta-lib"):
        import_talib()


def random_walk(n: int, seed: int = 5) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n))
    return make_candles(list(zip(open_, high, low, close, strict=True)))


def test_history_to_converge_measures_exponential_indicators():
    candles = random_walk(1600)
    rsi = FeaturizeParams(indicators=[IndicatorSpec("RSI", {"timeperiod": 14})])
    plain = FeaturizeParams(indicators=[IndicatorSpec("SMA", {"timeperiod": 14})])
    rows, column = unconverged_rows(featurize(candles, rsi), 600, rsi, 1e-6)
    # Wilder smoothing forgets its start as (13/14)^k: 1e-6 takes ~190 candles after the warm-up.
    assert column == "rsi_14" and 150 < rows < 300
    # A finite-window indicator is exact once its window is inside the chunk.
    assert unconverged_rows(featurize(candles, plain), 600, plain, 1e-6)[0] <= 14
    needed, detail = history_to_converge({"RW": featurize(candles, rsi)}, rsi, 1e-6)
    assert needed >= detail["measured"] >= rows and detail["column"] == "rsi_14"
    looser, _ = history_to_converge({"RW": featurize(candles, rsi)}, rsi, 1e-3)
    assert looser < needed


def test_history_is_known_per_feature_so_a_model_needs_only_what_it_reads():
    """RSI's Wilder smoothing needs ~200 candles to forget where a request starts; a candle-shape
    feature only its own averaging window. A model reading only shape features (``top_inputs``)
    gets its min_history from them, plus the window's left side."""
    from candle_ml.config import SplitParams
    from candle_ml.convergence import served_history
    from candle_ml.input_selection import read_history
    from candle_ml.stage_outputs import ModelSchema, WindowLayout

    candles = random_walk(1600)
    cfg = FeaturizeParams(indicators=[IndicatorSpec("RSI", {"timeperiod": 14})])
    full = featurize(candles, cfg)
    _, warmup = drop_warmup(full)
    served = served_history({"RW": full}, {"RW": warmup}, cfg)
    assert served.measured and served.candles == max(served.by_column.values()) == served.by_column["rsi_14"]
    # (the shape features scale by the mean of the last scale_window candles; padded by HISTORY_SAFETY)
    assert served.by_column["rsi_14"] > 150 and served.by_column["body_rel"] <= 2 * cfg.scale_window
    assert served.warmup_by_column["rsi_14"] == 14 and served.warmup_by_column["body_direction"] == 0
    assert all(served.by_column[c] >= served.warmup_by_column[c] for c in served.by_column)
    # A request cut with that many candles of history matches the whole series on that column.
    start = 700
    for column in ("body_rel", "rsi_14"):
        need = served.by_column[column]
        cut = featurize(candles.slice(start - need, need + 50), cfg)[column].to_numpy()[need:]
        np.testing.assert_allclose(cut, full[column].to_numpy()[start : start + 50], rtol=1e-6)

    schema = ModelSchema(
        encoding="end",
        feature_columns=feature_columns(full),
        own_label_features=[],
        input_columns=[],
        window=WindowLayout(window_size=1, context=0, anchor="end", before=0, after=0),
        label_lengths={},
        labels=[],
        label_priority=[],
        merge="human_priority",
        split=SplitParams(),
        target_columns=["label"],
        featurize=cfg,
        warmup=warmup,
        history=served.candles,
        history_by_column=served.by_column,
        warmup_by_column=served.warmup_by_column,
    )
    shape_only = ["body_rel@-1", "body_rel@+0", "body_direction@+0", "pad@-1"]
    assert read_history(schema, shape_only) == (
        served.warmup_by_column["body_rel"],
        served.by_column["body_rel"],
    )
    assert read_history(schema, [*shape_only, "rsi_14@+0"]) == (14, served.by_column["rsi_14"])
    # Without per-column numbers: every feature's.
    old = msgspec.structs.replace(schema, history_by_column={}, warmup_by_column={})
    assert read_history(old, shape_only) == (warmup, served.candles)


def test_a_feature_that_never_converges_is_an_error():
    cfg = FeaturizeParams(indicators=[IndicatorSpec("OBV", {})])
    candles = random_walk(1600)
    with pytest.raises(FeatureError, match="feature 'obv' still differs .* depends on the whole history"):
        history_to_converge({"RW": featurize(candles, cfg)}, cfg, 1e-6)


def test_series_too_short_to_measure_convergence():
    cfg = FeaturizeParams(indicators=[IndicatorSpec("RSI", {"timeperiod": 14})])
    assert history_to_converge({"RW": featurize(random_walk(300), cfg)}, cfg, 1e-6) == (None, {})


@pytest.mark.parametrize(
    "cfg",
    [
        CFG,  # multi-output indicators (MACD, BBANDS) through TA-Lib's function API
        FeaturizeParams(custom=["tests.custom_feature_example:log_volume"]),  # custom: the frame path
    ],
    ids=["indicators", "custom"],
)
def test_the_prediction_path_computes_exactly_what_featurize_writes(cfg):
    """``feature_matrix`` (what every prediction uses) gives the same bytes as the stage's
    ``featurize`` + ``drop_warmup`` + column selection, warm-up rows included."""
    from candle_ml.features import feature_matrix

    rng = np.random.default_rng(4)
    rows = [tuple(np.asarray(r) * (1 + 0.01 * rng.standard_normal())) for r in quiet_history(120)]
    candles = make_candles(rows)
    kept, first = drop_warmup(featurize(candles, cfg))
    columns = feature_columns(kept)[::-1]  # any order the model asks for
    fast, fast_first = feature_matrix(candles, cfg, columns)
    assert fast_first == first and fast.dtype == np.float32
    assert fast.tobytes() == kept.select(columns).to_numpy().astype(np.float32).tobytes()
