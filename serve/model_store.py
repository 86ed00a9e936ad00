"""The served model: loaded once at startup, swapped atomically on reload.

Requests read ``ModelStore.current`` once and use that object to the end, so a reload
never mixes two models in one response. Loading itself is ``candle_ml.loading``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading

import msgspec

from candle_ml.errors import ModelLoadError
from candle_ml.loading import LoadedModel, load_model_from, short
from serve.errors import NoModel
from serve.schemas import LabelInfo, ModelInfo

log = logging.getLogger("candle_ml.serve")


class ModelStore:
    """Holds the current model; ``reload`` replaces it only when the new one loaded."""

    def __init__(self, source: str, tracking_uri: str, threads: int | None = None):
        self.source = source
        self.tracking_uri = tracking_uri
        self.threads = threads
        self.current: LoadedModel | None = None
        self.last_error: str | None = None
        self._lock = threading.Lock()  # one load at a time; readers never wait

    def require(self) -> LoadedModel:
        """The model now being served, or a 503 that says why there is none."""
        current = self.current  # read once: a concurrent reload cannot change it mid-request
        if current is None:
            raise NoModel(f"no model loaded ({self.last_error or 'loading'}); fix it and POST /model/reload")
        return current

    def reload(self) -> LoadedModel:
        """Load from the source again and swap it in; on failure keep the old model and raise."""
        return self.commit(self.prepare())

    def prepare(self, source: str | None = None) -> LoadedModel:
        """Load the model (from ``source``, else the configured one) without serving it yet; on
        failure record why (``/health``) and raise. With several workers (serve.workers) every
        worker prepares, and they all commit only once every one of them has the same version."""
        with self._lock:
            try:
                model = load_model_from(source or self.source, self.tracking_uri, self.threads)
            except Exception as exc:
                log.debug("model load failed", exc_info=exc)  # the whole trace, for whoever debugs it
                self.last_error = (
                    str(exc) if isinstance(exc, ModelLoadError) else f"{type(exc).__name__}: {short(exc)}"
                )
                log.error(
                    "model load failed, %s: %s",
                    "still serving the previous model" if self.current else "no model",
                    self.last_error,
                )
                raise ModelLoadError(self.last_error) from None
        # a pinned source (models:/NAME/3 for models:/NAME@champion) still shows the configured one
        return model if source is None else dataclasses.replace(model, source=self.source)

    def commit(self, model: LoadedModel) -> LoadedModel:
        """Serve ``model`` from now on (one reference assignment: atomic for readers)."""
        self.current, self.last_error = model, None
        log.info(
            "serving %s version %s (%s) from %s",
            model.name,
            model.version,
            model.bundle.meta.model_type,
            model.source,
        )
        return model


def label_infos(model: LoadedModel) -> list[LabelInfo]:
    """Every label with its colour and, where the outcome report was made for this model, its outcome."""
    outcomes = model.outcomes or {}
    return [LabelInfo(x.name, x.color, outcome=outcomes.get(x.name)) for x in model.bundle.meta.all_labels]


def model_info(model: LoadedModel) -> ModelInfo:
    """``GET /model/info``: what is served, how it was trained and how it scored."""
    meta = model.bundle.meta
    return ModelInfo(
        name=model.name,
        version=model.version,
        source=model.source,
        model_type=meta.model_type,
        run_id=meta.training.run_id,
        trained_at=meta.training.trained_at,
        git_commit=meta.training.git_commit,
        dataset_version=meta.training.dataset_version,
        min_history=meta.min_history,
        lookahead=meta.lookahead,
        features={"featurize": msgspec.to_builtins(meta.featurize), "columns": meta.feature_columns},
        window={
            "window_size": meta.window_size,
            "context": meta.context,
            "anchor": meta.anchor,
            "before": meta.window.before,
            "after": meta.window.after,
        },
        labels=label_infos(model),
        metrics=model.metrics,
        metrics_source=model.metrics_source,
        calibration={"temperature": meta.temperature, "thresholds": meta.thresholds},
        chart=None
        if meta.chart is None
        else {
            "labels": [x for x in meta.chart.labels if x != "O"],
            "window": meta.chart.window,
            "confirm": meta.chart.confirm,
            "bandwidth": meta.chart.bandwidth,
            "min_history": meta.chart.min_history,
            "lookahead": meta.chart.lookahead,
        },
    )
