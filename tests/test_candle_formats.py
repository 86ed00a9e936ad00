"""The exports traders have, named as downloaded and each written as its platform lays it out
(from the platform's documentation), from real candles (AAPL, bokeh-sampledata): every one reads
back to the same candles, whole and a block at a time, `candle-ml check` says what it detected,
and check, predict and ingest name each file alike."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from candle_ml.candle_files import file_layout, iter_series_file, read_candle_file
from candle_ml.candles import validate_candles
from candle_ml.cli import app
from candle_ml.config import IngestParams
from candle_ml.errors import CandleError
from candle_ml.ingest import bundled_frame, ingest
from candle_ml.series_names import name_series


@pytest.fixture(scope="module")
def aapl() -> pl.DataFrame:
    """60 real daily candles (volume in whole shares); ``hourly`` puts them on consecutive hours."""
    frame, _ = validate_candles(bundled_frame("AAPL"), "AAPL")
    return frame.slice(2000, 60).with_columns(pl.col("volume").round(0))


def utc(t: int) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def rows(candles: pl.DataFrame) -> list[dict]:
    return candles.to_dicts()


def hourly(candles: pl.DataFrame) -> pl.DataFrame:
    """The same prices on consecutive hours (an intraday chart's times)."""
    start = int(candles["time"][0])
    return candles.with_columns(pl.Series("time", [start + 3600 * i for i in range(candles.height)]))


def mt4(c: pl.DataFrame) -> str:  # History Center > Export: no header, server time to the minute
    return "".join(
        f"{utc(r['time']):%Y.%m.%d,%H:%M},{r['open']:.2f},{r['high']:.2f},{r['low']:.2f},{r['close']:.2f},"
        f"{int(r['volume'])}\r\n"
        for r in rows(c)
    )


def mt5(c: pl.DataFrame, with_time: bool = True, real_volume: bool = False) -> str:
    head = ["<DATE>", *(["<TIME>"] if with_time else []), "<OPEN>", "<HIGH>", "<LOW>", "<CLOSE>"]
    lines = ["\t".join([*head, "<TICKVOL>", "<VOL>", "<SPREAD>"])]
    for r in rows(c):
        when = [f"{utc(r['time']):%Y.%m.%d}", *([f"{utc(r['time']):%H:%M:%S}"] if with_time else [])]
        prices = [f"{r[k]:.2f}" for k in ("open", "high", "low", "close")]
        volume = int(r["volume"])
        tick, real = (volume // 100, volume) if real_volume else (volume, 0)
        lines.append("\t".join([*when, *prices, str(tick), str(real), "2"]))
    return "\r\n".join(lines) + "\r\n"


def yahoo(c: pl.DataFrame) -> str:
    lines = ["Date,Open,High,Low,Close,Adj Close,Volume"]
    for r in rows(c):
        adj = r["close"] * 0.25  # split-adjusted: must not be read as the close
        prices = ",".join(f"{r[k]:.6f}" for k in ("open", "high", "low", "close"))
        lines.append(f"{utc(r['time']):%Y-%m-%d},{prices},{adj:.6f},{int(r['volume'])}")
    return "\n".join(lines) + "\n"


def binance(c: pl.DataFrame, unit: int = 1000, header: bool = False) -> str:
    lines = []
    if header:  # USD-M futures files
        lines.append(
            "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
            "taker_buy_volume,taker_buy_quote_volume,ignore"
        )
    for r in rows(c):
        t = r["time"] * unit
        prices = ",".join(f"{r[k]:.8f}" for k in ("open", "high", "low", "close"))
        close_time = t + 3600 * unit - 1
        lines.append(
            f"{t},{prices},{r['volume']:.8f},{close_time},{r['volume'] * r['close']:.8f},1234,1.0,2.0,0"
        )
    return "\n".join(lines) + "\n"


def tradingview(c: pl.DataFrame) -> str:
    lines = ["time,open,high,low,close,Volume,MA,Volume MA,RSI"]
    for r in rows(c):
        prices = ",".join(f"{r[k]}" for k in ("open", "high", "low", "close"))
        lines.append(f"{r['time']},{prices},{int(r['volume'])},NaN,NaN,55.5")
    return "\n".join(lines) + "\n"


def dukascopy(c: pl.DataFrame) -> str:  # day first: 02.01.2013 is January 2
    lines = ["Gmt time,Open,High,Low,Close,Volume"]
    for r in rows(c):
        prices = ",".join(f"{r[k]:.3f}" for k in ("open", "high", "low", "close"))
        lines.append(f"{utc(r['time']):%d.%m.%Y %H:%M:%S}.000,{prices},{r['volume']:.4f}")
    return "\r\n".join(lines) + "\r\n"


def stooq_ascii(c: pl.DataFrame) -> str:  # the bulk files (d_us_txt.zip): ticker, period, date, time
    lines = ["<TICKER>,<PER>,<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>,<OPENINT>"]
    for r in rows(c):
        prices = ",".join(f"{r[k]:.4f}" for k in ("open", "high", "low", "close"))
        lines.append(f"AAPL.US,D,{utc(r['time']):%Y%m%d},000000,{prices},{int(r['volume'])},0")
    return "\n".join(lines) + "\n"


def stooq(c: pl.DataFrame) -> str:  # the per-symbol download
    lines = ["Date,Open,High,Low,Close,Volume"]
    for r in rows(c):
        prices = ",".join(f"{r[k]:.4f}" for k in ("open", "high", "low", "close"))
        lines.append(f"{utc(r['time']):%Y-%m-%d},{prices},{int(r['volume'])}")
    return "\n".join(lines) + "\n"


CASES = {
    # name: (file name as downloaded, writer, intraday, format detected, encoding)
    "mt4": ("AAPL60.csv", mt4, True, "metatrader4", "utf-8"),
    "mt5": ("AAPL_H1.csv", mt5, True, "metatrader5", "utf-16"),
    "mt5-daily": (
        "AAPL_D1.csv",
        lambda c: mt5(c, with_time=False, real_volume=True),
        False,
        "metatrader5",
        "utf-8",
    ),
    "yahoo": ("AAPL.csv", yahoo, False, "yahoo", "utf-8"),
    "binance": ("BTCUSDT-1h-2024-01.csv", binance, True, "binance", "utf-8"),
    "binance-us": ("BTCUSDT-1h-2025-01.csv", lambda c: binance(c, 1_000_000), True, "binance", "utf-8"),
    "binance-futures": (
        "BTCUSDT-1h-2024-02.csv",
        lambda c: binance(c, header=True),
        True,
        "binance",
        "utf-8",
    ),
    "tradingview": ("NASDAQ_AAPL, 1D.csv", tradingview, False, "tradingview", "utf-8"),
    "dukascopy": (
        "AAPL.USUSD_Candlestick_1_Hour_BID_01.01.2013-01.04.2013.csv",
        dukascopy,
        True,
        "dukascopy",
        "utf-8",
    ),
    "stooq-ascii": ("aapl.us.txt", stooq_ascii, False, "stooq", "utf-8"),
    "stooq": ("aapl_us_d.csv", stooq, False, "csv", "utf-8"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_platforms_export_reads_back_to_the_same_candles(case, aapl, tmp_path):
    name, writer, intraday, fmt, encoding = CASES[case]
    expected = hourly(aapl) if intraday else aapl
    path = tmp_path / name  # as downloaded: Stooq's bulk files are .txt
    path.write_text(writer(expected), encoding=encoding)
    layout = file_layout(path)
    assert layout.format == fmt, layout
    candles, report = read_candle_file(path)
    assert report.rows_out == expected.height
    assert candles["time"].to_list() == expected["time"].to_list()
    for col in ("open", "high", "low", "close", "volume"):
        assert np.allclose(candles[col].to_numpy(), expected[col].to_numpy(), rtol=1e-6, atol=0.006), col
    blocks = list(iter_series_file(path, block_rows=7))  # the bounded-memory reader agrees
    assert sum(len(b) for b, _ in blocks) == expected.height
    assert blocks[1][0]["time"].tolist() == [float(t) for t in expected["time"][7:14]]


def test_check_prints_what_it_detected(aapl, tmp_path):
    path = tmp_path / "AAPL_H1.csv"
    path.write_text(mt5(hourly(aapl)), encoding="utf-16")
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "format: metatrader5 (tab-separated, with a header)" in out
    assert "AAPL_H1.csv: ok, AAPL 1h, 60 candles" in out and "named by MetaTrader 5's file name" in out
    assert "<DATE>+<TIME> -> time" in out and "<TICKVOL> -> volume" in out  # a forex broker's VOL is 0
    assert "columns ignored: <VOL>, <SPREAD>" in out and "server time" in out


def test_real_volume_is_read_where_the_broker_reports_it(aapl, tmp_path):
    path = tmp_path / "AAPL_D1.csv"
    path.write_text(mt5(aapl, with_time=False, real_volume=True))
    layout = file_layout(path)
    assert layout.columns["<VOL>"] == "volume" and "<TICKVOL>" in layout.ignored


def test_the_naive_timezone_moves_a_brokers_server_time(aapl, tmp_path):
    path = tmp_path / "AAPL60.csv"
    path.write_text(mt4(hourly(aapl)))
    utc_candles, _ = read_candle_file(path)
    athens, _ = read_candle_file(path, naive_timezone="Europe/Athens")  # UTC+2 in winter
    assert (utc_candles["time"] - athens["time"]).to_list()[:3] == [7200] * 3
    duka = tmp_path / "x.csv"
    duka.write_text(dukascopy(aapl))
    assert read_candle_file(duka, naive_timezone="Europe/Athens")[0]["time"][0] == aapl["time"][0]  # Gmt time


def test_a_headerless_file_of_no_known_layout_says_what_to_write(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("1,2,3,4,5\n6,7,8,9,10\n")
    with pytest.raises(CandleError, match="add a header: time,open,high,low,close"):
        read_candle_file(path)


# ----------------------------------------------------------------- names as downloaded

NAMES = {
    "EURUSD_1h.csv": ("EURUSD", "1h"),
    "EURUSD60.csv": ("EURUSD", "1h"),  # MetaTrader 4: symbol + period in minutes
    "EURUSD1440.csv": ("EURUSD", "1d"),
    "EURUSD_H1.csv": ("EURUSD", "1h"),  # MetaTrader 5
    "EURUSD_M15_202001020000_202012310000.csv": ("EURUSD", "15m"),
    "BTCUSDT-1h-2024-01.csv": ("BTCUSDT", "1h"),  # Binance monthly and daily files
    "BTCUSDT-4h-2024-01-02.csv": ("BTCUSDT", "4h"),
    "NASDAQ_AAPL, 1D.csv": ("AAPL", "1d"),  # TradingView
    "BATS_AAPL, 60.csv": ("AAPL", "1h"),
    "EURUSD_Candlestick_1_Hour_BID_01.01.2020-02.01.2020.csv": ("EURUSD", "1h"),  # Dukascopy
}


@pytest.mark.parametrize("name", list(NAMES))
def test_a_platforms_file_name_gives_pair_and_timeframe(name):
    pair, timeframe = NAMES[name]
    step = {"1h": 3600, "1d": 86400, "15m": 900, "4h": 14400}[timeframe]
    got = name_series(Path(name), np.arange(20) * step)
    assert (got.pair, got.timeframe) == (pair, timeframe)


def test_a_bare_name_takes_its_timeframe_from_the_candles_and_a_wrong_one_is_refused():
    daily = np.arange(20) * 86400
    assert name_series(Path("ACME.csv"), daily).timeframe == "1d"
    assert name_series(Path("aapl.us.csv"), daily + np.repeat([0, 2 * 86400], 10)).pair == "AAPL.US"
    assert name_series(Path("US30.csv"), daily).timeframe == "1d"  # a symbol, not MetaTrader 4's "US" + 30
    with pytest.raises(CandleError, match=r"says 1h but the candles are 1d apart; rename it"):
        name_series(Path("ACME_1h.csv"), daily)
    with pytest.raises(CandleError, match=r"says no pair; .*ingest: names"):
        name_series(Path("export (3).csv"), daily)
    mapped = name_series(Path("export (3).csv"), daily, {"export (3).csv": "acme_1d"})
    assert (mapped.pair, mapped.timeframe) == ("ACME", "1d")


def test_check_predict_and_ingest_name_a_downloaded_file_alike(aapl, tmp_path, served_model):
    bundle_dir, _ = served_model
    path = tmp_path / "AAPL.csv"  # Yahoo's name: no timeframe in it
    path.write_text(yahoo(aapl))
    checked = CliRunner().invoke(app, ["check", str(path)])
    assert checked.exit_code == 0 and "AAPL.csv: ok, AAPL 1d, 60 candles" in checked.output, checked.output
    out = tmp_path / "out.csv"
    predicted = CliRunner().invoke(app, ["predict", str(path), "-o", str(out), "--model", str(bundle_dir)])
    assert predicted.exit_code == 0, predicted.output
    table = pl.read_csv(out)
    assert set(table["pair"]) == {"AAPL"} and set(table["timeframe"]) == {"1d"}
    params = IngestParams(bundled=[], raw_dir=str(tmp_path), names={})
    (tmp_path / "out.csv").unlink()
    [series] = ingest(params)
    assert (series.pair, series.timeframe, series.candles.height) == ("AAPL", "1d", 60)
