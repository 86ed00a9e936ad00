"""One base for every error a user can act on.

A ``CandleMLError`` carries what a person needs to fix the input: a message naming the
file, row or entry, and where known the ``field`` and ``rule`` that were broken. A stage
prints it as one line; the server maps each kind to an HTTP status in one table
(``serve/errors.py``), so nothing here knows about HTTP. Anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations


class CandleMLError(Exception):
    """Bad input, bad config or a missing resource; the message says what and where."""

    def __init__(self, message: str, *, field: str | None = None, rule: str | None = None):
        super().__init__(message)
        self.field = field
        self.rule = rule


class ConfigError(CandleMLError):
    """params.yaml (or a command-line setting) is missing, malformed, or breaks a rule."""


class CandleError(CandleMLError):
    """Candles break a rule; ``row`` (0-based) is set when one row broke one rule."""

    def __init__(
        self, message: str, row: int | None = None, field: str | None = None, rule: str | None = None
    ) -> None:
        super().__init__(message, field=field, rule=rule)
        self.row = row


class AnnotationError(CandleMLError):
    """An annotation file or span breaks the format; the message names file, entry and field."""


class FeatureError(CandleMLError):
    """A feature could not be computed; the message names the indicator or custom entry."""


class PatternError(ConfigError):
    """An unknown TA-Lib pattern name."""


class DatasetError(CandleMLError):
    """The dataset cannot be built from these inputs and params."""


class BundleError(CandleMLError):
    """A model bundle is missing or unreadable."""


class ModelLoadError(CandleMLError):
    """The model could not be loaded; the message says from where and why."""


class TrackingError(CandleMLError):
    """The MLflow store is required (``mlflow.required``) but cannot be used."""


class TalibMissingError(CandleMLError):
    """TA-Lib cannot be imported."""


class TooLittleHistory(CandleMLError):
    """No candle has the history the model needs."""


class UnknownSeries(CandleMLError):
    """No stored series with that pair and timeframe."""


class UnknownAnswer(CandleMLError):
    """No answer in the feedback log with that id (or every one was undone already)."""


class TooManyCandles(CandleMLError):
    """More candles in one request (or one batch range) than the server predicts per call."""


class EmptyRange(CandleMLError):
    """A stored series has no candle between start and end."""


class TimeframeError(CandleMLError):
    """A timeframe that is neither stored nor of a form whose candles can be counted."""


def require_history(n: int, min_history: int, source: str) -> None:
    """No candle of ``n`` could be labeled: say how many the model needs."""
    if n <= min_history:
        raise TooLittleHistory(
            f"{source}: {n} candles sent; the model needs at least {min_history + 1} "
            f"({min_history} candles of history before the first candle it can label)",
            field="candles",
            rule="min_history",
        )
