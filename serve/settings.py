"""Typed settings of the server (``candle-ml serve`` options)."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from candle_ml import paths
from candle_ml.tracking import tracking_uri as default_tracking_uri
from serve.config import HISTORY_MAX_MB, HISTORY_RETENTION_DAYS, MAX_BODY_MB, Limits
from serve.guards import LOOPBACK_NAMES

DEFAULT_MAX_BODY_BYTES = int(MAX_BODY_MB * 1024 * 1024)


class ServeSettings(msgspec.Struct, forbid_unknown_fields=True):
    model: str = str(paths.MODEL_DIR)  # bundle directory, or models:/NAME@ALIAS | models:/NAME/VERSION
    candles_dir: str = str(paths.CANDLES_DIR)  # what ingest stored, for /predict/batch and the review routes
    feedback_log: str = str(paths.FEEDBACK_LOG)  # where POST /feedback appends traders' answers
    # Every prediction answered (candle_ml.history); "" keeps none (`candle-ml serve` defaults to
    # data/history/predictions.sqlite). Retention: days, then size.
    history: str = ""
    history_retention_days: float = HISTORY_RETENTION_DAYS
    history_max_mb: float = HISTORY_MAX_MB
    human_dir: str = str(paths.HUMAN_DIR)  # traders' exports, read by GET /feedback and /review
    # Charts opened in the page (POST /charts), kept across restarts; "" keeps none (`candle-ml
    # serve` defaults to data/charts). Answers on one write its candles into raw_dir ("": nowhere).
    charts_dir: str = ""
    raw_dir: str = ""
    tracking_uri: str | None = None  # MLflow store; default MLFLOW_TRACKING_URI, else ./mlflow.db if present
    cors_origins: list[str] = msgspec.field(
        default_factory=list
    )  # off unless the annotation tool's origin is set
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # Threads per prediction; None: the cores divided among the predictions that run at once
    # (serve.limits.threads_per_prediction: 1 with the default one prediction per core).
    model_threads: int | None = None
    limits: Limits = msgspec.field(default_factory=Limits)  # bounds on prediction work (serve.limits)
    # Host names the server answers to (400 for any other: DNS rebinding); "*" for any.
    # Basic Auth on /label-studio ("USER:PASSWORD"), as Label Studio's ML backends offer; None: open.
    label_studio_auth: str | None = None
    # Server processes sharing the port (serve.workers); limits, counters and caches are per worker.
    workers: int = 1
    allowed_hosts: list[str] = msgspec.field(default_factory=lambda: list(LOOPBACK_NAMES))

    def store_uri(self) -> str:
        """Where models:/ URIs resolve: --tracking-uri, else the pipeline's own store."""
        return self.tracking_uri or default_tracking_uri()

    def resolved_tracking_uri(self) -> str | None:
        """The store /health reports on; None (not configured) for a local model with no store."""
        uri = self.store_uri()
        local_store = uri.startswith("sqlite:///") and Path(uri.removeprefix("sqlite:///")).is_file()
        configured = (
            self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or self.model.startswith("models:/")
        )
        return uri if configured or local_store else None
