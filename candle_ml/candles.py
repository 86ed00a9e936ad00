"""The canonical candle schema and its validation.

One schema everywhere (files under data/candles/, the server's request bodies):
``time`` (Int64, Unix seconds UTC, strictly increasing) and Float64
``open, high, low, close, volume``. Validation is vectorized: each rule is one
boolean mask, so a bad row is reported by file, row, field and rule. Reading a file into these
columns is candle_ml/candle_files.py.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from candle_ml.errors import CandleError
from candle_ml.timeframes import TIMEFRAME_PATTERN

log = logging.getLogger(__name__)

PRICE_COLUMNS = ("open", "high", "low", "close")
CANDLE_COLUMNS = ("time", *PRICE_COLUMNS, "volume")
CANDLE_SCHEMA = {"time": pl.Int64, **{c: pl.Float64 for c in (*PRICE_COLUMNS, "volume")}}


# The one rule for series names (file names under data/, request fields of the server):
# letters, digits, '.' and '-', no leading dot, so '../', '/' and NUL never reach a path.
PAIR_PATTERN = r"[A-Za-z0-9][A-Za-z0-9.\-]{0,63}"
SERIES_FILE_RE = re.compile(rf"^(?P<pair>{PAIR_PATTERN})_(?P<timeframe>{TIMEFRAME_PATTERN})$(?!\n)")


def whole(pattern: str) -> str:
    """``pattern`` matching a whole string, the same in Python and in JSON Schema (ECMA).

    Python's ``$`` also matches before a final newline, so ``^AAPL$`` accepts ``"AAPL\n"``;
    the lookahead refuses it, and ECMA regexes (OpenAPI clients) read it the same way.
    """
    return f"^(?:{pattern})$(?!\n)"


@dataclass
class ValidationReport:
    rows_in: int
    rows_out: int
    dropped_by_rule: dict[str, int] = field(default_factory=dict)
    volume_filled: int = 0


def series_key(pair: str, timeframe: str) -> str:
    return f"{pair}_{timeframe}"


TEXT_SUFFIXES = (".csv", ".txt")  # delimited text, its layout detected (Stooq's bulk files are .txt)
PARQUET_SUFFIXES = (".parquet", ".pq")
CANDLE_SUFFIXES = TEXT_SUFFIXES + PARQUET_SUFFIXES  # what ingest, check, predict and batch read


def parse_series_filename(path: Path) -> tuple[str, str]:
    """``EURUSD_1h.csv`` -> ("EURUSD", "1h"); the pair is upper-cased."""
    match = SERIES_FILE_RE.match(path.stem)
    if not match:
        raise CandleError(
            f"{path.name}: file name must be {{PAIR}}_{{TIMEFRAME}}.csv|parquet "
            "(PAIR: letters, digits, '.' or '-', not starting with '.'; "
            "TIMEFRAME: a count and a unit s, m, h, d or w; e.g. EURUSD_1h.csv)"
        )
    return match["pair"].upper(), match["timeframe"]


def _fmt(x: Any) -> str:
    return f"{x:.10g}"


Rule = tuple[str, str, np.ndarray, Callable[[int], str]]  # (rule, field, mask, message for row i)


def _positive_message(name: str, p: np.ndarray) -> Callable[[int], str]:
    return lambda i: f"{name} {_fmt(p[i])} must be a finite number > 0"


def _row_rules(
    t: np.ndarray, prices: dict[str, np.ndarray], v: np.ndarray, time_text: Callable[[int], str]
) -> list[Rule]:
    """Every per-row rule, in the order they are checked."""
    o, h, low, c = (prices[k] for k in PRICE_COLUMNS)
    rules: list[Rule] = [
        ("time_unparseable", "time", ~np.isfinite(t), lambda i: f"time {time_text(i)} is not a timestamp"),
    ]
    for name in PRICE_COLUMNS:
        rules.append(
            (
                "price_not_finite_positive",
                name,
                ~(np.isfinite(prices[name]) & (prices[name] > 0)),
                _positive_message(name, prices[name]),
            )
        )
    return rules + [
        ("high_below_low", "high", h < low, lambda i: f"high {_fmt(h[i])} < low {_fmt(low[i])}"),
        (
            "high_below_open_close",
            "high",
            h < np.fmax(o, c),
            lambda i: f"high {_fmt(h[i])} < {'open' if o[i] > c[i] else 'close'} {_fmt(max(o[i], c[i]))}",
        ),
        (
            "low_above_open_close",
            "low",
            low > np.fmin(o, c),
            lambda i: f"low {_fmt(low[i])} > {'open' if o[i] < c[i] else 'close'} {_fmt(min(o[i], c[i]))}",
        ),
        (
            "volume_negative",
            "volume",
            ~np.isfinite(v) | (v < 0),
            lambda i: f"volume {_fmt(v[i])} must be >= 0",
        ),
    ]


def _volume(column: Callable[[str], np.ndarray], names: list[str], n: int) -> tuple[np.ndarray, int]:
    """Volume with missing values (or a missing column) as 0, and how many were filled."""
    if "volume" not in names:
        return np.zeros(n), n
    v = column("volume").copy()
    missing = np.isnan(v)
    v[missing] = 0.0
    return v, int(missing.sum())


def _raw_text(raw_times: np.ndarray | pd.Series, i: int) -> str:
    """Row ``i``'s time as the file has it, quoted; made only for a row an error names."""
    if isinstance(raw_times, pd.Series):
        return repr(str(raw_times.iloc[i : i + 1].astype("string").iloc[0]))
    return repr(str(raw_times[i]))


def validate_candles(
    frame: pd.DataFrame | pl.DataFrame,
    source: str,
    on_invalid: str = "error",
    raw_times: np.ndarray | pd.Series | None = None,
    row_name: Callable[[int], str] | None = None,
    warn_volume: bool = True,
) -> tuple[pl.DataFrame, ValidationReport]:
    """Check every rule of the canonical schema; return clean candles and a report.

    ``on_invalid="error"`` raises :class:`CandleError` naming the first bad row
    (1-based data row), its field and the rule; ``"drop"`` removes every bad row
    and counts them per rule. A missing volume column or value becomes 0 with a warning.
    ``row_name(i)`` names 0-based row ``i`` in messages (default ``"{source} row {i + 1}"``);
    ``warn_volume=False`` leaves the missing-volume warning to the caller (one per file, not block).
    """
    name_row = row_name or (lambda i: f"{source} row {i + 1}")

    def column(name: str) -> np.ndarray:
        # Floats straight from polars or pandas (no frame conversion: this runs on every request).
        if isinstance(frame, pl.DataFrame):
            return frame[name].cast(pl.Float64).to_numpy()
        return frame[name].to_numpy(dtype="float64")

    t = column("time")
    n = len(t)
    if n == 0:
        raise CandleError(f"{source}: no rows")
    prices = {c: column(c) for c in PRICE_COLUMNS}
    v, volume_filled = _volume(column, list(frame.columns), n)
    if warn_volume:
        _warn_volume_filled(source, volume_filled)

    def time_text(i: int) -> str:
        return _fmt(t[i]) if raw_times is None else _raw_text(raw_times, i)

    bad_any = np.zeros(n, dtype=bool)
    dropped: dict[str, int] = {}
    for rule, fld, mask, message in _row_rules(t, prices, v, time_text):
        hits = mask & ~bad_any  # count each dropped row once, under its first broken rule
        if hits.any():
            if on_invalid == "error":
                i = int(np.argmax(hits))
                raise CandleError(f"{name_row(i)}: {message(i)} (field '{fld}', rule {rule})", i, fld, rule)
            dropped[rule] = int(hits.sum())
            bad_any |= hits
    keep_idx = _time_order(t, np.flatnonzero(~bad_any), on_invalid, name_row, time_text, dropped)
    if on_invalid == "drop" and dropped:
        log.warning(
            "%s: dropped %d invalid row(s): %s",
            source,
            sum(dropped.values()),
            ", ".join(f"{k}={v}" for k, v in dropped.items()),
        )
    if keep_idx.size == 0:
        raise CandleError(f"{source}: no valid rows left after dropping invalid ones ({dropped})")
    out = pl.DataFrame(
        {
            "time": t[keep_idx].astype(np.int64),
            **{k: prices[k][keep_idx] for k in PRICE_COLUMNS},
            "volume": v[keep_idx],
        },
        schema=CANDLE_SCHEMA,
    )
    report = ValidationReport(
        rows_in=n, rows_out=len(out), dropped_by_rule=dropped, volume_filled=volume_filled
    )
    return out, report


def _time_order(
    t: np.ndarray,
    keep_idx: np.ndarray,
    on_invalid: str,
    name_row: Callable[[int], str],
    time_text: Callable[[int], str],
    dropped: dict[str, int],
) -> np.ndarray:
    """Rows (among ``keep_idx``) whose time exceeds every earlier one; others raise or are counted."""
    tk = t[keep_idx]
    prev_max = np.maximum.accumulate(np.concatenate([[-np.inf], tk[:-1]]))
    dup = tk == prev_max
    unsorted = tk < prev_max
    checks = (("time_duplicate", dup, "repeats"), ("time_not_increasing", unsorted, "is before"))
    for rule, mask, word in checks:
        if mask.any():
            if on_invalid == "error":
                i = int(keep_idx[int(np.argmax(mask))])
                raise _order_error(name_row, time_text, i, rule, word)
            dropped[rule] = int(mask.sum())
    return keep_idx[~(dup | unsorted)]


def _order_error(
    name_row: Callable[[int], str], time_text: Callable[[int], str], i: int, rule: str, word: str
) -> CandleError:
    return CandleError(
        f"{name_row(i)}: time {time_text(i)} {word} an earlier row's time "
        f"(field 'time', rule {rule}: times must be unique and strictly increasing)",
        i,
        "time",
        rule,
    )


def validate_blocks(blocks: Iterable[tuple[pd.DataFrame, pd.Series]], source: str) -> Iterator[pl.DataFrame]:
    """``validate_candles(…, "error")`` over the blocks of one file (``iter_series_file``): rows
    are numbered in the whole file, times must increase across blocks too, and the first bad row
    raises before a later block is read."""
    offset, last, filled = 0, None, 0
    for frame, raw_times in blocks:

        def name_row(i: int, offset: int = offset) -> str:
            return f"{source} row {offset + i + 1}"

        try:
            candles, report = validate_candles(frame, source, "error", raw_times, name_row, warn_volume=False)
            first = int(candles["time"][0])  # "error" keeps every row, so row 0 is the block's first
            if last is not None and first <= last:
                word, rule = (
                    ("repeats", "time_duplicate") if first == last else ("is before", "time_not_increasing")
                )
                first_text = _raw_text(raw_times, 0)
                raise _order_error(name_row, lambda _: first_text, 0, rule, word)  # noqa: B023
        except CandleError as exc:  # its row, within the block, becomes its row in the file
            exc.row = None if exc.row is None else exc.row + offset
            raise
        last, offset, filled = (
            int(candles["time"][-1]),
            offset + report.rows_in,
            filled + report.volume_filled,
        )
        yield candles
    if offset == 0:
        raise CandleError(f"{source}: no rows")
    _warn_volume_filled(source, filled)


def _warn_volume_filled(source: str, rows: int) -> None:
    if rows:
        log.warning("%s: volume missing on %d row(s); set to 0", source, rows)
