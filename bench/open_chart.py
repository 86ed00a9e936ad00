"""Opening a big MetaTrader 5 export in the review page: how long until the chart and its
predictions show, and what the server holds in memory.

Simulates a 100,000-bar hourly chart (no package ships one): the real AAPL daily candles' returns,
scaled to an hour and resampled, so the bars look like a market and not like noise; written as
MetaTrader 5 exports it (tab-separated, UTF-16). Against the real server (`candle-ml serve` on
loopback, the pipeline's model in models/), in the page's order: POST /charts (the upload, read
with ingest's readers), GET /candles of the newest page of bars (what the chart draws first),
GET /review over the 150 bars on screen and half a screen before them (what the page predicts
first); and, for comparison, GET /candles of the whole series (what the page loaded before
paging). Baseline, same run: `read_candle_file` of the same file in this process (the reading
floor). Prints each step's seconds, the ratio to the baseline and the server's resident memory
before and after; then the same file chosen in the review page in headless Chromium (when
chromium and Playwright are here): seconds until its chart and predictions are drawn.

    dvc repro && python bench/open_chart.py [--candles 100000]
"""

from __future__ import annotations

import base64
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import polars as pl
import typer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the server package, not bench/serve.py

from candle_ml.candle_files import read_candle_file  # noqa: E402
from serve.process import ServerProcess  # noqa: E402


def simulated(n: int, seed: int = 0) -> pl.DataFrame:
    """n hourly bars whose returns are AAPL's daily ones resampled and scaled by 1/sqrt(24)."""
    aapl = pl.read_parquet(ROOT / "data/candles/AAPL_1d.parquet")
    close = aapl["close"].to_numpy()
    rel = aapl.select(
        (pl.col("open") / pl.col("close")).alias("o"),
        (pl.col("high") / pl.col("close")).alias("h"),
        (pl.col("low") / pl.col("close")).alias("l"),
    ).to_numpy()
    rng = np.random.default_rng(seed)
    pick = rng.integers(1, close.size, n)
    returns = np.log(close[pick] / close[pick - 1]) / np.sqrt(24)
    closes = 100 * np.exp(np.cumsum(returns))
    shape = 1 + (rel[pick] - 1) / np.sqrt(24)  # each bar's open/high/low around its close
    o, h, low = (closes * shape[:, i] for i in range(3))
    return pl.DataFrame(
        {
            "time": 1_577_836_800 + 3600 * np.arange(n),
            "open": o,
            "high": np.maximum.reduce([o, h, closes]),
            "low": np.minimum.reduce([o, low, closes]),
            "close": closes,
            "volume": rng.integers(100, 5000, n).astype(float),
        }
    )


def mt5_text(c: pl.DataFrame) -> str:
    lines = ["<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>"]
    stamps = pl.from_epoch(c["time"], time_unit="s")
    for t, o, h, low, cl, v in zip(
        stamps.dt.strftime("%Y.%m.%d\t%H:%M:%S"),
        c["open"],
        c["high"],
        c["low"],
        c["close"],
        c["volume"],
        strict=True,
    ):
        lines.append(f"{t}\t{o:.5f}\t{h:.5f}\t{low:.5f}\t{cl:.5f}\t{int(v)}\t0\t2")
    return "\r\n".join(lines) + "\r\n"


def call(url: str, body: dict | None = None) -> tuple[float, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as response:
        payload = json.loads(response.read())
    return time.perf_counter() - start, payload


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def in_the_page(url: str, export: Path) -> float | None:
    """Seconds from choosing the file in the review page (headless Chromium) until its chart and
    the predictions of what is on screen are drawn; None without chromium and Playwright."""
    import shutil

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if chromium is None:
        return None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url)
        page.wait_for_function("document.querySelector('#summary').textContent.includes('predicted')")
        start = time.perf_counter()
        page.set_input_files("#open-file", str(export))
        page.wait_for_function(
            "state.pair === 'SIM' && state.review && state.review.predictions.length > 0"
            " && markers.markers().length > 0",
            timeout=120_000,
        )
        seconds = time.perf_counter() - start
        browser.close()
    return seconds


def main(candles: int = typer.Option(100_000, help="bars in the simulated export")) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        export = root / "SIM_H1.csv"
        export.write_text(mt5_text(simulated(candles)), encoding="utf-16")
        mb = export.stat().st_size / 2**20
        start = time.perf_counter()
        frame, _ = read_candle_file(export)
        baseline = time.perf_counter() - start
        server = ServerProcess(
            *("--model", str(ROOT / "models"), "--candles-dir", str(ROOT / "data/candles")),
            *("--feedback-log", str(root / "feedback.jsonl"), "--log-level", "warning"),
            log=root / "server.log",
        ).start()
        try:
            assert server.proc is not None
            before = rss_mb(server.proc.pid)
            content = base64.b64encode(export.read_bytes()).decode()
            upload, opened = call(f"{server.url}/charts", {"name": export.name, "content": content})
            query = f"pair={opened['pair']}&timeframe={opened['timeframe']}"
            last = int(frame["time"][-1])
            # the page's first page: the newest ~1,000 bars (PAGE_CANDLES, 1.5x the calendar span)
            draw, body = call(f"{server.url}/candles?{query}&start={last - 1000 * 3600 * 3 // 2}")
            first = int(frame["time"][-225])  # the 150 bars on screen and half a screen before them
            review, result = call(f"{server.url}/review?{query}&start={first}")
            whole, everything = call(f"{server.url}/candles?{query}")  # what the page loaded before
            after = rss_mb(server.proc.pid)
        finally:
            server.stop()
        # the same file chosen in the page, on a fresh server (the chart is not open there yet)
        (root / "page").mkdir()
        server = ServerProcess(
            *("--model", str(ROOT / "models"), "--candles-dir", str(ROOT / "data/candles")),
            *("--feedback-log", str(root / "page/feedback.jsonl"), "--log-level", "warning"),
            log=root / "page/server.log",
        ).start()
        try:
            assert server.proc is not None
            page = in_the_page(server.url, export)
            page_rss = rss_mb(server.proc.pid)
        finally:
            server.stop()
    print(f"file: {candles} bars, MetaTrader 5 UTF-16, {len(content) / 2**20:.1f} MB as base64 ({mb:.1f})")
    print(f"baseline read_candle_file in process: {baseline:.2f} s")
    for name, seconds in (
        ("POST /charts", upload),
        (f"GET /candles ({len(body['candles'])} bars)", draw),
        (f"GET /review ({len(result['predictions'])} bars)", review),
        (f"[GET /candles, all {len(everything['candles'])}]", whole),
    ):
        print(f"{name:28s} {seconds:6.2f} s   {seconds / baseline:5.1f}x baseline")
    total = upload + draw + review
    print(
        f"chart and predictions shown after {total:.2f} s ({total / baseline:.1f}x baseline); "
        f"with the whole series loaded first (before paging) {upload + whole + review:.2f} s"
    )
    print(f"server memory: {before:.0f} MB before, {after:.0f} MB after")
    if page is None:
        print("in the page: skipped (no chromium or Playwright here)")
    else:
        print(
            f"in the page (headless Chromium, 1400x900): chart and predictions drawn {page:.2f} s after the "
            f"file was chosen; server memory then {page_rss:.0f} MB"
        )


if __name__ == "__main__":
    typer.run(main)
