"""What every ``candle-ml`` command shares."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from candle_ml.errors import CandleMLError


@contextmanager
def user_errors(code: int = 1) -> Iterator[None]:
    """A user's mistake (bad input or config, a missing file) -> ``error: <what and where>`` on
    stderr and exit ``code``, never a traceback: every command's epilogue."""
    try:
        yield
    except (CandleMLError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code) from None
