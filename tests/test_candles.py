"""Validation of raw candles: every rule names the file, row, field and rule."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from candle_ml.candle_files import read_series_file
from candle_ml.candles import parse_series_filename, validate_candles
from candle_ml.errors import CandleError

DAY = 86_400


def frame(rows, times=None):
    arr = np.asarray(rows, dtype=float)
    return pd.DataFrame(
        {
            "time": np.asarray(
                times if times is not None else 1_600_000_000 + DAY * np.arange(len(arr)), dtype=float
            ),
            "open": arr[:, 0],
            "high": arr[:, 1],
            "low": arr[:, 2],
            "close": arr[:, 3],
            "volume": arr[:, 4],
        }
    )


GOOD = (1.0716, 1.0722, 1.0708, 1.0720, 1413)


def test_clean_rows_pass_through_in_canonical_schema():
    out, report = validate_candles(frame([GOOD, GOOD]), "EURUSD_1h.csv")
    assert out.columns == ["time", "open", "high", "low", "close", "volume"]
    assert str(out.schema["time"]) == "Int64"
    assert report.rows_in == report.rows_out == 2 and report.dropped_by_rule == {}


def test_high_below_close_names_file_row_field_and_rule():
    bad = (1.0716, 1.0701, 1.0690, 1.0716, 10)  # high 1.0701 < close 1.0716
    with pytest.raises(CandleError) as err:
        validate_candles(frame([GOOD, GOOD, bad]), "EURUSD_1h.csv")
    msg = str(err.value)
    assert msg.startswith("EURUSD_1h.csv row 3: high 1.0701 < ")
    assert "field 'high'" in msg and "high_below_open_close" in msg


def test_high_below_low_row():
    bad = (1.0, 0.9, 1.1, 1.0, 1)
    with pytest.raises(CandleError, match=r"row 2: high 0.9 < low 1.1 \(field 'high', rule high_below_low\)"):
        validate_candles(frame([GOOD, bad]), "x.csv")


@pytest.mark.parametrize(
    "bad, rule",
    [
        ((np.nan, 1.1, 1.0, 1.05, 1), "price_not_finite_positive"),
        ((0.0, 1.1, 0.0, 1.05, 1), "price_not_finite_positive"),
        ((1.0, np.inf, 1.0, 1.05, 1), "price_not_finite_positive"),
        ((1.0, 1.1, 1.02, 1.05, 1), "low_above_open_close"),
        ((1.0, 1.1, 0.9, 1.05, -5), "volume_negative"),
    ],
)
def test_each_price_rule_errors_and_drops(bad, rule, caplog):
    rows = [GOOD, bad, GOOD]
    with pytest.raises(CandleError, match=rf"x.csv row 2: .*rule {rule}"):
        validate_candles(frame(rows), "x.csv")
    with caplog.at_level(logging.WARNING):
        out, report = validate_candles(frame(rows), "x.csv", on_invalid="drop")
    assert out.height == 2
    assert report.dropped_by_rule == {rule: 1}
    assert rule in caplog.text  # nothing is dropped silently


def test_duplicate_timestamp_errors_and_drop_keeps_first():
    t = 1_600_000_000
    rows = [GOOD, GOOD, GOOD]
    with pytest.raises(CandleError, match=r"row 2: time .* repeats .*rule time_duplicate"):
        validate_candles(frame(rows, [t, t, t + DAY]), "x.csv")
    out, report = validate_candles(frame(rows, [t, t, t + DAY]), "x.csv", on_invalid="drop")
    assert out["time"].to_list() == [t, t + DAY]
    assert report.dropped_by_rule == {"time_duplicate": 1}


def test_unsorted_times_are_an_error():
    t = 1_600_000_000
    with pytest.raises(CandleError, match=r"row 3: .*is before .*time_not_increasing"):
        validate_candles(frame([GOOD] * 3, [t, t + 2 * DAY, t + DAY]), "x.csv")


def test_missing_volume_becomes_zero_with_warning(caplog):
    f = frame([GOOD, GOOD]).drop(columns="volume")
    with caplog.at_level(logging.WARNING):
        out, report = validate_candles(f, "x.csv")
    assert out["volume"].to_list() == [0.0, 0.0]
    assert report.volume_filled == 2 and "volume missing" in caplog.text


def test_read_csv_with_aliases_and_timezones(tmp_path):
    p = tmp_path / "eurusd_1h.csv"
    p.write_text(
        "Datetime,Open,HIGH,low,Close,Volume\n"
        "2017-04-19 09:00:00,1.0716,1.0722,1.0708,1.0722,1413\n"
        "2017-04-19T10:00:00Z,1.0722,1.0730,1.0720,1.0725,900\n"
        "2017-04-19 13:00:00+02:00,1.0725,1.0731,1.0719,1.0720,800\n"
    )
    assert parse_series_filename(p) == ("EURUSD", "1h")
    raw, raw_times = read_series_file(p)
    out, _ = validate_candles(raw, p.name, raw_times=raw_times)
    assert out["time"].to_list() == [1492592400, 1492596000, 1492599600]


def test_naive_times_in_exchange_timezone_and_epoch_millis(tmp_path):
    p = tmp_path / "SPY_1d.csv"
    p.write_text("date,open,high,low,close\n2020-01-02 09:30,1,2,0.5,1.5\n")
    raw, _ = read_series_file(p, naive_timezone="America/New_York")
    assert raw["time"].tolist() == [1577975400.0]  # 14:30 UTC
    q = tmp_path / "SPY_1m.parquet"
    pd.DataFrame({"timestamp": [1577975400000], "o": [1.0], "h": [2.0], "l": [0.5], "c": [1.5]}).to_parquet(q)
    raw, _ = read_series_file(q)
    assert raw["time"].tolist() == [1577975400.0]


def test_unparseable_time_is_named_with_its_text(tmp_path):
    p = tmp_path / "X_1d.csv"
    p.write_text("date,open,high,low,close\n2020-01-02,1,2,0.5,1.5\nnot-a-date,1,2,0.5,1.5\n")
    raw, raw_times = read_series_file(p)
    with pytest.raises(CandleError, match=r"X_1d.csv row 2: time 'not-a-date' is not a timestamp"):
        validate_candles(raw, p.name, raw_times=raw_times)


def test_missing_columns_and_bad_file_names(tmp_path):
    p = tmp_path / "X_1d.csv"
    p.write_text("date,open,close\n2020-01-02,1,1.5\n")
    with pytest.raises(CandleError, match="missing required column\\(s\\) high, low"):
        read_series_file(p)
    with pytest.raises(CandleError, match="PAIR.*_.*TIMEFRAME"):
        parse_series_filename(tmp_path / "nounderscore.csv")


def _frame(n: int = 5) -> pd.DataFrame:
    idx = pd.date_range("2017-04-19 09:00", periods=n, freq="h", name=None)
    close = np.linspace(1.07, 1.08, n)
    return pd.DataFrame(
        {
            "Open": close - 0.001,
            "High": close + 0.002,
            "Low": close - 0.002,
            "Close": close,
            "Volume": np.arange(n) * 100.0,
        },
        index=idx,
    )


def test_pandas_default_csv_with_an_unnamed_date_index_loads(tmp_path):
    p = tmp_path / "EURUSD_1h.csv"
    _frame().to_csv(p)  # header ",Open,High,Low,Close,Volume": the dates in an unnamed first column
    raw, raw_times = read_series_file(p)
    candles, _ = validate_candles(raw, p.name, raw_times=raw_times)
    assert candles["time"][0] == 1492592400 and candles.height == 5


def test_yahoo_style_adj_close_lowercase_and_epoch_millis_load(tmp_path):
    f = _frame()
    yahoo = tmp_path / "AAPL_1d.csv"
    f.assign(**{"Adj Close": f["Close"] * 0.9}).rename_axis("Date").reset_index()[
        ["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"]
    ].to_csv(yahoo, index=False)
    assert read_series_file(yahoo)[0]["close"].tolist() == f["Close"].tolist()  # Close, not Adj Close
    lower = tmp_path / "X_1h.csv"
    f.rename(columns=str.lower).to_csv(lower, index_label="datetime")
    assert read_series_file(lower)[0]["time"].iloc[0] == 1492592400
    millis = tmp_path / "Y_1h.csv"
    f.reset_index(drop=True).assign(ts=f.index.astype("int64") // 10**6).to_csv(millis, index=False)
    assert read_series_file(millis)[0]["time"].iloc[0] == 1492592400


def test_an_unusual_time_column_is_named_or_the_error_says_how(tmp_path):
    p = tmp_path / "EURUSD_1h.csv"
    _frame().rename_axis("bar_open").to_csv(p)
    with pytest.raises(CandleError, match="missing required column\\(s\\) time .*--time-column NAME"):
        read_series_file(p)
    raw, _ = read_series_file(p, time_column="bar_open")
    assert raw["time"].iloc[0] == 1492592400
    with pytest.raises(CandleError, match="no column 'opened'"):
        read_series_file(p, time_column="opened")
