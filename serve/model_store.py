"""The served model: loaded once at startup, swapped atomically on reload.

A model comes from a local bundle directory (the pipeline's ``models/``) or from the
MLflow registry (``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``), always through
``candle_ml.bundle.load_bundle``. Requests read ``ModelStore.current`` once and use
that object to the end, so a reload never mixes two models in one response.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from candle_ml.bundle import BUNDLE_FILE, Bundle, BundleError, load_bundle
from serve.schemas import Label, ModelInfo, ModelSummary

log = logging.getLogger("candle_ml.serve")

REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


class ModelLoadError(RuntimeError):
    """The model could not be loaded; the message says from where and why."""


@dataclass(frozen=True)
class LoadedModel:
    bundle: Bundle
    name: str
    version: str
    source: str
    metrics: dict[str, Any] | None  # evaluate's test-split metrics for exactly this model
    metrics_source: str | None

    @property
    def summary(self) -> ModelSummary:
        meta = self.bundle.meta
        return ModelSummary(
            name=self.name, version=self.version, model_type=meta.model_type, run_id=meta.training.run_id,
            trained_at=meta.training.trained_at, min_history=meta.min_history, lookahead=meta.window.after,
        )

    def info(self) -> ModelInfo:
        meta = self.bundle.meta
        return ModelInfo(
            name=self.name, version=self.version, source=self.source, model_type=meta.model_type,
            run_id=meta.training.run_id, trained_at=meta.training.trained_at, git_commit=meta.training.git_commit,
            dataset_version=meta.training.dataset_version, min_history=meta.min_history,
            lookahead=meta.window.after,
            features={"featurize": msgspec.to_builtins(meta.featurize), "columns": meta.feature_columns},
            window={"window_size": meta.window_size, "context": meta.context,
                    "before": meta.window.before, "after": meta.window.after},
            labels=[Label(x.name, x.color) for x in meta.labels],
            metrics=self.metrics, metrics_source=self.metrics_source,
        )


def _content_version(path: Path) -> str:
    """A local bundle's version: a hash of its files, so a retrained bundle reads as new."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.iterdir() if p.is_file()):
        digest.update(file.name.encode())
        digest.update(file.read_bytes())
    return "sha256:" + digest.hexdigest()[:12]


def _load_local(path: Path) -> LoadedModel:
    bundle = load_bundle(path)
    # `dvc repro` writes metrics/evaluate.json beside models/; older than the bundle means stale.
    metrics_file = path.resolve().parent / "metrics" / "evaluate.json"
    metrics, metrics_source = None, None
    if metrics_file.is_file() and metrics_file.stat().st_mtime >= (path / BUNDLE_FILE).stat().st_mtime:
        metrics, metrics_source = json.loads(metrics_file.read_text()), str(metrics_file)
    return LoadedModel(bundle, path.resolve().name, _content_version(path), str(path.resolve()), metrics, metrics_source)


def _load_registry(uri: str, tracking_uri: str) -> LoadedModel:
    match = REGISTRY_URI.match(uri)
    if not match:
        raise ModelLoadError(f"--model {uri}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
    import mlflow
    from mlflow import MlflowClient

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    name = match["name"]
    try:
        if match["alias"]:
            version = client.get_model_version_by_alias(name, match["alias"])
        else:
            version = client.get_model_version(name, match["version"])
        mlflow.set_tracking_uri(tracking_uri)
        local = Path(tempfile.mkdtemp(prefix="candle-ml-model-"))
        mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version.version}", dst_path=str(local),
                                            tracking_uri=tracking_uri)
    except Exception as exc:  # the store's own errors, network or missing names
        raise ModelLoadError(f"--model {uri} from {tracking_uri}: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}") from None
    bundles = sorted(p.parent for p in local.rglob(BUNDLE_FILE))
    if not bundles:
        raise ModelLoadError(f"--model {uri}: version {version.version} holds no {BUNDLE_FILE} (not a candle-ml pyfunc?)")
    bundle = load_bundle(bundles[0])
    metrics, metrics_source = None, None
    if version.run_id:
        try:  # evaluate logs metrics/evaluate.json into the training run
            got = mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path="evaluate.json",
                                                      dst_path=str(local / "run"), tracking_uri=tracking_uri)
            metrics, metrics_source = json.loads(Path(got).read_text()), f"runs:/{version.run_id}/evaluate.json"
        except Exception:
            log.warning("%s: run %s has no evaluate.json (was evaluate run?); no test metrics", uri, version.run_id)
    return LoadedModel(bundle, name, str(version.version), uri, metrics, metrics_source)


def load_model_from(source: str, tracking_uri: str, threads: int | None = None) -> LoadedModel:
    """Load a bundle; ``threads`` sets the model's threads per prediction (None: the library default)."""
    try:
        loaded = _load_registry(source, tracking_uri) if source.startswith("models:/") else _load_local(Path(source))
    except (BundleError, OSError, ValueError) as exc:
        raise ModelLoadError(f"--model {source}: {exc}") from None
    if threads is not None:
        loaded.bundle.model.set_threads(threads)
    return loaded


class ModelStore:
    """Holds the current model; ``reload`` replaces it only when the new one loaded."""

    def __init__(self, source: str, tracking_uri: str, threads: int | None = None):
        self.source = source
        self.tracking_uri = tracking_uri
        self.threads = threads
        self.current: LoadedModel | None = None
        self.last_error: str | None = None
        self._lock = threading.Lock()  # one load at a time; readers never wait

    def reload(self) -> LoadedModel:
        """Load from the source again and swap it in; on failure keep the old model and raise."""
        with self._lock:
            try:
                model = load_model_from(self.source, self.tracking_uri, self.threads)
            except Exception as exc:
                self.last_error = str(exc) if isinstance(exc, ModelLoadError) else f"{type(exc).__name__}: {exc}"
                log.error("model load failed, %s: %s", "still serving the previous model" if self.current else "no model", self.last_error)
                raise ModelLoadError(self.last_error) from None
            self.current = model  # one reference assignment: atomic for readers
            self.last_error = None
            log.info("serving %s version %s (%s) from %s", model.name, model.version, model.bundle.meta.model_type, model.source)
            return model
