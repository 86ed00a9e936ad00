"""Higher-timeframe context: finished higher-timeframe candles only (no look-ahead), the same
features for a request cut anywhere as for the whole series, and spans confirmed on the
higher timeframe when TA-Lib's rule fires there too."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from candle_ml.config import FeaturizeParams
from candle_ml.confirmation import Confirmer
from candle_ml.errors import ConfigError, FeatureError
from candle_ml.features import featurize
from candle_ml.timeframes import bucket_ids, check_shorter, resample

HOUR, DAY = 3600, 86400
MONDAY = 1_262_563_200  # 2010-01-04 00:00 UTC


def hourly_walk(n: int, seed: int = 0, start: int = MONDAY) -> pl.DataFrame:
    """A random walk of hourly candles, weekdays only (as FX prints), from ``start``."""
    rng = np.random.default_rng(seed)
    hours = start + HOUR * np.arange(3 * n)
    hours = hours[((hours - 4 * DAY) // DAY) % 7 < 5][:n]  # Monday..Friday
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    open_ = np.r_[100.0, close[:-1]]
    wick = np.abs(rng.normal(0, 0.001, (2, n))) * close
    return pl.DataFrame(
        {
            "time": hours,
            "open": open_,
            "high": np.maximum(open_, close) + wick[0],
            "low": np.minimum(open_, close) - wick[1],
            "close": close,
            "volume": rng.integers(100, 1000, n).astype(float),
        }
    )


CFG = FeaturizeParams(higher_timeframes=["4h", "1d"])


def htf(frame: pl.DataFrame) -> np.ndarray:
    return frame.select(pl.col("^htf_.*$")).to_numpy()


def test_buckets_are_utc_days_and_monday_weeks():
    t = np.array([MONDAY - 1, MONDAY, MONDAY + 5 * DAY, MONDAY + 7 * DAY - 1, MONDAY + 7 * DAY])
    assert list(np.diff(bucket_ids(t, 7 * DAY))) == [1, 0, 0, 1]  # Sunday | Monday..Sunday | Monday
    assert list(np.diff(bucket_ids(t, DAY))) == [1, 5, 1, 1]
    r = resample(t, *(np.arange(5.0),) * 4, 7 * DAY)
    assert r.bucket.size == 3 and list(r.of_candle) == [0, 1, 1, 1, 2] and r.complete == slice(1, 2)


def test_appending_candles_never_changes_earlier_features():
    candles = hourly_walk(1500)
    full = htf(featurize(candles, CFG))
    for cut in (200, 731, 1000, 1499):
        early = htf(featurize(candles.head(cut), CFG))
        np.testing.assert_array_equal(early, full[:cut])  # NaN where NaN, equal elsewhere


def test_a_candle_sees_the_finished_days_before_its_own():
    candles = hourly_walk(24 * 10)  # two weeks of weekdays
    f = featurize(candles, FeaturizeParams(higher_timeframes=["1d"]))
    day = (candles["time"].to_numpy() - MONDAY) // DAY
    daily = (
        candles.with_columns(day=pl.Series(day))
        .group_by("day", maintain_order=True)
        .agg(pl.col("open").first(), pl.col("high").max(), pl.col("low").min(), pl.col("close").last())
    )
    # Wednesday 10:00 of week 2 (day 9): yesterday (day 8) and the day before (day 7) are finished
    i = int(np.flatnonzero(candles["time"].to_numpy() == MONDAY + 9 * DAY + 10 * HOUR)[0])
    y = daily.filter(pl.col("day") == 8).row(0, named=True)
    b = daily.filter(pl.col("day") == 7).row(0, named=True)
    rng = y["high"] - y["low"]
    row = f.row(i, named=True)
    assert row["htf_1d_body_to_range"] == pytest.approx((y["close"] - y["open"]) / rng)
    assert row["htf_1d_change_to_range"] == pytest.approx((y["close"] - b["close"]) / rng)
    assert row["htf_1d_range_change"] == pytest.approx(rng / (b["high"] - b["low"]))
    assert row["htf_1d_close_position"] == pytest.approx((candles["close"][i] - y["low"]) / rng)
    # the first day may be partial and the next two lack a finished day before them: warm-up
    assert np.isnan(htf(f)[day <= 2]).all() and np.isfinite(htf(f)[day >= 3]).all()


def test_a_request_cut_mid_day_agrees_after_three_days():
    candles = hourly_walk(1200, seed=3)
    full = htf(featurize(candles, CFG))
    cut = 301  # mid-day
    part = htf(featurize(candles.slice(cut), CFG))
    times = candles["time"].to_numpy()[cut:]
    settled = bucket_ids(times, DAY) >= bucket_ids(times[:1], DAY)[0] + 3
    np.testing.assert_array_equal(part[settled], full[cut:][settled])


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match=r"higher_timeframes\[1\]: 'daily'"):
        FeaturizeParams(higher_timeframes=["4h", "daily"])
    with pytest.raises(ValueError, match="listed twice"):
        FeaturizeParams(higher_timeframes=["1d", "1d"])
    with pytest.raises(FeatureError, match=r"AAPL_1d: .*'4h' must be a multiple .* longer"):
        check_shorter("AAPL_1d", "1d", ["4h"])
    with pytest.raises(FeatureError, match=r"X_1h: .*'90m' must be a multiple"):
        check_shorter("X_1h", "1h", ["90m"])
    check_shorter("X_1h", "1h", ["4h", "1d", "1w"])


def test_a_bad_timeframe_in_params_yaml_is_a_config_error(tmp_path):
    from candle_ml.config import load_section

    params = tmp_path / "params.yaml"
    params.write_text("featurize:\n  higher_timeframes: [1x]\n")
    with pytest.raises(ConfigError, match="higher_timeframes"):
        load_section("featurize", FeaturizeParams, params)


def days_to_hours(days: np.ndarray) -> pl.DataFrame:
    """Each daily candle (open, high, low, close) as 24 hourly candles that resample back to it."""
    rows = []
    for d, (o, h, low, c) in enumerate(days):
        path = np.r_[o, np.linspace(o, h, 8)[1:], np.linspace(h, low, 9)[1:], np.linspace(low, c, 9)[1:]]
        for k in range(24):
            a, b = path[k], path[k + 1] if k < 23 else c
            rows.append((MONDAY + d * DAY + k * HOUR, a, max(a, b), min(a, b), b, 1.0))
    return pl.DataFrame(rows, schema=["time", "open", "high", "low", "close", "volume"], orient="row")


def test_a_daily_engulfing_confirms_the_hourly_span_inside_it():
    rng = np.random.default_rng(1)
    base = 100 + np.cumsum(rng.normal(0, 0.5, 30))
    days = np.column_stack([base, base + 1.0, base - 1.0, base + rng.normal(0, 0.3, 30)])
    days[20] = (101.0, 101.2, 99.8, 100.0)  # bearish day
    days[21] = (99.5, 101.8, 99.3, 101.5)  # a bullish day engulfing its body
    hours = days_to_hours(days)
    day21_close = MONDAY + 21 * DAY + 23 * HOUR
    for through, expected in ((21, []), (22, ["1d"])):  # the engulfing day must have finished
        part = hours.filter(pl.col("time") < MONDAY + (through + 1) * DAY)
        confirm = Confirmer(*confirmer_arrays(part), ["1d"])
        got = confirm("bullish_engulfing", "candlestick", day21_close - HOUR, day21_close)
        assert got == expected, through
    confirm = Confirmer(*confirmer_arrays(hours), ["1d"])
    assert confirm("bearish_engulfing", "candlestick", day21_close - HOUR, day21_close) == []
    assert confirm("bullish_engulfing", "candlestick", day21_close - DAY, day21_close - DAY) == []
    assert confirm("an_invented_label", "candlestick", day21_close, day21_close) == []


def confirmer_arrays(frame: pl.DataFrame) -> tuple[np.ndarray, ...]:
    return tuple(frame[k].to_numpy() for k in ("time", "open", "high", "low", "close"))


def weekly_rule_weeks(candles: pl.DataFrame, rule: str, label: str) -> set[int]:
    """An independent oracle: polars' Monday weeks, TA-Lib's rule on the finished ones (not the
    first, maybe partial, nor the last, maybe open); the Monday of each week it names ``label``."""
    import talib

    from candle_ml.patterns import label_for

    weeks = (
        candles.with_columns(pl.from_epoch("time").alias("t"))
        .group_by_dynamic("t", every="1w")
        .agg(pl.col("open").first(), pl.col("high").max(), pl.col("low").min(), pl.col("close").last())
        .slice(1)
    )
    weeks = weeks.head(weeks.height - 1)
    out = getattr(talib, rule)(*(weeks[k].to_numpy() for k in ("open", "high", "low", "close")))
    mondays = weeks["t"].dt.epoch("s").to_numpy()
    return {int(mondays[i]) for i in np.flatnonzero(out) if label_for(rule, int(out[i])) == label}


def test_served_spans_say_which_weeks_confirm_them(served_model, tmp_path):
    from litestar.testing import TestClient

    from candle_ml.confirmation import LABEL_RULES
    from serve.app import create_app
    from serve.settings import ServeSettings

    bundle_dir, candles_dir = served_model
    aapl = pl.read_parquet(candles_dir / "AAPL_1d.parquet")
    settings = ServeSettings(model=str(bundle_dir), candles_dir=str(candles_dir), history="")
    with TestClient(base_url="http://127.0.0.1", app=create_app(settings)) as client:
        info = client.get("/model/info").json()
        assert info["features"]["featurize"]["higher_timeframes"] == ["1w"]
        assert any(c.startswith("htf_1w_") for c in info["features"]["columns"])
        whole = client.get("/review", params={"pair": "AAPL", "timeframe": "1d"}).json()["spans"]
        tail = aapl.tail(700)
        request = client.post("/predict", json={"candles": tail.to_dicts()}).json()["spans"]
    candlestick = [s for s in whole if s["kind"] == "candlestick"]
    confirmed = [s for s in candlestick if s["confirmed_on"]]
    assert 0 < len(confirmed) < len(candlestick) and all(s["confirmed_on"] == ["1w"] for s in confirmed)
    oracle = {
        lab: weekly_rule_weeks(aapl, LABEL_RULES[lab], lab) for lab in {s["label"] for s in candlestick}
    }
    week_of = (aapl["time"].to_numpy() - 4 * DAY) // (7 * DAY) * (7 * DAY) + 4 * DAY
    monday = dict(zip(aapl["time"].to_list(), week_of.tolist(), strict=True))
    for s in candlestick:  # confirmed exactly when the span's week printed the same pattern
        assert bool(s["confirmed_on"]) == (monday[s["end_time"]] in oracle[s["label"]]), s
    # a request of the last 700 candles: its spans confirmed as in the whole series, once the
    # weekly rule has its own history (TA-Lib averages 10 weeks) inside the request
    settled = int(tail["time"][0]) + 20 * 7 * DAY
    by_span = {(s["start_time"], s["end_time"], s["label"]): s["confirmed_on"] for s in whole}
    later = [s for s in request if s["kind"] == "candlestick" and s["start_time"] > settled]
    assert later and all(
        by_span[(s["start_time"], s["end_time"], s["label"])] == s["confirmed_on"] for s in later
    )
