"""`candle-ml batch`: every candle labelled as one pass over its series labels it, whatever the
blocks, on both engines; the rules' spans as autolabel finds them; and XGBoost trained on Spark
lands in the same bundle and scores like the in-process model.

The Spark tests need the spark extra and Java (CI installs both; elsewhere they skip)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from candle_ml.autolabel import autolabel
from candle_ml.batch import BatchError, Rules, plan, run_local
from candle_ml.bundle import load_bundle
from candle_ml.chart.patterns import ChartRules, find_chart_patterns

from .test_candle_formats import yahoo

PATTERNS = ["CDLENGULFING", "CDLHAMMER", "CDLDOJI"]  # the served model's (conftest)
CHART = ["double_top", "double_bottom", "head_and_shoulders", "inverse_head_and_shoulders"]
RULES = Rules(PATTERNS, CHART, ChartRules())


def params_file(tmp_path: Path) -> Path:
    p = tmp_path / "params.yaml"
    p.write_text(f"autolabel:\n  patterns: {PATTERNS}\n  chart_patterns: {CHART}\n")
    return p


def without_venv(environ: dict[str, str] | os._Environ[str]) -> dict[str, str]:
    """A shell where the venv is not activated (``.venv/bin/candle-ml`` typed as is): its bin off
    PATH and no PYSPARK_PYTHON, so the ``python3`` on PATH lacks polars."""
    venv_bin = Path(sys.executable).parent.resolve()
    env = {k: v for k, v in environ.items() if k not in ("PYSPARK_PYTHON", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join(
        p for p in environ.get("PATH", "").split(os.pathsep) if p and Path(p).resolve() != venv_bin
    )
    # nor its site-packages on PYTHONPATH (an in-process Spark session of an earlier test adds
    # the driver's paths there, and a system python3 of the same version would import them)
    venv = Path(sys.prefix).resolve()
    kept = [
        p for p in env.pop("PYTHONPATH", "").split(os.pathsep) if p and venv not in Path(p).resolve().parents
    ]
    if kept:
        env["PYTHONPATH"] = os.pathsep.join(kept)
    return env


def batch(tmp_path: Path, served_model, out: str, *extra: str, inputs: list[Path] | None = None) -> str:
    """`candle-ml batch` as a user types it, from a shell without the venv activated."""
    bundle_dir, candles_dir = served_model
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "candle-ml"),
            "batch",
            *map(str, inputs or [candles_dir]),
            "-o",
            str(tmp_path / out),
            "--model",
            str(bundle_dir),
            "--params",
            str(params_file(tmp_path)),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=without_venv(os.environ),
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def read(root: Path) -> pl.DataFrame:
    return pl.read_parquet(root / "**" / "*.parquet", hive_partitioning=True)


def expected(served_model) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One pass over each whole series: the bundle's labels, autolabel's and the chart rules' spans."""
    bundle_dir, candles_dir = served_model
    bundle = load_bundle(bundle_dir)
    labels, spans = [], []
    for path in sorted(candles_dir.glob("*.parquet")):
        pair, timeframe = path.stem.split("_")
        candles = pl.read_parquet(path)
        pred = bundle.predict(candles)
        labels.append(pl.DataFrame({"pair": pair, "time": candles["time"], "label": pred.label.tolist()}))
        times = candles["time"].to_numpy()
        found = [(s.start_time, s.end_time, s.label) for s in autolabel(candles, PATTERNS, pair, timeframe)]
        found += [
            (int(times[c.start]), int(times[c.end]), c.label)
            for c in find_chart_patterns(candles["close"].to_numpy(), CHART, ChartRules())
        ]
        spans.append(
            pl.DataFrame(found, schema=["start_time", "end_time", "label"], orient="row").with_columns(
                pair=pl.lit(pair)
            )
        )
    return pl.concat(labels).sort("pair", "time"), pl.concat(spans).sort(
        "pair", "start_time", "end_time", "label"
    )


def block_size(served_model) -> int:
    """The smallest block the plan allows: AAPL's 3,270 candles become 9 blocks."""
    return plan(load_bundle(served_model[0]), RULES, 1_000_000).before


def test_local_blocks_label_as_one_pass(served_model, tmp_path):
    size = block_size(served_model)
    assert 3270 // size >= 5
    said = batch(tmp_path, served_model, "out", "--block-size", str(size))
    assert "6540 candles in" in said and "local" in said
    labels, spans = expected(served_model)
    got = read(tmp_path / "out" / "predictions").sort("pair", "time")
    assert got.columns == ["time", "label", "confidence", "pair", "timeframe"]
    assert got.select("pair", "time", "label").equals(labels.select("pair", "time", "label"))
    assert got["label"].null_count() == got["confidence"].null_count() > 0  # warm-up: null, not O
    found = read(tmp_path / "out" / "spans").sort("pair", "start_time", "end_time", "label")
    assert found.select(spans.columns).equals(spans.select(spans.columns))
    assert set(found["source"]) == {"candlestick", "chart"}
    assert sorted(p.name for p in (tmp_path / "out" / "predictions").iterdir()) == ["pair=AAPL", "pair=IBM"]


def test_local_batch_names_files_as_downloaded(served_model, tmp_path):
    """`--engine local` reads and names a file as check and ingest do: a Yahoo download (AAPL.csv,
    no timeframe in the name) is AAPL 1d; a second file naming the same series is refused."""
    from .test_candle_formats import yahoo

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    aapl = pl.read_parquet(served_model[1] / "AAPL_1d.parquet").with_columns(pl.col("volume").round(0))
    (downloads / "AAPL.csv").write_text(yahoo(aapl))
    said = batch(tmp_path, served_model, "out", inputs=[downloads])
    assert "3270 candles in" in said, said
    got = read(tmp_path / "out" / "predictions")
    assert set(got["pair"]) == {"AAPL"} and set(got["timeframe"].cast(pl.String)) == {"1d"}
    (downloads / "AAPL_1d.csv").write_text(yahoo(aapl))
    with pytest.raises(BatchError, match=r"are both AAPL 1d: give each series once"):
        run_local([downloads], served_model[0], RULES, tmp_path / "again", block_size(served_model))


def test_a_block_smaller_than_its_history_is_refused(served_model, tmp_path):
    with pytest.raises(BatchError, match=r"--block-size 10: a block must be at least .* min_history"):
        plan(load_bundle(served_model[0]), RULES, 10)
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "candle-ml"),
            "batch",
            str(tmp_path / "nothing"),
            "-o",
            str(tmp_path / "o"),
            "--model",
            str(served_model[0]),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "nothing: no such file or directory" in done.stderr
    twice = tmp_path / "twice"
    twice.mkdir()
    candles = pl.read_parquet(served_model[1] / "IBM_1d.parquet")
    candles.write_parquet(twice / "IBM_1d.parquet")
    candles.write_csv(twice / "IBM_1d.csv")
    with pytest.raises(BatchError, match=r"IBM_1d.parquet and .*IBM_1d.csv are both IBM 1d"):
        run_local([twice], served_model[0], RULES, tmp_path / "o", block_size(served_model))
    assert not (tmp_path / "o").exists()  # refused before any work


def spark_available() -> bool:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return False
    return shutil.which("java") is not None


needs_spark = pytest.mark.skipif(
    not spark_available() and not os.environ.get("CANDLE_ML_REQUIRE_SERVERS"),
    reason="no pyspark or Java here (pip install '.[spark]'; apt-get install openjdk-17-jre-headless)",
)


def test_local_spark_workers_run_the_drivers_python():
    from candle_ml.spark import local_worker_python

    env: dict[str, str] = {}
    assert local_worker_python(env) == sys.executable == env["PYSPARK_PYTHON"]
    assert local_worker_python({"PYSPARK_PYTHON": "/opt/py/bin/python"}) == "/opt/py/bin/python"


def python_on_path_lacks_polars(env: dict[str, str]) -> bool:
    python = shutil.which("python3", path=env["PATH"])
    if python is None:
        return True
    found = subprocess.run([python, "-c", "import polars"], env=env, capture_output=True, timeout=60)
    return found.returncode != 0


@needs_spark
@pytest.mark.integration
def test_spark_blocks_label_as_one_pass(served_model, tmp_path):
    # the fault this guards against shows only where PATH's python3 lacks polars, as here
    shell = without_venv(os.environ)
    assert python_on_path_lacks_polars(shell), (
        shutil.which("python3", path=shell["PATH"]),
        shell.get("PYTHONPATH"),
    )
    # One Spark run (a JVM start is most of its time) over the three kinds of input: a hive dataset
    # (what Spark writes) read back, pair and timeframe from its folders; a stored series
    # (IBM_1d.parquet) read by Spark itself; and a file as downloaded (Yahoo Finance, named XIBM.csv:
    # IBM's candles under another name), named and read by the readers `candle-ml check` uses. In
    # blocks smaller than a series, each is labelled as the stored series are in one pass.
    hive, stored, exports = tmp_path / "hive", tmp_path / "stored", tmp_path / "exports"
    part = hive / "pair=AAPL" / "timeframe=1d"
    part.mkdir(parents=True)
    shutil.copy(served_model[1] / "AAPL_1d.parquet", part / "part-0.parquet")
    stored.mkdir()
    shutil.copy(served_model[1] / "IBM_1d.parquet", stored / "IBM_1d.parquet")
    exports.mkdir()
    (exports / "XIBM.csv").write_text(yahoo(pl.read_parquet(served_model[1] / "IBM_1d.parquet")))
    size = block_size(served_model)
    said = batch(
        tmp_path,
        served_model,
        "spark",
        "--engine",
        "spark",
        "--master",
        "local[2]",
        "--block-size",
        str(size),
        inputs=[hive, stored, exports],
    )
    assert "9810 candles in" in said and "spark" in said
    labels, spans = expected(served_model)
    labels = pl.concat([labels, labels.filter(pl.col("pair") == "IBM").with_columns(pair=pl.lit("XIBM"))])
    spans = pl.concat([spans, spans.filter(pl.col("pair") == "IBM").with_columns(pair=pl.lit("XIBM"))])
    labels = labels.sort("pair", "time")
    spans = spans.sort("pair", "start_time", "end_time", "label")
    got = read(tmp_path / "spark" / "predictions").sort("pair", "time")
    assert got.select("pair", "time", "label").equals(labels.select("pair", "time", "label"))
    # named as given, not as Spark would guess: timeframe=1d is no double 1.0
    assert (tmp_path / "spark" / "predictions" / "pair=AAPL" / "timeframe=1d").is_dir()
    assert {p.name for p in (tmp_path / "spark" / "spans").glob("pair=*/timeframe=*")} == {"timeframe=1d"}
    assert (tmp_path / "spark" / "spans" / "pair=XIBM" / "timeframe=1d").is_dir()
    found = read(tmp_path / "spark" / "spans").sort("pair", "start_time", "end_time", "label")
    assert found.select(spans.columns).equals(spans.select(spans.columns))
    # the confidences too, against the local engine's on the stored series
    batch(tmp_path, served_model, "local", "--block-size", str(size))
    local = read(tmp_path / "local" / "predictions").sort("pair", "time")
    same = got.filter(pl.col("pair").is_in(["AAPL", "IBM"]))
    np.testing.assert_allclose(
        same["confidence"].fill_null(-1).to_numpy(), local["confidence"].fill_null(-1).to_numpy(), rtol=1e-6
    )


@needs_spark
@pytest.mark.integration
def test_xgboost_trained_on_spark_lands_in_the_same_bundle(tmp_path, monkeypatch):
    """Both types trained on the same dataset with the same knobs: the Spark one is saved as an
    ordinary XGBoost booster, loads without Spark and scores within 0.02 F1 of the in-process one.
    Spark's workers are started from a PATH without the venv, as in a shell that never activated it."""
    from sklearn.metrics import f1_score

    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)
    monkeypatch.setenv("PATH", without_venv(os.environ)["PATH"])

    from candle_ml.bundle import save_bundle
    from candle_ml.config import TrainParams, XGBoostParams, XGBoostSparkParams
    from candle_ml.training import bundle_meta, split_xy, train

    from .conftest import bundled_dataset

    frame, schema, _ = bundled_dataset(tmp_path, PATTERNS)
    knobs = {"n_estimators": 60, "n_jobs": 2}
    spark_params = TrainParams(
        model_type="xgboost_spark",
        xgboost_spark=XGBoostSparkParams(**knobs, master="local[2]", num_workers=2),
    )
    local_params = TrainParams(model_type="xgboost", xgboost=XGBoostParams(**knobs))
    scores = {}
    for params in (local_params, spark_params):
        fitted = train(frame, schema, params)
        out = tmp_path / params.model_type
        save_bundle(out, fitted.model, bundle_meta(fitted, schema, params))
        loaded = load_bundle(out)
        assert loaded.meta.model_type == params.model_type and (out / "model.ubj").exists()
        X, y, _ = split_xy(frame, schema.input_columns, fitted.classes, "test")
        scores[params.model_type] = f1_score(y, loaded.model.predict_proba(X).argmax(axis=1), average="macro")
    assert abs(scores["xgboost_spark"] - scores["xgboost"]) <= 0.02, scores
