"""The review page in headless Chromium against the real server: what a trader sees and does.

Needs Debian's `chromium` and Playwright for Python (driving that browser; no browser download):
.ci/run installs both. Screenshots are kept in test-artifacts/ and checked by their pixels.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time

import numpy as np
import polars as pl
import pytest
from PIL import Image

from serve.process import ServerProcess

from .conftest import ARTIFACTS, ROOT, write_outcome_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if not os.environ.get("CANDLE_ML_REQUIRE_BROWSER"):  # CI sets it: there a missing browser is a failure
    if CHROMIUM is None:
        pytest.skip("no chromium on this machine (apt-get install chromium)", allow_module_level=True)
    pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Page, sync_playwright  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.servers]  # chromium against a real uvicorn

UP, DOWN = (0x26, 0xA6, 0x9A), (0xEF, 0x53, 0x50)  # the chart's candle colours


@pytest.fixture(scope="module")
def server(served_model, tmp_path_factory):
    bundle_dir, candles_dir = served_model
    root = tmp_path_factory.mktemp("page")
    models = root / "models"  # with the outcomes stage's report beside it, as `dvc repro` leaves it
    shutil.copytree(bundle_dir, models)
    write_outcome_report(models, candles_dir)
    # the evaluate stage's report beside it, as `dvc repro` leaves it (the committed one: its shape
    # is what the page reads the per-label span F1 from; the numbers are another model's)
    shutil.copy(ROOT / "reports/evaluate.json", root / "reports/evaluate.json")
    srv = ServerProcess(
        "--model",
        str(models),
        "--candles-dir",
        str(candles_dir),
        "--feedback-log",
        str(root / "feedback.jsonl"),
        "--log-level",
        "warning",
        log=root / "server.log",
    )
    srv.feedback_log = root / "feedback.jsonl"
    srv.candles_dir = candles_dir
    yield srv.start()
    srv.stop()


@pytest.fixture(scope="module")
def page(server):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"http://127.0.0.1:{server.port}/?series=AAPL|1d&poll=1")
        page.wait_for_function(
            "document.querySelector('#summary').textContent.includes('predicted')", timeout=30_000
        )
        page.errors = errors
        yield page
        browser.close()


def shot(page: Page, name: str) -> np.ndarray:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"page-{name}.png"
    page.screenshot(path=str(path))
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def pixels_near(img: np.ndarray, color: tuple[int, int, int], tol: int = 12) -> int:
    return int((np.abs(img - np.array(color)).max(axis=2) <= tol).sum())


def feedback_lines(server) -> list[dict]:
    return (
        [json.loads(line) for line in server.feedback_log.read_text().splitlines()]
        if server.feedback_log.exists()
        else []
    )


def click_a_prediction(page: Page) -> dict:
    """Click the chart on the predicted span nearest the middle of the view; returns that span."""
    page.wait_for_function("document.querySelector('#loading').hidden")
    target = page.evaluate("""() => {
        const range = chart.timeScale().getVisibleRange(), mid = (range.from + range.to) / 2;
        const dist = (s) => Math.abs(s.start_time - mid);
        const inView = visibleSpans().filter((s) => s.start_time >= range.from && s.start_time <= range.to);
        const s = inView.reduce((best, s) => (dist(s) < dist(best) ? s : best));
        return {span: s, x: chart.timeScale().timeToCoordinate(s.start_time)};
    }""")
    box = page.locator("#chart").bounding_box()
    page.mouse.click(box["x"] + target["x"], box["y"] + box["height"] / 2)
    page.wait_for_function("!document.querySelector('#dismiss').disabled")
    return target["span"]


def test_the_page_draws_a_series_and_its_predictions(page):
    img = shot(page, "loaded")
    chart = img[40:760, :1020]  # the chart, without the header and the side panel
    assert pixels_near(chart, UP) > 400 and pixels_near(chart, DOWN) > 400, "no candles drawn"
    assert page.evaluate("markers.markers().length") > 0
    first = page.evaluate("markers.markers()[0].text")
    # "{label} ({confidence}%)", confirmed or not; a chart pattern's (weeks long) with its length
    assert re.fullmatch(r"\w+ \(\d+%\)(, \d+ candles| ✓1w)?", first), first
    assert page.locator("#model-version").inner_text().startswith("model: models@sha256:")
    # what followed each label, from the outcome report made for this model: verdict, numbers on hover
    doji = page.locator('#labels label:has(input[data-label="doji"]) .outcome')
    assert doji.inner_text() in ("no edge", "too few") or doji.inner_text().startswith("edge ")
    assert "candles after it, long, net of cost" in doji.get_attribute("title")
    assert page.locator("#labels .outcome[data-verdict]").count() == page.locator("#labels label").count()
    # every label row on one line, its numbers whole and inside the panel (no sideways scrolling)
    rows = page.evaluate("""() => [...document.querySelectorAll('#labels label')].map((r) => ({
        name: r.querySelector('.name').textContent, f1: r.querySelector('.f1').textContent,
        inside: r.querySelector('.outcome').getBoundingClientRect().right
            <= document.querySelector('aside').getBoundingClientRect().right,
        height: r.getBoundingClientRect().height }))""")
    assert all(r["inside"] for r in rows) and max(r["height"] for r in rows) < 24, rows
    wide = page.evaluate("""() => {
        const edge = document.querySelector('aside').getBoundingClientRect().right + 0.5;
        return [...document.querySelectorAll('aside *')].filter((e) => e.getBoundingClientRect().right > edge)
            .map((e) => `${e.tagName}#${e.id}.${e.className}`); }""")
    assert wide == [], wide  # nothing cut off at the panel's edge
    with_f1 = {r["name"] for r in rows if r["f1"].startswith("F1 ")}
    assert "doji" in with_f1 and with_f1 & {"double_top", "double_bottom", "head_and_shoulders"}, rows
    assert page.locator("#queue li").count() == 20
    assert not page.locator("#banner").is_visible() and page.errors == []
    assert "Reconnected" not in page.locator("#status").inner_text()  # nothing was lost on a first load
    assert not page.evaluate("chart.options().timeScale.timeVisible")  # a daily chart: dates only
    assert page.locator("#undo").is_disabled()  # nothing answered yet
    for button in ("#confirm", "#dismiss", "#correct", "#undo"):  # the answer buttons above the fold
        box = page.locator(button).bounding_box()
        assert box is not None and box["y"] + box["height"] <= 800, (button, box)


def test_only_confirmed_keeps_the_spans_the_weekly_chart_confirms(page):
    """The model has weekly context (higher_timeframes: [1w]): the filter is offered, and
    checking it leaves exactly the spans whose pattern the finished week shows too."""
    box = page.locator("#confirmed-filter")
    assert box.is_visible() and "only confirmed on 1w" in " ".join(box.inner_text().split())
    everything = page.evaluate("visibleSpans().length")
    confirmed = page.evaluate("visibleSpans().filter((s) => s.confirmed_on.length).length")
    assert 0 < confirmed < everything
    page.check("#only-confirmed")
    assert page.evaluate("visibleSpans().length") == confirmed
    texts = page.evaluate("markers.markers().map((m) => m.text)")
    written = [t for t in texts if t]  # a crowded marker keeps only its arrow
    assert len(texts) == confirmed and written and all(t.endswith(" ✓1w") for t in written)
    shot(page, "confirmed-only")
    page.uncheck("#only-confirmed")
    assert page.evaluate("visibleSpans().length") == everything and page.errors == []


def test_every_filter_applies_to_what_is_drawn_and_counted(page):
    """The layer toggle, the label boxes and the confidence slider hide a prediction everywhere:
    its marker, its yellow "missed by traders" strip and its place in the summary."""
    yellow = (0xFB, 0xC0, 0x2D)

    def summary() -> str:
        return page.locator("#summary").inner_text()

    def strips() -> int:  # the top 8 px of the chart: the missed-by-traders strips
        return pixels_near(shot(page, "filters")[40:48, :1020], yellow, tol=40)

    drawn = page.evaluate("visibleSpans().length")
    missed = page.evaluate("visibleDisagreements().filter((d) => d.kind === 'missed_by_human').length")
    assert drawn > 0 and missed > 0 and f"{drawn} predicted" in summary() and strips() > 100
    page.uncheck("#layer")
    assert "0 predicted" in summary() and "0 missed by traders" in summary() and strips() == 0
    page.check("#layer")
    label = page.evaluate("visibleSpans()[0].label")
    page.uncheck(f'#labels input[data-label="{label}"]')
    left = page.evaluate("visibleSpans().length")
    assert left < drawn and f"{left} predicted" in summary()
    assert page.evaluate(
        f"visibleDisagreements().every((d) => !d.predicted || d.predicted.label !== '{label}')"
    )
    page.check(f'#labels input[data-label="{label}"]')
    page.fill("#confidence", "100")
    page.dispatch_event("#confidence", "input")
    sure = page.evaluate("visibleSpans().length")
    assert sure < drawn and f"{sure} predicted" in summary()
    page.fill("#confidence", "50")
    page.dispatch_event("#confidence", "input")
    assert f"{drawn} predicted" in summary() and page.errors == []


def test_a_dismiss_in_the_page_lands_in_the_feedback_log(page, server):
    span = click_a_prediction(page)
    assert span["label"] in page.locator("#selected-text").inner_text()
    page.click("#dismiss")
    deadline = time.monotonic() + 10
    while not feedback_lines(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    [line] = feedback_lines(server)
    prediction = line["model_prediction"]  # the prediction answered: label, confidence, model
    assert line["label"] == "O" and line["source"] == "human_correction"
    assert prediction["label"] == span["label"] and prediction["confidence"] == span["avg_confidence"]
    assert prediction["model_version"] == page.evaluate("state.model.version") and prediction["model"]
    assert (line["pair"], line["start_time"], line["end_time"]) == (
        "AAPL",
        span["start_time"],
        span["end_time"],
    )
    # The dismissal now shows as a disagreement (the model still predicts that pattern there).
    page.wait_for_function(
        "state.review && state.review.summary.by_kind.label_mismatch === 1", timeout=10_000
    )
    img = shot(page, "dismissed")
    assert pixels_near(img[40:760, :1020], (0xFB, 0x8C, 0x00), tol=40) > 50  # the orange mismatch box
    # The model's live precision for that label counts the answer: 0 confirmed of 1 answered.
    live = page.locator(f'#labels label:has(input[data-label="{span["label"]}"]) .live')
    live.filter(has_text="live 0/1").wait_for(timeout=10_000)
    assert "0 confirmed, 0 corrected, 1 dismissed" in live.get_attribute("title")
    # Undo takes it back: a tombstone in the log, and the mismatch is gone from the chart.
    page.click("#undo")
    page.locator("#status").filter(has_text="Undid O.").wait_for(timeout=10_000)
    assert feedback_lines(server)[-1] == {"undo": line["id"], "pair": "AAPL", "timeframe": "1d"}
    page.wait_for_function("state.review && !state.review.summary.by_kind.label_mismatch", timeout=10_000)
    assert page.locator("#undo").is_disabled() and page.errors == []


def wait_quiet(page: Page) -> None:
    """Until the page has drawn what the last pan or zoom asked for (markers, predictions)."""
    page.wait_for_timeout(100)
    page.wait_for_function("!loadingEarlier && document.querySelector('#loading').hidden", timeout=15_000)
    page.wait_for_timeout(500)  # the debounced prediction of what came into view
    page.wait_for_function("document.querySelector('#loading').hidden", timeout=15_000)


MARKER_BOXES = """() => markers.markers().filter((m) => m.text).map((m) => {
    const x = chart.timeScale().timeToCoordinate(m.time), half = textWidth(m.text) / 2;
    return {side: m.position, left: x - half, right: x + half}; }).filter((b) => b.left !== null)"""


def test_a_dense_stretch_keeps_its_marker_texts_apart_and_shows_each_on_hover(page):
    """Zoomed out over 600 candles, a marker's text is written only where it has room (the rest
    keep their arrow); the pointer over a span shows its full text; zoomed in, more are written."""
    page.set_viewport_size({"width": 1400, "height": 900})
    n = page.evaluate("state.times.length")
    page.evaluate(f"chart.timeScale().setVisibleLogicalRange({{from: {n - 600}, to: {n}}})")
    wait_quiet(page)
    crowded, shown = page.evaluate("[state.crowded, state.shown.length]")
    assert crowded > 0 and shown > crowded
    for side in ("aboveBar", "belowBar"):  # no written text overlaps the next one on its side
        boxes = sorted((b for b in page.evaluate(MARKER_BOXES) if b["side"] == side), key=lambda b: b["left"])
        assert all(a["right"] <= b["left"] for a, b in zip(boxes, boxes[1:], strict=False)), side
    target = page.evaluate("""() => { const s = state.shown[Math.floor(state.shown.length / 2)];
        return {x: chart.timeScale().timeToCoordinate(s.start_time), text: spanText(s)}; }""")
    box = page.locator("#chart").bounding_box()
    page.mouse.move(box["x"] + target["x"], box["y"] + box["height"] / 2)
    page.locator("#hover").wait_for(state="visible", timeout=5_000)
    assert target["text"] in page.locator("#hover").inner_text().split("\n")
    img = shot(page, "dense")
    assert pixels_near(img[40:860, :1020], UP) > 300 and pixels_near(img[40:860, :1020], DOWN) > 300
    assert pixels_near(img[40:860, :1020], (0x26, 0x32, 0x38), tol=20) > 500  # the hover box
    page.mouse.move(box["x"] + 5, box["y"] + 5)
    page.evaluate(f"chart.timeScale().setVisibleLogicalRange({{from: {n - 60}, to: {n}}})")
    wait_quiet(page)
    assert page.evaluate("state.crowded") < crowded and page.errors == []
    page.set_viewport_size({"width": 1400, "height": 800})


def test_scrolling_back_loads_earlier_candles_and_predicts_what_comes_into_view(page):
    """The newest page of candles is loaded first; scrolling to its start loads the page before it
    (the view stays on the same candles) and the candles that came into view get predictions."""
    info = page.evaluate("state.info")
    loaded = page.evaluate("state.times.length")
    assert loaded < info["candles"], "the whole series was loaded at once"
    # the candle at the view's left edge, read in the same task (before the next page can arrive)
    first_seen = page.evaluate(
        "() => { chart.timeScale().setVisibleLogicalRange({from: 20, to: 170}); return state.times[20]; }"
    )
    wait_quiet(page)
    assert page.evaluate("state.times.length") > loaded
    view_from = "state.times[Math.round(chart.timeScale().getVisibleLogicalRange().from)]"
    times = page.evaluate("state.times")  # the same candles in view, to within one
    assert abs(times.index(page.evaluate(view_from)) - times.index(first_seen)) <= 1
    seen, reviewed = page.evaluate("[visibleRange(), state.reviewed]")
    assert reviewed["start"] <= seen["start"] and seen["end"] <= reviewed["end"], (seen, reviewed)
    in_view = "(v) => state.shown.some((s) => v.start <= s.start_time && s.start_time <= v.end)"
    assert page.evaluate(f"({in_view})(visibleRange())")  # predictions for the candles scrolled to
    while page.evaluate("state.times[0]") > info["first_time"]:  # all the way back
        page.evaluate("chart.timeScale().setVisibleLogicalRange({from: 5, to: 155})")
        wait_quiet(page)
    assert page.evaluate("state.times.length") == info["candles"] and page.errors == []
    n = info["candles"]
    page.evaluate(f"chart.timeScale().setVisibleLogicalRange({{from: {n - 150}, to: {n + 4}}})")
    wait_quiet(page)


def test_a_spans_boundaries_move_by_candle_steps_before_it_is_answered(page, server):
    """Start two candles earlier, end one later, then Correct: the log holds the moved span as
    the trader's correction; Undo takes it back (both screenshots at 1400x900)."""
    page.set_viewport_size({"width": 1400, "height": 900})
    span = click_a_prediction(page)
    times = page.evaluate("state.times")
    i, j = times.index(span["start_time"]), times.index(span["end_time"])
    for button in ("#start-earlier", "#start-earlier", "#end-later"):
        page.click(button)
    assert "boundaries moved" in page.locator("#selected-text").inner_text()
    img = shot(page, "boundaries")
    assert pixels_near(img[40:860, :1020], (0x1E, 0x88, 0xE5), tol=30) > 100  # the dashed selection box
    before = len(feedback_lines(server))
    page.select_option("#correct-label", span["label"])
    page.click("#correct")
    deadline = time.monotonic() + 10
    while len(feedback_lines(server)) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    line = feedback_lines(server)[-1]
    assert (line["start_time"], line["end_time"]) == (times[i - 2], times[j + 1])
    assert line["label"] == span["label"] and line["source"] == "human_correction"
    assert line["model_prediction"]["label"] == span["label"]
    page.click("#undo")
    page.locator("#status").filter(has_text=f"Undid {span['label']}.").wait_for(timeout=10_000)
    assert feedback_lines(server)[-1]["undo"] == line["id"]
    img = shot(page, "undone")
    assert pixels_near(img[40:860, :1020], UP) > 300 and page.locator("#undo").is_disabled()
    assert page.errors == []
    page.set_viewport_size({"width": 1400, "height": 800})


def test_offline_banner_and_an_answer_kept_until_the_server_returns(page, server):
    before = len(feedback_lines(server))  # the earlier tests' answers, each undone
    server.stop()
    page.wait_for_selector("#banner:not([hidden])", timeout=15_000)
    assert "offline" in page.locator("#banner").inner_text()
    assert page.locator("#run-visible").is_disabled() and page.locator("#predict-all").is_disabled()
    span = click_a_prediction(page)  # annotation keeps working offline
    page.select_option("#correct-label", "doji")
    page.click("#correct")
    page.wait_for_selector("#pending:not([hidden])")
    assert page.locator("#pending").inner_text() == "1 answer waiting"
    img = shot(page, "offline")
    assert pixels_near(img[40:90], (0xC6, 0x28, 0x28)) > 2000  # the red banner
    assert len(feedback_lines(server)) == before  # nothing reached the log while offline
    server.start()
    page.wait_for_selector("#pending", state="hidden", timeout=20_000)
    lines = feedback_lines(server)
    assert len(lines) == before + 1
    assert lines[-1]["label"] == "doji" and lines[-1]["start_time"] == span["start_time"]
    page.wait_for_selector("#banner", state="hidden", timeout=10_000)
    page.wait_for_function("state.review && state.review.summary.human === 1", timeout=10_000)
    page.wait_for_selector("#loading", state="hidden")
    assert not page.locator("#run-visible").is_disabled()
    shot(page, "back-online")


def test_only_disagreements_draws_just_the_spans_a_trader_and_the_model_disagree_on(page, server):
    """The span the trader corrected to doji (the test before) confirmed after all: the page
    answers it under the same id, so the confirmation replaces the correction and agrees with the
    model. "only disagreements" then drops its marker and the traders' span bars, keeps every span in
    a disagreement; Undo brings the correction back."""
    [corrected] = page.evaluate("state.review.human")
    page.evaluate(f"goTo({json.dumps(corrected)})")
    page.wait_for_function("document.querySelector('#loading').hidden")
    target = page.evaluate(
        "(t) => state.review.spans.find((s) => s.start_time === t && s.kind === 'candlestick')",
        corrected["start_time"],
    )
    page.evaluate(f"state.selected = {json.dumps(target)}; updateSelection()")
    page.click("#confirm")
    page.wait_for_function("state.review && state.review.summary.agreements === 1", timeout=10_000)
    line = feedback_lines(server)[-1]
    assert line["id"] == corrected["id"] and line["source"] == "model_confirmed"
    assert page.evaluate("state.review.summary.human") == 1  # replaced, not added
    page.evaluate("state.selected = null; updateSelection()")  # no dashed selection box in the shots
    blue = (0x1E, 0x88, 0xE5)  # a trader's span bar under the candles
    everything = page.evaluate("markers.markers().length")
    bars = pixels_near(shot(page, "all-spans")[40:760, :1020], blue, tol=20)
    page.check("#only-disagreements")
    kept = page.evaluate("""() => {
        const disagreeing = new Set(visibleDisagreements().filter((d) => d.predicted)
            .map((d) => d.predicted.start_time));
        const times = markers.markers().map((m) => m.time);
        return {times, all: times.every((t) => disagreeing.has(t))}; }""")
    assert 0 < len(kept["times"]) < everything and kept["all"], kept
    assert corrected["start_time"] not in kept["times"]
    img = shot(page, "only-disagreements")
    assert bars > 20 and pixels_near(img[40:760, :1020], blue, tol=20) < bars / 4  # the bar is gone
    page.uncheck("#only-disagreements")
    assert page.evaluate("markers.markers().length") == everything
    page.click("#undo")
    page.wait_for_function(
        "state.review && state.review.summary.by_kind.label_mismatch === 1", timeout=10_000
    )
    assert page.evaluate("state.review.human[0].label") == "doji" and page.errors == []


def reviewed_lines(server) -> list[dict]:
    log = server.feedback_log.with_name("reviewed.jsonl")
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_a_span_marked_in_the_page_records_the_candles_on_screen_as_reviewed(page, server):
    """A trader's own pattern marked on the chart: the answer carries the range the trader had on
    screen, so the dataset takes that range's unmarked candles as negatives of the label and
    nothing beyond it (tests/test_pipeline.py: the next `dvc repro` uses it)."""
    before = len(reviewed_lines(server))
    answers = [line for line in feedback_lines(server) if "undo" not in line]  # tombstones carry none
    assert before == len(answers), "every answer so far carried its range"
    page.click("#mark")
    on_screen = page.evaluate("chart.timeScale().getVisibleRange()")
    times = page.evaluate("state.times")
    inside = [t for t in times if on_screen["from"] <= t <= on_screen["to"]]
    first, last = inside[len(inside) // 2], inside[len(inside) // 2 + 2]
    box = page.locator("#chart").bounding_box()
    for t in (first, last):
        x = page.evaluate(f"chart.timeScale().timeToCoordinate({t})")
        page.mouse.click(box["x"] + x, box["y"] + box["height"] / 2)
        page.wait_for_timeout(600)  # two quick clicks are a double-click to the chart, as to a person
    page.fill("#new-label", "My Setup")
    page.click("#save-span")
    deadline = time.monotonic() + 10
    while (
        len([x for x in feedback_lines(server) if "undo" not in x]) < before + 1
        and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    mark = feedback_lines(server)[-1]
    assert (mark["label"], mark["source"], mark["start_time"], mark["end_time"]) == (
        "my_setup",
        "human",
        first,
        last,
    )
    seen = reviewed_lines(server)[-1]
    assert seen == {"pair": "AAPL", "timeframe": "1d", "start_time": inside[0], "end_time": inside[-1]}
    assert len(inside) > 100 and page.errors == []
    img = shot(page, "marked-own-label")
    assert pixels_near(img[40:760, :1020], UP) > 400, "the chart is still drawn"


def test_a_chart_opened_from_a_file_is_drawn_and_a_broken_one_says_why(page, server, tmp_path):
    """A trader opens a MetaTrader 5 export they just made: the page draws it (time of day on the
    axis) with the model's predictions; an answer there keeps its candles in data/raw/ for the next
    `dvc repro`; a broken export shows the row and the rule where the file was chosen."""
    from .test_candle_formats import hourly, mt5

    page.set_viewport_size({"width": 1400, "height": 900})
    candles = hourly(pl.read_parquet(server.candles_dir / "IBM_1d.parquet").slice(1000, 400))
    export = tmp_path / "ACME_H1.csv"
    export.write_text(mt5(candles), encoding="utf-16")
    page.set_input_files("#open-file", str(export))
    page.wait_for_function("state.pair === 'ACME' && state.timeframe === '1h'", timeout=20_000)
    page.wait_for_function("state.review && state.review.predictions.length > 0", timeout=30_000)
    assert page.locator("#series").input_value() == "ACME|1h"
    assert page.evaluate("chart.options().timeScale.timeVisible")  # an hourly chart shows the time of day
    assert "Opened ACME_H1.csv: ACME 1h, 400 candles (metatrader5)" in page.locator("#status").inner_text()
    before = len(feedback_lines(server))
    click_a_prediction(page)
    span = page.evaluate("state.selected")  # the span under the click (a chart pattern may hold it)
    page.click("#confirm")
    deadline = time.monotonic() + 10
    while len(feedback_lines(server)) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    line = feedback_lines(server)[-1]
    assert (line["pair"], line["timeframe"], line["start_time"]) == ("ACME", "1h", span["start_time"])
    kept = pl.read_parquet(server.log.with_name("raw") / "ACME_1h.parquet")  # the candles it is on
    assert kept["time"].to_list() == candles["time"].to_list()
    page.wait_for_function("state.review && state.review.summary.human === 1", timeout=10_000)
    img = shot(page, "opened-chart")
    assert pixels_near(img[40:860, :1020], UP) > 400 and pixels_near(img[40:860, :1020], DOWN) > 400
    assert re.search(r"\d\d:\d\d", page.locator("#selected-text").inner_text())  # the hour, not only the day
    broken = tmp_path / "BROKEN_H1.csv"
    broken.write_text(mt5(candles).replace("\t", ";", 1), encoding="utf-16")  # a header cell run together
    page.set_input_files("#open-file", str(broken))
    page.locator("#chart-error").wait_for(state="visible", timeout=10_000)
    error = page.locator("#chart-error").inner_text()
    assert (
        error.startswith("BROKEN_H1.csv: missing required column(s)") and error.count("BROKEN_H1.csv:") == 1
    )
    shot(page, "opened-chart-error")
    assert page.errors == []
    page.set_viewport_size({"width": 1400, "height": 800})


def test_a_server_without_a_model_shows_its_candles_says_why_and_predicts_after_a_reload(
    page, served_model, tmp_path
):
    """Opened before the first `dvc repro` has made a model: the chart still shows the candles and
    the banner says no model is loaded (not "offline"); once the bundle is there, Reload model in the
    page loads it and the predictions appear without reopening the page."""
    bundle_dir, candles_dir = served_model
    models = tmp_path / "models"
    srv = ServerProcess(
        "--model",
        str(models),
        "--candles-dir",
        str(candles_dir),
        "--log-level",
        "warning",
        log=tmp_path / "server.log",
    ).start(ready="/series")  # /health is 503 until a model is loaded
    empty = page.context.browser.new_page(viewport={"width": 1400, "height": 800})
    try:
        errors: list[str] = []
        empty.on("pageerror", lambda e: errors.append(str(e)))
        empty.add_init_script("""window.banners = []; document.addEventListener("DOMContentLoaded", () =>
            new MutationObserver(() => banners.push(document.querySelector("#banner").textContent))
                .observe(document.querySelector("#banner"), {childList: true}));""")  # every text it shows
        empty.goto(f"{srv.url}/?series=AAPL|1d&poll=1")
        empty.wait_for_function("state.times.length > 0", timeout=20_000)
        banner = empty.locator("#banner")
        banner.filter(has_text="No model loaded").wait_for(timeout=10_000)
        empty.wait_for_timeout(1_200)  # past the next health poll (one a second here)
        assert "no bundle.json" in banner.inner_text()
        assert not [b for b in empty.evaluate("banners") if "offline" in b]  # never said offline
        assert (
            empty.locator("#run-visible").is_disabled() and not empty.locator("#reload-model").is_disabled()
        )
        img = shot(empty, "no-model")
        assert pixels_near(img[40:760, :1020], UP) > 400 and pixels_near(img[40:760, :1020], DOWN) > 400
        assert empty.evaluate("markers.markers().length") == 0
        shutil.copytree(bundle_dir, models)
        empty.click("#reload-model")
        empty.wait_for_function("markers.markers().length > 0", timeout=30_000)
        assert banner.is_hidden() and empty.locator("#model-version").inner_text().startswith("model: ")
        assert errors == []
    finally:
        empty.close()
        srv.stop()
