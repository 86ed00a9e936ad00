"""A model reload under load: ``candle-ml serve --workers N`` while clients predict nonstop.

A copy of the bundle is served; after a few seconds of load, a new version of it is swapped in
(bundle.json rewritten: other bytes, same model) and ``POST /model/reload`` is sent. Printed:
requests answered and failed, how long the reload took, when the first answer with the new
version came, and when the last answer with the old one did, relative to the reload's answer
(after it, every worker serves the new version). Run after `dvc repro` from the repository root:

    python bench/reload.py --workers 2
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import polars as pl
import typer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from serve.process import ServerProcess  # noqa: E402


def main(
    model: Path = typer.Option(ROOT / "models", help="bundle directory (the pipeline's models/)"),
    series: Path = typer.Option(ROOT / "data/candles/AAPL_1d.parquet", help="candles to predict"),
    workers: int = typer.Option(2, min=1, help="candle-ml serve --workers"),
    clients: int = typer.Option(8, min=1, help="concurrent clients, each on a keep-alive connection"),
    seconds: float = typer.Option(3.0, help="load before the reload, and after it"),
) -> None:
    work = Path(tempfile.mkdtemp(prefix="candle-ml-reload-"))
    bundle = work / "models"
    shutil.copytree(model, bundle)
    body = json.dumps({"candles": pl.read_parquet(series).tail(500).to_dicts()}).encode()
    server = ServerProcess(
        "--workers",
        str(workers),
        "--model",
        str(bundle),
        "--history",
        "",
        "--log-level",
        "warning",
        log=work / "server.log",
    ).start()
    answers: list[tuple[float, str]] = []  # (answered at, version)
    errors: list[str] = []
    stop = threading.Event()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        while not stop.is_set():
            try:
                conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
            except OSError as exc:
                errors.append(repr(exc))
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
                continue
            if resp.status != 200:
                errors.append(f"HTTP {resp.status}: {data[:200]!r}")
            else:
                answers.append((time.monotonic(), json.loads(data)["model_info"]["version"]))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    try:
        for t in threads:
            t.start()
        time.sleep(seconds)
        old = answers[-1][1]
        text = (bundle / "bundle.json").read_text()
        (bundle / ".new").write_text(text + " ")
        os.replace(bundle / ".new", bundle / "bundle.json")
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        asked = time.monotonic()
        conn.request("POST", "/model/reload", b"{}", {"Content-Type": "application/json"})
        reload = json.loads(conn.getresponse().read())
        done = time.monotonic()
        time.sleep(seconds)
    finally:
        stop.set()
        for t in threads:
            t.join()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    new = reload["model"]["version"]
    first_new = min(t for t, v in answers if v == new)
    last_old = max(t for t, v in answers if v == old)
    print(f"{workers} worker(s), {clients} clients, 500 candles per request; {os.cpu_count()} CPUs")
    print(f"answered {len(answers)}, failed {len(errors)}{': ' + errors[0] if errors else ''}")
    print(f"reload: {old} -> {new}, {reload['reloaded']}, took {(done - asked) * 1000:.0f} ms")
    print(
        f"first answer with the new version: {(first_new - asked) * 1000:+.0f} ms after the reload was sent"
    )
    print(f"last answer with the old version:  {(last_old - done) * 1000:+.0f} ms after the reload answered")
    stale = sum(1 for t, v in answers if v == old and t > done)
    print(f"old-version answers after the reload answered: {stale} (requests already running then)")


if __name__ == "__main__":
    typer.run(main)
