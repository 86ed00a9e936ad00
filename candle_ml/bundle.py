"""The model bundle in ``models/``: the fitted model plus everything needed to
reproduce its preprocessing without ``params.yaml``.

``load_bundle`` is the one loader (evaluate, the MLflow pyfunc and the server all
use it); ``Bundle.predict`` runs the pipeline's own feature code (``feature_matrix``: the
bytes ``featurize`` writes, without a frame) and window functions on raw candles and predicts
every candle that has enough history.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import polars as pl

from candle_ml.calibration import temper
from candle_ml.chart.model import ChartModel, ChartSettings, ChartSpanPrediction
from candle_ml.config import FeaturizeParams
from candle_ml.errors import BundleError
from candle_ml.features import feature_matrix
from candle_ml.label_style import Label, chart_label_colors
from candle_ml.models import PatternModel, load_model
from candle_ml.patterns import NO_PATTERN
from candle_ml.windows import Anchor, WindowSpec, build_windows, window_columns

log = logging.getLogger("candle_ml.bundle")

BUNDLE_FILE = "bundle.json"
PREDICT_BLOCK = 20_000  # candles whose windows are built and predicted together
FORMAT_VERSION = 1


class TrainingInfo(msgspec.Struct, omit_defaults=True):
    # This run's facts (time, MLflow run, commit, seconds) are not in bundle.json, so that the same
    # data and params give the same bytes (a DVC output every clone can pull and reproduce):
    # they are in the run record beside the bundle (``RunRecord``) and filled in on loading.
    trained_at: str | None = None  # ISO 8601, UTC
    run_id: str | None = None  # MLflow run
    git_commit: str | None = None
    dataset_version: str | None = None  # the hash DVC recorded for data/dataset
    params: dict[str, Any] = msgspec.field(default_factory=dict)  # the train section used
    fit: dict[str, Any] = msgspec.field(default_factory=dict)  # e.g. best_iteration
    class_counts: dict[str, dict[str, int]] = msgspec.field(default_factory=dict)  # split -> label -> rows


class RunRecord(msgspec.Struct):
    """What one training run was: written beside the bundle (``models.run.json`` next to
    ``models/``: git-ignored, not part of the DVC output), and in MLflow."""

    trained_at: str | None  # ISO 8601, UTC
    run_id: str | None = None
    git_commit: str | None = None
    seconds: float | None = None  # fitting the candle model
    # content_hash of the bundle it trained: DVC may later restore another bundle from its cache
    # (a param set back) without running train, and this record must not describe that one.
    bundle_hash: str | None = None


def content_hash(directory: Path) -> str:
    """sha256 of a bundle directory's files, names and bytes."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(directory).iterdir() if p.is_file()):
        digest.update(file.name.encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def run_record_file(directory: Path) -> Path:
    directory = Path(directory)
    return directory.with_name(directory.name + ".run.json")


def with_run(meta: BundleMeta, run: RunRecord) -> BundleMeta:
    """The bundle description as a caller sees it: the run's facts filled in."""
    fit = meta.training.fit | ({"seconds": run.seconds} if run.seconds is not None else {})
    training = msgspec.structs.replace(
        meta.training, trained_at=run.trained_at, run_id=run.run_id, git_commit=run.git_commit, fit=fit
    )
    return msgspec.structs.replace(meta, training=training)


class BundleMeta(msgspec.Struct):
    model_type: str
    labels: list[Label]  # in the model's output order
    featurize: FeaturizeParams
    window_size: int
    context: int
    feature_columns: list[str]
    input_columns: list[str]
    warmup: int  # leading candles of a series whose features are undefined
    min_history: int  # candles a prediction needs before it: features converged + the window's left side
    label_priority: list[str]
    training: TrainingInfo
    format_version: int = FORMAT_VERSION
    # Confidence calibration (candle_ml.calibration), fitted on the val split's candles: 1.0 = none.
    temperature: float = 1.0
    # A pattern label predicted with less confidence than its threshold becomes O (train.thresholds).
    thresholds: dict[str, float] = msgspec.field(default_factory=dict)
    # The chart-pattern model (candle_ml/chart/model.py) when chart patterns were marked.
    chart: ChartSettings | None = None
    # end: the model names the pattern that ends on each candle (dataset.encoding: end), and the
    # pattern covers label_lengths[label] candles up to it | centre: it labels each candle itself.
    anchor: Anchor = "centre"
    label_lengths: dict[str, int] = msgspec.field(default_factory=dict)

    @property
    def window(self) -> WindowSpec:
        return WindowSpec(self.window_size, self.context, self.anchor)

    @property
    def lookahead(self) -> int:
        """Later candles a candle's label depends on: the window's right side, or for an ``end``
        model the rest of the longest pattern (the first candle of an engulfing is one only
        once the second closes)."""
        if self.anchor == "end":
            return max(self.label_lengths.values(), default=1) - 1
        return self.window.after

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]

    @property
    def all_labels(self) -> list[Label]:
        """The candle model's labels, then the chart model's (``GET /model/labels``)."""
        chart = [x for x in (self.chart.labels if self.chart else []) if x not in self.label_names]
        return self.labels + chart_label_colors(chart)


@dataclass
class Prediction:
    time: np.ndarray
    label: np.ndarray  # object: label name, or None where the candle lacks the history needed
    confidence: np.ndarray  # float: probability of the label, NaN where label is None
    proba: np.ndarray  # (n, n_labels), NaN rows where label is None
    raw_confidence: np.ndarray  # the top probability before calibration (for its report)


@dataclass
class Bundle:
    meta: BundleMeta
    model: PatternModel
    path: Path
    chart_model: ChartModel | None = None
    digest: str | None = None  # content_hash of the files it was loaded from (None: built in memory)

    @functools.cached_property
    def reads(self) -> tuple[list[str], np.ndarray | None]:
        """The features the model reads at some window offset, and which columns of their window
        it reads (None: all of them): a model trained on some columns (``train.top_inputs``)
        gets only those, and features it never reads are not computed."""
        every = window_columns(self.meta.feature_columns, self.meta.window)
        if self.meta.input_columns == every:
            return self.meta.feature_columns, None
        unknown = sorted(set(self.meta.input_columns) - set(every))
        if unknown:
            raise BundleError(
                f"{self.path}: the model reads input columns its features do not make: {', '.join(unknown)}"
            )
        used = {c.rpartition("@")[0] for c in self.meta.input_columns}
        features = [f for f in self.meta.feature_columns if f in used]
        at = {name: i for i, name in enumerate(window_columns(features, self.meta.window))}
        return features, np.array([at[c] for c in self.meta.input_columns], dtype=np.int64)

    def set_threads(self, n: int | None) -> None:
        """Threads each prediction of either model uses (None: all cores)."""
        self.model.set_threads(n)
        if self.chart_model is not None:
            self.chart_model.set_threads(n)

    def predict_chart(self, candles: pl.DataFrame) -> list[ChartSpanPrediction]:
        """Chart-pattern spans (rows of ``candles``) whose turns the candles show, confirmed."""
        if self.chart_model is None:
            return []
        return self.chart_model.predict(candles["close"].to_numpy())

    def predict(self, candles: pl.DataFrame, calibrated: bool = True) -> Prediction:
        """Per-candle predictions for validated canonical candles of one series.

        Probabilities are calibrated by the bundle's temperature (``calibrated=False``: the
        model's own, what calibration is fitted on); a pattern label below its threshold is O.
        """
        n = candles.height
        names = np.asarray(self.meta.label_names, dtype=object)
        labels = np.full(n, None, dtype=object)
        confidence = np.full(n, np.nan)
        raw_confidence = np.full(n, np.nan)
        proba = np.full((n, len(names)), np.nan)
        times = candles["time"].to_numpy()
        if n <= self.meta.warmup:
            return Prediction(times, labels, confidence, proba, raw_confidence)
        temperature = self.meta.temperature if calibrated else 1.0
        thresholds = np.array([self.meta.thresholds.get(str(x), 0.0) for x in names])
        # float32 once, as the model reads it (not once per block of windows)
        features, columns = self.reads
        values, first = feature_matrix(candles, self.meta.featurize, features)
        # Windows are built over the rows after the warm-up, as in the dataset stage.
        anchors = np.arange(max(self.meta.min_history - first, 0), len(values))
        # In blocks, so a long series never holds all its windows (~2 KB per candle) at once.
        for block in np.array_split(anchors, max(1, -(-anchors.size // PREDICT_BLOCK))):
            if not block.size:
                continue
            raw = self.model.predict_proba(build_windows(values, block, self.meta.window, columns=columns))
            rows = block + first
            proba[rows] = temper(raw, temperature)
            raw_confidence[rows] = raw.max(axis=1)
        rows = anchors + first
        if rows.size:
            best = proba[rows].argmax(axis=1)
            top = proba[rows, best]
            # -1: no pattern (O won, or the pattern is below its threshold)
            winner = np.where((names[best] != NO_PATTERN) & (top >= thresholds[best]), best, -1)
            confidence[rows] = top
            if self.meta.anchor == "end":
                # A pattern predicted on its last candle labels every candle it covers, with its confidence.
                by = self._spread_ends(winner, names)
                covered = by >= 0
                winner = np.where(covered, winner[np.maximum(by, 0)], -1)
                into, src = rows[covered], rows[by[covered]]
                proba[into], confidence[into] = proba[src], confidence[src]
                raw_confidence[into] = raw_confidence[src]
            labels[rows] = np.where(winner < 0, NO_PATTERN, names[np.maximum(winner, 0)])
        return Prediction(times, labels, confidence, proba, raw_confidence)

    def _spread_ends(self, winner: np.ndarray, names: np.ndarray) -> np.ndarray:
        """For each predicted row, the row (same indexing) whose pattern covers it, -1 for none.

        A pattern predicted on a row covers its label's length back from it; a higher-priority
        pattern wins over a lower one (as the dataset paints overlapping spans) and the later of
        two of one label over the earlier. A pattern reaching back past the first row is cut there.
        """
        rank = {label: i for i, label in enumerate(self.meta.label_priority)}
        by = np.full(winner.size, -1, dtype=np.int64)
        # Lowest priority first, so the last write wins; a label the rules do not know (a
        # trader's own) ranks above them all, as a trader's span wins in the dataset.
        order = sorted(
            (j for j, name in enumerate(names) if name != NO_PATTERN),
            key=lambda j: -rank.get(str(names[j]), -1),
        )
        for j in order:
            ends = np.flatnonzero(winner == j)
            for k in range(self.meta.label_lengths.get(str(names[j]), 1)):
                at = ends - k
                by[at[at >= 0]] = ends[at >= 0]
        return by


def save_bundle(
    directory: Path,
    model: PatternModel,
    meta: BundleMeta,
    chart_model: ChartModel | None = None,
    run: RunRecord | None = None,
) -> None:
    """Write the bundle (only what the data and params determine) and, given one, the run record."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory)
    if chart_model is not None:
        chart_model.save(directory)
    (directory / BUNDLE_FILE).write_bytes(msgspec.json.format(msgspec.json.encode(meta), indent=2))
    record = run_record_file(directory)
    if run is not None:
        run = msgspec.structs.replace(run, bundle_hash=content_hash(directory))
        record.write_bytes(msgspec.json.format(msgspec.json.encode(run), indent=2))
    else:
        record.unlink(missing_ok=True)  # a record of another run would describe the wrong model


def load_bundle(path: Path | str) -> Bundle:
    """Read a bundle directory written by the train stage."""
    path = Path(path)
    meta_file = path / BUNDLE_FILE
    if not meta_file.is_file():
        raise BundleError(
            f"{path}: no {BUNDLE_FILE} here; run `dvc repro` to train a model, or point at a bundle directory"
        )
    try:
        meta = msgspec.json.decode(meta_file.read_bytes(), type=BundleMeta)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise BundleError(f"{meta_file}: not a valid bundle description ({exc})") from None
    if meta.format_version != FORMAT_VERSION:
        raise BundleError(
            f"{meta_file}: bundle format {meta.format_version}, this code reads {FORMAT_VERSION}"
        )
    digest = content_hash(path)
    record = run_record_file(path)
    if record.is_file():  # absent after `dvc pull` or a registry download: the run is unknown here
        try:
            run = msgspec.json.decode(record.read_bytes(), type=RunRecord)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise BundleError(f"{record}: not a valid run record ({exc})") from None
        if run.bundle_hash == digest:
            meta = with_run(meta, run)
        else:
            log.warning(
                "%s describes another bundle than %s (restored from DVC's cache?): run unknown", record, path
            )
    chart = ChartModel.load(path, meta.chart) if meta.chart is not None else None
    bundle = Bundle(meta, load_model(meta.model_type, path), path, chart, digest)
    _ = bundle.reads  # a bundle whose model reads columns its features cannot make fails here
    return bundle
