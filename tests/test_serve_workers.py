"""``candle-ml serve --workers 2`` as a user runs it: one model version across the workers, a
reload under load with no error, a failed reload that keeps the old model everywhere, SIGHUP,
a crashed worker replaced on the same version, opened charts seen by every worker, SIGTERM."""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import polars as pl
import pytest

from candle_ml.bundle import load_bundle
from serve.process import ServerProcess
from serve.workers import Worker, _round_error


def call(port: int, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, path, data, {"Content-Type": "application/json"} if data else {})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def versions_by_worker(port: int, tries: int = 60) -> dict[int, str | None]:
    """What each worker serves, from /health on fresh connections until both have answered."""
    seen: dict[int, str | None] = {}
    for _ in range(tries):
        _, health = call(port, "GET", "/health")
        seen[health["worker"]] = health["model"]
        if len(seen) == health["workers"]:
            break
    return seen


def new_version_of(bundle: Path) -> None:
    """The same model as a new version: bundle.json with one more trailing space (other bytes,
    same content), swapped in atomically."""
    tmp = bundle / ".bundle.json.new"
    tmp.write_text((bundle / "bundle.json").read_text() + " ")
    os.replace(tmp, bundle / "bundle.json")


def worker_pids(supervisor: int) -> list[int]:
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return [int(p) for p in children if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]


@pytest.fixture(scope="module")
def aapl(served_model) -> pl.DataFrame:
    return pl.read_parquet(served_model[1] / "AAPL_1d.parquet")


@pytest.fixture(scope="module")
def min_history(served_model) -> int:
    return load_bundle(served_model[0]).meta.min_history


@pytest.fixture(scope="module")
def workers_server(served_model, tmp_path_factory):
    """One two-worker server for this file's tests (a start is three processes' imports): the
    chart test first, then the one that ends it with SIGTERM."""
    bundle_dir, candles_dir = served_model
    tmp_path = tmp_path_factory.mktemp("workers")
    bundle = tmp_path / "models"
    shutil.copytree(bundle_dir, bundle)
    server = ServerProcess(
        "--workers",
        "2",
        "--model",
        str(bundle),
        "--candles-dir",
        str(candles_dir),
        log=tmp_path / "server.log",
    )
    server.start()
    yield server, bundle
    server.stop()


@pytest.mark.servers
def test_a_chart_opened_on_one_worker_is_served_by_every_worker(workers_server, aapl):
    server, _ = workers_server
    csv = aapl.slice(0, 120).with_columns(pl.from_epoch("time").dt.strftime("%Y-%m-%d")).write_csv()
    status, opened = call(
        server.port,
        "POST",
        "/charts",
        {"name": "ACME_1d.csv", "content": base64.b64encode(csv.encode()).decode()},
    )
    assert status == 201 and opened["pair"] == "ACME", opened
    seen = set()
    for _ in range(40):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.request("GET", "/health")
        seen.add(json.loads(conn.getresponse().read())["worker"])
        conn.request("GET", "/candles?pair=ACME&timeframe=1d")
        resp = conn.getresponse()
        assert resp.status == 200 and len(json.loads(resp.read())["candles"]) == 120
        conn.close()
        if seen == {1, 2}:
            break
    assert seen == {1, 2}


@pytest.mark.servers
def test_two_workers_serve_one_version_through_reloads_crashes_and_sigterm(workers_server, aapl, min_history):
    server, bundle = workers_server
    port, log = server.port, server.log
    first = versions_by_worker(port)
    assert set(first) == {1, 2} and len(set(first.values())) == 1, first

    # Reload under load: 4 clients predicting on keep-alive connections, no error, and no old
    # version answered after the reload returned.
    body = json.dumps({"candles": aapl.slice(0, min_history + 100).to_dicts()}).encode()
    answers: list[tuple[float, float, str]] = []  # (sent, answered, version)
    errors: list[str] = []
    stop = threading.Event()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while not stop.is_set():
            sent = time.monotonic()
            conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                errors.append(f"{resp.status}: {data[:200]!r}")
                continue
            answers.append((sent, time.monotonic(), json.loads(data)["model_info"]["version"]))

    clients = [threading.Thread(target=client) for _ in range(4)]
    for t in clients:
        t.start()
    time.sleep(1.0)
    old = answers[-1][2]
    new_version_of(bundle)
    asked = time.monotonic()
    status, reload = call(port, "POST", "/model/reload", {})
    reloaded = time.monotonic()
    time.sleep(1.0)
    stop.set()
    for t in clients:
        t.join()
    assert status == 200 and reload["reloaded"], reload
    new = reload["model"]["version"]
    assert new != old and not errors, errors
    assert all(v == new for sent, _, v in answers if sent > reloaded)  # every worker, at once
    assert all(v == old for _, done, v in answers if done < asked)
    assert {v for *_, v in answers} == {old, new} and len(answers) > 50
    assert set(versions_by_worker(port).values()) == {f"models@{new}"}

    # A bundle that cannot load: 409, and every worker keeps serving the version it had.
    good = (bundle / "bundle.json").read_text()
    (bundle / "bundle.json").write_text("{ not json")
    status, failed = call(port, "POST", "/model/reload", {})
    assert status == 409 and not failed["reloaded"] and failed["model"]["version"] == new
    assert "every worker keeps the model it serves" in failed["error"]
    assert set(versions_by_worker(port).values()) == {f"models@{new}"}
    _, health = call(port, "GET", "/health")
    assert health["status"] == "degraded" and "bundle.json" in health["last_reload_error"]

    # SIGHUP to the supervisor: one round over both workers (the bundle is good again).
    (bundle / "bundle.json").write_text(good)
    new_version_of(bundle)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGHUP)
    # (a round's commit reaches the workers one after the other and nobody waits on its answer:
    # poll until no worker serves the old version, then they must all serve the same new one)
    deadline = time.monotonic() + 60
    while f"models@{new}" in (served := set(versions_by_worker(port).values())):
        assert time.monotonic() < deadline, "no reload after SIGHUP"
        time.sleep(0.3)
    assert len(served) == 1, served
    assert call(port, "GET", "/health")[1]["status"] == "ok"  # the failed reload's error is gone

    # A worker killed: replaced, on the version the other one serves.
    served = set(versions_by_worker(port).values())
    pids = worker_pids(server.proc.pid)
    assert len(pids) == 2
    os.kill(pids[0], signal.SIGKILL)
    deadline = time.monotonic() + 60
    while len(worker_pids(server.proc.pid)) < 2 or len(versions_by_worker(port)) < 2:
        assert time.monotonic() < deadline, "the killed worker was not replaced"
        time.sleep(0.5)
    assert set(versions_by_worker(port).values()) == served
    assert "exited with -9; starting another" in log.read_text()

    # SIGTERM: every worker drains, the supervisor ends with 0 and leaves no process behind.
    pids = worker_pids(server.proc.pid)
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=30) == 0
    assert not [p for p in pids if Path(f"/proc/{p}").exists()]


def test_a_round_commits_only_when_every_worker_loaded_the_same_version():
    workers = [Worker(i, None, None) for i in (1, 2)]  # type: ignore[arg-type]
    alive = {w.index: w for w in workers}
    ok = {"ok": True, "pinned": "models"}
    assert _round_error(workers, {1: {**ok, "version": "a"}, 2: {**ok, "version": "a"}}, alive, None) is None
    assert "different versions (a, b)" in str(
        _round_error(workers, {1: {**ok, "version": "a"}, 2: {**ok, "version": "b"}}, alive, None)
    )
    failed = _round_error(
        workers, {1: {**ok, "version": "a"}, 2: {"ok": False, "error": "no bundle.json"}}, alive, None
    )
    assert failed == "worker 2: no bundle.json; every worker keeps the model it serves"
    assert "worker 2 exited" in str(_round_error(workers, {1: {**ok, "version": "a"}}, {1: workers[0]}, None))
    assert "the others serve b" in str(_round_error(workers[:1], {1: {**ok, "version": "a"}}, alive, "b"))


def test_a_replacement_worker_loads_exactly_the_version_served():
    """A registry alias may have moved since the others loaded it: the replacement gets the version
    number; a bundle directory is named as it is (its version is the hash of its files)."""
    from types import SimpleNamespace

    from serve.worker_link import pinned_source

    alias = SimpleNamespace(source="models:/candle-patterns@champion", name="candle-patterns", version="7")
    assert pinned_source(alias) == "models:/candle-patterns/7"  # type: ignore[arg-type]
    local = SimpleNamespace(source="/srv/models", name="models", version="sha256:0123456789ab")
    assert pinned_source(local) == "/srv/models"  # type: ignore[arg-type]
