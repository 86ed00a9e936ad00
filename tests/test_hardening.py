"""The server's bounds: hosts, content types, work per request, slow connections, shutdown."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
import time

import polars as pl
import pytest
from litestar.testing import TestClient

from serve.app import create_app
from serve.errors import Unavailable, status_of
from serve.guards import default_allowed_hosts, host_name
from serve.limits import Limits, WorkLimiter
from serve.process import ServerProcess
from serve.settings import ServeSettings


def candles_body(candles_dir, n: int) -> dict:
    """The last ``n`` AAPL candles; past the series' length, copies of it shifted on in time."""
    series = pl.read_parquet(candles_dir / "AAPL_1d.parquet")
    span = int(series["time"][-1] - series["time"][0]) + 86_400
    copies = [series.with_columns(pl.col("time") + k * span) for k in range(-(-n // series.height))]
    frame = pl.concat(copies).tail(n)
    rows = frame.select("time", "open", "high", "low", "close", "volume").to_dicts()
    return {"candles": [{**r, "time": int(r["time"])} for r in rows]}


@pytest.fixture
def app_for(served_model, tmp_path):
    bundle_dir, candles_dir = served_model

    def make(**options) -> TestClient:
        settings = ServeSettings(
            model=str(bundle_dir),
            candles_dir=str(candles_dir),
            feedback_log=str(tmp_path / "feedback.jsonl"),
            human_dir=str(tmp_path / "human"),
            **options,
        )
        return TestClient(base_url="http://127.0.0.1", app=create_app(settings))

    return make


# ------------------------------------------------------------------ who a request is for


def test_host_names_parse_with_and_without_ports():
    assert host_name("127.0.0.1:8001") == "127.0.0.1"
    assert host_name("LocalHost") == "localhost"
    assert host_name("[::1]:8001") == "::1"
    assert host_name("::1") == "::1"
    assert default_allowed_hosts("0.0.0.0") == ["localhost", "127.0.0.1", "::1"]
    assert default_allowed_hosts("10.1.2.3")[-1] == "10.1.2.3"


def test_other_hosts_are_400_and_loopback_names_pass(app_for):
    with app_for() as client:
        for host in ["localhost:8001", "127.0.0.1", "[::1]:8001"]:
            assert client.get("/health/live", headers={"Host": host}).status_code == 200
        r = client.get("/health", headers={"Host": "attacker.example:8001"})
        assert r.status_code == 400
        body = r.json()
        assert body["field"] == "Host" and body["rule"] == "allowed hosts"
        assert "attacker.example" in body["detail"] and "--allowed-host" in body["detail"]
    with app_for(allowed_hosts=["chart.internal"]) as client:
        assert client.get("/health/live", headers={"Host": "chart.internal"}).status_code == 200
        assert client.get("/health/live", headers={"Host": "localhost"}).status_code == 400
    with app_for(allowed_hosts=["*"]) as client:
        assert client.get("/health/live", headers={"Host": "anything.example"}).status_code == 200


def test_posts_need_json_and_a_refused_write_stores_nothing(app_for, served_model, tmp_path):
    times = pl.read_parquet(served_model[1] / "AAPL_1d.parquet")["time"]
    span = {"pair": "AAPL", "timeframe": "1d", "start_time": int(times[100]), "end_time": int(times[101])}
    body = json.dumps({"annotations": [{**span, "label": "doji"}]})
    with app_for() as client:
        for route in ["/model/reload", "/feedback", "/predict"]:
            for content_type in [None, "text/plain", "application/x-www-form-urlencoded"]:
                headers = {"Content-Type": content_type} if content_type else {}
                r = client.post(route, content=body, headers=headers)
                assert r.status_code == 415, (route, content_type, r.text)
                assert r.json()["field"] == "Content-Type" and r.json()["rule"] == "application/json"
        assert not (tmp_path / "feedback.jsonl").exists()
        r = client.post(
            "/feedback", content=body, headers={"Content-Type": "application/json; charset=utf-8"}
        )
        assert r.status_code == 201, r.text
        # A reload takes no body or {}; whitespace is no JSON document (schemathesis sent ' ').
        json_type = {"Content-Type": "application/json"}
        for content in [" ", "\n", '{"model": "elsewhere"}']:
            r = client.post("/model/reload", content=content, headers=json_type)
            assert r.status_code == 400, (content, r.text)
        assert client.post("/model/reload", content="", headers=json_type).json()["reloaded"]


# ------------------------------------------------------------------ work per request


def test_more_candles_than_the_cap_is_413_naming_the_cap(app_for, served_model):
    _, candles_dir = served_model
    with app_for(limits=Limits(max_candles=400)) as client:
        r = client.post("/predict", json=candles_body(candles_dir, 401))
        assert r.status_code == 413
        assert r.json()["field"] == "candles" and r.json()["rule"] == "at most 400 candles per request"
        r = client.post("/predict/batch", json={"pair": "AAPL", "timeframe": "1d"})
        assert r.status_code == 413 and "narrower start..end" in r.json()["detail"]
        first = pl.read_parquet(candles_dir / "AAPL_1d.parquet")["time"]
        r = client.post("/predict/batch", json={"pair": "AAPL", "timeframe": "1d", "end": int(first[399])})
        assert r.status_code == 200 and len(r.json()["predictions"]) == 400


def test_tiny_batch_sizes_are_raised_to_the_floor_with_the_same_answer(app_for):
    with app_for(limits=Limits(min_batch_size=1_000)) as client:
        model = client.app.state.store.current
        calls = []
        predict = model.bundle.predict
        model.bundle.predict = lambda frame: calls.append(frame.height) or predict(frame)  # type: ignore[method-assign]
        tiny = client.post("/predict/batch", json={"pair": "AAPL", "timeframe": "1d", "batch_size": 1})
        chunks = len(calls)
        default = client.post("/predict/batch", json={"pair": "AAPL", "timeframe": "1d"})
    assert tiny.status_code == 200 and tiny.json()["predictions"] == default.json()["predictions"]
    n = len(tiny.json()["predictions"])
    assert chunks == -(-n // 1_000), f"{chunks} chunks for {n} candles at batch_size 1"


def test_full_queue_answers_503_at_once_and_late_work_stops_at_its_deadline():
    async def scenario() -> None:
        work = WorkLimiter(Limits(max_concurrent=1, max_queue=1, queue_timeout=5, request_timeout=0.3))
        release = threading.Event()
        running = asyncio.create_task(work.run(lambda check: release.wait(5)))
        await asyncio.sleep(0.05)
        waiting = asyncio.create_task(work.run(lambda check: "second"))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(Unavailable) as busy:
            await work.run(lambda check: "third")
        assert time.monotonic() - started < 0.1  # refused without waiting
        assert (
            status_of(busy.value) == 503 and busy.value.retry_after == 1 and busy.value.rule == "server busy"
        )
        release.set()
        assert await running is True and await waiting == "second"

        def slow(check) -> None:
            for _ in range(100):
                check()  # between chunks
                time.sleep(0.02)

        with pytest.raises(Unavailable) as late:
            await work.run(slow)
        assert late.value.rule == "at most 0.3 s per request"
        work.drain(0.0)
        with pytest.raises(Unavailable) as closing:
            await work.run(lambda check: None)
        assert closing.value.rule == "shutting down" and closing.value.retry_after == 5
        assert work.rejected == 3

    asyncio.run(scenario())


def test_busy_answers_carry_retry_after(app_for, served_model):
    _, candles_dir = served_model
    with app_for(limits=Limits(request_timeout=0.000001)) as client:
        assert client.get("/health").json()["refused"] == 0
        r = client.post("/predict", json=candles_body(candles_dir, 400))
        assert client.get("/health").json()["refused"] == 1
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert r.json()["rule"].startswith("at most")


# ------------------------------------------------------------------ connections and shutdown


def read_all(sock: socket.socket, wait: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    started, data = time.monotonic(), b""
    sock.settimeout(wait)
    while chunk := sock.recv(65536):
        data += chunk
    return data, time.monotonic() - started


def test_idle_slow_and_short_bodied_connections_are_closed(served_model, tmp_path):
    bundle_dir, candles_dir = served_model
    server = ServerProcess(
        *("--model", str(bundle_dir), "--candles-dir", str(candles_dir), "--log-level", "warning"),
        *("--keep-alive-timeout", "1", "--header-timeout", "1", "--body-idle-timeout", "1"),
        log=tmp_path / "server.log",
    ).start()
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as idle:
            data, took = read_all(idle, 10)
        assert data == b"" and took < 5  # never used: closed without a word

        with socket.create_connection(("127.0.0.1", server.port)) as slow:
            slow.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")  # ... and never the blank line
            data, took = read_all(slow, 10)
        assert data.startswith(b"HTTP/1.1 408 ") and b"headers not complete within 1 s" in data and took < 5

        with socket.create_connection(("127.0.0.1", server.port)) as short:
            short.sendall(
                b"POST /predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                b'Content-Length: 1000\r\n\r\n{"candles": ['
            )
            data, took = read_all(short, 10)
        assert data.startswith(b"HTTP/1.1 408 ") and b"Content-Length larger than the body" in data
        assert took < 5

        # Served, then left idle: closed after the keep-alive timeout, as before.
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", "/health/live")
        assert conn.getresponse().read() and conn.sock is not None
        data, took = read_all(conn.sock, 10)
        assert data == b"" and took < 5
        assert server.proc is not None and server.proc.poll() is None  # still serving
    finally:
        server.stop()


@pytest.mark.integration
def test_sigterm_lets_requests_in_flight_finish_or_answers_503_and_exits_0(served_model, tmp_path):
    bundle_dir, candles_dir = served_model
    body = json.dumps(candles_body(candles_dir, 10_000))  # ~0.3 s of prediction each
    statuses: list[int] = []
    retry_after: list[str | None] = []

    def client(port: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        statuses.append(response.status)
        retry_after.append(response.getheader("Retry-After"))

    for grace, expect_all_done in [("30", True), ("0.5", False)]:
        statuses.clear()
        retry_after.clear()
        server = ServerProcess(
            *("--model", str(bundle_dir), "--candles-dir", str(candles_dir), "--log-level", "warning"),
            *("--max-concurrent", "1", "--max-queue", "40", "--queue-timeout", "60"),
            *("--shutdown-grace", grace, "--model-threads", "1"),
            log=tmp_path / "server.log",
        ).start()
        threads = [threading.Thread(target=client, args=(server.port,)) for _ in range(20)]
        for t in threads:
            t.start()
        time.sleep(0.5)  # all 20 sent: one predicting, the rest queued
        assert server.proc is not None
        proc = server.proc
        server.stop()
        for t in threads:
            t.join(60)
        assert proc.returncode == 0, (grace, proc.returncode)
        assert len(statuses) == 20 and set(statuses) <= {200, 503}, statuses
        if expect_all_done:
            assert statuses == [200] * 20
        else:
            assert statuses.count(503) > 0
            assert all(r == "5" for s, r in zip(statuses, retry_after, strict=True) if s == 503)


# ------------------------------------------------------------------ the schema's rules are the server's


def test_series_names_refuse_a_trailing_newline_and_nul_everywhere(app_for, served_model):
    _, candles_dir = served_model
    body = candles_body(candles_dir, 400)
    with app_for() as client:
        for pair in ["AAPL\n", "AAPL\x00", "A" * 1_000_000]:
            r = client.post("/predict/batch", json={"pair": pair, "timeframe": "1d"})
            assert r.status_code == 400 and r.json()["field"] == "pair", (pair[:8], r.text[:200])
            r = client.post("/predict", json={**body, "pair": pair})
            assert r.status_code == 400 and r.json()["field"] == "pair", (pair[:8], r.text[:200])
        assert client.get("/review", params={"pair": "AAPL\n", "timeframe": "1d"}).status_code == 400
        assert client.post("/predict", json={**body, "pair": "AAPL", "timeframe": "1d"}).status_code == 200


def test_a_whole_number_written_with_a_fraction_is_that_integer_and_1_5_is_not(app_for, served_model):
    _, candles_dir = served_model
    body = candles_body(candles_dir, 400)
    with app_for() as client:
        exact = client.post("/predict", json=body).json()["predictions"]
        floats = [{**c, "time": float(c["time"])} for c in body["candles"]]
        assert client.post("/predict", json={"candles": floats}).json()["predictions"] == exact
        floats[3]["time"] += 0.5
        r = client.post("/predict", json={"candles": floats})
        assert r.status_code == 400 and r.json()["field"] == "candles[3].time"


def test_options_lists_every_method_of_a_path(app_for):
    with app_for() as client:
        assert client.options("/feedback").headers["allow"] == "GET, OPTIONS, POST"
        assert client.options("/predict").headers["allow"] == "OPTIONS, POST"


def test_openapi_documents_bodies_statuses_and_examples_that_work(app_for):
    with app_for() as client:
        spec = client.get("/schema/openapi.json").json()
        schemas = spec["components"]["schemas"]
        assert schemas["PredictRequest"]["additionalProperties"] is False
        rows, columns = schemas["PredictRequest"]["properties"]["candles"]["anyOf"]  # rows, or columns
        assert rows["minItems"] == 1 and columns["$ref"].endswith("/CandleColumns")
        assert schemas["CandleColumns"]["properties"]["time"]["minItems"] == 1
        assert "(?!\n)" in schemas["BatchRequest"]["properties"]["pair"]["pattern"]
        assert "request_id" in schemas["ErrorBody"]["properties"]
        for path, operations in spec["paths"].items():
            for method, op in operations.items():
                assert {"400", "500"} <= set(op["responses"]), (method, path)
                if method == "post":
                    assert {"413", "415"} <= set(op["responses"]), path
        predict = spec["paths"]["/predict"]["post"]
        assert {"422", "503"} <= set(predict["responses"])
        assert predict["responses"]["400"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorBody"
        }
        for path in ["/predict", "/predict/batch", "/feedback"]:
            media = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]
            example = media["examples"]["stored"]["value"]
            r = client.post(path, json=example)
            assert r.status_code in (200, 201), (path, r.text[:300])
