"""Integration: a real Label Studio (the `label-studio` package, 1.23, in its own virtual
environment) with candle-ml as its ML backend, driven with Label Studio's own SDK
(tests/label_studio_driver.py) as a team sets a project up: AAPL candles imported as tasks,
candle-ml connected (Label Studio calls /health and /setup), predictions retrieved (/predict)
and shown on the task page (a screenshot in headless Chromium), annotations created and one
deleted (/webhook), then `dvc repro dataset` builds the training set from what stands (the review
loop's test trains on answers: tests/test_pipeline.py).

Label Studio comes from CANDLE_ML_LABEL_STUDIO (its `label-studio` executable; .ci/run installs
one); without it the test is skipped, or fails under CANDLE_ML_REQUIRE_SERVERS. Runs on this
file's own fork of the built pipeline (conftest `pipeline`)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from candle_ml.annotations import read_feedback_log
from candle_ml.bundle import load_bundle
from candle_ml.label_studio_files import label_config_xml, task_data

from .conftest import ARTIFACTS, free_loopback_port, run, wait_listening
from .test_label_studio import region

pytestmark = [pytest.mark.integration, pytest.mark.servers]

DRIVER = Path(__file__).with_name("label_studio_driver.py")
USER, PASSWORD = "trader@example.com", "not-a-secret-123"
TOKEN = "0123456789abcdef0123456789abcdef01234567"  # the first user's legacy API token


def _exe() -> Path | None:
    exe = os.environ.get("CANDLE_ML_LABEL_STUDIO") or shutil.which("label-studio")
    return Path(exe) if exe and Path(exe).is_file() else None


def label_studio_exe() -> Path:
    exe = _exe()
    if exe is not None:
        return exe
    if os.environ.get("CANDLE_ML_REQUIRE_SERVERS"):
        pytest.fail(
            "no Label Studio here: set CANDLE_ML_LABEL_STUDIO (.ci/run installs label-studio==1.23.2)"
        )
    pytest.skip("no Label Studio here (CANDLE_ML_LABEL_STUDIO: a label-studio 1.23 executable)")


# decided before any fixture: the pipeline (a minute to build) is not built for a skip
if _exe() is None and not os.environ.get("CANDLE_ML_REQUIRE_SERVERS"):
    pytest.skip(
        "no Label Studio here (CANDLE_ML_LABEL_STUDIO: a label-studio 1.23 executable)",
        allow_module_level=True,
    )


def migrated_template(exe: Path) -> Path:
    """Where a fresh Label Studio database of this installation is kept (its Django migrations
    and first user: 28 of the 32 s a first start takes), one per Label Studio version and venv."""
    dists = sorted(exe.parent.parent.glob("lib/python*/site-packages/label_studio-*.dist-info"))
    version = dists[-1].name.removesuffix(".dist-info") if dists else "label_studio"
    key = hashlib.sha256(str(exe.resolve()).encode()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "candle-ml"
    return cache / f"{version}-{key}.sqlite3"


@pytest.fixture(scope="module")
def label_studio():
    """Label Studio on a free loopback port with a throwaway data dir and a first user: (url, python).

    The data dir starts from a copy of a database migrated once per installation (kept in the user's
    cache, made from the first start here): a start then takes 4 s instead of 32."""
    exe = label_studio_exe()
    data = Path(tempfile.mkdtemp(prefix="candle-ml-label-studio-"))
    template = migrated_template(exe)
    if template.is_file():
        shutil.copy(template, data / "label_studio.sqlite3")
    port = free_loopback_port()
    env = {k: v for k, v in os.environ.items() if k != "HOST"} | {
        "LABEL_STUDIO_BASE_DATA_DIR": str(data),
        "LABEL_STUDIO_USERNAME": USER,
        "LABEL_STUDIO_PASSWORD": PASSWORD,
        "LABEL_STUDIO_USER_TOKEN": TOKEN,
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",  # 1.23 turns legacy tokens off per organization
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "SSRF_PROTECTION_ENABLED": "false",  # else it refuses backends on 127.0.0.0/8
        "USE_DEFAULT_BANNED_SUBNETS": "false",
        "LATEST_VERSION_CHECK": "false",  # no call to pypi.org
    }
    log = open(data / "label-studio.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [
            str(exe),
            "start",
            "--no-browser",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--internal-host",
            "127.0.0.1",
        ],
        cwd=data,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_listening(port, "label-studio", proc, timeout=240)
        if not template.is_file():  # migrated, its first user made, nothing else yet
            template.parent.mkdir(parents=True, exist_ok=True)
            part = template.with_suffix(f".{os.getpid()}.part")
            with sqlite3.connect(data / "label_studio.sqlite3") as src, sqlite3.connect(part) as dst:
                src.backup(dst)  # a consistent copy of a live database
            src.close()
            dst.close()
            part.replace(template)
        yield f"http://127.0.0.1:{port}", exe.with_name("python")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
        shutil.rmtree(data, ignore_errors=True)


def drive(python: Path, step: str, args: dict, tmp: Path) -> dict:
    (tmp / f"{step}.json").write_text(json.dumps(args))
    done = subprocess.run(
        [str(python), str(DRIVER), step, str(tmp / f"{step}.json"), str(tmp / f"{step}.out.json")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((tmp / f"{step}.out.json").read_text())


def screenshot_task(url: str, project: int, task: int, out: Path) -> np.ndarray | None:
    """The task's page in headless Chromium with candle-ml's prediction selected (None: no browser)."""
    chromium = shutil.which("chromium")
    if chromium is None:
        if os.environ.get("CANDLE_ML_REQUIRE_BROWSER"):
            pytest.fail("no chromium here: apt-get install chromium")
        return None
    from PIL import Image
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{url}/user/login/")
        page.fill("input[name=email]", USER)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")
        page.goto(f"{url}/projects/{project}/data?tab=1&task={task}")
        page.get_by_text("models@", exact=False).first.click(timeout=60_000)  # the prediction's tab
        page.mouse.move(700, 880)
        page.wait_for_timeout(1500)
        regions = (
            page.get_by_text("bullish_", exact=False).count()
            + page.get_by_text("bearish_", exact=False).count()
        )
        page.screenshot(path=str(out))
        browser.close()
    assert regions > 0
    return np.asarray(Image.open(out).convert("RGB"))


def test_label_studio_predicts_with_candle_ml_and_its_annotations_train(pipeline, label_studio, tmp_path):
    url, python = label_studio
    repo, _ = pipeline
    labels = load_bundle(repo / "models").meta.label_names
    aapl = pl.read_parquet(repo / "data/candles/AAPL_1d.parquet")
    tasks = [
        {"data": task_data("AAPL", "1d", aapl.slice(2000, 60))},
        {"data": task_data("AAPL", "1d", aapl.slice(2060, 60))},
        {"data": task_data("NEWCO", "1d", aapl.slice(2500, 60))},  # a series never ingested
    ]
    port = free_loopback_port()
    access = tmp_path / "candle-ml.log"
    exe = Path(sys.executable).with_name("candle-ml")
    with open(access, "wb") as out:
        server = subprocess.Popen(
            [str(exe), "serve", "--port", str(port), "--history", "", "--log-level", "info"],
            cwd=repo,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_listening(port, "candle-ml serve", server, timeout=60)
            backend = f"http://127.0.0.1:{port}/label-studio"
            common = {"url": url, "token": TOKEN, "backend_url": backend}
            config = label_config_xml(labels)
            made = drive(python, "setup", common | {"label_config": config, "tasks": tasks}, tmp_path)
            project, task_ids = made["project"], made["tasks"]
            assert made["backend"]["model_version"].startswith("models@sha256:")
            # Label Studio holds one prediction per task, on that task's candles (epoch ms).
            for task_id, task in zip(task_ids, tasks, strict=True):
                (prediction,) = made["predictions"][str(task_id)]
                ms = {
                    int(t.timestamp()) * 1000
                    for t in pl.Series(task["data"]["candles"]["time"]).str.to_datetime(time_zone="UTC")
                }
                assert (
                    prediction["result"] and prediction["model_version"] == made["backend"]["model_version"]
                )
                for r in prediction["result"]:
                    assert (
                        r["value"]["start"] in ms
                        and r["value"]["end"] in ms
                        and r["value"]["timeserieslabels"][0] in labels
                    )
            shot = screenshot_task(url, project, task_ids[0], ARTIFACTS / "label-studio-task.png")
            if shot is not None:  # the chart and the prediction's regions are drawn
                chart = shot[260:620, 250:1050]
                assert (chart.min(axis=2) < 200).mean() > 0.02

            annotations = [
                [task_ids[0], [region(tasks[0], 10, 12, "bullish_engulfing", "r-engulf")]],
                [task_ids[2], [region(tasks[2], 20, 22, "Swing Failure", "r-own")]],  # a trader's own label
                [task_ids[2], [region(tasks[2], 30, 31, "bearish_harami", "r-gone")]],
            ]
            marked = drive(
                python,
                "annotate",
                common
                | {
                    "annotations": annotations,
                    "delete": [2],
                    "project": project,
                    "export_dir": str(tmp_path),
                },
                tmp_path,
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
    calls = [
        line.split('"')[1]
        for line in access.read_text().splitlines()
        if '"' in line and "/label-studio" in line
    ]
    routes = set(calls)
    assert {
        "GET /label-studio/health HTTP/1.1",
        "POST /label-studio/setup HTTP/1.1",
        "POST /label-studio/predict HTTP/1.1",
        "POST /label-studio/webhook HTTP/1.1",
    } <= routes, routes

    spans, _ = read_feedback_log(repo / "data/annotations/feedback.jsonl")
    times = aapl["time"].to_list()
    assert sorted((s.pair, s.label, s.start_time, s.end_time) for s in spans) == [
        ("AAPL", "bullish_engulfing", times[2010], times[2012]),
        ("NEWCO", "swing_failure", times[2520], times[2522]),
    ]
    assert pl.read_parquet(repo / "data/raw/NEWCO_1d.parquet").height == 60  # kept for training

    # The same annotations by file: Label Studio's own JSON and JSON_MIN exports, imported as typed.
    for kind, path in marked["exports"].items():
        human = tmp_path / f"human-{kind}"
        typed = run([str(exe), "import", path, "--human-dir", str(human)], repo)
        assert "2 spans from 2 annotated tasks" in typed, (kind, typed)
        (imported,) = human.glob("label-studio-*.json")
        got = sorted(
            (s["pair"], s["label"], s["start_time"], s["end_time"])
            for s in json.loads(imported.read_text())["annotations"]
        )
        assert got == sorted((s.pair, s.label, s.start_time, s.end_time) for s in spans), kind

    rebuilt = run(["dvc", "repro", "dataset"], repo)
    assert all(f"Running stage '{s}'" in rebuilt for s in ("ingest", "dataset")), rebuilt[-3000:]
    report = json.loads((repo / "reports/dataset.json").read_text())
    assert report["feedback_spans"]["human"] == 2, report["feedback_spans"]
    assert report["human_annotations"] == 2 and report["skipped_annotations"]["unknown_series"] == 0
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "label-studio-run.json").write_text(
        json.dumps(
            {
                "label_studio": subprocess.run(
                    [str(python), "-c", "import label_studio; print(label_studio.__version__)"],
                    capture_output=True,
                    text=True,
                ).stdout.strip(),
                "calls": {c: calls.count(c) for c in sorted(routes)},
                "predictions": {t: len(p[0]["result"]) for t, p in made["predictions"].items()},
                "feedback_log": (repo / "data/annotations/feedback.jsonl").read_text().splitlines(),
                "dataset": {k: report[k] for k in ("human_annotations", "feedback_spans", "rows")},
            },
            indent=1,
        )
    )
    index = json.loads((repo / "data/candles/index.json").read_text())["series"]
    assert ("NEWCO", "1d", 60) in {(s["pair"], s["timeframe"], s["rows"]) for s in index}
