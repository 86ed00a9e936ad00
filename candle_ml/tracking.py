"""MLflow tracking: where the store is, whether it answers, what a run records.

The tracking URI comes from ``MLFLOW_TRACKING_URI``, else a SQLite store in the
repository (``mlflow.db``, git-ignored) so ``mlflow ui`` works with no server.
Under ``dvc exp run --queue`` stages run in a temporary copy; ``DVC_ROOT`` then
points at the real repository, so every experiment lands in the same store.
DVC outputs never depend on MLflow: when the store cannot be reached the stages
warn and go on (or stop, with ``mlflow.required: true``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from candle_ml.config import MlflowParams
from candle_ml.errors import TrackingError
from candle_ml.paths import DATASET_DIR, DVC_LOCK

log = logging.getLogger("candle_ml.tracking")


def repo_root() -> Path:
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / 'mlflow.db'}"


def fail_fast() -> None:
    """An unreachable store fails in seconds, not after MLflow's default minutes of HTTP retries;
    MLflow's own chatter (database set-up, artifact progress bars) stays out of stage logs."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def queued_experiment() -> bool:
    """True inside `dvc exp run --queue` / `--temp`: DVC runs those in a temporary copy of the repo."""
    root = os.environ.get("DVC_ROOT")
    return root is not None and Path(root).resolve() != Path.cwd().resolve()


def run_name() -> str | None:
    """The DVC experiment's name, so MLflow's run list reads like `dvc exp show`."""
    return os.environ.get("DVC_EXP_NAME") or None


def git_dirty() -> bool | None:
    """Uncommitted changes to tracked files (the run's git_commit alone would not reproduce it)."""
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


def connect(cfg: MlflowParams) -> bool:
    """Point MLflow at the store and select the experiment; False (with a warning) if unreachable."""
    fail_fast()
    uri = tracking_uri()
    try:
        import mlflow

        mlflow.set_tracking_uri(uri)
        if mlflow.get_experiment_by_name(cfg.experiment) is None:
            artifacts = (repo_root() / "mlartifacts").as_uri() if uri.startswith("sqlite:") else None
            mlflow.create_experiment(cfg.experiment, artifact_location=artifacts)
        mlflow.set_experiment(cfg.experiment)
        return True
    except Exception as exc:  # any failure to reach the store is handled the same way
        msg = f"MLflow tracking store {uri} cannot be reached: {type(exc).__name__}: {str(exc)[:300]}"
        if cfg.required:
            raise TrackingError(f"{msg} (set mlflow.required: false to train without tracking)") from None
        log.warning("%s; continuing without tracking (mlflow.required is false)", msg)
        return False


def guarded(cfg: MlflowParams, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one MLflow call; a failure stops the stage only when mlflow.required is true."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        msg = f"MLflow: {what} failed: {type(exc).__name__}: {' '.join(str(exc).split())[:400]}"
        if cfg.required:
            raise TrackingError(msg) from None
        log.warning("%s; DVC outputs are unaffected", msg)
        return None


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists become JSON text."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    value = json.dumps(data) if isinstance(data, list) else data
    return {prefix.rstrip("."): value}


def config_hash(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def dataset_version(lock_file: Path = DVC_LOCK, out_path: str = str(DATASET_DIR)) -> str | None:
    """The hash DVC recorded for the dataset output (None when run outside DVC)."""
    try:
        lock = yaml.safe_load(lock_file.read_text())
        outs = lock["stages"]["dataset"]["outs"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return None
    return next((o.get("md5") for o in outs if o.get("path") == out_path), None)


def run_tags(model_type: str, params: dict[str, Any]) -> dict[str, str]:
    tags = {"model_type": model_type, "config_hash": config_hash(params)}
    if commit := git_commit():
        tags["mlflow.source.git.commit"] = commit
        tags["git_commit"] = commit
    if (dirty := git_dirty()) is not None:
        tags["git_dirty"] = str(dirty).lower()
    if exp := os.environ.get("DVC_EXP_NAME"):
        tags["dvc_exp_name"] = exp
    return tags
