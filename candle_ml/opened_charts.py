"""Charts a trader opens in the review page: any candle file, read with the readers ingest uses,
kept durably so they are still there after a restart, and kept with their candles in
``data/raw/`` once a trader answers on them, so the next ``dvc repro`` trains on those answers.

A chart's name is its series (``PAIR_TIMEFRAME``, as ``candle_ml.series_names`` names the file).
A name already taken by different candles (an ingested series, another opened chart, a file in
``data/raw/``) is a ``ChartConflict``: nothing is overwritten silently; the same candles again
are simply the same chart.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from candle_ml.candle_files import file_layout, read_candle_file
from candle_ml.candle_formats import Layout
from candle_ml.candles import SERIES_FILE_RE, TEXT_SUFFIXES, series_key
from candle_ml.errors import CandleError, CandleMLError
from candle_ml.series_names import name_series


class ChartConflict(CandleMLError):
    """A chart's series name is taken by different candles."""


class ChartFileError(CandleMLError):
    """An opened file is no candle file candle-ml can read (its message names the file, the row
    and the rule, as ``candle-ml check`` does)."""


@dataclass(frozen=True)
class OpenedChart:
    pair: str
    timeframe: str
    candles: pl.DataFrame
    layout: Layout
    named_by: str

    @property
    def key(self) -> str:
        return series_key(self.pair, self.timeframe)


def read_upload(data: bytes, file_name: str, naive_timezone: str = "UTC") -> OpenedChart:
    """Uploaded bytes read as the candle file they are, under the name they were uploaded with
    (its suffix and the platform's naming matter): errors name the file, the row and the rule."""
    name = Path(file_name.replace("\\", "/")).name.strip()
    if not name or name.startswith("."):
        raise CandleError("file name: give the file's own name (e.g. EURUSD_H1.csv)", field="name")
    with tempfile.TemporaryDirectory(prefix="candle-ml-chart-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            layout = file_layout(path)
            candles, _ = read_candle_file(path, naive_timezone)
            named = name_series(path, candles["time"].to_numpy())
        except CandleError as exc:
            raise ChartFileError(str(exc), field=exc.field, rule=exc.rule) from None
        except (UnicodeDecodeError, ValueError, OSError) as exc:  # bytes no CSV/Parquet reader takes
            raise ChartFileError(
                f"{name}: not a candle file candle-ml can read ({exc})", rule="readable"
            ) from None
    return OpenedChart(named.pair, named.timeframe, candles, layout, named.how)


def write_durably(path: Path, frame: pl.DataFrame) -> None:
    """``frame`` as Parquet at ``path``, whole or not at all: a temporary file in the same folder,
    fsynced, renamed over, and the folder fsynced (the new name survives a crash too)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            frame.write_parquet(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def folder_locked(folder: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``folder`` itself (no lock file in a folder DVC tracks): server
    workers (``candle-ml serve --workers``) read, merge and write its files one at a time."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released by close
        yield
    finally:
        os.close(fd)


def same_candles(a: pl.DataFrame, b: pl.DataFrame) -> bool:
    return a.shape == b.shape and a.equals(b)


class ChartStore:
    """The opened charts, one ``PAIR_TIMEFRAME.parquet`` each in ``charts_dir``."""

    def __init__(self, charts_dir: Path):
        self.dir = Path(charts_dir)

    def load(
        self, skip: set[tuple[str, str]] | frozenset[tuple[str, str]] = frozenset()
    ) -> dict[tuple[str, str], pl.DataFrame]:
        """Every chart kept (but those in ``skip``, already read)."""
        if not self.dir.is_dir():
            return {}
        out = {}
        for path in sorted(self.dir.glob("*.parquet")):
            m = SERIES_FILE_RE.match(path.stem)
            if m and (m["pair"], m["timeframe"]) not in skip:
                out[(m["pair"], m["timeframe"])] = pl.read_parquet(path)
        return out

    def add(self, chart: OpenedChart, taken: dict[tuple[str, str], pl.DataFrame]) -> bool:
        """Keep ``chart`` (False: the same candles were open already). ``taken``: every series the
        server serves now, ingested and opened."""
        with folder_locked(self.dir):
            path = self.dir / f"{chart.key}.parquet"
            held = taken.get((chart.pair, chart.timeframe))
            if held is None and path.exists():  # another server worker opened it a moment ago
                held = pl.read_parquet(path)
            if held is not None:
                if same_candles(held, chart.candles):
                    return False
                raise ChartConflict(
                    f"{chart.key} is already served with other candles ({held.height} of them); rename "
                    f"the file (e.g. {chart.pair}-2_{chart.timeframe}.csv) to open it beside that one",
                    field="name",
                    rule="one series per name",
                )
            write_durably(path, chart.candles)
        return True


def text_files_named(raw_dir: Path, key: str) -> list[Path]:
    """The delimited-text files in ``raw_dir`` that ingest would read as series ``key``
    (``KEY.csv``, ``KEY.txt``): a Parquet of that name beside them would be the same series twice."""
    return [f for f in (Path(raw_dir) / f"{key}{s}" for s in TEXT_SUFFIXES) if f.exists()]


def keep_for_training(raw_dir: Path, pair: str, timeframe: str, candles: pl.DataFrame) -> Path:
    """An opened chart's candles in ``data/raw/`` (before its answers are acknowledged), so
    ``dvc repro`` ingests the series the answers are on. The same candles there already: nothing
    to do; different ones under that name (or in a CSV of that name): a ``ChartConflict``."""
    with folder_locked(Path(raw_dir)):
        key = series_key(pair, timeframe)
        path = Path(raw_dir) / f"{key}.parquet"
        for other in (*text_files_named(raw_dir, key), path):
            if other.exists():
                held, _ = read_candle_file(other)
                if other == path and same_candles(held, candles):
                    return path
                raise ChartConflict(
                    f"{other}: a different {key} is in {raw_dir}; answers on the opened chart are not "
                    "stored over it (rename one of the two)",
                    field="pair",
                    rule="one series per name",
                )
        write_durably(path, candles)
        return path


def merge_for_training(raw_dir: Path, pair: str, timeframe: str, candles: pl.DataFrame) -> Path | None:
    """Candles of a series nobody ingested (a Label Studio task's) added to ``data/raw/KEY.parquet``:
    the union with what is there, by time. None when every one is there already; a candle that
    is there with other prices is a ``ChartConflict`` (nothing written)."""
    with folder_locked(Path(raw_dir)):
        key = series_key(pair, timeframe)
        path = Path(raw_dir) / f"{key}.parquet"
        if texts := text_files_named(raw_dir, key):
            raise ChartConflict(
                f"{texts[0]} holds {key} already; a task's candles are not merged into a text file "
                "(convert it to Parquet or rename the task's pair)",
                field="pair",
                rule="one series per name",
            )
        held = read_candle_file(path)[0] if path.exists() else candles.clear()
        check_same_where_both(held, candles, f"{path}")
        merged = pl.concat([held, candles]).unique("time", keep="first").sort("time")
        if merged.height == held.height:
            return None
        write_durably(path, merged)
        return path


def check_same_where_both(held: pl.DataFrame, candles: pl.DataFrame, where: str) -> None:
    """``candles`` agree with ``held`` at every time both have (a ``ChartConflict`` naming the first
    candle that does not)."""
    both = candles.join(held, on="time", how="inner", suffix="_held")
    for column in ("open", "high", "low", "close"):
        differ = both.filter(pl.col(column) != pl.col(f"{column}_held"))
        if differ.height:
            row = differ.row(0, named=True)
            raise ChartConflict(
                f"{where}: the candle at {row['time']} has {column} {row[column + '_held']} there, "
                f"{row[column]} here: another series under the same name (rename one of the two)",
                field=column,
                rule="one series per name",
            )
