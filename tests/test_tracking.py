"""MLflow tracking: the store location and what happens when it cannot be reached."""

from __future__ import annotations

import logging
import socket

import pytest

from candle_ml.config import MlflowParams
from candle_ml.errors import TrackingError
from candle_ml.tracking import connect, flatten, tracking_uri


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens here once the socket closes


def test_default_store_is_sqlite_in_the_repo_or_dvc_root(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert tracking_uri() == f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert tracking_uri() == "http://tracking:5000"


def test_unreachable_store_warns_or_stops(monkeypatch, caplog):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{closed_port()}")
    with caplog.at_level(logging.WARNING):
        assert connect(MlflowParams(required=False)) is False
    assert "cannot be reached" in caplog.text and "continuing without tracking" in caplog.text
    with pytest.raises(TrackingError, match="cannot be reached.*mlflow.required: false"):
        connect(MlflowParams(required=True))


def test_flatten_params():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": "x"}) == {"a.b": 1, "a.c": "[1, 2]", "d": "x"}
