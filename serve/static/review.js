// candle-ml review page: the chart, the model's predictions, the traders' spans and where they
// disagree; confirm / correct / dismiss / mark answers go to POST /feedback. Answers made while the
// server cannot be reached wait in localStorage and are sent when it returns: nothing is lost.
"use strict";

const LWC = window.LightweightCharts;
const params = new URLSearchParams(location.search);
const POLL_BAD_MS = 1000 * Number(params.get("poll") || 30); // while the server is offline or degraded
const POLL_OK_MS = 4 * POLL_BAD_MS;
const PENDING_KEY = "candle-ml.pending-answers";
// Candles are loaded a page at a time: the newest first, earlier ones as the trader scrolls back
// to within LOAD_MORE_AT candles of the first loaded; what comes into view is predicted.
const PAGE_CANDLES = Number(params.get("page") || 1000);
const LOAD_MORE_AT = 50;
const REVIEW_DELAY_MS = 350; // after the last pan or zoom step
// Boxes over the whole height for what a trader marked and the model disagrees with; a strip at
// the top for predictions no trader has marked yet (most of a fresh chart: a box would hide it).
const DISAGREEMENT_STYLE = {
  missed_by_model: { color: "#e53935", dash: [6, 4], fill: "rgba(229,57,53,0.08)", strip: false },
  missed_by_human: { color: "#f9a825", dash: [], fill: "rgba(251,192,45,0.85)", strip: true },
  label_mismatch: { color: "#fb8c00", dash: [], fill: "rgba(251,140,0,0.16)", strip: false },
};

const $ = (id) => document.getElementById(id);
const state = {
  series: [], pair: null, timeframe: null, candles: [], times: [],
  model: null, labels: new Map(), enabled: new Set(), f1: {},
  review: null, cache: new Map(), selected: null, mark: null,
  online: false, modelLoaded: false, // until the first health poll, whose reconnect loads everything
  answered: [], // this page's answers, newest last: what Undo takes back
};

// ------------------------------------------------------------------ HTTP

async function api(path, options = {}) {
  let response;
  const request = () => fetch(path, { headers: { "Content-Type": "application/json" }, ...options });
  try {
    response = await request();
  } catch (first) {
    // A GET that met a connection the server was closing (its keep-alive timeout) is tried once
    // more before the page says the server is gone; an answer (POST) is kept as pending instead.
    try {
      if ((options.method || "GET") !== "GET") throw first;
      await new Promise((resolve) => setTimeout(resolve, 300));
      response = await request();
    } catch (err) {
      setHealth({ online: false });
      throw new Error("Model server offline");
    }
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const err = new Error((body && body.detail) || `${response.status} ${response.statusText}`);
    err.status = response.status;
    if (response.status === 503) setHealth({ online: true, modelLoaded: false, reason: err.message });
    throw err;
  }
  return body;
}

function status(text) { $("status").textContent = text; }

// ------------------------------------------------------------------ health, offline, pending answers

let pollTimer = null;

function setHealth({ online, modelLoaded = state.modelLoaded, reason = "", degraded = false }) {
  state.online = online;
  state.modelLoaded = online && modelLoaded;
  const banner = $("banner");
  banner.classList.toggle("degraded", online);
  if (!online) {
    banner.textContent = "Model server offline: answers are kept in this browser and sent when it returns.";
  } else if (!modelLoaded) {
    banner.textContent = `No model loaded: ${reason || "the server has no model"}`;
  } else if (degraded) {
    banner.textContent = `Model server degraded: ${reason}`;
  }
  banner.hidden = online && modelLoaded && !degraded;
  $("predict-controls").disabled = !state.modelLoaded;
  $("reload-model").disabled = !online;
  schedulePoll(online && modelLoaded && !degraded ? POLL_OK_MS : POLL_BAD_MS);
}

function schedulePoll(ms) {
  clearTimeout(pollTimer);
  pollTimer = setTimeout(pollHealth, ms);
}

async function pollHealth() {
  const wasOnline = state.online, hadModel = state.modelLoaded;
  try {
    const response = await fetch("/health", { cache: "no-store" });
    const body = await response.json();
    const reason = body.last_reload_error || (body.mlflow === "unreachable" ? "MLflow store unreachable" : "");
    setHealth({ online: true, modelLoaded: body.model_loaded, reason, degraded: body.status !== "ok" });
    if (!wasOnline || (!hadModel && body.model_loaded)) await reconnected();
  } catch (err) {
    setHealth({ online: false });
  }
}

async function reconnected() {
  if (state.connectedOnce) status("Reconnected."); // not on the first load: nothing was lost
  state.connectedOnce = true;
  await flushPending();
  if (state.modelLoaded) await loadModel(); // a server without a model still serves its candles
  if (!state.series.length) { await loadSeries(); return; }
  state.cache.clear(); // answers sent meanwhile change the human spans and the disagreements
  await runReview(paddedVisibleRange());
  await refreshQueue();
}

function pending() { return JSON.parse(localStorage.getItem(PENDING_KEY) || "[]"); }

function savePending(list) {
  localStorage.setItem(PENDING_KEY, JSON.stringify(list));
  $("pending").hidden = list.length === 0;
  $("pending").textContent = `${list.length} answer${list.length === 1 ? "" : "s"} waiting`;
}

function newId() {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return "web-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function answer(span) {
  // Every answer goes through the pending list first, so a failed send is never lost. It carries
  // the candles on screen: the trader went through them, so an unmarked one there is no pattern.
  const seen = visibleRange();
  const reviewed = seen.start !== undefined ? { start_time: seen.start, end_time: seen.end } : null;
  // A span answered in the page before is answered again under the same id: the new answer
  // replaces the old one (the dataset keeps the latest per id), and Undo brings the old one back.
  const before = ((state.review && state.review.human) || []).find((h) => (h.id || "").startsWith("web-")
    && h.pair === span.pair && h.timeframe === span.timeframe && h.start_time === span.start_time
    && h.end_time === span.end_time);
  const entry = { id: before ? before.id : newId(), confidence: 1.0, model_prediction: null, ...span, reviewed };
  savePending([...pending(), entry]);
  state.answered.push({ id: entry.id, label: entry.label });
  $("undo").disabled = false;
  await flushPending();
}

async function undoLast() {
  // Not sent yet: it never leaves the page. Sent: a tombstone takes it back in the feedback log.
  const last = state.answered.pop();
  $("undo").disabled = state.answered.length === 0;
  if (!last) return;
  const waiting = pending();
  if (waiting.some((s) => s.id === last.id)) {
    savePending(waiting.filter((s) => s.id !== last.id));
    status(`Took back ${last.label} (it had not been sent).`);
  } else {
    try {
      await api(`/feedback/${encodeURIComponent(last.id)}`, { method: "DELETE" });
      status(`Undid ${last.label}.`);
    } catch (err) {
      status(`Undo failed: ${err.message}`);
      if (err.status === undefined || err.status >= 500) { state.answered.push(last); $("undo").disabled = false; }
      return;
    }
  }
  await afterAnswer();
}

function feedbackBody(batch) {
  const annotations = batch.map(({ reviewed, ...span }) => span);
  const reviewed = batch.filter((s) => s.reviewed)
    .map((s) => ({ pair: s.pair, timeframe: s.timeframe, ...s.reviewed }));
  return JSON.stringify(reviewed.length ? { annotations, reviewed } : { annotations });
}

let flushing = false;

async function flushPending() {
  if (flushing) return;
  flushing = true;
  try {
    let list = pending();
    while (list.length) {
      const batch = list.slice(0, 500);
      try {
        await api("/feedback", { method: "POST", body: feedbackBody(batch) });
      } catch (err) {
        if (err.status >= 400 && err.status < 500) {
          // The server will never take this answer (e.g. a candle that is not stored): say so, drop it.
          status(`Answer rejected: ${err.message}`);
          list = list.slice(1);
          savePending(list);
          continue;
        }
        status(`${list.length} answer(s) waiting: ${err.message}`);
        return;
      }
      const sent = new Set(batch.map((s) => s.id));
      list = pending().filter((s) => !sent.has(s.id));
      savePending(list);
      status(`Saved ${batch.length} answer(s).`);
    }
  } finally {
    flushing = false;
  }
}

// ------------------------------------------------------------------ chart

const chart = LWC.createChart($("chart"), {
  autoSize: true,
  layout: { background: { color: "#ffffff" }, textColor: "#37474f" },
  grid: { vertLines: { color: "#f0f0f0" }, horzLines: { color: "#f0f0f0" } },
  timeScale: { timeVisible: false, rightOffset: 4 },
});
const candleSeries = chart.addSeries(LWC.CandlestickSeries, {
  upColor: "#26a69a", downColor: "#ef5350", borderVisible: false, wickUpColor: "#26a69a", wickDownColor: "#ef5350",
});
const predictionLayer = chart.addSeries(LWC.HistogramSeries, {
  priceScaleId: "predictions", priceLineVisible: false, lastValueVisible: false,
});
chart.priceScale("predictions").applyOptions({ scaleMargins: { top: 0, bottom: 0 }, visible: false });
const markers = LWC.createSeriesMarkers(candleSeries, []);

function alpha(hex, a) { return hex + Math.round(a * 255).toString(16).padStart(2, "0"); }

function minConfidence() { return Number($("confidence").value) / 100; }

function visibleSpans() {
  if (!state.review) return [];
  const confirmedOnly = $("only-confirmed").checked;
  return state.review.spans.filter((s) => state.enabled.has(s.label) && s.avg_confidence >= minConfidence()
    && (!confirmedOnly || (s.confirmed_on || []).length > 0));
}

// The disagreements of what is drawn: one about a predicted span only while that span passes the
// filters (layer, labels, confidence, confirmation); a trader's span the model missed always.
function visibleDisagreements() {
  if (!state.review) return [];
  const shown = new Set($("layer").checked ? visibleSpans().map((s) => `${s.start_time}|${s.label}`) : []);
  return state.review.disagreements.filter((d) => !d.predicted || shown.has(`${d.predicted.start_time}|${d.predicted.label}`));
}

// " ✓1d,1w": the higher timeframes whose finished candles show the same pattern.
function confirmedText(s) {
  return (s.confirmed_on || []).length ? ` ✓${s.confirmed_on.join(",")}` : "";
}

function drawPredictions() {
  const show = $("layer").checked && state.review;
  const spans = show ? visibleSpans() : [];
  const onlyDis = $("only-disagreements").checked;
  const disagreeing = new Set(visibleDisagreements().filter((d) => d.predicted).map((d) => d.predicted.start_time));
  const shown = onlyDis ? spans.filter((s) => disagreeing.has(s.start_time)) : spans;
  const byTime = new Map();
  // Chart patterns (weeks long) are painted first and fainter, so the candlestick spans inside
  // them stay visible; their markers go below the bars.
  const isChart = (s) => s.kind === "chart";
  for (const s of [...shown.filter(isChart), ...shown.filter((x) => !isChart(x))]) {
    const color = alpha((state.labels.get(s.label) || {}).color || "#42a5f5", isChart(s) ? 0.08 : 0.18);
    for (const t of timesBetween(s.start_time, s.end_time)) byTime.set(t, color);
  }
  predictionLayer.setData(state.times.map((t) => byTime.has(t)
    ? { time: t, value: 1, color: byTime.get(t) } : { time: t }));
  state.shown = shown.filter((s) => state.times.length && s.start_time >= state.times[0]); // loaded candles only
  renderMarkers();
  if (state.review) renderSummary(spans);
  drawOverlay();
}

function spanText(s) {
  return `${s.label} (${Math.round(100 * s.avg_confidence)}%)${s.kind === "chart" ? `, ${s.candles} candles` : ""}`
    + confirmedText(s);
}

const measure = document.createElement("canvas").getContext("2d");
function textWidth(text) { return measure.measureText(text).width; } // in the font markerFont() set

function markerFont() { // the chart's own (what marker texts are drawn in); read once per render
  const { fontSize, fontFamily } = chart.options().layout;
  measure.font = `${fontSize}px ${fontFamily}`;
}

// A marker's text only where it has room: left to right on each side of the bars, a text is
// written when it starts past the end of the last one written; the others keep their arrow, and
// their full text shows on hover or once zoomed in far enough (redrawn on every zoom and pan).
function renderMarkers() {
  const scale = chart.timeScale(), lastRight = { aboveBar: -Infinity, belowBar: -Infinity };
  markerFont();
  state.crowded = 0;
  markers.setMarkers((state.shown || []).map((s) => {
    const isChart = s.kind === "chart", position = isChart ? "belowBar" : "aboveBar";
    let text = spanText(s);
    const x = scale.timeToCoordinate(s.start_time);
    if (x !== null) {
      const half = textWidth(text) / 2;
      if (x - half < lastRight[position] + 6) { text = ""; state.crowded += 1; } else lastRight[position] = x + half;
    }
    return { time: s.start_time, position, shape: isChart ? "arrowUp" : "arrowDown",
      color: (state.labels.get(s.label) || {}).color || "#42a5f5", text };
  }));
}

let markersFrame = 0;
function renderMarkersSoon() {
  cancelAnimationFrame(markersFrame);
  markersFrame = requestAnimationFrame(renderMarkers);
}

function timesBetween(start, end) {
  const lo = lowerBound(state.times, start), hi = lowerBound(state.times, end + 1);
  return state.times.slice(lo, hi);
}

function lowerBound(arr, x) {
  let lo = 0, hi = arr.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (arr[mid] < x) lo = mid + 1; else hi = mid; }
  return lo;
}

// Human spans and disagreements are drawn on a canvas over the chart, kept in step with its time scale.
function drawOverlay() {
  const canvas = $("overlay"), wrap = $("chart-wrap");
  const ratio = window.devicePixelRatio || 1;
  canvas.width = wrap.clientWidth * ratio;
  canvas.height = wrap.clientHeight * ratio;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, wrap.clientWidth, wrap.clientHeight);
  if (!state.review) return drawMark(ctx);
  const scale = chart.timeScale();
  const half = Math.max(2, scale.options().barSpacing / 2);
  const height = wrap.clientHeight - 30; // leave the time axis alone
  const box = (s) => {
    const x1 = scale.timeToCoordinate(s.start_time), x2 = scale.timeToCoordinate(s.end_time);
    return x1 === null || x2 === null ? null : [x1 - half, x2 + half];
  };
  if (!$("only-disagreements").checked) {
    for (const h of state.review.human) {
      const b = box(h);
      if (!b) continue;
      ctx.fillStyle = h.label === "O" ? "#78909c" : "#1e88e5";
      ctx.fillRect(b[0], height - 6, b[1] - b[0], 6);
      ctx.font = "11px system-ui"; ctx.fillText(h.label, b[0], height - 9);
    }
  }
  for (const d of visibleDisagreements()) {
    const style = DISAGREEMENT_STYLE[d.kind];
    const b = box(d.human || d.predicted);
    if (!b) continue;
    ctx.fillStyle = style.fill;
    if (style.strip) { ctx.fillRect(b[0], 0, b[1] - b[0], 8); continue; }
    ctx.fillRect(b[0], 0, b[1] - b[0], height);
    ctx.strokeStyle = style.color; ctx.lineWidth = 2; ctx.setLineDash(style.dash);
    ctx.strokeRect(b[0], 1, b[1] - b[0], height - 2);
  }
  ctx.setLineDash([]);
  const sel = state.selected && box(state.selected);
  if (sel) { // the selected span, with its boundaries as corrected by the step buttons
    ctx.strokeStyle = "#1e88e5"; ctx.lineWidth = 2; ctx.setLineDash([3, 3]);
    ctx.strokeRect(sel[0], 12, sel[1] - sel[0], height - 14); ctx.setLineDash([]);
  }
  drawMark(ctx);
}

function drawMark(ctx) {
  if (!state.mark || state.mark.start === undefined) return;
  const scale = chart.timeScale();
  const x1 = scale.timeToCoordinate(state.mark.start);
  const x2 = scale.timeToCoordinate(state.mark.end ?? state.mark.start);
  if (x1 === null || x2 === null) return;
  ctx.fillStyle = "rgba(30,136,229,0.15)";
  ctx.fillRect(Math.min(x1, x2) - 4, 0, Math.abs(x2 - x1) + 8, ctx.canvas.height);
}

// The time range a prepend keeps on screen until the chart has drawn a frame with it: a busy
// machine may answer the next page before that frame, and the chart's range then is not the one
// the trader sees.
let viewToKeep = null;
chart.timeScale().subscribeVisibleLogicalRangeChange((range) => {
  drawOverlay();
  renderMarkersSoon();
  // (not while a prepend's view is still being restored: the indices are the new page's then)
  if (range && range.from < LOAD_MORE_AT && !viewToKeep) loadEarlier().catch((err) => status(err.message));
  reviewVisibleSoon();
});

// The spans under the pointer, in full (a crowded marker shows only its arrow).
chart.subscribeCrosshairMove((param) => {
  const hover = $("hover");
  const under = param.time === undefined || !param.point ? []
    : (state.shown || []).filter((s) => s.start_time <= param.time && param.time <= s.end_time);
  hover.hidden = under.length === 0;
  if (!under.length) return;
  hover.textContent = under.map(spanText).join("\n");
  hover.style.left = `${Math.min(param.point.x + 14, $("chart-wrap").clientWidth - 260)}px`;
  hover.style.top = `${Math.max(param.point.y - 10, 4)}px`;
});
new ResizeObserver(() => drawOverlay()).observe($("chart-wrap"));

// ------------------------------------------------------------------ data

async function loadModel() {
  const info = await api("/model/info");
  const versionChanged = state.model && state.model.version !== info.version;
  state.model = info;
  $("model-version").textContent = `model: ${info.name}@${info.version}`;
  if (versionChanged) { state.cache.clear(); state.review = null; drawPredictions(); }
  state.labels = new Map(info.labels.map((l) => [l.name, l]));
  const higher = ((info.features || {}).featurize || {}).higher_timeframes || [];
  $("confirmed-filter").hidden = !higher.length; // the filter exists only for a model with them
  $("higher-timeframes").textContent = higher.join(", ");
  if (!higher.length) $("only-confirmed").checked = false;
  // span F1 on the test split: the candlestick model's per label, and the chart-pattern model's
  const metrics = info.metrics || {};
  const perSpan = { ...(metrics.per_class_span || metrics.per_class || {}),
    ...((metrics.chart_patterns || {}).per_class_span || {}) };
  const box = $("labels"), select = $("correct-label"), names = $("label-names");
  box.replaceChildren(); select.replaceChildren(); names.replaceChildren();
  const enableAll = !state.enabled.size || versionChanged;
  for (const label of info.labels) {
    if (label.name !== "O") {
      if (enableAll) state.enabled.add(label.name);
      const row = document.createElement("label");
      const check = document.createElement("input");
      check.type = "checkbox"; check.checked = state.enabled.has(label.name); check.dataset.label = label.name;
      check.addEventListener("change", () => {
        check.checked ? state.enabled.add(label.name) : state.enabled.delete(label.name);
        drawPredictions();
      });
      const swatch = document.createElement("span");
      swatch.className = "swatch"; swatch.style.background = label.color;
      const f1 = document.createElement("span");
      f1.className = "f1";
      f1.textContent = perSpan[label.name] ? `F1 ${perSpan[label.name].f1.toFixed(2)}` : "";
      const live = document.createElement("span");
      const lp = (info.live_precision || []).find((p) => p.label === label.name);
      live.className = "live";
      if (lp && lp.answered) {
        live.textContent = `live ${lp.confirmed}/${lp.answered}`;
        live.title = `traders' answers to this model's ${label.name} spans: ${lp.confirmed} confirmed, `
          + `${lp.corrected} corrected, ${lp.dismissed} dismissed (${lp.shown} shown)`;
      }
      const name = document.createElement("span");
      name.className = "name"; name.textContent = label.name; name.title = label.name;
      row.append(check, swatch, name, f1, live, outcomeBadge(label.outcome));
      box.append(row);
    }
    select.append(new Option(label.name, label.name));
    names.append(new Option(label.name));
  }
}

// What followed the label (the outcomes stage): a short verdict, the numbers on hover.
function outcomeBadge(o) {
  const badge = document.createElement("span");
  badge.className = "outcome";
  if (!o) return badge;
  const pct = (x) => (x === null || x === undefined ? "?" : `${x >= 0 ? "+" : ""}${(100 * x).toFixed(2)}%`);
  badge.dataset.verdict = o.verdict;
  badge.textContent = o.verdict === "edge" ? `edge ${pct(o.excess_return)}`
    : o.verdict === "insufficient data" ? "too few" : "no edge";
  const interval = o.ci ? ` (95%: ${pct(o.ci[0])} to ${pct(o.ci[1])})` : "";
  const mde = o.verdict === "no detectable edge" && o.mde !== null ? `, smallest detectable ${pct(o.mde)}` : "";
  badge.title = `${o.h} candles after it, ${o.direction}, net of cost: ${pct(o.excess_return)} vs random entries`
    + `${interval}, ${o.n} times; ${o.verdict}${mde}; test split alone: ${o.test_verdict ?? "?"}`;
  return badge;
}

async function openChart(file) {
  // Read with the server's own readers (as `candle-ml check` reads it); errors shown where the file was chosen.
  $("chart-error").hidden = true;
  const bytes = new Uint8Array(await file.arrayBuffer());
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  try {
    const chart = await api("/charts", { method: "POST", body: JSON.stringify({ name: file.name, content: btoa(binary) }) });
    params.set("series", `${chart.pair}|${chart.timeframe}`);
    status(`Opened ${file.name}: ${chart.pair} ${chart.timeframe}, ${chart.candles} candles (${chart.format}).`);
    await loadSeries();
  } catch (err) {
    // the server's message names the file, the row and the rule; a network error does not
    $("chart-error").textContent = err.message.startsWith(file.name) ? err.message : `${file.name}: ${err.message}`;
    $("chart-error").hidden = false;
  }
}

async function loadSeries() {
  state.series = await api("/series");
  const select = $("series");
  select.replaceChildren(...state.series.map((s) =>
    new Option(`${s.pair} ${s.timeframe} (${s.candles})`, `${s.pair}|${s.timeframe}`)));
  const wanted = params.get("series");
  if (wanted && state.series.some((s) => `${s.pair}|${s.timeframe}` === wanted)) select.value = wanted;
  await selectSeries(select.value);
}

function timeframeSeconds(timeframe) {
  const m = /^(\d+)(s|m|min|h|d|w)$/i.exec(timeframe || "");
  const unit = { s: 1, m: 60, min: 60, h: 3600, d: 86400, w: 604800 };
  return m ? Number(m[1]) * unit[m[2].toLowerCase()] : 86400;
}

async function selectSeries(value) {
  [state.pair, state.timeframe] = value.split("|");
  const seconds = timeframeSeconds(state.timeframe); // an intraday chart shows the time of day
  chart.applyOptions({ timeScale: { timeVisible: seconds < 86400, secondsVisible: seconds < 60 } });
  state.review = null; state.selected = null; state.reviewed = null; updateSelection();
  state.info = state.series.find((x) => x.pair === state.pair && x.timeframe === state.timeframe);
  state.candles = []; state.times = [];
  const last = state.info.last_time;
  const page = await candlesBetween(last - pageSeconds(), last);
  if (value !== shownSeries()) return; // another series was picked meanwhile: its own call draws it
  await prepend(page);
  const n = state.times.length;
  chart.timeScale().setVisibleLogicalRange({ from: n - 150, to: n + 4 });
  drawPredictions();
  // The range from the candles, not from the chart: right after new data the chart may still
  // report the previous series' view. The last 150 candles and half a screen before them.
  if (state.modelLoaded && n) await runReview({ start: state.times[Math.max(0, n - 225)], end: state.times[n - 1] });
  await refreshQueue();
}

// Calendar seconds that hold about PAGE_CANDLES candles (weekends and nights have none).
function pageSeconds() { return Math.ceil(PAGE_CANDLES * timeframeSeconds(state.timeframe) * 1.5); }

function shownSeries() { return `${state.pair}|${state.timeframe}`; } // what a late answer is checked against

async function candlesBetween(start, end) {
  const q = new URLSearchParams({ pair: state.pair, timeframe: state.timeframe, start: Math.floor(start), end });
  return (await api(`/candles?${q}`)).candles;
}

// Earlier candles in front of those loaded, the view kept on the same candles.
async function prepend(earlier) {
  if (!earlier.length) return;
  // kept by time, not by bar index: whether the chart shifts its indices at once or on its next
  // frame, the candles on screen stay the same ones
  // (nothing to keep for a series' first page: what is on screen then is the previous series)
  const seen = state.candles.length ? (viewToKeep || chart.timeScale().getVisibleRange()) : null;
  const series = shownSeries();
  state.candles = [...earlier, ...state.candles];
  state.times = state.candles.map((c) => c.time);
  viewToKeep = seen;
  candleSeries.setData(state.candles);
  const keep = () => {
    if (seen && series === shownSeries()) chart.timeScale().setVisibleRange(seen);
  };
  keep();
  requestAnimationFrame(() => {
    if (viewToKeep !== seen) return; // moved since (goTo): that view wins
    keep();
    viewToKeep = null;
  });
  drawPredictions();
}

let loadingEarlier = null;
function loadEarlier(until) {
  // One page further back (or back to `until`); nothing when the first candle is loaded already.
  if (loadingEarlier || !state.info || !state.times.length || state.times[0] <= state.info.first_time) return loadingEarlier || Promise.resolve();
  const first = state.times[0], series = shownSeries();
  const start = Math.min(first - pageSeconds(), until ?? Infinity);
  loadingEarlier = candlesBetween(Math.max(start, state.info.first_time), first - 1)
    .then((earlier) => { if (series === shownSeries()) return prepend(earlier); })
    .finally(() => { loadingEarlier = null; });
  return loadingEarlier;
}

function paddedVisibleRange() {
  // The visible candles and half a screen either side: a small pan needs no new prediction.
  const logical = chart.timeScale().getVisibleLogicalRange();
  if (!logical || !state.times.length) return visibleRange();
  const pad = (logical.to - logical.from) / 2, at = (i) => state.times[Math.max(0, Math.min(state.times.length - 1, Math.round(i)))];
  return { start: at(logical.from - pad), end: at(logical.to + pad) };
}

let reviewTimer = null;
function reviewVisibleSoon() {
  // Predictions for what comes into view, once the pan or zoom has stopped.
  clearTimeout(reviewTimer);
  reviewTimer = setTimeout(() => {
    const seen = visibleRange(), had = state.reviewed;
    if (!state.modelLoaded || seen.start === undefined) return;
    const covered = had && (had.start === undefined || (had.start <= seen.start && seen.end <= had.end));
    if (!covered) runReview(paddedVisibleRange());
  }, REVIEW_DELAY_MS);
}

function visibleRange() {
  const range = chart.timeScale().getVisibleRange();
  return range ? { start: range.from, end: range.to } : {};
}

async function runReview(range = {}) {
  if (!state.pair || !state.modelLoaded) return;
  const version = state.model ? state.model.version : "";
  const key = [state.pair, state.timeframe, range.start ?? "", range.end ?? "", version].join("|");
  if (!state.cache.has(key)) {
    const q = new URLSearchParams({ pair: state.pair, timeframe: state.timeframe });
    if (range.start !== undefined) { q.set("start", range.start); q.set("end", range.end); }
    $("loading").hidden = false;
    $("run-visible").disabled = $("predict-all").disabled = true;
    try {
      const review = await api(`/review?${q}`);
      if (review.model_info.version !== version) { state.cache.clear(); await loadModel(); }
      state.cache.set(key, review);
    } catch (err) {
      status(`Prediction failed: ${err.message}`);
      return;
    } finally {
      $("loading").hidden = true;
      $("run-visible").disabled = $("predict-all").disabled = false;
    }
  }
  if (!key.startsWith(`${shownSeries()}|`)) return; // another series is shown now
  state.review = state.cache.get(key);
  state.reviewed = range; // what the predictions drawn cover ({}: the whole series)
  while (state.cache.size > 64) state.cache.delete(state.cache.keys().next().value);
  drawPredictions(); // the summary too, counted as drawn
}

function renderSummary(spans = $("layer").checked ? visibleSpans() : []) {
  // Counted as drawn: each predicted span shown either agrees with a trader's, has another label,
  // or was missed by traders; the hidden ones count nowhere.
  const s = state.review.summary, kinds = { missed_by_model: 0, missed_by_human: 0, label_mismatch: 0 };
  for (const d of visibleDisagreements()) kinds[d.kind] += 1;
  const agree = Math.max(0, spans.length - kinds.missed_by_human - kinds.label_mismatch);
  const items = [
    ["", `${spans.length} predicted, ${s.human} marked, ${agree} agree`],
    ["missed_by_model", `${kinds.missed_by_model} missed by the model`],
    ["missed_by_human", `${kinds.missed_by_human} missed by traders`],
    ["label_mismatch", `${kinds.label_mismatch} label mismatches`],
  ];
  $("summary").replaceChildren(...items.map(([cls, text]) => {
    const li = document.createElement("li"); li.className = cls; li.textContent = text; return li;
  }));
}

async function refreshQueue() {
  if (!state.pair || !state.modelLoaded) return;
  let body;
  try {
    body = await api(`/review/queue?pair=${encodeURIComponent(state.pair)}&timeframe=${encodeURIComponent(state.timeframe)}&limit=20`);
  } catch (err) { return; }
  $("queue").replaceChildren(...body.queue.map((item) => {
    const li = document.createElement("li");
    li.textContent = `${item.label} ${fmtTime(item.start_time)} (margin ${item.score.toFixed(2)})`;
    li.addEventListener("click", () => goTo(item));
    return li;
  }));
}

async function goTo(span) {
  if (span.start_time < state.times[0]) await loadEarlier(span.start_time - 100 * timeframeSeconds(state.timeframe));
  const i = lowerBound(state.times, span.start_time);
  viewToKeep = null; // this view, not the one an earlier page's prepend would restore
  chart.timeScale().setVisibleLogicalRange({ from: i - 60, to: i + 60 });
  state.selected = { start_time: span.start_time, end_time: span.end_time, label: span.label,
    avg_confidence: span.avg_confidence };
  updateSelection();
}

// ------------------------------------------------------------------ answers

function spanAt(time) {
  if (!state.review || time === undefined) return null;
  return visibleSpans().find((s) => s.start_time <= time && time <= s.end_time) || null;
}

// A candle's time as the chart shows it: the date, and the time of day on an intraday chart (UTC).
function fmtTime(t) {
  const iso = new Date(t * 1000).toISOString();
  return timeframeSeconds(state.timeframe) < 86400 ? `${iso.slice(0, 10)} ${iso.slice(11, 16)}` : iso.slice(0, 10);
}

function updateSelection() {
  const s = state.selected;
  for (const id of ["confirm", "dismiss", "correct", "correct-label", ...STEPS.map(([id]) => id)]) $(id).disabled = !s;
  $("selected-text").textContent = s
    ? `${s.label} ${fmtTime(s.start_time)} – ${fmtTime(s.end_time)}` +
      (s.avg_confidence !== undefined ? ` (${Math.round(100 * s.avg_confidence)}%)` : "") + confirmedText(s) +
      (s.moved ? ", boundaries moved" : "")
    : "Click a predicted span on the chart.";
  drawOverlay();
}

// Boundary correction a candle at a time: [button, boundary, direction].
const STEPS = [["start-earlier", "start_time", -1], ["start-later", "start_time", 1],
  ["end-earlier", "end_time", -1], ["end-later", "end_time", 1]];

function stepBoundary(boundary, direction) {
  const s = state.selected, i = lowerBound(state.times, s[boundary]) + direction;
  if (i < 0 || i >= state.times.length) return;
  const moved = { ...s, [boundary]: state.times[i] };
  if (moved.start_time > moved.end_time) return; // a span keeps at least one candle
  state.selected = { ...moved, moved: true };
  updateSelection();
}

function answerSelected(label, source) {
  const s = state.selected;
  // moved boundaries make it the trader's own span, whatever the label
  if (s.moved && source === "model_confirmed") source = "human_correction";
  // What the trader answered: the prediction's label, how sure the model was, which model said it.
  const prediction = { label: s.label, confidence: s.avg_confidence ?? null,
    model: state.model ? state.model.name : null, model_version: state.model ? state.model.version : null };
  answer({ pair: state.pair, timeframe: state.timeframe, start_time: s.start_time, end_time: s.end_time,
    label, source, model_prediction: prediction }).then(afterAnswer);
}

async function afterAnswer() {
  state.cache.clear(); // human spans changed: the next review fetches them again
  if (state.online && state.modelLoaded) {
    await runReview(paddedVisibleRange()); await refreshQueue();
    await loadModel(); // the label list's live precision counts this answer
  }
}

chart.subscribeClick((param) => {
  if (param.time === undefined) return;
  if (state.mark) {
    if (state.mark.start === undefined) { state.mark.start = param.time; $("mark-text").textContent = "Now the last candle."; }
    else {
      state.mark.end = param.time;
      if (state.mark.end < state.mark.start) [state.mark.start, state.mark.end] = [state.mark.end, state.mark.start];
      $("mark-text").textContent = "Choose or type a label, then Save span.";
      $("save-span").disabled = false;
    }
    drawOverlay();
    return;
  }
  state.selected = spanAt(param.time);
  updateSelection();
});

$("confirm").addEventListener("click", () => answerSelected(state.selected.label, "model_confirmed"));
$("dismiss").addEventListener("click", () => answerSelected("O", "human_correction"));
$("undo").addEventListener("click", undoLast);
for (const [id, boundary, direction] of STEPS) $(id).addEventListener("click", () => stepBoundary(boundary, direction));
$("open-file").addEventListener("change", (e) => { if (e.target.files[0]) openChart(e.target.files[0]); e.target.value = ""; });
$("correct").addEventListener("click", () => answerSelected($("correct-label").value, "human_correction"));
$("mark").addEventListener("click", () => {
  state.mark = {}; $("save-span").disabled = true; $("mark-text").textContent = "Click the first candle.";
});
$("save-span").addEventListener("click", () => {
  const label = $("new-label").value.trim().toLowerCase().replace(/\s+/g, "_");
  if (!label || !state.mark || state.mark.end === undefined) { status("Mark two candles and give a label."); return; }
  answer({ pair: state.pair, timeframe: state.timeframe, start_time: state.mark.start, end_time: state.mark.end,
    label, source: "human" }).then(afterAnswer);
  state.mark = null; $("save-span").disabled = true; $("mark-text").textContent = "Saved.";
  drawOverlay();
});
$("series").addEventListener("change", (e) => selectSeries(e.target.value));
$("layer").addEventListener("change", drawPredictions);
$("only-disagreements").addEventListener("change", drawPredictions);
$("only-confirmed").addEventListener("change", drawPredictions);
$("confidence").addEventListener("input", () => {
  $("confidence-value").textContent = `${$("confidence").value}%`;
  drawPredictions();
});
$("run-visible").addEventListener("click", () => runReview(visibleRange()));
$("predict-all").addEventListener("click", () => runReview({}));
$("reload-model").addEventListener("click", async () => {
  try {
    const result = await api("/model/reload", { method: "POST" });
    status(`Reloaded ${result.model.name}@${result.model.version}.`);
  } catch (err) { status(`Reload failed: ${err.message}`); }
  await pollHealth();
  await loadModel().catch(() => {});
  await runReview(paddedVisibleRange());
});

// ------------------------------------------------------------------ start

(async function start() {
  savePending(pending());
  // Online, the first health poll sends what is pending and loads the model and the series
  // (reconnected). Loading them here again would reset the chart to the newest candles a second
  // time, under the trader's first scroll on a slow machine; offline, try the series anyway.
  await pollHealth();
  if (state.series.length) return;
  try {
    await loadSeries();
  } catch (err) {
    status(err.message);
  }
})();
