"""The OpenAPI document tells the truth: schemathesis, every check, against the real server.

Bounded (60 cases per operation, as issue #26 ran it, seed 3) and on loopback; a temporary feedback log
takes the answers it posts. The output is kept in test-artifacts/schemathesis.txt.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from serve.process import ServerProcess

from .conftest import ARTIFACTS

CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.mark.integration
def test_schemathesis_finds_nothing_wrong_with_every_check(served_model, tmp_path):
    bundle_dir, candles_dir = served_model
    (tmp_path / "human").mkdir()
    server = ServerProcess(
        *("--model", str(bundle_dir), "--candles-dir", str(candles_dir), "--log-level", "warning"),
        *("--feedback-log", str(tmp_path / "feedback.jsonl"), "--human-dir", str(tmp_path / "human")),
        log=tmp_path / "server.log",
    ).start()
    try:
        result = subprocess.run(
            [
                str(Path(sys.executable).with_name("schemathesis")),
                "--config-file",
                str(CONFIG),
                "run",
                f"{server.url}/schema/openapi.json",
                *("--checks", "all", "--max-examples", "60", "--seed", "3", "--no-color"),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        server.stop()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "schemathesis.txt").write_text(result.stdout + result.stderr)
    summary = result.stdout[result.stdout.rfind("SUMMARY") :]
    assert result.returncode == 0, summary
    generated, passed = map(int, re.search(r"(\d+) generated, (\d+) passed", summary).groups())  # type: ignore[union-attr]
    assert generated == passed and generated > 1500, summary
    assert "Tested: 26" in summary  # every operation
    assert "Traceback" not in (tmp_path / "server.log").read_text()  # no 500 on the way
