"""Small helpers every stage's ``main()`` shares: logging, JSON outputs, clean errors."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from candle_ml.errors import CandleMLError

log = logging.getLogger("candle_ml")


def setup_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("CANDLE_ML_LOG", "INFO").upper(),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (tmp file + rename) so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(msgspec.to_builtins(obj), indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def run_stage(fn: Callable[[], None]) -> None:
    """Run a stage. A ``CandleMLError`` (bad input or config, a missing upstream output) prints
    one line a person can act on; anything else is a bug and keeps its full traceback."""
    setup_logging()
    try:
        fn()
    except CandleMLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def require_file(path: Path, made_by: str) -> Path:
    """An upstream output that must exist; its absence is a user error, not a traceback."""
    if not Path(path).exists():
        raise CandleMLError(f"{path}: not found; it is written by the '{made_by}' stage (run `dvc repro`)")
    return Path(path)
