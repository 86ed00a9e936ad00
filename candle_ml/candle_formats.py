"""The candle files traders download, recognised by their layout: which platform wrote the file,
its separator, whether it has a header, which columns make the time and the candle, and which are
ignored. ``detect_layout`` reads the first lines only; ``Layout.read_options`` and
``Layout.canonical`` turn the file, whole or a block at a time, into the canonical columns.

Layouts, each as its platform writes it:

- ``metatrader4``: History Center export, no header: ``2020.01.02,00:00,O,H,L,C,tick volume``.
- ``metatrader5``: Symbols > Bars > Export, tab-separated, ``<DATE>\\t<TIME>\\t<OPEN>\\t<HIGH>\\t<LOW>\\t
  <CLOSE>\\t<TICKVOL>\\t<VOL>\\t<SPREAD>`` (``<TIME>`` absent on daily bars); real volume ``<VOL>``,
  or the tick volume where the broker reports none (forex).
- ``yahoo``: ``Date,Open,High,Low,Close,Adj Close,Volume``: the traded ``Close`` (candles are
  unadjusted, as the chart shows them), ``Adj Close`` ignored.
- ``binance``: data.binance.vision klines, no header (or the futures files' ``open_time,...``
  header): 12 columns, the open time in epoch milliseconds (microseconds in spot files since 2025).
- ``tradingview``: "Export chart data": ``time,open,high,low,close`` (Unix seconds or ISO 8601)
  plus ``Volume`` and one column per indicator on the chart, which are ignored.
- ``dukascopy``: historical data feed export: ``Gmt time,Open,High,Low,Close,Volume`` with
  day-first times ``01.01.2020 00:00:00.000`` (``Local time`` carries its ``GMT+0100`` offset).
- ``stooq``: the bulk ASCII files ``<TICKER>,<PER>,<DATE>,<TIME>,<OPEN>,...,<VOL>,<OPENINT>``
  (``20200102``, ``000000``); Stooq's per-symbol download is plain ``csv``.
- ``csv`` / ``parquet``: any other file with a header the column aliases know (what pandas'
  ``to_csv`` writes included).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from candle_ml.candle_columns import canonical_columns, epoch_seconds, parse_times, strptime_seconds
from candle_ml.errors import CandleError

SEPARATORS = (",", "\t", ";", "|")
SNIFF_BYTES = 64 * 1024
BINANCE_COLUMNS = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
)
MT4_COLUMNS = ("date", "time", "open", "high", "low", "close", "volume")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_MT_DATE = re.compile(r"^\d{4}\.\d{2}\.\d{2}$")
_CLOCK = re.compile(r"^\d{1,2}:\d{2}(:\d{2})?$")


@dataclass(frozen=True)
class Layout:
    """How one candle file is laid out (what ``candle-ml check`` prints)."""

    format: str
    separator: str | None  # None: Parquet
    header: bool
    columns: dict[str, str]  # source column -> canonical name (the time's sources -> "time")
    time_from: tuple[str, ...]  # source columns joined with a space into the time
    time_format: str | None = None  # strptime format; "epoch": seconds, ms or µs; None: inferred
    names: tuple[str, ...] | None = None  # the names given to a headerless file's columns
    ignored: tuple[str, ...] = ()
    note: str = ""  # what a user should know (e.g. a broker's server time)
    time_dtype: dict[str, type] = field(default_factory=dict)  # time columns read as text
    encoding: str = "utf-8-sig"
    times_in_utc: bool = False  # naive times that are UTC whatever --naive-timezone says

    def read_options(self) -> dict:
        """pandas.read_csv's keywords for this layout."""
        if self.format == "csv":  # pandas' defaults, as candle-ml always read such files
            return {"sep": self.separator, "encoding": self.encoding}
        return {
            "sep": self.separator,
            "header": 0 if self.header else None,
            "names": list(self.names) if self.names else None,
            "dtype": self.time_dtype or None,
            "skipinitialspace": True,
            "encoding": self.encoding,
        }

    def canonical(self, raw: pd.DataFrame, naive_timezone: str) -> tuple[pd.DataFrame, pd.Series]:
        """A raw block -> the canonical columns (times as float Unix seconds, NaN where
        unparseable) and the raw time text for error messages."""
        raw = raw.reset_index(drop=True)  # a chunked CSV's blocks keep their row numbers
        naive_timezone = "UTC" if self.times_in_utc else naive_timezone
        text = raw[self.time_from[0]]
        for extra in self.time_from[1:]:
            text = text.astype("string").str.strip() + " " + raw[extra].astype("string").str.strip()
        if self.time_format is None:
            times = parse_times(text, naive_timezone)
        elif self.time_format == "epoch":
            times = epoch_seconds(pd.to_numeric(text, errors="coerce"))
        else:
            times = strptime_seconds(text.astype("string").str.strip(), self.time_format, naive_timezone)
        frame = pd.DataFrame({"time": times})
        for source, canon in self.columns.items():
            if canon != "time":
                frame[canon] = pd.to_numeric(raw[source], errors="coerce").astype("float64")
        return frame, text

    def describe(self, naive_timezone: str) -> list[str]:
        """Lines for ``candle-ml check``: format, columns used and ignored, timezone."""
        sep = {None: "", ",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe"}[self.separator]
        used = ", ".join(
            f"{'+'.join(self.time_from)} -> time" if canon == "time" else f"{src} -> {canon}"
            for src, canon in self.columns.items()
            if canon != "time" or src == self.time_from[0]
        )
        if self.time_format == "epoch":
            zone = "UTC (epoch times)"
        elif self.time_format and "%z" in self.time_format:
            zone = "each time's own offset"
        elif self.times_in_utc:
            zone = "UTC (the file says so)"
        else:
            zone = f"{naive_timezone} for times without an offset (--naive-timezone)"
        lines = [
            f"format: {self.format}"
            + (f" ({sep}-separated, {'with a header' if self.header else 'no header'})" if sep else ""),
            f"columns used: {used}",
            f"columns ignored: {', '.join(self.ignored) or 'none'}",
            f"timezone: {zone}",
        ]
        return lines + ([f"note: {self.note}"] if self.note else [])


def _header_key(col: str) -> str:
    return col.strip().strip("<>").strip().lower().replace(" ", "_")


def _is_number(text: str) -> bool:
    return bool(_NUMBER.match(text.strip()))


def sniff(path: Path) -> tuple[str, list[list[str]], str]:
    """The separator, the first rows and the encoding of a text file (UTF-8, or UTF-16 with its
    byte-order mark: what MetaTrader writes; a UTF-8 byte-order mark dropped)."""
    with open(path, "rb") as f:
        start = f.read(2)
    encoding = "utf-16" if start in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    with open(path, encoding=encoding, errors="replace", newline="") as f:
        sample = f.read(SNIFF_BYTES)
    lines = [line for line in sample.splitlines() if line.strip()][:20]
    if len(sample) == SNIFF_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut
    if not lines:
        return ",", [], encoding
    best, best_n = ",", 0
    for sep in SEPARATORS:
        counts = {line.count(sep) for line in lines}
        n = lines[0].count(sep)
        if len(counts) == 1 and n > best_n:
            best, best_n = sep, n
    return best, list(csv.reader(lines, delimiter=best)), encoding


def detect_layout(path: Path, time_column: str | None = None) -> Layout:
    """The layout of a candle CSV (any separator) from its first lines; a clear error when no
    layout fits, saying what the file should look like."""
    sep, rows, encoding = sniff(path)
    if not rows:
        raise CandleError(f"{path.name}: the file is empty", rule="file has candles")
    first = [f.strip() for f in rows[0]]
    header = not all(_is_number(f) for f in first[-3:])
    if not header:
        return replace(_headerless(first, path.name, sep), encoding=encoding)
    keys = [_header_key(c) for c in first]
    if time_column is None:
        layout = _platform(first, keys, sep, rows[1:])
        if layout is not None:
            return replace(layout, encoding=encoding)
    # pandas' names for the header (an empty one is "Unnamed: 0"), as the aliases expect them
    names = [str(c).strip() for c in pd.read_csv(path, sep=sep, nrows=0, encoding=encoding).columns]
    layout = replace(generic_layout(names, path.name, sep, time_column), encoding=encoding)
    if time_column is not None:
        return layout
    if "adj_close" in keys:
        return _renamed(layout, "yahoo", "the traded Close is used; Adj Close (dividends and splits) is not")
    if keys[:5] == ["time", "open", "high", "low", "close"] and (
        len(keys) > 6 or (len(rows) > 1 and _is_number(rows[1][0]))
    ):
        return _renamed(layout, "tradingview", "")
    return layout


def _platform(first: list[str], keys: list[str], sep: str, rows: list[list[str]]) -> Layout | None:
    """A platform's own header (MetaTrader 5, Stooq's ASCII files, Dukascopy, Binance futures)."""
    if "date" in keys and ("tickvol" in keys or "vol" in keys) and first[0].startswith("<"):
        if "ticker" in keys and "per" in keys:
            return _stooq(first, keys, sep)
        return _metatrader5(first, keys, sep, rows)
    if keys[0] in ("gmt_time", "local_time"):
        return _dukascopy(first, keys, sep)
    if "open_time" in keys and "close_time" in keys:
        return _binance(first, sep, header=True)
    return None


def generic_layout(columns: list[str], source: str, sep: str | None, time_column: str | None) -> Layout:
    """A file with a header the column aliases know (``canonical_columns``)."""

    mapping = canonical_columns(columns, source, time_column)
    time_src = next(src for src, canon in mapping.items() if canon == "time")
    ignored = tuple(c for c in columns if c not in mapping)
    return Layout("parquet" if sep is None else "csv", sep, True, mapping, (time_src,), None, None, ignored)


def _renamed(layout: Layout, name: str, note: str) -> Layout:
    return replace(layout, format=name, note=note)


def _headerless(first: list[str], source: str, sep: str) -> Layout:
    if len(first) >= 6 and _MT_DATE.match(first[0]) and _CLOCK.match(first[1]):
        names = (
            MT4_COLUMNS[: len(first)]
            if len(first) <= 7
            else (*MT4_COLUMNS, *(f"extra_{i}" for i in range(len(first) - 7)))
        )
        clock = "%H:%M:%S" if first[1].count(":") == 2 else "%H:%M"
        return Layout(
            "metatrader4",
            sep,
            False,
            {"date": "time", "time": "time", **{c: c for c in names[2:7] if c in MT4_COLUMNS}},
            ("date", "time"),
            f"%Y.%m.%d {clock}",
            tuple(names),
            tuple(names[7:]),
            "MetaTrader writes the broker's server time: set --naive-timezone (ingest.naive_timezone) to it",
            {"date": str, "time": str},
        )
    if len(first) in (11, 12) and all(_is_number(f) for f in first) and float(first[0]) > 1e11:
        return _binance(list(BINANCE_COLUMNS[: len(first)]), sep, header=False)
    raise CandleError(
        f"{source}: no header row, and the first row ({sep.join(first)[:80]}) is not a MetaTrader 4 "
        "export (2020.01.02,00:00,open,high,low,close,volume) or Binance klines (12 columns, epoch "
        "milliseconds first); add a header: time,open,high,low,close,volume",
        field="time",
        rule="a layout candle-ml knows",
    )


def _binance(columns: list[str], sep: str, header: bool) -> Layout:
    used = {
        "open_time": "time",
        "open": "open",
        "high": "high",
        "low": "low",
        "close": "close",
        "volume": "volume",
    }
    return Layout(
        "binance",
        sep,
        header,
        used,
        ("open_time",),
        "epoch",
        None if header else tuple(columns),
        tuple(c for c in columns if c not in used),
        "",
        {"open_time": str},
    )


def _metatrader5(first: list[str], keys: list[str], sep: str, rows: list[list[str]]) -> Layout:
    src = dict(zip(keys, first, strict=True))
    volume = src.get("vol")
    if "tickvol" in src and (volume is None or _all_zero(rows, keys.index("vol"))):
        volume = src["tickvol"]  # a forex broker's real volume is 0: the tick volume is what there is
    columns = {src["date"]: "time", **({src["time"]: "time"} if "time" in src else {})}
    columns |= {src[k]: k for k in ("open", "high", "low", "close")}
    if volume is not None:
        columns[volume] = "volume"
    time_from = (src["date"], src["time"]) if "time" in src else (src["date"],)
    clock = ""
    if "time" in src and rows:
        clock = " %H:%M:%S" if rows[0][keys.index("time")].count(":") == 2 else " %H:%M"
    return Layout(
        "metatrader5",
        sep,
        True,
        columns,
        time_from,
        f"%Y.%m.%d{clock}",
        None,
        tuple(c for c in first if c not in columns),
        "MetaTrader writes the broker's server time: set --naive-timezone (ingest.naive_timezone) to it",
        {c: str for c in time_from},
    )


def _all_zero(rows: list[list[str]], i: int) -> bool:
    values = [r[i].strip() for r in rows if len(r) > i]
    return bool(values) and all(_is_number(v) and float(v) == 0 for v in values)


def _stooq(first: list[str], keys: list[str], sep: str) -> Layout:
    src = dict(zip(keys, first, strict=True))
    columns = {
        src["date"]: "time",
        src["time"]: "time",
        **{src[k]: k for k in ("open", "high", "low", "close")},
    }
    if "vol" in src:
        columns[src["vol"]] = "volume"
    return Layout(
        "stooq",
        sep,
        True,
        columns,
        (src["date"], src["time"]),
        "%Y%m%d %H%M%S",
        None,
        tuple(c for c in first if c not in columns),
        "",
        {src["date"]: str, src["time"]: str},
    )


def _dukascopy(first: list[str], keys: list[str], sep: str) -> Layout:
    src = dict(zip(keys, first, strict=True))
    columns = {first[0]: "time", **{src[k]: k for k in ("open", "high", "low", "close") if k in src}}
    if "volume" in src:
        columns[src["volume"]] = "volume"
    local = keys[0] == "local_time"  # 01.01.2020 01:00:00.000 GMT+0100
    return Layout(
        "dukascopy",
        sep,
        True,
        columns,
        (first[0],),
        "%d.%m.%Y %H:%M:%S.%f GMT%z" if local else "%d.%m.%Y %H:%M:%S.%f",
        None,
        tuple(c for c in first if c not in columns),
        "",
        {first[0]: str},
        times_in_utc=not local,
    )
