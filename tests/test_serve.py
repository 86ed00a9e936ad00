"""The Litestar service: predictions, parity with offline evaluation, every bad input a 4xx."""

from __future__ import annotations

import json
import shutil
import signal
import time
import urllib.request

import numpy as np
import polars as pl
import pytest
from litestar.testing import TestClient
from typer.testing import CliRunner

from candle_ml.bundle import load_bundle
from candle_ml.evaluation import predict_series
from serve.app import create_app
from serve.cli import app as cli
from serve.process import ServerProcess
from serve.settings import ServeSettings


@pytest.fixture(scope="module")
def aapl(served_model) -> pl.DataFrame:
    _, candles_dir = served_model
    return pl.read_parquet(candles_dir / "AAPL_1d.parquet")


@pytest.fixture(scope="module")
def client(served_model):
    bundle_dir, candles_dir = served_model
    with TestClient(
        base_url="http://127.0.0.1",
        app=create_app(ServeSettings(model=str(bundle_dir), candles_dir=str(candles_dir))),
    ) as c:
        yield c


@pytest.fixture(scope="module")
def min_history(served_model) -> int:
    return load_bundle(served_model[0]).meta.min_history


def body(candles: pl.DataFrame, **extra) -> dict:
    return {"candles": candles.to_dicts(), **extra}


def test_predict_labels_every_candle_and_groups_spans(client, served_model, aapl, min_history):
    candles = aapl.slice(1000, min_history + 300)
    r = client.post("/predict", json=body(candles, pair="AAPL", timeframe="1d"))
    assert r.status_code == 200, r.text
    out = r.json()
    preds = out["predictions"]
    assert [p["time"] for p in preds] == candles["time"].to_list()  # one per candle, in order
    assert all(p["label"] is None and p["confidence"] is None for p in preds[:min_history])
    assert all(p["label"] is not None and 0 < p["confidence"] <= 1 for p in preds[min_history:])
    assert (
        out["model_info"]["min_history"] == min_history
        and out["model_info"]["lookahead"] == load_bundle(served_model[0]).meta.lookahead
    )
    # Candlestick spans are exactly the runs of equal non-O labels; chart patterns come beside them.
    labels = {p["time"]: p["label"] for p in preds}
    assert out["spans"], "300 real daily candles hold some pattern"
    chart = [s for s in out["spans"] if s["kind"] == "chart"]
    assert chart and all(s["candles"] >= 6 and 0 < s["avg_confidence"] <= 1 for s in chart)
    assert {s["label"] for s in chart} <= {label["name"] for label in client.get("/model/labels").json()}
    for s in [s for s in out["spans"] if s["kind"] == "candlestick"]:
        inside = [p for p in preds if s["start_time"] <= p["time"] <= s["end_time"]]
        assert {p["label"] for p in inside} == {s["label"]} and len(inside) == s["candles"]
        assert s["avg_confidence"] == pytest.approx(np.mean([p["confidence"] for p in inside]))
    n_labeled = sum(1 for v in labels.values() if v not in (None, "O"))
    assert n_labeled == sum(s["candles"] for s in out["spans"] if s["kind"] == "candlestick")


def test_min_confidence_turns_unsure_predictions_into_o(client, aapl, min_history):
    candles = aapl.slice(2000, min_history + 200)
    plain = client.post("/predict", json=body(candles)).json()["predictions"]
    sure = sorted(p["confidence"] for p in plain if p["label"] not in (None, "O"))
    cut = sure[len(sure) // 2]  # the median pattern confidence: half the patterns are below it
    strict = client.post("/predict", json=body(candles, min_confidence=cut)).json()["predictions"]
    unsure = [i for i, p in enumerate(plain) if p["label"] not in (None, "O") and p["confidence"] < cut]
    assert unsure, f"some prediction is below {cut}"
    for i, (a, b) in enumerate(zip(plain, strict, strict=True)):
        assert b["label"] == ("O" if i in unsure else a["label"]) and b["confidence"] == a["confidence"]


def test_columns_in_columns_out_answer_as_rows_do(client, aapl, min_history):
    """A columnar body ({"time": [...], "open": [...], ...}) gets its predictions as columns: the
    same labels and confidences, the same spans; its own rules (one length) are a 422 naming them."""
    candles = aapl.slice(1500, min_history + 200)
    rows = client.post("/predict", json=body(candles, min_confidence=0.6)).json()
    sent = {"candles": candles.drop("volume").to_dict(as_series=False), "min_confidence": 0.6}
    cols = client.post("/predict", json=sent).json()  # volume left out: 0, as in a row body
    assert set(cols["predictions"]) == {"time", "label", "confidence"}
    for key in ("time", "label", "confidence"):
        assert cols["predictions"][key] == [p[key] for p in rows["predictions"]]
    assert cols["predictions"]["label"][0] is None and cols["spans"] == rows["spans"]
    short = {"candles": {**candles.to_dict(as_series=False), "close": candles["close"].to_list()[:-1]}}
    got = client.post("/predict", json=short)
    assert got.status_code == 422 and "candles.close: 199 values" in got.json()["detail"].replace(
        str(min_history + 199), "199"
    )
    broken = candles.to_dict(as_series=False)
    broken["low"][9] = broken["high"][9] * 2
    got = client.post("/predict", json={"candles": broken})
    assert got.status_code == 422 and "candles row 9" in got.json()["detail"]


def test_parity_one_request_chunks_batch_and_offline_evaluation(client, served_model, aapl, min_history):
    """Every candle with min_history candles before it gets the same label (confidence within 1e-3)
    whether the series comes whole, in overlapping chunks of a few hundred, through /predict/batch,
    or through the evaluate stage's offline prediction."""
    bundle_dir, candles_dir = served_model
    whole = client.post("/predict", json=body(aapl)).json()["predictions"]
    offline = predict_series(
        load_bundle(bundle_dir), candles_dir, pl.DataFrame({"pair": ["AAPL"], "timeframe": ["1d"]})
    )
    batch = client.post("/predict/batch", json={"pair": "AAPL", "timeframe": "1d", "batch_size": 250}).json()[
        "predictions"
    ]

    def same(a_label, a_conf, b_label, b_conf):
        return a_label == b_label and (a_conf is None and b_conf is None or abs(a_conf - b_conf) <= 1e-3)

    off_conf = [None if np.isnan(c) else c for c in offline["confidence"].to_list()]
    for i, p in enumerate(whole):
        assert same(p["label"], p["confidence"], offline["predicted"][i], off_conf[i]), f"offline, candle {i}"
        assert same(p["label"], p["confidence"], batch[i]["label"], batch[i]["confidence"]), (
            f"batch, candle {i}"
        )

    # Overlapping chunks: each candle compared where it has its history and its lookahead in the chunk.
    size, lookahead = min_history + 200, load_bundle(bundle_dir).meta.lookahead
    compared = 0
    for start in range(0, aapl.height, 200):
        chunk = aapl.slice(start, size)
        if chunk.height <= min_history:
            break
        preds = client.post("/predict", json=body(chunk)).json()["predictions"]
        end_ok = chunk.height if start + chunk.height == aapl.height else chunk.height - lookahead
        for j in range(min_history, end_ok):
            w = whole[start + j]
            assert same(preds[j]["label"], preds[j]["confidence"], w["label"], w["confidence"]), (
                f"chunk at {start}, candle {j}"
            )
            compared += 1
    assert compared > 0.85 * (aapl.height - min_history)


def valid_candles(aapl: pl.DataFrame, n: int) -> list[dict]:
    return aapl.slice(500, n).to_dicts()


def with_row(rows: list[dict], i: int, **change) -> list[dict]:
    rows = [dict(r) for r in rows]
    rows[i].update(change)
    return rows


def bad_requests(aapl: pl.DataFrame, min_history: int):
    """(name, route, raw body, status, text the detail must contain, field)."""
    ok = valid_candles(aapl, min_history + 200)
    c = ok[123]

    def js(candles, **extra):
        return json.dumps({"candles": candles, **extra}).encode()

    yield "malformed JSON", "/predict", b'{"candles": [', 400, "not valid JSON", None
    yield "not an object", "/predict", b"[1, 2]", 400, "Expected `object`", None
    yield "wrong type", "/predict", b'{"candles": "many"}', 400, "Expected `object | array`", "candles"
    yield (
        "missing field",
        "/predict",
        js([{k: v for k, v in c.items() if k != "close"}]),
        400,
        "missing required field `close`",
        "candles[0]",
    )
    yield "missing candles", "/predict", b"{}", 400, "missing required field `candles`", None
    yield "empty candles", "/predict", js([]), 400, "length >= 1", "candles"
    short = ok[: min_history // 2]
    yield "too little history", "/predict", js(short), 422, f"needs at least {min_history + 1}", "candles"
    yield (
        "NaN price",
        "/predict",
        js(ok).replace(b'"open": ' + json.dumps(c["open"]).encode(), b'"open": NaN', 1),
        400,
        "not valid JSON",
        None,
    )
    yield (
        "Infinity price",
        "/predict",
        js(ok).replace(b'"open": ' + json.dumps(c["open"]).encode(), b'"open": 1e999', 1),
        400,
        "Number out of range",
        "candles[123].open",
    )
    yield (
        "negative price",
        "/predict",
        js(with_row(ok, 123, low=-1.0)),
        400,  # the schema says prices are > 0 (exclusiveMinimum), so the body decoder refuses it
        "Expected `float` > 0.0",
        "candles[123].low",
    )
    yield (
        "zero price",
        "/predict",
        js(with_row(ok, 123, open=0.0)),
        400,
        "Expected `float` > 0.0",
        "candles[123].open",
    )
    yield (
        "high < low",
        "/predict",
        js(with_row(ok, 123, high=c["low"] - 1)),
        422,
        "rule high_below_low",
        "candles[123].high",
    )
    yield (
        "high < max(open, close)",
        "/predict",
        js(with_row(ok, 123, high=max(c["open"], c["close"]) - 0.001, low=min(c["open"], c["close"]) - 1)),
        422,
        "rule high_below_open_close",
        "candles[123].high",
    )
    yield (
        "low > min(open, close)",
        "/predict",
        js(with_row(ok, 123, low=min(c["open"], c["close"]) + 0.001)),
        422,
        "rule low_above_open_close",
        "candles[123].low",
    )
    yield (
        "negative volume",
        "/predict",
        js(with_row(ok, 123, volume=-5)),
        400,  # volume >= 0 is in the schema
        "Expected `float` >= 0.0",
        "candles[123].volume",
    )
    yield (
        "unsorted times",
        "/predict",
        js(with_row(ok, 123, time=ok[10]["time"] + 1)),
        422,
        "rule time_not_increasing",
        "candles[123].time",
    )
    yield (
        "duplicate times",
        "/predict",
        js(with_row(ok, 123, time=ok[122]["time"])),
        422,
        "rule time_duplicate",
        "candles[123].time",
    )
    yield (
        "time as float",
        "/predict",
        js(with_row(ok, 5, time=ok[5]["time"] + 0.5)),
        400,
        "Expected `int`, got `float`",
        "candles[5].time",
    )
    yield (
        "time as string",
        "/predict",
        js(with_row(ok, 5, time=str(ok[5]["time"]))),
        400,
        "Expected `int`, got `str`",
        "candles[5].time",
    )
    yield (
        "unknown field (rejected)",
        "/predict",
        js(ok, min_confidance=0.5),
        400,
        "unknown field `min_confidance`",
        "min_confidance",
    )
    yield "min_confidence out of range", "/predict", js(ok, min_confidence=2), 400, "<= 1.0", "min_confidence"
    for pair in ("../AAPL", "AAPL/1d", "AA\x00PL", "..", "/etc/passwd"):
        yield (
            f"pair {pair!r}",
            "/predict/batch",
            json.dumps({"pair": pair, "timeframe": "1d"}).encode(),
            400,
            "matching regex",
            "pair",
        )
    yield (
        "timeframe path trick",
        "/predict/batch",
        b'{"pair": "AAPL", "timeframe": "../1d"}',
        400,
        "matching regex",
        "timeframe",
    )
    yield (
        "unknown series",
        "/predict/batch",
        b'{"pair": "EURUSD", "timeframe": "1h"}',
        404,
        "known: AAPL 1d, IBM 1d",
        "pair",
    )
    yield (
        "empty range",
        "/predict/batch",
        b'{"pair": "AAPL", "timeframe": "1d", "start": 1900000000}',
        404,
        "no candles of AAPL 1d",
        "start",
    )
    yield (
        "batch_size 0",
        "/predict/batch",
        b'{"pair": "AAPL", "timeframe": "1d", "batch_size": 0}',
        400,
        ">= 1",
        "batch_size",
    )


def test_every_bad_input_gets_a_4xx_naming_field_and_rule_and_the_server_keeps_serving(
    client, aapl, min_history
):
    seen = []
    for name, route, raw, status, text, field in bad_requests(aapl, min_history):
        r = client.post(route, content=raw, headers={"content-type": "application/json"})
        assert r.status_code == status, f"{name}: {r.status_code} {r.text}"
        detail = r.json()
        assert text in detail["detail"], f"{name}: {detail}"
        if field is not None:
            assert detail["field"] == field, f"{name}: {detail}"
        assert client.get("/health").status_code == 200, f"server unhealthy after {name}"
        seen.append(name)
    assert len(seen) >= 28


def test_a_body_over_the_limit_is_413(served_model):
    bundle_dir, candles_dir = served_model
    app = create_app(
        ServeSettings(model=str(bundle_dir), candles_dir=str(candles_dir), max_body_bytes=10_000)
    )
    with TestClient(base_url="http://127.0.0.1", app=app) as c:
        r = c.post(
            "/predict",
            content=b'{"candles": [' + b" " * 20_000 + b"]}",
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 413
        assert "0.00953674 MB limit (--max-body-mb)" in r.json()["detail"]
        assert c.get("/health").status_code == 200


def test_default_body_limit_fits_100k_candles():
    candle = {
        "time": 1492592400,
        "open": 1.07164321,
        "high": 1.07224321,
        "low": 1.07084321,
        "close": 1.07224321,
        "volume": 141343.5,
    }
    assert len(json.dumps({"candles": [candle] * 100_000})) < ServeSettings().max_body_bytes


def test_model_info_labels_and_health(client, served_model, min_history, monkeypatch):
    info = client.get("/model/info").json()
    assert info["model_type"] == "xgboost" and info["min_history"] == min_history
    assert info["version"].startswith("sha256:") and info["window"] == {
        "window_size": 3,
        "context": 0,
        "anchor": "end",
        "before": 2,
        "after": 0,
    }
    # The window never looks ahead; a pattern's first candle waits for its last (engulfing: 1).
    lengths = load_bundle(served_model[0]).meta.label_lengths
    assert info["lookahead"] == max(lengths.values()) - 1 and lengths["bullish_engulfing"] == 2
    assert "rsi_14" in info["features"]["columns"] and info["features"]["featurize"]["indicators"]
    assert info["calibration"] == {"temperature": 1.0, "thresholds": {}}  # a bundle trained without them
    labels = client.get("/model/labels").json()
    assert [x["name"] for x in labels] == [x["name"] for x in info["labels"]]
    # no outcome report beside this bundle: the labels say so
    assert labels[0] == {"name": "O", "color": "#9e9e9e", "outcome": None} and all(
        x["color"].startswith("#") for x in labels
    )
    health = client.get("/health")
    assert health.status_code == 200 and health.json()["model_loaded"] is True
    assert health.json()["mlflow"] in ("ok", "not configured")


def test_health_reports_the_mlflow_store(served_model, tmp_path, monkeypatch):
    bundle_dir, candles_dir = served_model
    monkeypatch.chdir(tmp_path)  # no ./mlflow.db here
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for uri, state, status in (
        (None, "not configured", "ok"),
        ("http://127.0.0.1:9/", "unreachable", "degraded"),
    ):
        with TestClient(
            base_url="http://127.0.0.1",
            app=create_app(
                ServeSettings(model=str(bundle_dir), candles_dir=str(candles_dir), tracking_uri=uri)
            ),
        ) as c:
            h = c.get("/health")
            assert h.status_code == 200 and h.json()["mlflow"] == state and h.json()["status"] == status


def test_without_a_model_health_is_503_and_reload_brings_it_in(served_model, tmp_path):
    bundle_dir, candles_dir = served_model
    target = tmp_path / "models"
    with TestClient(
        base_url="http://127.0.0.1",
        app=create_app(ServeSettings(model=str(target), candles_dir=str(candles_dir))),
    ) as c:
        h = c.get("/health")
        assert (
            h.status_code == 503
            and h.json()["model_loaded"] is False
            and "no bundle.json" in h.json()["last_reload_error"]
        )
        r = c.post("/predict", json={"candles": [{"time": 1, "open": 1, "high": 1, "low": 1, "close": 1}]})
        assert r.status_code == 503 and "POST /model/reload" in r.json()["detail"]
        shutil.copytree(bundle_dir, target)
        r = c.post("/model/reload", json={})
        assert r.status_code == 200 and r.json()["reloaded"] is True
        assert c.get("/health").status_code == 200


def test_a_failed_reload_keeps_serving_the_old_model(served_model, tmp_path, aapl, min_history):
    bundle_dir, candles_dir = served_model
    target = tmp_path / "models"
    shutil.copytree(bundle_dir, target)
    with TestClient(
        base_url="http://127.0.0.1",
        app=create_app(ServeSettings(model=str(target), candles_dir=str(candles_dir))),
    ) as c:
        version = c.get("/model/info").json()["version"]
        (target / "bundle.json").write_text("{ not json")
        r = c.post("/model/reload", json={})
        assert r.status_code == 409 and r.json()["reloaded"] is False and "bundle.json" in r.json()["error"]
        assert r.json()["model"]["version"] == version
        assert c.post("/predict", json=body(aapl.slice(0, min_history + 5))).status_code == 200
        h = c.get("/health").json()
        assert h["status"] == "degraded" and "bundle.json" in h["last_reload_error"]


def test_a_bundle_that_loads_but_cannot_predict_is_never_swapped_in(
    served_model, tmp_path, aapl, min_history
):
    """A reload runs a test prediction first: a bundle.json that lost one of its input columns
    loads, but its model cannot use it; the old model keeps serving and /health says why in one
    line. One whose features cannot make the model's input columns fails to load, naming them."""
    bundle_dir, candles_dir = served_model
    target = tmp_path / "models"
    shutil.copytree(bundle_dir, target)
    with TestClient(
        base_url="http://127.0.0.1",
        app=create_app(ServeSettings(model=str(target), candles_dir=str(candles_dir))),
    ) as c:
        version = c.get("/model/info").json()["version"]
        original = json.loads((target / "bundle.json").read_text())
        for cut, expected in [
            ({"input_columns": original["input_columns"][:-1]}, "failed a test prediction"),
            ({"feature_columns": original["feature_columns"][:3]}, "input columns its features do not make"),
        ]:
            (target / "bundle.json").write_text(json.dumps(original | cut))
            r = c.post("/model/reload", json={})
            assert r.status_code == 409 and expected in r.json()["error"]
            assert r.json()["model"]["version"] == version
            assert c.post("/predict", json=body(aapl.slice(0, min_history + 5))).status_code == 200
            reason = c.get("/health").json()["last_reload_error"]
            assert "\n" not in reason and len(reason) < 400 and expected in reason


def test_invalid_utf8_is_a_400_and_a_bug_is_a_500_with_a_request_id(client, aapl, min_history, caplog):
    r = client.post(
        "/predict/batch",
        content=b'{"pair": "AAPL\xff", "timeframe": "1d"}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400 and "invalid UTF-8" in r.json()["detail"]
    store = client.app.state.store
    model = store.current

    def broken(candles):
        raise RuntimeError("boom")

    original, model.bundle.predict = model.bundle.predict, broken
    try:
        r = client.post("/predict", json=body(aapl.slice(0, min_history + 5)))
    finally:
        model.bundle.predict = original
    assert r.status_code == 500 and r.headers["x-request-id"] == r.json()["request_id"]
    assert r.json()["request_id"] in caplog.text and "RuntimeError: boom" in caplog.text


def test_liveness_answers_without_a_model(served_model, tmp_path):
    _, candles_dir = served_model
    with TestClient(
        base_url="http://127.0.0.1",
        app=create_app(ServeSettings(model=str(tmp_path / "none"), candles_dir=str(candles_dir))),
    ) as c:
        assert c.get("/health").status_code == 503
        assert c.get("/health/live").status_code == 200


def test_cors_only_for_configured_origins(served_model):
    bundle_dir, candles_dir = served_model
    preflight = {"Origin": "http://chart.local", "Access-Control-Request-Method": "POST"}
    with TestClient(
        base_url="http://127.0.0.1",
        app=create_app(ServeSettings(model=str(bundle_dir), candles_dir=str(candles_dir))),
    ) as c:
        assert (
            "access-control-allow-origin"
            not in c.get("/health", headers={"Origin": "http://chart.local"}).headers
        )
    app = create_app(
        ServeSettings(
            model=str(bundle_dir), candles_dir=str(candles_dir), cors_origins=["http://chart.local"]
        )
    )
    with TestClient(base_url="http://127.0.0.1", app=app) as c:
        assert (
            c.options("/predict", headers=preflight).headers["access-control-allow-origin"]
            == "http://chart.local"
        )
        other = c.get("/health", headers={"Origin": "http://evil.example"})
        assert other.headers.get("access-control-allow-origin") != "http://evil.example"


def test_openapi_schema_has_the_routes_and_examples(client):
    spec = client.get("/schema/openapi.json").json()
    assert {"/predict", "/predict/batch", "/model/info", "/model/labels", "/health", "/model/reload"} <= set(
        spec["paths"]
    )
    media = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert media["schema"] and "candles" in json.dumps(media)


def test_predict_cli_matches_the_server(served_model, aapl, min_history, tmp_path, client):
    bundle_dir, _ = served_model
    candles = aapl.slice(100, min_history + 100)
    src = tmp_path / "AAPL_1d.csv"
    candles.write_csv(src)
    out = tmp_path / "pred.csv"
    res = CliRunner().invoke(cli, ["predict", str(src), "-o", str(out), "--model", str(bundle_dir)])
    assert res.exit_code == 0, res.output
    got = pl.read_csv(out)
    served = client.post("/predict", json=body(candles)).json()["predictions"]
    assert got["label"].to_list() == [p["label"] for p in served]
    short = tmp_path / "short.csv"
    candles.head(10).write_csv(short)
    res = CliRunner().invoke(cli, ["predict", str(short), "--model", str(bundle_dir)])
    assert res.exit_code == 1 and f"needs at least {min_history + 1}" in res.output


@pytest.mark.servers
def test_real_server_starts_predicts_reloads_on_sighup_and_stops_on_sigterm(
    served_model, aapl, min_history, tmp_path
):
    bundle_dir, candles_dir = served_model
    log = tmp_path / "server.log"
    server = ServerProcess(
        "--host", "127.0.0.1", "--model", str(bundle_dir), "--candles-dir", str(candles_dir), log=log
    )
    server.start()  # waits for /health to answer 200
    proc = server.proc
    assert proc is not None
    try:
        req = urllib.request.Request(
            server.url + "/predict",
            json.dumps(body(aapl.slice(0, min_history + 50))).encode(),
            {"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            out = json.loads(r.read())
        assert len(out["predictions"]) == min_history + 50 and out["predictions"][-1]["label"] is not None
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while "SIGHUP: reloading" not in log.read_text():
            assert time.monotonic() < deadline, "no reload after SIGHUP"
            time.sleep(0.2)
        with urllib.request.urlopen(server.url + "/health", timeout=5) as r:
            assert r.status == 200
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises SIGTERM so the parent sees why it ended.
        assert proc.wait(timeout=10) in (0, -signal.SIGTERM)
        assert time.monotonic() - started < 5
        assert "Application shutdown complete" in log.read_text()
    finally:
        server.kill()


def test_each_prediction_gets_its_share_of_the_cores(served_model, monkeypatch):
    """Predictions at once x threads each = the cores, unless --model-threads says otherwise."""
    from serve.limits import Limits

    bundle_dir, candles_dir = served_model
    monkeypatch.setattr("serve.limits.cores", lambda: 8)
    for limits, threads, expected in (
        (Limits(), None, 1),
        (Limits(max_concurrent=2), None, 4),
        (Limits(), 3, 3),
    ):
        settings = ServeSettings(
            model=str(bundle_dir), candles_dir=str(candles_dir), limits=limits, model_threads=threads
        )
        with TestClient(base_url="http://127.0.0.1", app=create_app(settings)) as c:
            model = c.app.state.store.current
            assert c.app.state.store.threads == expected
            assert model.bundle.chart_model.booster.get_params()["n_jobs"] == expected


def test_a_short_chart_is_labelled_from_the_history_the_models_features_need(
    served_model, client, aapl, min_history
):
    """min_history comes from the features the model reads (``train.top_inputs``), not from the
    slowest indicator featurize makes (ADX: ~290 candles): a 100-candle chart is labelled."""
    features, _ = load_bundle(served_model[0]).reads
    index = json.loads((served_model[0] / "bundle.json").read_text())
    assert "adx_14" in index["feature_columns"] and "adx_14" not in features
    assert min_history < 50
    preds = client.post("/predict", json=body(aapl.slice(1000, 100))).json()["predictions"]
    assert [p["label"] is None for p in preds] == [True] * min_history + [False] * (100 - min_history)
