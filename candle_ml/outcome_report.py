"""What the outcome statistics become: the report and its headline, the one line per label a trader
reads (``GET /model/labels``, the review page), its plot and ``dvc plots`` table, and the two sources
of spans they are computed for (the rules' and a model's). The statistics are candle_ml/outcomes.py."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import polars as pl

from candle_ml.annotations import Span
from candle_ml.chart.patterns import ChartRules, find_chart_patterns
from candle_ml.config import OutcomesParams
from candle_ml.outcomes import OutcomeSeries, SpanEnd, outcome_grid
from candle_ml.spans import span_bounds

if TYPE_CHECKING:
    from candle_ml.bundle import Bundle


class LabelOutcome(msgspec.Struct):
    """What followed a label, in one line (``GET /model/labels``, the review page): the excess
    net return h candles after it over random entries, its interval and the verdict."""

    h: int
    n: int
    direction: str  # long | short: the trade the label implies
    verdict: str  # edge | no detectable edge | insufficient data
    excess_return: float | None = None
    ci: list[float | None] | None = None
    mde: float | None = None  # the smallest edge this many occurrences could have shown
    test_verdict: str | None = None  # the same cell on the test split alone


def read_label_outcomes(report: Path, model_version: str | None) -> dict[str, LabelOutcome] | None:
    """The per-label summary of ``reports/outcomes.json``, if it was made for exactly this model."""
    if model_version is None or not report.is_file():
        return None
    try:
        data = msgspec.json.decode(report.read_bytes())
        if data.get("model_version") != model_version:
            return None
        return msgspec.convert(data["summary"], dict[str, LabelOutcome])
    except (msgspec.DecodeError, msgspec.ValidationError, KeyError, AttributeError):
        return None  # a report from another version of candle-ml: shown without outcomes


def label_summary(grid: dict[str, Any], h: int) -> dict[str, dict[str, Any]]:
    """Per label, the one line a trader reads next to it (``GET /model/labels``, the review page)."""
    return {
        c["label"]: {
            "h": h,
            "n": c["n"],
            "direction": c["direction"],
            "excess_return": c.get("excess_return"),
            "ci": c.get("ci"),
            "verdict": c["verdict"],
            "mde": c.get("mde"),
            "test_verdict": (c.get("test") or {}).get("verdict"),
        }
        for c in grid["cells"]
        if c["h"] == h
    }


def verdict_text(cell: dict[str, Any]) -> str:
    """The verdict as a trader reads it: an edge says which way, no edge says how small an edge
    the data could have shown."""
    if cell["verdict"] == "no detectable edge" and cell.get("mde") is not None:
        return f"no detectable edge (MDE = {cell['mde']:.4f})"
    if cell["verdict"] == "edge" and (cell.get("excess_return") or 0) < 0:
        return "edge, against the pattern's direction"
    return str(cell["verdict"])


def rule_ends(
    spans: Iterable[Span], series: list[OutcomeSeries], chart_labels: list[str], rules: ChartRules
) -> list[SpanEnd]:
    """The rules' spans: TA-Lib's candlestick spans (known on their last candle) as given, and
    the chart rules' patterns found again on each series for the candle that confirmed each one."""
    charts = set(chart_labels)
    found = [SpanEnd(s.pair, s.timeframe, s.end_time, s.label) for s in spans if s.label not in charts]
    for ser in series:
        for c in find_chart_patterns(ser.close, chart_labels, rules):
            found.append(SpanEnd(ser.pair, ser.timeframe, int(ser.time[c.end]), c.label, c.found_at - c.end))
    return found


def model_ends(bundle: Bundle, pair: str, timeframe: str, candles: pl.DataFrame) -> list[SpanEnd]:
    """The spans a trader sees for this series (as the server paints them): the candlestick
    model's runs of one label and the chart model's patterns, each ending where it ends."""
    times = candles["time"].to_numpy()
    labels = bundle.predict(candles).label
    _, ends = span_bounds(labels)
    found = [SpanEnd(pair, timeframe, int(times[e]), str(labels[e])) for e in ends.tolist()]
    if bundle.meta.chart is not None:
        confirm = bundle.meta.chart.confirm
        found += [
            SpanEnd(pair, timeframe, int(times[c.end]), c.label, confirm)
            for c in bundle.predict_chart(candles)
        ]
    return found


def outcome_report(
    series: list[OutcomeSeries],
    sources: dict[str, list[SpanEnd]],
    params: OutcomesParams,
    test_from: dict[tuple[str, str], int] | None = None,
) -> tuple[dict[str, Any], dict[str, dict[str, dict[str, np.ndarray]]]]:
    """The grid per source, and per source the summary horizon's returns per label (for plots)."""
    report: dict[str, Any] = {
        "params": msgspec.to_builtins(params),
        "series": [f"{s.pair}_{s.timeframe}" for s in series],
        "sources": {},
    }
    samples = {}
    for name, ends in sources.items():
        grid = outcome_grid(series, ends, params, test_from)
        samples[name] = grid.pop("_samples")
        report["sources"][name] = grid
        report["sources"][name]["edges"] = sum(c["verdict"] == "edge" for c in grid["cells"])
    return report, samples


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """``metrics/outcomes.json``: how many label x horizon cells show an edge (the model's spans,
    full history; the report has the rest)."""
    model = report["sources"].get("model") or report["sources"].get("rules") or {"edges": None}
    return {"edges": model["edges"]}


def write_distribution_plot(
    samples: dict[str, dict[str, np.ndarray]], h: int, path: Path, title: str
) -> None:
    """Small multiples: each label's net return h candles after it vs its random entries'."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = sorted(samples)
    if not labels:
        return
    cols = 4
    rows = -(-len(labels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.ravel()[len(labels) :]:
        ax.axis("off")
    for ax, label in zip(axes.ravel(), labels, strict=False):
        pattern, random = samples[label]["pattern"], samples[label]["random"]
        both = np.concatenate([pattern, random]) if pattern.size else random
        lo, hi = np.percentile(both, [1, 99]) if both.size else (-0.1, 0.1)
        bins = np.linspace(lo, hi, 40)
        # stepfilled: one polygon per histogram, not a patch per bin (~40 x 48 of them to lay out)
        ax.hist(
            random,
            bins=bins,
            density=True,
            histtype="stepfilled",
            color="#9aa4b1",
            alpha=0.6,
            label="random entries",
        )
        ax.hist(pattern, bins=bins, density=True, histtype="step", color="#1f6feb", lw=1.6, label="pattern")
        ax.axvline(0, color="#444", lw=0.6)
        ax.set_title(f"{label} (n={pattern.size})", fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7)
    inches = 2.6 * rows
    fig.suptitle(title, fontsize=11, y=1 - 0.2 / inches)
    # Fixed margins: tight_layout measured every one of the ~48 axes' text (~2 s per figure).
    fig.subplots_adjust(left=0.04, right=0.99, bottom=0.03, top=1 - 0.75 / inches, hspace=0.45, wspace=0.2)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def excess_table(report: dict[str, Any], h: int) -> pl.DataFrame:
    """source, label, excess return and its interval at horizon h: ``dvc plots``' bar chart."""
    rows = [
        {
            "source": name,
            "label": c["label"],
            "excess_return": c.get("excess_return"),
            "ci_low": (c.get("ci") or [None, None])[0],
            "ci_high": (c.get("ci") or [None, None])[1],
            "verdict": c["verdict"],
        }
        for name, grid in report["sources"].items()
        for c in grid["cells"]
        if c["h"] == h
    ]
    return pl.DataFrame(
        rows,
        schema={
            "source": pl.String,
            "label": pl.String,
            "excess_return": pl.Float64,
            "ci_low": pl.Float64,
            "ci_high": pl.Float64,
            "verdict": pl.String,
        },
    )
