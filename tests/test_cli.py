"""The candle-ml command line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from candle_ml.bundle import load_bundle
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


def test_check_reads_reviewed_ranges_in_exports_and_the_page_log(tmp_path):
    seen = {"pair": "EURUSD", "timeframe": "1h", "start_time": 1, "end_time": 2}
    export = tmp_path / "export.json"
    export.write_text(json.dumps({"annotations": [{**seen, "label": "my_setup"}], "reviewed": [seen]}))
    log = tmp_path / "reviewed.jsonl"
    log.write_text(json.dumps(seen) + "\n" + json.dumps({**seen, "end_time": 0}) + "\n")
    result = runner.invoke(app, ["check", str(export), str(log)])
    assert "export.json: ok, 1 annotation(s), 1 reviewed range(s)" in result.output
    assert (
        result.exit_code == 1 and "reviewed.jsonl line 2: end_time 0 is before start_time 1" in result.output
    )


def test_patterns_lists_lengths_and_labels():
    result = runner.invoke(app, ["patterns"])
    assert result.exit_code == 0
    assert "CDLMORNINGSTAR         3  bullish_morning_star" in result.output


def test_a_pandas_default_csv_is_checked_and_predicted(served_model, tmp_path):
    """`df.to_csv()` of a date-indexed frame (an unnamed first column) works as typed, no options."""
    import pandas as pd
    import polars as pl

    bundle_dir, candles_dir = served_model
    aapl = pl.read_parquet(candles_dir / "AAPL_1d.parquet").tail(400).to_pandas()
    frame = (
        aapl.set_index(pd.to_datetime(aapl.pop("time"), unit="s")).rename_axis(None).rename(columns=str.title)
    )
    src = tmp_path / "AAPL_1d.csv"
    frame.to_csv(src)
    assert src.read_text().startswith(",Open,High,Low,Close,Volume")
    checked = runner.invoke(app, ["check", str(src)])
    assert checked.exit_code == 0 and "AAPL_1d.csv: ok, AAPL 1d, 400 candles" in checked.output
    out = tmp_path / "pred.csv"
    predicted = runner.invoke(app, ["predict", str(src), "-o", str(out), "--model", str(bundle_dir)])
    assert predicted.exit_code == 0, predicted.output
    table = pl.read_csv(out, schema_overrides={"confidence": pl.Float64, "label": pl.String})
    assert table.columns[:4] == ["time", "time_utc", "pair", "timeframe"]
    assert table["pair"].unique().to_list() == ["AAPL"] and table["time_utc"][0].endswith("T00:00:00Z")
    assert (
        table["label"].null_count() == load_bundle(bundle_dir).meta.min_history
        and table["confidence"].drop_nulls().min() > 0
    )

    renamed = tmp_path / "AAPL-BARS_1d.csv"
    frame.rename_axis("bar").to_csv(renamed)
    refused = runner.invoke(app, ["check", str(renamed)])
    assert refused.exit_code == 1 and "--time-column NAME" in refused.output
    named = runner.invoke(app, ["check", str(renamed), "--time-column", "bar"])
    assert named.exit_code == 0 and "400 candles" in named.output


def test_version_as_a_user_types_it():
    import subprocess
    import sys
    from importlib.metadata import version
    from pathlib import Path

    script = Path(sys.executable).parent / "candle-ml"
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == f"candle-ml {version('candle-ml')}\n"


def test_outcomes_as_a_user_types_it(served_model, tmp_path):
    """`candle-ml outcomes` on the trader's own files: the table per source, the JSON report, and a
    bad file named with its row and rule (exit 1)."""
    import subprocess
    import sys
    from pathlib import Path

    import polars as pl

    bundle_dir, candles_dir = served_model
    files = []
    for pair in ("AAPL", "IBM"):
        path = tmp_path / f"{pair}_1d.csv"
        frame = pl.read_parquet(candles_dir / f"{pair}_1d.parquet")
        frame.write_csv(path)
        files.append(str(path))
    script = Path(sys.executable).parent / "candle-ml"
    out = tmp_path / "outcomes.json"
    cmd = [str(script), "outcomes", *files, "--model", str(bundle_dir), "--horizon", "10", "-o", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)  # no params.yaml
    assert done.returncode == 0, done.stderr
    assert "rules: net return 10 candles after entry, minus random entries' (cost 0.001)" in done.stdout
    assert "model: net return 10 candles after entry" in done.stdout
    doji = next(line for line in done.stdout.splitlines() if line.strip().startswith("doji"))
    assert " long " in doji and ("no detectable edge (MDE = " in doji or " edge" in doji)
    report = json.loads(out.read_text())
    assert report["series"] == ["AAPL_1d", "IBM_1d"] and set(report["sources"]) == {"rules", "model"}
    assert {c["h"] for c in report["sources"]["rules"]["cells"]} == {1, 5, 10, 20}
    bad = tmp_path / "BAD_1d.csv"
    bad.write_text("Date,Open,High,Low,Close\n2017-04-19,1.0716,1.0701,1.0690,1.0716\n")
    failed = subprocess.run([str(script), "outcomes", str(bad)], capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1 and "BAD_1d.csv row 1: high 1.0701 < " in failed.stderr
    wrong = subprocess.run(
        [str(script), "outcomes", files[0], "--horizon", "7"], capture_output=True, text=True, timeout=120
    )
    assert (
        wrong.returncode == 1 and "--horizon 7: not one of outcomes.horizons [1, 5, 10, 20]" in wrong.stderr
    )


def test_predict_streams_a_file_in_blocks_with_the_answer_of_one_pass(served_model, tmp_path):
    """`--block-candles 1000` on 3,270 candles: four blocks read, validated, predicted and written
    one at a time give every candle the label one pass over the series gives, and the summary
    counts a span cut by a block edge once."""
    import numpy as np
    import polars as pl
    import pyarrow.parquet as pq

    from candle_ml.loading import load_model_from
    from candle_ml.prediction import predict_labels
    from candle_ml.spans import span_bounds

    bundle_dir, candles_dir = served_model
    aapl = pl.read_parquet(candles_dir / "AAPL_1d.parquet")
    src = tmp_path / "AAPL_1d.parquet"
    pq.write_table(aapl.to_arrow(), src, row_group_size=700)  # row groups that do not line up with blocks
    model = load_model_from(str(bundle_dir), "sqlite:///unused.db")
    labels, confidence = predict_labels(model, aapl)
    whole_spans = span_bounds(labels)[0].size

    src_csv = tmp_path / "csv" / "AAPL_1d.csv"  # read by pandas' chunked reader
    src_csv.parent.mkdir()
    aapl.write_csv(src_csv)
    for given, out in ((src, tmp_path / "pred.parquet"), (src_csv, tmp_path / "pred.csv")):
        res = runner.invoke(
            app,
            ["predict", str(given), "-o", str(out), "--model", str(bundle_dir), "--block-candles", "1000"],
        )
        assert res.exit_code == 0, res.output
        assert f"{aapl.height} candles" in res.output and f" {whole_spans} candlestick spans" in res.output
        table = (
            pl.read_parquet(out)
            if out.suffix == ".parquet"
            else pl.read_csv(out, schema_overrides={"label": pl.String, "confidence": pl.Float64})
        )
        assert table["time"].to_list() == aapl["time"].to_list()
        assert table["label"].to_list() == labels.tolist()
        np.testing.assert_allclose(table["confidence"].fill_null(np.nan).to_numpy(), confidence, atol=1e-6)
        assert table["pair"].unique().to_list() == ["AAPL"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "AAPL_1d.parquet",
        "csv",
        "pred.csv",
        "pred.parquet",
    ]


def test_predict_names_a_bad_row_in_a_later_block_and_keeps_the_old_output(served_model, tmp_path):
    import polars as pl

    bundle_dir, candles_dir = served_model
    aapl = pl.read_parquet(candles_dir / "AAPL_1d.parquet").head(2600)
    out = tmp_path / "pred.csv"
    out.write_text("an earlier run's output\n")
    bad_price = tmp_path / "AAPL_1d.csv"
    aapl.with_columns(
        pl.when(pl.int_range(pl.len()) == 2345).then(-1.0).otherwise(pl.col("low")).alias("low")
    ).write_csv(bad_price)
    repeated = tmp_path / "AAPL-REP_1d.csv"  # row 2001 (block 3's first) repeats row 2000's time
    pl.concat([aapl.head(2000), aapl.slice(1999, 600)]).write_csv(repeated)
    for src, message in (
        (bad_price, "AAPL_1d.csv row 2346: low -1 must be a finite number > 0 (field 'low', rule price_not"),
        (repeated, "AAPL-REP_1d.csv row 2001: time '"),
    ):
        res = runner.invoke(
            app, ["predict", str(src), "-o", str(out), "--model", str(bundle_dir), "--block-candles", "1000"]
        )
        assert res.exit_code == 1 and message in res.output, res.output
        assert out.read_text() == "an earlier run's output\n"
    assert "repeats an earlier row's time (field 'time', rule time_duplicate" in res.output
    assert not list(tmp_path.glob(".*partial"))
