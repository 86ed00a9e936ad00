"""Loading a model to predict with, from a bundle directory or the MLflow registry.

A model comes from a local bundle directory (the pipeline's ``models/``) or from the
MLflow registry (``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``), always through
``candle_ml.bundle.load_bundle``, together with its name, version and the test metrics
``evaluate`` measured for exactly that model. The server and ``candle-ml predict`` share it.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import polars as pl

from candle_ml.bundle import BUNDLE_FILE, Bundle, RunRecord, content_hash, load_bundle, with_run
from candle_ml.errors import CandleMLError, ModelLoadError
from candle_ml.outcome_report import LabelOutcome, read_label_outcomes
from candle_ml.paths import EVALUATE_REPORT, OUTCOMES_REPORT
from candle_ml.tracking import fail_fast

log = logging.getLogger("candle_ml.loading")

REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


class ModelSummary(msgspec.Struct):
    """Which model answered: part of every prediction response."""

    name: str
    version: str
    model_type: str
    run_id: str | None
    trained_at: str | None  # null when the run is unknown here (a bundle from `dvc pull`)
    min_history: int  # candles a prediction needs before it
    lookahead: int  # later candles a prediction looks at; the last ones of a request can still change


@dataclass(frozen=True)
class LoadedModel:
    bundle: Bundle
    name: str
    version: str
    source: str
    metrics: dict[str, Any] | None  # evaluate's test-split metrics for exactly this model
    metrics_source: str | None
    outcomes: dict[str, LabelOutcome] | None = None  # the outcomes stage's per-label summary

    @property
    def summary(self) -> ModelSummary:
        meta = self.bundle.meta
        return ModelSummary(
            name=self.name,
            version=self.version,
            model_type=meta.model_type,
            run_id=meta.training.run_id,
            trained_at=meta.training.trained_at,
            min_history=meta.min_history,
            lookahead=meta.lookahead,
        )


def _load_local(path: Path) -> LoadedModel:
    bundle = load_bundle(path)
    # `dvc repro` writes reports/evaluate.json beside models/; older than the bundle means stale.
    metrics_file = path.resolve().parent / EVALUATE_REPORT
    metrics, metrics_source = None, None
    if metrics_file.is_file() and metrics_file.stat().st_mtime >= (path / BUNDLE_FILE).stat().st_mtime:
        metrics, metrics_source = json.loads(metrics_file.read_text()), str(metrics_file)
    # The version is a hash of its files: a different model reads as new, and the same one
    # trained again, byte for byte, as the same.
    digest = bundle.digest or content_hash(path)
    version = "sha256:" + digest[:12]
    # The outcome report names the bundle it was made with; another bundle's is not shown.
    outcomes = read_label_outcomes(path.resolve().parent / OUTCOMES_REPORT, digest)
    return LoadedModel(
        bundle, path.resolve().name, version, str(path.resolve()), metrics, metrics_source, outcomes
    )


def _load_registry(uri: str, tracking_uri: str) -> LoadedModel:
    match = REGISTRY_URI.match(uri)
    if not match:
        raise ModelLoadError(f"--model {uri}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
    fail_fast()
    # The bundle is read into memory, so its download is removed as soon as it is loaded.
    local = Path(tempfile.mkdtemp(prefix="candle-ml-model-"))
    try:
        return _load_registry_into(uri, match, tracking_uri, local)
    finally:
        shutil.rmtree(local, ignore_errors=True)


def _load_registry_into(uri: str, match: re.Match[str], tracking_uri: str, local: Path) -> LoadedModel:
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    name = match["name"]
    try:
        if match["alias"]:
            version = client.get_model_version_by_alias(name, match["alias"])
        else:
            version = client.get_model_version(name, match["version"])
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{version.version}", dst_path=str(local), tracking_uri=tracking_uri
        )
    except Exception as exc:  # the store's own errors, network or missing names
        raise ModelLoadError(
            f"--model {uri} from {tracking_uri}: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        ) from None
    bundles = sorted(p.parent for p in local.rglob(BUNDLE_FILE))
    if not bundles:
        raise ModelLoadError(
            f"--model {uri}: version {version.version} holds no {BUNDLE_FILE} (not a candle-ml pyfunc?)"
        )
    bundle = load_bundle(bundles[0])
    if version.run_id and bundle.meta.training.run_id is None:  # the run's facts come from MLflow
        bundle.meta = with_run(bundle.meta, registry_run(version.run_id, tracking_uri))
    metrics, metrics_source = None, None
    if version.run_id:
        try:  # evaluate logs reports/evaluate.json into the training run
            got = mlflow.artifacts.download_artifacts(
                run_id=version.run_id,
                artifact_path="evaluate.json",
                dst_path=str(local / "run"),
                tracking_uri=tracking_uri,
            )
            metrics, metrics_source = (
                json.loads(Path(got).read_text()),
                f"runs:/{version.run_id}/evaluate.json",
            )
        except Exception:
            log.warning(
                "%s: run %s has no evaluate.json (was evaluate run?); no test metrics", uri, version.run_id
            )
    return LoadedModel(bundle, name, str(version.version), uri, metrics, metrics_source)


def registry_run(run_id: str, tracking_uri: str) -> RunRecord:
    """A registered version's training run, as the run record beside a local bundle says it."""
    import mlflow

    try:
        run = mlflow.MlflowClient(tracking_uri).get_run(run_id)
    except Exception as exc:
        log.warning("run %s: %s; its time and commit are unknown", run_id, type(exc).__name__)
        return RunRecord(trained_at=None, run_id=run_id)
    started = datetime.fromtimestamp(run.info.start_time / 1000, UTC).isoformat(timespec="seconds")
    return RunRecord(trained_at=started, run_id=run_id, git_commit=run.data.tags.get("git_commit"))


def load_model_from(source: str, tracking_uri: str, threads: int | None = None) -> LoadedModel:
    """Load a bundle; ``threads`` sets the model's threads per prediction (None: the library default)."""
    try:
        loaded = (
            _load_registry(source, tracking_uri)
            if source.startswith("models:/")
            else _load_local(Path(source))
        )
    except ModelLoadError:
        raise
    except (CandleMLError, OSError, ValueError) as exc:
        raise ModelLoadError(f"--model {source}: {short(exc)}") from None
    if threads is not None:
        loaded.bundle.set_threads(threads)
    smoke_test(loaded.bundle, source)
    return loaded


def short(exc: BaseException, limit: int = 200) -> str:
    """The first line of an error, bounded: libraries such as XGBoost append C++ stack traces."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def smoke_test(bundle: Bundle, source: str) -> None:
    """Predict on known candles before a model is served.

    A bundle whose files load but do not fit together (feature columns cut, a model of another
    width) fails here, so a reload keeps the old model instead of answering every request with 500.
    """
    meta = bundle.meta
    n = meta.min_history + meta.lookahead + 20
    rng = np.random.default_rng(0)  # a steady random walk: ordinary candles, every rule satisfied
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    candles = pl.DataFrame(
        {
            "time": 946_684_800 + 86_400 * np.arange(n, dtype=np.int64),
            "open": open_,
            "high": np.maximum(open_, close) * (1 + rng.uniform(0.0, 0.01, n)),
            "low": np.minimum(open_, close) * (1 - rng.uniform(0.0, 0.01, n)),
            "close": close,
            "volume": np.full(n, 1000.0),
        }
    )
    try:
        pred = bundle.predict(candles)
        served = pred.proba[meta.min_history :]
        if served.shape[1] != len(meta.labels) or not np.allclose(served.sum(axis=1), 1.0, atol=1e-3):
            raise ValueError(f"probabilities of shape {served.shape} for {len(meta.labels)} labels")
        if any(label is None for label in pred.label[meta.min_history :]):
            raise ValueError("no label for candles with enough history")
    except Exception as exc:
        raise ModelLoadError(
            f"--model {source}: failed a test prediction ({type(exc).__name__}: {short(exc)})"
        ) from None
