"""Shared helpers: small hand-made candle series where the right answer is known."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

# One core's worth of threads per pytest-xdist worker (its fair share), set before NumPy, polars
# and XGBoost start their pools and inherited by the stages and servers a test starts: with every
# process sizing its pools to the whole machine, the workers' threads spin-wait on each other (the
# fast subset took 108 s on 2 cores instead of 84 s).
# (Only in a worker: the controller's environment is the workers' too, and a budget the user set
# stays.)
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    _THREADS = str(max(1, len(os.sched_getaffinity(0)) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    for _pool in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "POLARS_MAX_THREADS"):
        os.environ.setdefault(_pool, _THREADS)

# Bytecode caches as Python writes them by default (__pycache__/, git-ignored), even where the
# environment says not to (PYTHONDONTWRITEBYTECODE, which some CI images set): otherwise every stage,
# server and CLI the suite starts compiles the project from source again, and each worker rewrites
# every test module's asserts again: the fast subset took 64-66 s instead of 59-63 s.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # (this process: below the imports)

# The JVMs the Spark tests start (seconds each) compile with C1 alone and collect with the serial
# collector: 54 s of CPU for the three Spark tests instead of 74, the same answers. (A user's long
# Spark jobs keep the JVM's defaults; a budget the user set stays.)
os.environ.setdefault("JDK_JAVA_OPTIONS", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")

import msgspec  # (after the thread budget above)
import numpy as np
import polars as pl
import pytest

from candle_ml.candles import CANDLE_SCHEMA

sys.dont_write_bytecode = False  # the test modules' rewritten asserts are cached (see above)

# The suite's tools (dvc, candle-ml, mlflow, uvicorn) are this environment's, as in an activated
# venv, also when pytest is started as `.venv/bin/pytest` from a shell that never activated it.
_BIN = str(Path(sys.executable).parent)
if _BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = os.pathsep.join([_BIN, os.environ.get("PATH", "")])

DAY = 86_400
T0 = 1_500_000_000 - (1_500_000_000 % DAY)  # a UTC midnight


def make_candles(
    rows: list[tuple[float, float, float, float]], volume: float = 1000.0, start: int = T0
) -> pl.DataFrame:
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


def train_on_bundled(
    root: Path,
    patterns: list[str],
    human_spans=None,
    n_estimators: int = 30,
    higher_timeframes=None,
    shipped: bool = False,
    end_tolerance: int | None = None,
):
    """Train a small XGBoost model on bundled AAPL and IBM candles exactly as the stages do.

    ``patterns`` are the TA-Lib labels; ``human_spans(series)`` may add a trader's spans (as
    ``Annotation``s) per series; ``higher_timeframes`` replaces params.yaml's; ``shipped`` trains
    with params.yaml's train section (its tree layout and ``top_inputs``), else a tree per class
    on every column; ``end_tolerance`` replaces params.yaml's ``dataset.end_tolerance``. Returns
    (train result, schema, ingested series, bundle meta).
    """
    from candle_ml.config import TrainParams, XGBoostParams, load_section
    from candle_ml.training import bundle_meta, train

    frame, schema, series = bundled_dataset(root, patterns, human_spans, higher_timeframes, end_tolerance)
    params = TrainParams(model_type="xgboost", xgboost=XGBoostParams(n_estimators=n_estimators, n_jobs=2))
    if shipped:
        params = load_section("train", TrainParams, Path(__file__).resolve().parent.parent / "params.yaml")
        params = msgspec.structs.replace(
            params,
            model_type="xgboost",
            xgboost=msgspec.structs.replace(params.xgboost, n_estimators=n_estimators, n_jobs=2),
        )
    result = train(frame, schema, params)
    return result, schema, series, bundle_meta(result, schema, params)


def bundled_dataset(
    root: Path, patterns: list[str], human_spans=None, higher_timeframes=None, end_tolerance=None
):
    """The dataset stage's frame and model schema for bundled AAPL and IBM, and the series."""
    from candle_ml.annotations import Annotation
    from candle_ml.autolabel import autolabel, label_priority
    from candle_ml.config import DatasetParams, FeaturizeParams, IngestParams, load_section
    from candle_ml.convergence import served_history
    from candle_ml.dataset import SeriesFrame, build_dataset
    from candle_ml.features import drop_warmup, feature_columns, featurize
    from candle_ml.ingest import ingest, series_index
    from candle_ml.stage_outputs import FeaturesIndex, features_entry, model_schema

    repo = Path(__file__).resolve().parent.parent
    cfg = load_section("featurize", FeaturizeParams, repo / "params.yaml")
    if higher_timeframes is not None:
        cfg = msgspec.structs.replace(cfg, higher_timeframes=higher_timeframes)
    series = ingest(IngestParams(bundled=["AAPL", "IBM"], raw_dir=str(root / "raw"), augment=[]))
    full = {s.key: featurize(s.candles, cfg) for s in series}
    frames, human, programmatic, warmup = [], [], [], {}
    for s in series:
        kept, warmup[s.key] = drop_warmup(full[s.key])
        frames.append(SeriesFrame(s.pair, s.timeframe, kept, int(s.candles["time"][0])))
        programmatic += [
            Annotation(sp, "autolabel") for sp in autolabel(s.candles, patterns, s.pair, s.timeframe)
        ]
        human += human_spans(s) if human_spans else []
    dataset_params = load_section("dataset", DatasetParams, repo / "params.yaml")
    if end_tolerance is not None:
        dataset_params = msgspec.structs.replace(dataset_params, end_tolerance=end_tolerance)
    dataset = build_dataset(frames, human, programmatic, label_priority(patterns), dataset_params)
    served = served_history(full, warmup, cfg)  # as the featurize stage records it
    index = FeaturesIndex(  # what the featurize stage's index.json records
        series=[
            features_entry(e, kept, warmup[e.key])
            for e, kept in zip(series_index(series).series, [f.frame for f in frames], strict=True)
        ],
        feature_columns=feature_columns(next(iter(full.values()))),
        config=cfg,
        history_candles=served.candles,
        history_by_column=served.by_column,
        warmup_by_column=served.warmup_by_column,
    )
    schema = model_schema(dataset.schema, index)
    return dataset.frame, schema, series


def train_chart_on(series, human_spans=None, labels=None, seed: int = 0):
    """The chart-pattern model trained on ingested series as the stages train it: the chart rules'
    spans (``labels``, all by default), plus ``human_spans(series)``. Returns (model, reference)."""
    from candle_ml.annotations import Annotation
    from candle_ml.autolabel import chart_spans
    from candle_ml.chart.dataset import build_chart_dataset, chart_labels
    from candle_ml.chart.model import train_chart_model
    from candle_ml.chart.patterns import CHART_PATTERNS, ChartRules
    from candle_ml.config import ChartModelParams, SplitParams
    from candle_ml.dataset import SeriesFrame

    rules = ChartRules()
    labels = list(CHART_PATTERNS) if labels is None else labels
    frames = [SeriesFrame(s.pair, s.timeframe, s.candles, int(s.candles["time"][0])) for s in series]
    rule = [
        Annotation(sp, "autolabel")
        for s in series
        for sp in chart_spans(s.candles, labels, rules, s.pair, s.timeframe)
    ]
    human = [a for s in series for a in (human_spans(s) if human_spans else [])]
    charts = set(chart_labels(labels, human, frames, 10))
    table, reference = build_chart_dataset(
        frames, [a for a in rule + human if a.span.label in charts], SplitParams(), rules
    )
    rules_dict = {"window": rules.window, "confirm": rules.confirm, "bandwidth": rules.bandwidth}
    model, _ = train_chart_model(
        table, rules_dict, ChartModelParams(n_estimators=150, max_depth=4, learning_rate=0.1), seed
    )
    return model, reference


@pytest.fixture(scope="session")
def served_model(tmp_path_factory):
    """A small XGBoost bundle trained on bundled AAPL and IBM candles exactly as the stages do,
    with params.yaml's featurize and train configs (exponential indicators, multi-output trees over
    the ``top_inputs`` most telling window columns) plus weekly context
    (``higher_timeframes: [1w]``, so every serving test covers it and spans carry
    ``confirmed_on``), and ingest's candles directory for /predict/batch. Returns (bundle dir,
    candles dir)."""
    from candle_ml.bundle import save_bundle
    from candle_ml.ingest import series_index
    from candle_ml.stageio import write_json

    root = tmp_path_factory.mktemp("served")
    result, _, series, meta = train_on_bundled(
        root, ["CDLENGULFING", "CDLHAMMER", "CDLDOJI"], higher_timeframes=["1w"], shipped=True
    )
    candles_dir = root / "candles"
    candles_dir.mkdir()
    for s in series:
        s.candles.write_parquet(candles_dir / f"{s.key}.parquet")
    write_json(candles_dir / "index.json", series_index(series))
    chart, _ = train_chart_on(series)  # chart patterns served beside the candlestick ones
    bundle_dir = root / "models"
    save_bundle(bundle_dir, result.model, msgspec.structs.replace(meta, chart=chart.settings), chart)
    return bundle_dir, candles_dir


def write_outcome_report(models: Path, candles_dir: Path, bootstrap: int = 200) -> dict:
    """The outcomes stage's report for this bundle on these candles, written where the server
    looks (``reports/outcomes.json`` beside ``models/``); returns it."""
    from candle_ml.bundle import content_hash, load_bundle
    from candle_ml.config import OutcomesParams
    from candle_ml.outcome_report import label_summary, model_ends, outcome_report
    from candle_ml.outcomes import OutcomeSeries
    from candle_ml.stageio import write_json

    params = OutcomesParams(bootstrap=bootstrap)
    bundle = load_bundle(models)
    frames = {p.stem.split("_")[0]: pl.read_parquet(p) for p in sorted(candles_dir.glob("*.parquet"))}
    series = [OutcomeSeries.from_frame(pair, "1d", c) for pair, c in frames.items()]
    ends = [e for pair, c in frames.items() for e in model_ends(bundle, pair, "1d", c)]
    report, _ = outcome_report(series, {"model": ends}, params)
    report["model_version"] = content_hash(models)
    report["summary"] = label_summary(report["sources"]["model"], params.summary_horizon)
    write_json(models.parent / "reports" / "outcomes.json", report)
    return report


# --------------------------------------------------------------- scheduling

# Test files that take longest on an idle 2-core machine, longest first (`pytest --durations`),
# then the rest in collection order: pytest-xdist (``--dist loadfile --no-loadscope-reorder``)
# hands files out in this order, so the long ones start at once and the workers end together.
# tests/test_experiments.py waits for the pipeline that tests/test_pipeline.py builds, so the
# other worker first runs files that need no pipeline (the Spark tests skip without the extra).
LONGEST_FIRST = (
    "test_pipeline.py",
    "test_schemathesis.py",
    "test_batch.py",
    "test_experiments.py",
    "test_learning_curve_stage.py",
    "test_label_studio_server.py",
    "test_team_mlflow.py",
    "test_page.py",
    "test_serve_workers.py",
    "test_hardening.py",
    "test_durability.py",
    "test_remote.py",
    "test_cli.py",
    "test_own_labels.py",
    "test_outcomes.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order kept


# --------------------------------------------------------------- the real pipeline, built once

ROOT = Path(__file__).resolve().parent.parent
# Screenshots and reports tests leave for a person to look at (git-ignored).
ARTIFACTS = Path(os.environ.get("CANDLE_ML_TEST_ARTIFACTS", ROOT / "test-artifacts"))
STAGES = (
    "check_raw",
    "ingest",
    "featurize",
    "autolabel",
    "dataset",
    "train",
    "evaluate",
    "holdout",
    "learning_curve",
    "outcomes",
)


def run(cmd: list[str], cwd: Path, **env_vars: str) -> str:
    """Run a command as a user types it (the venv's tools first on PATH); fail with its output.
    MLflow logs to the copy's own SQLite store unless ``MLFLOW_TRACKING_URI`` is passed."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env |= env_vars
    # Output to files, not pipes: a pipe stays open while a daemon the command started holds it (DVC's
    # queue worker idles ~11 s after `dvc exp run --run-all` returns), and a terminal waits for no daemon.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=err, timeout=900)
        stdout, stderr = _text(out), _text(err)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{stdout}\n{stderr}"
    return stdout + stderr


def _text(file: IO[bytes]) -> str:
    """What ``text=True`` would have read from a pipe: decoded, with universal newlines."""
    file.seek(0)
    return file.read().decode(errors="replace").replace("\r\n", "\n").replace("\r", "\n")


def ran(output: str) -> list[str]:
    """The stages a `dvc repro` / `dvc exp run` output says it ran, in order."""
    return [s for s in STAGES if f"Running stage '{s}'" in output]


def set_param(repo: Path, pattern: str, replacement: str) -> None:
    params = repo / "params.yaml"
    text, n = re.subn(pattern, replacement, params.read_text(), count=1, flags=re.M)
    assert n == 1, pattern
    params.write_text(text)


def commit_all(repo: Path, message: str) -> None:
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-qm", message], repo)


def copy_repo(dest: Path) -> Path:
    """The working tree as git sees it (tracked + untracked, not ignored) without pipeline outputs,
    committed in a fresh git repo, with small models so the integration tests stay quick: at most 20
    boosting rounds (test span F1 0.95 vs 0.98 at 40), 20 trees for the random forest and 100
    rounds for the chart model (chart F1 0.92 vs 0.95): the train stage in 14 s instead of 23."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    for rel in filter(None, files.split("\0")):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    set_param(dest, r"^(    n_estimators:) 400", r"\1 20")  # train.xgboost
    set_param(dest, r"^(    n_estimators:) 300", r"\1 20")  # train.random_forest
    set_param(dest, r"^(  chart:\n    n_estimators:) 400", r"\1 100")
    run(["git", "init", "-q"], dest)
    commit_all(dest, "base")
    return dest


@pytest.fixture(scope="session")
def built_pipeline(tmp_path_factory) -> tuple[Path, str]:
    """One cold `dvc repro` of a copy of the repository per test run, shared by every pytest-xdist
    worker: the first to need it builds it under a lock, the others wait for it. Never handed to a
    test (tests get forks of it, `pipeline`): (root, the build's output)."""
    import fcntl

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # each worker's base temp lies in the run's own folder
        shared = shared.parent
    root, output = shared / "pipeline-build", shared / "pipeline-build.out"
    with open(shared / "pipeline-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not output.exists():  # written only once the build succeeded
            shutil.rmtree(root, ignore_errors=True)  # a failed build of another worker
            root.mkdir()
            out = run(["dvc", "repro"], copy_repo(root))
            output.write_text(out)
    return root, output.read_text()


def fork_pipeline(built: Path, dest: Path) -> Path:
    """A private copy of the built pipeline: its files (git history, DVC cache and outputs) and its
    MLflow store, whose absolute artifact locations are moved to the copy, so nothing a test does
    there reaches another test's copy."""
    import sqlite3

    shutil.copytree(built, dest, symlinks=True, dirs_exist_ok=True)
    old, new = f"{built}{os.sep}", f"{dest}{os.sep}"
    with sqlite3.connect(dest / "mlflow.db") as db:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for _, column, kind, *_ in db.execute(f'PRAGMA table_info("{table}")').fetchall():
                if kind.upper().startswith(("VARCHAR", "TEXT")):
                    db.execute(f'UPDATE "{table}" SET "{column}" = REPLACE("{column}", ?, ?)', (old, new))
    db.close()
    return dest


@pytest.fixture(scope="module")
def pipeline(built_pipeline, tmp_path_factory) -> tuple[Path, str]:
    """A copy of the repository after one cold `dvc repro` on the bundled data: (root, its output).

    Each test file gets a fork of its own of the run's one build (`built_pipeline`): its tests run
    in file order on it (pytest-xdist ``--dist loadfile`` keeps a file on one worker), so a file's
    chain of changes stays together and never sees another file's. Each test says what it leaves
    behind."""
    built, out = built_pipeline
    return fork_pipeline(built, tmp_path_factory.mktemp("pipeline")), out


# --------------------------------------------------------------- real servers on loopback

S3_KEY, S3_SECRET = "candle-ml-test", "not-a-secret"


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, what: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode} before listening on 127.0.0.1:{port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


@pytest.fixture(scope="module")
def s3_server():
    """moto's standalone S3 server on a free loopback port: its endpoint URL."""
    port = free_loopback_port()
    moto_server = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(moto_server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_listening(port, "moto_server", proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def s3_client(url: str):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    )


def postgres_bin() -> Path | None:
    """Debian's PostgreSQL server binaries (package postgresql), newest first."""
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    return None


@pytest.fixture(scope="module")
def postgres_server():
    """A throwaway PostgreSQL cluster on a free loopback port, trust auth, database ``mlflow``:
    its SQLAlchemy URI. As root (CI) the cluster belongs to Debian's ``postgres`` user."""
    bindir = postgres_bin()
    if bindir is None:
        if os.environ.get("CANDLE_ML_REQUIRE_SERVERS"):
            pytest.fail("no PostgreSQL server here: apt-get install postgresql")
        pytest.skip("no PostgreSQL server here (apt-get install postgresql)")
    # not under pytest's tmp dirs: those are private to this user, and the cluster's owner must
    # reach its own directory
    root = Path(tempfile.mkdtemp(prefix="candle-ml-postgres-"))
    data, sockets = root / "data", root / "run"
    sockets.mkdir()
    as_owner: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    made = subprocess.run(
        [*as_owner, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, f"initdb failed:\n{made.stdout}\n{made.stderr}"
    port = free_loopback_port()
    proc = subprocess.Popen(
        [
            *as_owner,
            str(bindir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={sockets}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(root / "postgres.log", "wb"),  # noqa: SIM115 (closed with the process)
    )
    try:
        wait_listening(port, "postgres", proc)
        subprocess.run(
            [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "mlflow"],
            check=True,
            capture_output=True,
        )
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/mlflow"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)
