"""Label Studio's time-series labeling, read and written: its label config, a task's candles, our
predictions as its regions, its annotations (webhook payloads and JSON / JSON_MIN exports) as
our spans.

Times: a ``<TimeSeries>`` with ``timeFormat`` holds date strings that Label Studio parses and
formats in UTC (d3's utcParse/utcFormat); it keeps a region's times as epoch milliseconds,
accepts them as numbers in a prediction and writes them back as strings in ``timeFormat`` in an
annotation. Without ``timeFormat`` the time column is a plain number: epoch milliseconds when
it is that large (above 1e11), otherwise epoch seconds; regions are in the same unit.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from candle_ml.annotations import ReviewedRange, Span
from candle_ml.candles import PAIR_PATTERN, validate_candles, whole
from candle_ml.errors import AnnotationError, CandleError, CandleMLError
from candle_ml.patterns import NO_PATTERN
from candle_ml.series_names import timeframe_of_spacing
from candle_ml.timeframes import TIMEFRAME_PATTERN

CANDLE_FIELDS = ("open", "high", "low", "close", "volume")
MS_THRESHOLD = 1e11  # a number above it is epoch milliseconds (1e11 s is the year 5138)
_PAIR_RE = re.compile(whole(PAIR_PATTERN))
_TIMEFRAME_RE = re.compile(whole(TIMEFRAME_PATTERN))


class LabelConfigError(CandleMLError):
    """A label config candle-ml cannot work with; the message names the tag and the attribute."""


@dataclass(frozen=True)
class LabelConfig:
    """What candle-ml reads from a project's label config (the XML pasted into Label Studio)."""

    from_name: str  # the <TimeSeriesLabels> name
    to_name: str  # the <TimeSeries> name
    value_key: str  # the task data field holding the candles ($ts -> ts)
    value_type: str  # json: the candles inline in the task | url: a CSV Label Studio serves
    time_column: str
    time_format: str | None
    columns: dict[str, str]  # open/high/low/close/volume -> the task's column
    labels: list[str]  # the <Label> values Label Studio accepts

    @property
    def is_date(self) -> bool:
        return self.time_format is not None


def label_name(value: str) -> str:
    """Label Studio's label value as candle-ml's label: "Bullish Engulfing" -> bullish_engulfing."""
    name = re.sub(r"[^0-9a-z]+", "_", value.strip().lower()).strip("_")
    if not name:
        raise LabelConfigError(f"label '{value}': no letter or digit to name it by", rule="label")
    return name


@dataclass
class LabelMap:
    """Our labels onto the config's, by name ("Bullish Engulfing" is bullish_engulfing)."""

    config: LabelConfig
    ours: list[str]
    to_studio: dict[str, str] = field(init=False)
    to_ours: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.to_ours = {v: label_name(v) for v in self.config.labels}
        self.to_studio = {o: v for v, o in self.to_ours.items() if o in self.ours}

    @property
    def left_out(self) -> list[str]:
        """Our labels the config lacks: never predicted into this project."""
        return [x for x in self.ours if x != NO_PATTERN and x not in self.to_studio]

    @property
    def new(self) -> list[str]:
        """The config's labels the model does not know: a trader's own, learned from their marks."""
        return [v for v, o in self.to_ours.items() if o not in self.ours]


def parse_label_config(xml: str) -> LabelConfig:
    """The first ``<TimeSeriesLabels>`` and the ``<TimeSeries>`` it labels. The task's columns are
    mapped onto open/high/low/close/volume by a ``<Channel>``'s column name or ``legend`` (any
    case), else read by those names: a chart may plot only some of them."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise LabelConfigError(f"label config: not valid XML ({exc})", rule="xml") from None
    labels_tag = next(root.iter("TimeSeriesLabels"), None)
    if labels_tag is None:
        raise LabelConfigError("label config: no <TimeSeriesLabels> tag to put patterns in", rule="tag")
    from_name, to_name = labels_tag.get("name"), labels_tag.get("toName")
    series = next((t for t in root.iter("TimeSeries") if t.get("name") == to_name), None)
    if not from_name or not to_name or series is None:
        raise LabelConfigError(
            f"label config: <TimeSeriesLabels name='{from_name}' toName='{to_name}'> names no <TimeSeries>",
            field="toName",
            rule="tag",
        )
    value = series.get("value", "")
    if not value.startswith("$"):
        raise LabelConfigError(f"<TimeSeries name='{to_name}'>: value must be $field", field="value")
    time_column = series.get("timeColumn")
    if not time_column:
        raise LabelConfigError(
            f"<TimeSeries name='{to_name}'>: no timeColumn (candles need their times)", field="timeColumn"
        )
    columns: dict[str, str] = {}
    for ch in series.iter("Channel"):
        column = ch.get("column", "")
        for name in (column, ch.get("legend", "")):
            if name.strip().lower() in CANDLE_FIELDS:
                columns.setdefault(name.strip().lower(), column)
    for name in CANDLE_FIELDS:  # a column no channel plots is read by its own name
        columns.setdefault(name, name)
    values = [lab.get("value", "") for lab in labels_tag.iter("Label")]
    return LabelConfig(
        from_name,
        to_name,
        value[1:],
        series.get("valueType", "url").lower(),
        time_column,
        series.get("timeFormat") or None,
        columns,
        [v for v in values if v],
    )


# ------------------------------------------------------------------------------------ times


def _strptime_format(d3: str) -> str:
    """d3's time format in Python's strptime terms (%L: milliseconds, which %f reads too)."""
    return d3.replace("%L", "%f").replace("%Q", "%s")


def parse_times(raw: Iterable[Any], cfg: LabelConfig, where: str) -> np.ndarray:
    """A time column (or region bounds) in Label Studio's terms -> epoch seconds (int64)."""
    values = list(raw)
    if cfg.is_date:
        fmt = _strptime_format(cfg.time_format or "")
        out = np.empty(len(values), dtype=np.int64)
        for i, v in enumerate(values):
            if isinstance(v, int | float) and not isinstance(v, bool):
                out[i] = int(v // 1000)  # a number beside a timeFormat: epoch milliseconds
                continue
            try:
                out[i] = int(datetime.strptime(str(v), fmt).replace(tzinfo=UTC).timestamp())
            except ValueError:
                raise CandleError(
                    f"{where}[{i}]: '{v}' does not match timeFormat '{cfg.time_format}'",
                    row=i,
                    field=cfg.time_column,
                    rule="timeFormat",
                ) from None
        return out
    try:
        numbers = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise CandleError(
            f"{where}: times are not numbers; give the <TimeSeries> a timeFormat for date strings",
            field=cfg.time_column,
            rule="timeFormat",
        ) from None
    scale = 1000 if numbers.size and np.nanmax(np.abs(numbers)) > MS_THRESHOLD else 1
    return (numbers // scale).astype(np.int64)


def studio_time(seconds: int, cfg: LabelConfig, unit_ms: bool) -> int:
    """A candle time as a prediction's region bound: epoch ms for dates, else the column's unit."""
    return seconds * 1000 if cfg.is_date or unit_ms else seconds


# ------------------------------------------------------------------------------------ tasks


@dataclass(frozen=True)
class TaskSeries:
    pair: str
    timeframe: str
    candles: pl.DataFrame
    unit_ms: bool  # a numeric time column in epoch milliseconds

    @property
    def times(self) -> np.ndarray:
        return self.candles["time"].to_numpy()


def _columns_of(raw: Any, where: str) -> dict[str, list[Any]]:
    """The task's candles as columns (Label Studio's json valueType: {column: [values]}; a list of
    rows is taken too), keys lower-cased as Label Studio matches them."""
    if isinstance(raw, dict) and raw and all(isinstance(v, list) for v in raw.values()):
        return {str(k).lower(): v for k, v in raw.items()}
    if isinstance(raw, list) and raw and all(isinstance(r, dict) for r in raw):
        return {str(k).lower(): [r.get(k) for r in raw] for k in raw[0]}
    raise CandleError(
        f"{where}: the candles must be an object of columns ({{'time': [...], 'open': [...], ...}}) "
        "as <TimeSeries valueType='json'> takes them",
        field=where,
        rule="json columns",
    )


def task_series(task: dict[str, Any], cfg: LabelConfig, where: str = "task") -> TaskSeries:
    """A task's candles, validated, and the series they are: the task's ``pair`` and ``timeframe``
    fields, else ``LS-<task id>`` and the timeframe the candles' spacing says."""
    data = task.get("data")
    if not isinstance(data, dict) or cfg.value_key not in data:
        raise CandleError(f"{where}.data: no '{cfg.value_key}' field (the <TimeSeries> value)", field="data")
    if cfg.value_type != "json":
        raise CandleError(
            f"{where}: <TimeSeries valueType='{cfg.value_type}'>: candle-ml reads the candles from the "
            "task itself; use valueType='json' (docs/label-studio.md)",
            field="valueType",
            rule="json",
        )
    columns = _columns_of(data[cfg.value_key], f"{where}.data.{cfg.value_key}")
    time_key = cfg.time_column.lower()
    lacking = [
        c for c in [time_key, *(cfg.columns[k].lower() for k in CANDLE_FIELDS[:4])] if c not in columns
    ]
    if lacking:
        raise CandleError(f"{where}.data.{cfg.value_key}: no column {', '.join(lacking)}", field=lacking[0])
    times = parse_times(columns[time_key], cfg, f"{where}.data.{cfg.value_key}.{cfg.time_column}")
    # a volume column needs no channel: the chart need not plot it for the model to read it
    names = {"volume": "volume"} | {k: v.lower() for k, v in cfg.columns.items()}
    frame = pd.DataFrame(
        {"time": times}
        | {k: pd.to_numeric(pd.Series(columns[c]), errors="coerce") for k, c in names.items() if c in columns}
    )
    candles, _ = validate_candles(frame, where, "error", row_name=lambda i: f"{where} candle {i}")
    raw = columns[time_key]
    unit_ms = not cfg.is_date and bool(len(raw)) and abs(float(raw[-1])) > MS_THRESHOLD
    pair = str(data.get("pair") or f"LS-{task.get('id', 'task')}")
    timeframe = data.get("timeframe") or timeframe_of_spacing(candles["time"].to_numpy())
    if not _PAIR_RE.match(pair):
        raise CandleError(f"{where}.data.pair: '{pair}' is no series name (e.g. AAPL)", field="pair")
    if not timeframe or not _TIMEFRAME_RE.match(str(timeframe)):
        raise CandleError(
            f"{where}.data.timeframe: '{timeframe}' (give the task a timeframe field such as 1d or 1h)",
            field="timeframe",
        )
    return TaskSeries(pair, str(timeframe), candles, unit_ms)


# ------------------------------------------------------------------------------------ regions


def prediction_result(
    spans: Iterable[Any], labels: LabelMap, series: TaskSeries, model_version: str
) -> dict[str, Any]:
    """Our predicted spans (``SpanPrediction``s) as one Label Studio prediction for the task, the
    labels the config lacks left out; its score is the mean of its regions'."""
    cfg = labels.config
    result = []
    for i, span in enumerate(spans):
        value = labels.to_studio.get(span.label)
        if value is None:
            continue
        start = studio_time(span.start_time, cfg, series.unit_ms)
        end = studio_time(span.end_time, cfg, series.unit_ms)
        result.append(
            {
                "id": f"candle-ml-{i}",
                "from_name": cfg.from_name,
                "to_name": cfg.to_name,
                "type": "timeserieslabels",
                "value": {"start": start, "end": end, "instant": start == end, "timeserieslabels": [value]},
                "score": round(float(span.avg_confidence), 6),
            }
        )
    score = float(np.mean([r["score"] for r in result])) if result else 0.0
    return {"result": result, "score": round(score, 6), "model_version": model_version}


def span_id(project: Any, annotation: Any, region: Any) -> str:
    """The feedback-log id of one region of one annotation (a deletion names the annotation only)."""
    return f"ls-p{project}-a{annotation}-{region}"


def annotation_prefix(project: Any, annotation: Any) -> str:
    return f"ls-p{project}-a{annotation}-"


def region_spans(
    regions: Iterable[dict[str, Any]],
    cfg: LabelConfig,
    series: TaskSeries,
    ids: Any,
    where: str,
) -> list[Span]:
    """Label Studio regions (``{"start", "end", "timeserieslabels": [...]}``, with a region id for
    ``ids(i, region)``) on ``series`` as human spans, each bound moved onto the candles inside it."""
    times = series.times
    spans = []
    for i, region in enumerate(regions):
        value = region.get("value", region)
        names = value.get("timeserieslabels") or []
        if not names:
            continue
        lo, hi = parse_times([value.get("start"), value.get("end")], cfg, f"{where}[{i}].value")
        first, last = np.searchsorted(times, lo, "left"), np.searchsorted(times, hi, "right") - 1
        if first > last:
            raise AnnotationError(
                f"{where}[{i}]: {value.get('start')}..{value.get('end')} holds no candle of the task",
                field=f"{where}[{i}].value",
                rule="a candle inside",
            )
        # Label Studio marks a region kept exactly as a prediction gave it: origin "prediction"
        confirmed = region.get("origin") == "prediction"
        for name in names:
            label = label_name(name)
            spans.append(
                Span(
                    pair=series.pair,
                    timeframe=series.timeframe,
                    start_time=int(times[first]),
                    end_time=int(times[last]),
                    label=label,
                    id=ids(i, region),
                    source="model_confirmed" if confirmed and label != NO_PATTERN else "human",
                    model_prediction=label if confirmed else None,
                )
            )
    return spans


def task_reviewed(series: TaskSeries, cfg: LabelConfig) -> ReviewedRange:
    """An annotated task as a reviewed range: the trader went through its candles looking for the
    project's labels (as the review page's screen), so an unmarked candle there is a negative of
    those labels; one the trader skipped elsewhere is not (candle_ml/own_labels.py)."""
    labels = sorted({label_name(v) for v in cfg.labels} - {NO_PATTERN}) or None
    times = series.times
    return ReviewedRange(series.pair, series.timeframe, int(times[0]), int(times[-1]), labels)


def annotation_spans(
    annotation: dict[str, Any], task: dict[str, Any], cfg: LabelConfig, project: Any
) -> tuple[TaskSeries, list[Span]]:
    """One annotation (a webhook's, or one in a JSON export) on its task: the task's series and the
    annotation's time-series regions as spans with ids ``ls-p<project>-a<annotation>-<region>``."""
    series = task_series(task, cfg, "task")
    if annotation.get("was_cancelled"):
        return series, []
    regions = [
        r
        for r in annotation.get("result") or []
        if r.get("type") == "timeserieslabels" and r.get("from_name", cfg.from_name) == cfg.from_name
    ]
    ann_id = annotation.get("id")
    return series, region_spans(
        regions,
        cfg,
        series,
        lambda i, r: span_id(project, ann_id, r.get("id", i)),
        "annotation.result",
    )
