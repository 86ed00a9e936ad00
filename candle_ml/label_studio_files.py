"""Label Studio's files: the label config and the tasks candle-ml writes for a project (candles
inline, with the model's spans and the traders' answers as pre-annotations), and the exports
Label Studio writes (JSON and JSON_MIN of ``timeserieslabels``) read back as spans.

``candle-ml label-studio config`` / ``tasks`` and ``candle-ml import`` (candle_ml/cli/) call these.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import polars as pl

from candle_ml.annotations import ReviewedRange, Span
from candle_ml.errors import AnnotationError
from candle_ml.label_studio import (
    CANDLE_FIELDS,
    LabelConfig,
    LabelMap,
    TaskSeries,
    annotation_spans,
    parse_label_config,
    prediction_result,
    region_spans,
    span_id,
    task_reviewed,
    task_series,
)
from candle_ml.patterns import NO_PATTERN

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # what candle-ml writes into tasks: UTC, as Label Studio parses it
# one plot (MultiChannel): the close over the high-low band; open is read from the task, not drawn
_CHANNEL_COLORS = {"high": "#26a69a", "low": "#ef5350", "close": "#1e88e5"}


def label_config_xml(labels: Iterable[str], daily: bool = True) -> str:
    """The label config to paste into a Label Studio project for candle-ml's tasks: one label per
    pattern (O left out), the candles in the task (``$candles``), times as UTC strings."""
    shown = "%Y-%m-%d" if daily else "%Y-%m-%d %H:%M"
    label_tags = "\n".join(f'    <Label value="{name}"/>' for name in labels if name != NO_PATTERN)
    channels = "\n".join(
        f'      <Channel column="{c}" legend="{c}" strokeColor="{color}"/>'
        for c, color in _CHANNEL_COLORS.items()
    )
    return (
        "<View>\n"
        '  <Header value="$pair $timeframe"/>\n'
        '  <TimeSeriesLabels name="pattern" toName="candles">\n'
        f"{label_tags}\n"
        "  </TimeSeriesLabels>\n"
        '  <TimeSeries name="candles" value="$candles" valueType="json" timeColumn="time"\n'
        f'              timeFormat="{TIME_FORMAT}" timeDisplayFormat="{shown}" overviewChannels="close">\n'
        "    <MultiChannel>\n"
        f"{channels}\n"
        "    </MultiChannel>\n"
        "  </TimeSeries>\n"
        "</View>\n"
    )


def task_data(pair: str, timeframe: str, candles: pl.DataFrame) -> dict[str, Any]:
    """A Label Studio task's ``data`` for ``label_config_xml``: the candles inline, as columns."""
    times = pd.to_datetime(candles["time"].to_numpy(), unit="s", utc=True).strftime(TIME_FORMAT)
    columns: dict[str, list[Any]] = {"time": list(times)}
    for c in CANDLE_FIELDS:
        columns[c] = candles[c].to_list()
    return {"candles": columns, "pair": pair, "timeframe": timeframe}


def chunks(candles: pl.DataFrame, size: int, overlap: int = 0) -> list[pl.DataFrame]:
    """The candles cut into tasks of ``size`` candles (the last may be shorter), each starting
    ``overlap`` candles before the previous one ended."""
    step = max(1, size - overlap)
    return [candles.slice(i, size) for i in range(0, max(1, candles.height - overlap), step)]


def studio_tasks(
    pair: str,
    timeframe: str,
    candles: pl.DataFrame,
    size: int,
    labels: LabelMap,
    predicted: list[Any] | None = None,
    model_version: str = "",
    answers: list[Span] | None = None,
) -> list[dict[str, Any]]:
    """The series as Label Studio tasks of ``size`` candles, each with the model's spans on it
    (``predicted``: ``SpanPrediction``s of the whole series) and the traders' answers in candle-ml
    (``answers``) as predictions, for import as pre-annotations."""
    tasks = []
    for part in chunks(candles, size):
        lo, hi = int(part["time"][0]), int(part["time"][-1])
        series = TaskSeries(pair, timeframe, part, unit_ms=False)
        predictions = []
        if predicted is not None:
            inside = [s for s in predicted if lo <= s.start_time and s.end_time <= hi]
            predictions.append(prediction_result(inside, labels, series, model_version))
        if answers:
            marked = [
                _AsPredicted(s.start_time, s.end_time, s.label, s.confidence)
                for s in answers
                if lo <= s.start_time and s.end_time <= hi
            ]
            if marked:
                predictions.append(prediction_result(marked, labels, series, "candle-ml feedback"))
        tasks.append({"data": task_data(pair, timeframe, part), "predictions": predictions})
    return tasks


class _AsPredicted(NamedTuple):
    """A trader's answer in the shape ``prediction_result`` takes (its confidence as the score)."""

    start_time: int
    end_time: int
    label: str
    avg_confidence: float


# ------------------------------------------------------------------------------ Label Studio's exports


@dataclass
class ImportedTask:
    series: TaskSeries
    spans: list[Span]
    reviewed: ReviewedRange | None  # None: a skipped (cancelled) task, not gone through


def read_studio_export(path: Path, label_config: str | None = None) -> list[ImportedTask]:
    """A Label Studio export of a time-series project, JSON (tasks with their ``annotations``) or
    JSON_MIN (one flat record per task and annotation), as each task's candles and spans. Without
    the project's label config, the candles are the task field holding time/open/high/low/close
    columns, and times are read as candle-ml's tasks write them (or as ISO dates)."""
    try:
        items = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"{path}: not valid JSON ({exc})", rule="json") from None
    if not isinstance(items, list):
        raise AnnotationError(f"{path}: a Label Studio export is a list of tasks", rule="export")
    cfg = parse_label_config(label_config) if label_config else None
    out = []
    for i, item in enumerate(items):
        where = f"{path} task {i + 1}"
        if not isinstance(item, dict):
            raise AnnotationError(f"{where}: not an object", rule="export")
        if "annotations" in item:  # JSON
            task_cfg = cfg or _inferred_config(item.get("data") or {}, where, _from_name(item))
            for annotation in item.get("annotations") or []:
                series, spans = annotation_spans(annotation, item, task_cfg, item.get("project", "export"))
                skipped = bool(annotation.get("was_cancelled"))
                out.append(ImportedTask(series, spans, None if skipped else task_reviewed(series, task_cfg)))
            continue
        out.append(_min_record(item, cfg, where))  # JSON_MIN
    return out


def _from_name(task: dict[str, Any]) -> str | None:
    for annotation in task.get("annotations") or []:
        for r in annotation.get("result") or []:
            if r.get("type") == "timeserieslabels":
                return str(r.get("from_name"))
    return None


def _min_record(item: dict[str, Any], cfg: LabelConfig | None, where: str) -> ImportedTask:
    regions_key = next(
        (
            k
            for k, v in item.items()
            if isinstance(v, list) and v and isinstance(v[0], dict) and "timeserieslabels" in v[0]
        ),
        None,
    )
    data = {
        k: v
        for k, v in item.items()
        if k
        not in (
            "id",
            "annotator",
            "annotation_id",
            "created_at",
            "updated_at",
            "lead_time",
            "agreement",
            regions_key,
        )
    }
    task_cfg = cfg or _inferred_config(data, where, regions_key)
    series = task_series({"id": item.get("id"), "data": data}, task_cfg, where)
    annotation = item.get("annotation_id", item.get("id"))
    regions = item.get(task_cfg.from_name) or item.get(regions_key or "") or []
    spans = region_spans(regions, task_cfg, series, lambda n, _r: span_id("export", annotation, n), where)
    return ImportedTask(series, spans, task_reviewed(series, task_cfg))


_TIME_NAMES = ("time", "date", "datetime", "timestamp")


def _inferred_config(data: dict[str, Any], where: str, from_name: str | None) -> LabelConfig:
    """The label config a task's own fields imply: the field holding candle columns, its time column,
    and candle-ml's time format (or ISO dates, or numbers)."""
    for key, value in data.items():
        columns = (
            value
            if isinstance(value, dict)
            else (value[0] if isinstance(value, list) and value and isinstance(value[0], dict) else None)
        )
        if not isinstance(columns, dict):
            continue
        names = {str(c).lower(): str(c) for c in columns}
        time_name = next((names[t] for t in _TIME_NAMES if t in names), None)
        if time_name is None or not all(c in names for c in CANDLE_FIELDS[:4]):
            continue
        first = columns[time_name][0] if isinstance(value, dict) else columns[time_name]
        time_format = None
        if isinstance(first, str):
            time_format = TIME_FORMAT if _parses(first, TIME_FORMAT) else "%Y-%m-%d"
        return LabelConfig(
            from_name or "pattern",
            "candles",
            key,
            "json",
            time_name,
            time_format,
            {c: names[c] for c in CANDLE_FIELDS if c in names},
            [],
        )
    raise AnnotationError(
        f"{where}: no field holds candles (time, open, high, low, close columns); give the project's "
        "label config (candle-ml import --label-config config.xml)",
        rule="candles",
    )


def _parses(text: str, fmt: str) -> bool:
    try:
        pd.to_datetime(text, format=fmt)
        return True
    except ValueError:
        return False
