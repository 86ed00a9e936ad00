"""The candle-ml command line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from candle_ml.cli import app

runner = CliRunner()


def test_check_reports_good_and_bad_files(tmp_path):
    good = tmp_path / "EURUSD_1h.csv"
    good.write_text("Date,Open,High,Low,Close,Volume\n2017-04-19 09:00,1.0716,1.0722,1.0708,1.0722,1413\n")
    bad = tmp_path / "GBPUSD_1h.csv"
    bad.write_text("Date,Open,High,Low,Close\n2017-04-19 09:00,1.0716,1.0701,1.0690,1.0716\n")
    ann = tmp_path / "export.json"
    ann.write_text(
        json.dumps([{"pair": "EURUSD", "timeframe": "1h", "start_time": 1, "end_time": 2, "label": "doji"}])
    )
    result = runner.invoke(app, ["check", str(good), str(bad), str(ann)])
    assert result.exit_code == 1
    assert "EURUSD_1h.csv: ok, EURUSD 1h, 1 candles" in result.output
    assert "GBPUSD_1h.csv row 1: high 1.0701 < " in result.output
    assert "export.json: ok, 1 annotation(s)" in result.output


def test_patterns_lists_lengths_and_labels():
    result = runner.invoke(app, ["patterns"])
    assert result.exit_code == 0
    assert "CDLMORNINGSTAR         3  bullish_morning_star" in result.output
